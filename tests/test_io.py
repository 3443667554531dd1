"""Atomic writes: a failure mid-write leaves the old file and no temporary behind."""

from __future__ import annotations

import pytest

from stage1_5.io import atomic_open, atomic_write_json, atomic_write_text


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_mid_write_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write('{"half": ')
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith('{\n  "ok": 1')
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
