"""Zip extraction that refuses path escapes, links, duplicates and zip bombs before writing anything.

Every member is checked first (`check_zip`); only a zip that passes is unpacked, into a temporary
folder beside the target that is renamed into place once complete, so a killed extraction never
leaves a half-filled folder under the final name. A `COMPLETE_MARKER` file is written last.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stage1_5.errors import DatasetError

COMPLETE_MARKER = ".stage1_5_complete"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ZipMember:
    info: zipfile.ZipInfo
    path: PurePosixPath
    """Where the member lands, relative to the extraction folder (backslashes read as separators)."""


def safe_relative_path(name: str) -> PurePosixPath:
    """`name` as a relative POSIX path (backslashes read as separators); ValueError says why it is unsafe.

    Shared by zip members and metadata.csv `rel_path`s: neither may reach outside its folder.
    """
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        raise ValueError("absolute path")
    parts = [p for p in normalised.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("'..' leads outside the folder")
    if not parts:
        raise ValueError("empty path")
    return PurePosixPath(*parts)


def _file_type_problem(info: zipfile.ZipInfo) -> str | None:
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "special file (device, fifo or socket)"
    if info.flag_bits & 0x1:
        return "encrypted member"
    return None


def check_zip(zf: zipfile.ZipFile, zip_path: Path, max_uncompressed_bytes: int) -> list[ZipMember]:
    """Check every member before anything is written; raise DatasetError naming the zip and the member."""
    members: list[ZipMember] = []
    seen: set[PurePosixPath] = set()
    total = 0
    for info in zf.infolist():
        try:
            path = safe_relative_path(info.filename)
        except ValueError as err:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: {err}") from None
        problem = _file_type_problem(info)
        if problem:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: {problem}")
        if path in seen:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: duplicate member name")
        seen.add(path)
        total += info.file_size
        if total > max_uncompressed_bytes:
            raise DatasetError(
                f"{zip_path}: member {info.filename!r}: refused: the zip unpacks to more than "
                f"{max_uncompressed_bytes} bytes (dataset.max_zip_uncompressed_bytes / --max-zip-bytes)"
            )
        members.append(ZipMember(info, path))
    return members


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def extract_zip(zip_path: str | Path, target: str | Path, *, max_uncompressed_bytes: int) -> Path:
    """Unpack `zip_path` into `target` (reused when already complete) and return `target`."""
    zip_path, target = Path(zip_path), Path(target)
    if is_complete(target):
        return target
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(f"{zip_path}: not a readable zip file: {err}") from None
    with zf:
        members = check_zip(zf, zip_path, max_uncompressed_bytes)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        except OSError as err:
            raise DatasetError(f"{zip_path}: cannot unpack into {target.parent}: {err}") from None
        try:
            _unpack(zf, zip_path, members, tmp)
            (tmp / COMPLETE_MARKER).write_text(f"{zip_path.name}\n", encoding="utf-8")
            _move_into_place(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _unpack(zf: zipfile.ZipFile, zip_path: Path, members: list[ZipMember], dest_root: Path) -> None:
    for member in members:
        dest = dest_root.joinpath(*member.path.parts)
        try:
            if member.info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member.info) as src, open(dest, "xb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError, RuntimeError, EOFError) as err:
            raise DatasetError(f"{zip_path}: member {member.info.filename!r}: cannot extract: {err}") from None


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished folder over an incomplete leftover; a concurrent finisher wins quietly."""
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)
    try:
        os.rename(tmp, target)
    except OSError as err:
        if not is_complete(target):
            raise DatasetError(f"cannot move the extracted zip into {target}: {err}") from None
