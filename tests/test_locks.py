"""One lock mechanism for every folder several processes may write; a lock file naming no holder (empty,
or garbage after a power loss) never blocks later runs forever."""

from __future__ import annotations

import ast
import os
import time

import pytest

from stage1_5.errors import LockBusy
from stage1_5.locks import UNREADABLE_GRACE_S, exclusive
from test_architecture import PACKAGE


def _age(path, seconds):
    past = time.time() - seconds
    os.utime(path, (past, past))


@pytest.mark.parametrize("content", [b"", b"\x00\x00garbage\xff\n"])
def test_an_old_lock_file_naming_no_holder_is_cleared_and_taken(tmp_path, content):
    lock_file = tmp_path / ".stage1_5.lock"
    lock_file.write_bytes(content)  # a real lock file, truncated by a power loss
    _age(lock_file, UNREADABLE_GRACE_S + 5)
    with exclusive(lock_file, what="run folder", wait=False):
        assert str(os.getpid()) in lock_file.read_text()  # ours now
    assert not lock_file.exists()


def test_a_fresh_lock_file_naming_no_holder_is_refused_naming_the_file_and_how_to_remove_it(tmp_path):
    lock_file = tmp_path / ".stage1_5.lock"
    lock_file.write_bytes(b"")
    with pytest.raises(LockBusy) as info:
        with exclusive(lock_file, what=f"run folder {tmp_path}", wait=False):
            pass
    assert str(info.value).startswith(f"run folder {tmp_path} is locked by {lock_file}, which names no process")
    assert f"rm {lock_file}" in str(info.value) and lock_file.exists()


def test_waiting_on_a_lock_file_naming_no_holder_takes_it_once_its_grace_has_passed(tmp_path, monkeypatch):
    monkeypatch.setattr("stage1_5.locks.UNREADABLE_GRACE_S", 0.2)
    lock_file = tmp_path / ".lock"
    lock_file.write_bytes(b"")
    with exclusive(lock_file, what="x", wait=True):
        assert lock_file.read_text()  # our record replaced the empty file


def test_filelock_is_used_by_the_locks_module_alone():
    importers = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "filelock")
        or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "filelock" for a in node.names))
    )
    assert importers == ["locks.py"]
