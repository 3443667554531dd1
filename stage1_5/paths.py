"""Where the shared cache keeps things: one place names every folder under `output.cache_dir`.

The cache is content-addressed and shared by `stage1_5 run`, the CLI subcommands and the pytest gates,
so they must agree on its layout. `STAGE2_DIR` is the run folder's Stage 2 handoff, which the pipeline
writes, the results zip carries and `stage1_5.stage2.load_directions` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stage1_5.config import OutputConfig

STAGE2_DIR = "artifacts/stage2"
"""Stage 2 artifacts (accent directions, erasure, layer similarity), relative to a run folder."""


@dataclass(frozen=True)
class CachePaths:
    """`<cache_dir>/datasets` (unpacked zips, file index), `features` (feature store), `probes`
    (probe results by key), `stage2` (Stage 2 directions, erasure and CKA by key), `models/<name>`
    (model files a source keeps, e.g. ECAPA's hyperparams)."""

    root: Path

    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def probes(self) -> Path:
        return self.root / "probes"

    @property
    def stage2(self) -> Path:
        return self.root / "stage2"

    def models(self, name: str) -> Path:
        return self.root / "models" / name


def cache_paths(output: "OutputConfig") -> CachePaths:
    return CachePaths(Path(output.cache_dir))
