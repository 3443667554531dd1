"""Zip attacks are refused before anything is written; a good zip unpacks once and is reused."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import warnings
import zipfile

import numpy as np
import pytest
from stage1_5.locks import exclusive

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.safezip import COMPLETE_MARKER, clear_stale_extractions, extract_zip
from stage1_5.data.testing import write_dataset, zip_folder
from stage1_5.errors import DatasetError

LIMIT = 10_000_000
RATIO = 100.0


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


def extract(zip_path, target, limit=LIMIT, ratio=RATIO):
    return extract_zip(zip_path, target, max_uncompressed_bytes=limit, max_inflation_ratio=ratio)


def assert_refused_and_nothing_written(zip_path, target, match, limit=LIMIT, ratio=RATIO):
    with pytest.raises(DatasetError, match=match) as info:
        extract(zip_path, target, limit, ratio)
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


def test_zip_over_the_size_limit_is_refused(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", [("a.bin", b"\0" * 3_000_000), ("b.bin", b"\0" * 3_000_000)])
    assert z.stat().st_size < 100_000
    err = assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "more than 5000000 bytes", limit=5_000_000, ratio=1e6)
    assert "'b.bin'" in str(err)


def test_member_inflating_past_the_ratio_is_refused_before_extraction(tmp_path):
    z = make_zip(tmp_path / "bomb.zip", [("metadata.csv", "x"), ("wav/a.wav", b"\0" * 8_000_000)])
    err = assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "dataset.max_zip_inflation_ratio=100")
    assert "'wav/a.wav'" in str(err) and "-> 8000000 bytes" in str(err)


def test_many_small_members_inflating_past_the_ratio_together_are_refused(tmp_path):
    members = [(f"wav/{i}.wav", b"\0" * 900_000) for i in range(4)]  # each under the 1 MiB floor
    err = assert_refused_and_nothing_written(make_zip(tmp_path / "bomb.zip", members), tmp_path / "work" / "x", "as a whole")
    assert "dataset.max_zip_inflation_ratio=100" in str(err)


def test_incompressible_audio_passes_the_ratio_check(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), ("wav/a.wav", noise)])
    assert (extract(z, tmp_path / "work" / "x", ratio=1.5) / "wav/a.wav").stat().st_size == 3_000_000


def test_duplicate_member_is_refused(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "first"), ("metadata.csv", "second")])
    assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "duplicate member")


def test_truncated_zip_says_so_in_plain_words(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])
    assert_refused_and_nothing_written(z, tmp_path / "work" / "x", "the zip file is damaged or truncated .*copy or download it again")


def test_corrupt_member_says_the_zip_is_damaged(tmp_path):
    text = np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes().hex()  # compresses ~2x
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), ("wav/a.txt", text)])
    data = bytearray(z.read_bytes())
    start = data.index(b"wav/a.txt") + 1000  # inside the member's compressed bytes
    data[start : start + 40] = bytes(40)
    z.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"member 'wav/a.txt' is damaged .*the zip is corrupt; copy or download it again"):
        extract(z, tmp_path / "work" / "x")
    assert not list((tmp_path / "work").glob("*.tmp")) and not (tmp_path / "work" / "x").exists()


def test_a_file_that_is_not_a_zip_is_named_so(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"hello")
    with pytest.raises(DatasetError, match="a file but not a zip"):
        load_dataset(tmp_path / "data.bin", DatasetConfig(), work_dir=tmp_path / "work", progress=False)


def test_good_zip_unpacks_with_a_completion_marker_and_is_reused(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), ("wav/s/a.wav", "y")])
    target = tmp_path / "work" / "x"
    assert extract(z, target) == target
    assert (target / "wav/s/a.wav").read_text() == "y" and (target / COMPLETE_MARKER).is_file()
    (target / "wav/s/a.wav").write_text("kept")
    extract(z, target)
    assert (target / "wav/s/a.wav").read_text() == "kept"
    assert [p.name for p in target.parent.iterdir() if p.is_dir()] == ["x"]  # no temporary folder left behind


def test_incomplete_leftover_is_replaced(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x")])
    target = tmp_path / "work" / "x"
    target.mkdir(parents=True)
    (target / "half-written").write_text("")
    extract(z, target)
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "metadata.csv"]


def test_temporary_folder_of_a_killed_extraction_is_removed_by_the_next(tmp_path):
    z = make_zip(tmp_path / "a.zip", [("metadata.csv", "x"), ("wav/a.wav", b"y" * 100)])
    work = tmp_path / "work"
    child = subprocess.Popen([sys.executable, "-c", _SLOW_EXTRACTION, str(z), str(work / "x")])
    try:
        deadline = time.monotonic() + 300  # generous: a busy machine starts the child slowly
        while not list(work.glob(".x.*.tmp")) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert list(work.glob(".x.*.tmp")), "the child never started extracting"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert list(work.glob(".x.*.tmp"))  # what kill -9 leaves behind
    other = make_zip(tmp_path / "b.zip", [("metadata.csv", "z")])
    extract(other, work / "y")  # any later extraction in the work folder sweeps it
    assert not list(work.glob(".*.tmp")) and (work / "y" / "metadata.csv").is_file()


def test_temporary_folder_of_a_running_extraction_is_kept(tmp_path):
    work = tmp_path / "work"
    busy = work / ".x.abc123.tmp"
    busy.mkdir(parents=True)
    with exclusive(work / ".x.lock", what="x"):  # another extraction is unpacking x right now
        assert clear_stale_extractions(work) == []
    assert busy.is_dir() and clear_stale_extractions(work) == [busy] and not busy.exists()


_SLOW_EXTRACTION = """
import shutil, sys, time
from stage1_5.data import safezip
def stall(*args, **kwargs):
    time.sleep(60)
safezip.shutil.copyfileobj = stall
safezip.extract_zip(sys.argv[1], sys.argv[2], max_uncompressed_bytes=10**9, max_inflation_ratio=100.0)
"""


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


def test_load_dataset_applies_the_configured_inflation_ratio(tmp_path):
    z = make_zip(tmp_path / "ds.zip", [("metadata.csv", "x"), ("wav/a.wav", b"\0" * 2_000_000)])
    with pytest.raises(DatasetError, match="max_zip_inflation_ratio=50"):
        load_dataset(z, DatasetConfig(max_zip_inflation_ratio=50), work_dir=tmp_path / "work", progress=False)
