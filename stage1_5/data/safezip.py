"""Zip extraction that refuses path escapes, links, duplicates and zip bombs before writing anything.

Every member is checked first (`check_zip`: names, types, total size, inflation ratio); only a zip
that passes is unpacked, into a temporary folder beside the target that is renamed into place once
complete, so a killed extraction never leaves a half-filled folder under the final name. A
`COMPLETE_MARKER` file is written last. Extraction holds a lock per target (`stage1_5.locks.exclusive`,
the lock every folder shares); temporary folders whose lock nobody holds are leftovers of a killed run
and are removed by the next extraction.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stage1_5.errors import DatasetError, LockBusy
from stage1_5.locks import exclusive

COMPLETE_MARKER = ".stage1_5_complete"
RATIO_FLOOR_BYTES = 1 << 20
"""Inflation ratios are judged only above 1 MiB inflated: small files compress unpredictably and
cannot bomb on their own (many of them are judged together, as the whole zip)."""
_DRIVE = re.compile(r"^[A-Za-z]:")
_TEMP_SUFFIX = ".tmp"
_DAMAGED = "copy or download it again"


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


def looks_like_zip(path: Path) -> bool:
    """Named .zip or starting with a zip signature: worth opening as a zip (and calling it damaged if it fails)."""
    if path.suffix.lower() == ".zip":
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"PK"
    except OSError:
        return False


def _inflation_problem(inflated: int, compressed: int, max_ratio: float) -> str | None:
    if inflated <= RATIO_FLOOR_BYTES or inflated <= max_ratio * max(compressed, 1):
        return None
    return (f"inflates {inflated / max(compressed, 1):.0f} times ({compressed} -> {inflated} bytes), more than "
            f"dataset.max_zip_inflation_ratio={max_ratio:g} (a zip bomb?)")


def check_zip(zf: zipfile.ZipFile, zip_path: Path, max_uncompressed_bytes: int, max_inflation_ratio: float) -> list[ZipMember]:
    """Check every member before anything is written; raise DatasetError naming the zip and the member."""
    members: list[ZipMember] = []
    seen: set[PurePosixPath] = set()
    total = total_compressed = 0
    for info in zf.infolist():
        try:
            path = safe_relative_path(info.filename)
        except ValueError as err:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: {err}") from None
        problem = _file_type_problem(info) or _inflation_problem(info.file_size, info.compress_size, max_inflation_ratio)
        if problem:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: {problem}")
        if path in seen:
            raise DatasetError(f"{zip_path}: member {info.filename!r}: refused: duplicate member name")
        seen.add(path)
        total += info.file_size
        total_compressed += info.compress_size
        if total > max_uncompressed_bytes:
            raise DatasetError(
                f"{zip_path}: member {info.filename!r}: refused: the zip unpacks to more than "
                f"{max_uncompressed_bytes} bytes (dataset.max_zip_uncompressed_bytes / --max-zip-bytes)"
            )
        members.append(ZipMember(info, path))
    problem = _inflation_problem(total, total_compressed, max_inflation_ratio)
    if problem:
        raise DatasetError(f"{zip_path}: refused: the zip as a whole {problem}")
    return members


def is_complete(folder: Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file()


def _lock(folder: Path, name: str, *, wait: bool = True):
    """The extraction lock of `folder / name` (held while it is unpacked)."""
    return exclusive(folder / f".{name}.lock", what=f"the extraction into {folder / name}", wait=wait)


def clear_stale_extractions(folder: Path, holding: str | None = None) -> list[Path]:
    """Remove temporary extraction folders left by killed runs (nobody holds their target's lock).

    `holding`: a target name whose lock the caller holds, so its temporary folders are stale too.
    """
    removed = []
    for tmp in folder.glob(f".*{_TEMP_SUFFIX}"):
        if not tmp.is_dir():
            continue
        target = tmp.name[1 : -len(_TEMP_SUFFIX)].rsplit(".", 1)[0]
        if target == holding:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
            continue
        try:
            with _lock(folder, target, wait=False):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
        except LockBusy:  # another process is extracting it now
            continue
    return removed


def extract_zip(zip_path: str | Path, target: str | Path, *, max_uncompressed_bytes: int, max_inflation_ratio: float) -> Path:
    """Unpack `zip_path` into `target` (reused when already complete) and return `target`."""
    zip_path, target = Path(zip_path), Path(target)
    if is_complete(target):
        return target
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DatasetError(
            f"{zip_path}: the zip file is damaged or truncated ({err}: its table of contents is missing or "
            f"unreadable); {_DAMAGED}"
        ) from None
    with zf:
        members = check_zip(zf, zip_path, max_uncompressed_bytes, max_inflation_ratio)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatasetError(f"{zip_path}: cannot unpack into {target.parent}: {err}") from None
        with _lock(target.parent, target.name):
            if is_complete(target):  # another process finished it while we waited
                return target
            clear_stale_extractions(target.parent, holding=target.name)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_TEMP_SUFFIX, dir=target.parent))
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
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise DatasetError(
                f"{zip_path}: member {member.info.filename!r} is damaged ({err}): the zip is corrupt; {_DAMAGED}"
            ) from None
        except (OSError, RuntimeError) as err:
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
