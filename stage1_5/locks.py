"""Exclusive locks on folders that several processes may write: a run folder, a feature store entry, a
zip being unpacked. One mechanism for all of them.

`filelock.SoftFileLock` writes the holder's pid, host and start time into the lock file and removes the
file on release. A lock file left by a killed holder (kill -9, power loss) is recognised as stale, since
its pid no longer runs with that start time, and the next process clears it and takes the lock.

A lock file whose content names no holder (empty or garbage: a holder killed between creating and
writing it, a file truncated by a power loss) is stale once it has been unchanged for
`UNREADABLE_GRACE_S`: a live holder writes its record as soon as it creates the file. Until then,
`wait=False` refuses with a message naming the lock file and how to remove it.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Iterator

from filelock import SoftFileLock, Timeout

from stage1_5.errors import LockBusy

UNREADABLE_GRACE_S = 10.0
"""Age (seconds since its last change) after which a lock file naming no holder is cleared."""


def _clear_if_unreadable(lock: SoftFileLock, lock_file: Path) -> None:
    """Remove `lock_file` when it names no holder and has not changed for `UNREADABLE_GRACE_S`; the
    file is removed only if it is still the one examined (same inode and modification time)."""
    try:
        before = lock_file.stat()
    except FileNotFoundError:
        return
    if lock.pid is not None or time.time() - before.st_mtime < UNREADABLE_GRACE_S:
        return
    with contextlib.suppress(FileNotFoundError):
        now = lock_file.stat()
        if (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns):
            os.unlink(lock_file)


@contextlib.contextmanager
def exclusive(lock_file: str | Path, *, what: str, wait: bool = True, hint: str = "") -> Iterator[None]:
    """Hold `lock_file` for the block. `wait=False`: if a live process holds it, raise `LockBusy`
    ("{what} is in use by pid N{hint}") at once instead of waiting for it."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = SoftFileLock(lock_file)
    while True:
        _clear_if_unreadable(lock, lock_file)
        try:  # waiting polls, so that a lock file naming no holder is cleared once its grace has passed
            lock.acquire(timeout=UNREADABLE_GRACE_S if wait else 0)
            break
        except Timeout:
            if wait:
                continue
            holder = lock.pid
            if holder is None and lock_file.exists():
                raise LockBusy(
                    f"{what} is locked by {lock_file}, which names no process (left by a crash or a power loss?); "
                    f"it counts as stale {UNREADABLE_GRACE_S:g} s after its last change, or remove it (rm {lock_file}) "
                    "if no stage1_5 process is using it"
                ) from None
            raise LockBusy(f"{what} is in use by {f'pid {holder}' if holder else 'another process'}{hint}") from None
    try:
        yield
    finally:
        lock.release()
