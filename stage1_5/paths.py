"""Where the shared cache keeps things: one place names every folder under `output.cache_dir`.

The cache is content-addressed and shared by `stage1_5 run`, the CLI subcommands and the pytest gates,
so they must agree on its layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stage1_5.config import OutputConfig


@dataclass(frozen=True)
class CachePaths:
    """`<cache_dir>/datasets` (unpacked zips, file index), `features` (feature store), `probes`
    (probe results by key), `models/<name>` (model files a source keeps, e.g. ECAPA's hyperparams)."""

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

    def models(self, name: str) -> Path:
        return self.root / "models" / name


def cache_paths(output: "OutputConfig") -> CachePaths:
    return CachePaths(Path(output.cache_dir))
