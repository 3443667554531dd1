"""Exclusive locks on folders that several processes may write: a run folder, a feature store entry.

`filelock.SoftFileLock` writes the holder's pid, host and start time into the lock file and removes the
file on release. A lock file left by a killed holder (kill -9, power loss) is recognised as stale, since
its pid no longer runs with that start time, and the next process clears it and takes the lock.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from filelock import SoftFileLock, Timeout

from stage1_5.errors import LockBusy


@contextlib.contextmanager
def exclusive(lock_file: str | Path, *, what: str, wait: bool = True, hint: str = "") -> Iterator[None]:
    """Hold `lock_file` for the block. `wait=False`: if a live process holds it, raise `LockBusy`
    ("{what} is in use by pid N{hint}") at once instead of waiting for it."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = SoftFileLock(lock_file)
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except Timeout:
        holder = lock.pid
        raise LockBusy(f"{what} is in use by {f'pid {holder}' if holder else 'another process'}{hint}") from None
    try:
        yield
    finally:
        lock.release()
