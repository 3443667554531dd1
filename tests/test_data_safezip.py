"""Zip attacks are refused before anything is written; a good zip unpacks once and is reused."""

from __future__ import annotations

import stat
import warnings
import zipfile

import pytest

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.safezip import COMPLETE_MARKER, extract_zip
from stage1_5.data.testing import write_dataset, zip_folder
from stage1_5.errors import DatasetError

LIMIT = 10_000_000


def make_zip(path, members):
    """members: (name, data) or (ZipInfo, data)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; that is the attack
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def symlink_info(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def assert_refused_and_nothing_written(zip_path, target, match, limit=LIMIT):
    with pytest.raises(DatasetError, match=match) as info:
        extract_zip(zip_path, target, max_uncompressed_bytes=limit)
    assert str(zip_path) in str(info.value)
    assert not target.parent.exists() or list(target.parent.iterdir()) == []
    return info.value


@pytest.mark.parametrize("name", ["../evil.txt", "wav/../../evil.txt", "..\\evil.txt"])
def test_dotdot_member_is_refused(tmp_path, name):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), (name, "pwned")])
    err = assert_refused_and_nothing_written(z, tmp_path / "work" / "x", r"'\.\.'")
    assert repr(name) in str(err)


@pytest.mark.parametrize("name", ["/etc/evil.txt", "C:/evil.txt", "c:\\evil.txt", "\\\\server\\share\\evil.txt"])
def test_absolute_member_is_refused(tmp_path, name):
    z = make_zip(tmp_path / "a.zip", [(name, "pwned")])
    assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "absolute path")


def test_symlink_member_is_refused(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), (symlink_info("wav/link"), "/etc/passwd")])
    assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "symbolic link")


def test_zip_bomb_over_the_limit_is_refused(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", [("a.bin", b"\0" * 3_000_000), ("b.bin", b"\0" * 3_000_000)])
    assert z.stat().st_size < 100_000
    err = assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "more than 5000000 bytes", limit=5_000_000)
    assert "'b.bin'" in str(err)


def test_duplicate_member_is_refused(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "first"), ("metadata.csv", "second")])
    assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "duplicate member")


def test_not_a_zip_is_a_dataset_error(tmp_path):
    bad = tmp_path / "a.zip"
    bad.write_bytes(b"PK\x03\x04 truncated")
    assert_refused_and_nothing_written(bad, tmp_path / "work" / "x", "not a readable zip")


def test_good_zip_unpacks_with_a_completion_marker_and_is_reused(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), ("wav/s/a.wav", "y")])
    target = tmp_path / "work" / "x"
    assert extract_zip(z, target, max_uncompressed_bytes=LIMIT) == target
    assert (target / "wav/s/a.wav").read_text() == "y" and (target / COMPLETE_MARKER).is_file()
    (target / "wav/s/a.wav").write_text("kept")
    extract_zip(z, target, max_uncompressed_bytes=LIMIT)
    assert (target / "wav/s/a.wav").read_text() == "kept"
    assert [p.name for p in target.parent.iterdir()] == ["x"]  # no temporary folder left behind


def test_incomplete_leftover_is_replaced(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x")])
    target = tmp_path / "work" / "x"
    target.mkdir(parents=True)
    (target / "half-written").write_text("")
    extract_zip(z, target, max_uncompressed_bytes=LIMIT)
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "metadata.csv"]


def test_load_dataset_refuses_an_attack_zip_and_writes_nothing(tmp_path):
    root = write_dataset(tmp_path / "ds")
    z = zip_folder(root, tmp_path / "ds.zip")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("../../escape.txt", "pwned")
    work = tmp_path / "work"
    with pytest.raises(DatasetError, match="escape.txt"):
        load_dataset(z, DatasetConfig(), work_dir=work, progress=False)
    assert not work.exists() or list(work.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists()


def test_load_dataset_applies_the_configured_zip_limit(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    with pytest.raises(DatasetError, match="max_zip_uncompressed_bytes"):
        load_dataset(z, DatasetConfig(max_zip_uncompressed_bytes=1000), work_dir=tmp_path / "work", progress=False)
