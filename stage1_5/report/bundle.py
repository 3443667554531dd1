"""`stage1_5_results.zip`: the run's report, analysis artifacts, Stage 2 handoff and resolved config in one file.

The zip is reproducible: members sorted by path, fixed timestamps and permissions, so identical
outputs give byte-identical zips. It is written beside its final name and renamed into place.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import List

from stage1_5.errors import Stage15Error
from stage1_5.io import atomic_open
from stage1_5.paths import STAGE2_DIR

BUNDLE_NAME = "stage1_5_results.zip"
BUNDLE_DIRS = ("report", "artifacts/analysis", "config")
"""Folders of the run directory that go into the zip, under the same relative paths."""
OPTIONAL_BUNDLE_DIRS = (STAGE2_DIR,)
"""Folders that go in when the run wrote them (artifacts/stage2/ only exists with stage2.enabled)."""

_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest zip timestamp: no clock in the bytes


def bundle_members(run_dir: str | Path) -> List[Path]:
    """Regular files under BUNDLE_DIRS (and OPTIONAL_BUNDLE_DIRS that exist), relative to `run_dir`, sorted;
    atomic-write temp files and links skipped."""
    root = Path(run_dir)
    missing = [d for d in BUNDLE_DIRS if not (root / d).is_dir()]
    if missing:
        raise Stage15Error(f"{root}: cannot bundle results, missing folder(s) {', '.join(missing)}")
    members = []
    for d in BUNDLE_DIRS + tuple(d for d in OPTIONAL_BUNDLE_DIRS if (root / d).is_dir()):
        for p in (root / d).rglob("*"):
            if p.is_symlink() or not p.is_file() or (p.name.startswith(".") and p.name.endswith(".tmp")):
                continue
            members.append(p.relative_to(root))
    return sorted(members, key=lambda p: p.as_posix())


def write_bundle(run_dir: str | Path) -> Path:
    """Write `<run_dir>/stage1_5_results.zip` holding report/, artifacts/analysis/, config/ and artifacts/stage2/ when present; returns its path."""
    root = Path(run_dir)
    members = bundle_members(root)
    target = root / BUNDLE_NAME
    with atomic_open(target, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel in members:
            info = zipfile.ZipInfo(rel.as_posix(), date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, (root / rel).read_bytes())
    return target
