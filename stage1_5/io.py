"""Atomic file writes: a killed run never leaves a half-written file under its final name."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `path`; on clean exit fsync and rename it over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise naming(err, path) from err
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            raise naming(err, path) from err
        raise


def naming(err: OSError, path: str | os.PathLike) -> OSError:
    """The same error (same type and errno) naming the file the user asked for, not its temporary twin
    (or naming a file at all: a failed memory-map flush names none)."""
    return type(err)(err.errno, err.strerror, str(path))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Cell starts that make a spreadsheet (Excel, LibreOffice, Google Sheets) run a cell as a formula."""
TEXT_MARK = "'"
"""Prefixed to such text cells, as spreadsheets themselves do, so that they show the text (OWASP's advice)."""


def _as_text(value: Any) -> Any:
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, TEXT_MARK)):
        return TEXT_MARK + value  # a cell already starting with the mark gets one more: reading strips exactly one
    return value


def _from_text(value: Any) -> Any:
    return value[1:] if isinstance(value, str) and value.startswith(TEXT_MARK) else value


def _map_text(frame: Any, fn: Any) -> Any:
    """`frame` with `fn` applied to every text cell, index label and column name (numbers untouched)."""
    from pandas.api.types import is_numeric_dtype

    out = frame.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):
            out[column] = out[column].map(fn)
    out.index = out.index.map(fn)
    out.columns = out.columns.map(fn)
    return out


def write_csv(path: str | os.PathLike, frame: Any, *, index: bool = False) -> None:
    """Write a pandas DataFrame as CSV, atomically, with user text (ids, accent names, representation
    names) safe to open in a spreadsheet: a text cell starting with = + - @ (or a tab, a carriage
    return, or the mark itself) is written with a leading `'`, which spreadsheets show as text.
    `read_csv` strips it again; numbers (negative ones included) are written as they are."""
    with atomic_open(path, "w", newline="") as fh:
        _map_text(frame, _as_text).to_csv(fh, index=index)


def read_csv(path: str | os.PathLike, **kwargs: Any) -> Any:
    """`pandas.read_csv` of a file `write_csv` wrote, with the spreadsheet marks removed."""
    import pandas as pd

    return _map_text(pd.read_csv(path, **kwargs), _from_text)
