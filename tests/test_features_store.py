"""The feature store: round trip, memory-mapped reads, resume after a crash, keys that never go stale."""

from __future__ import annotations

import errno
import json
import time

import numpy as np
import pytest

from stage1_5.errors import FeatureError, os_error_line
from stage1_5.features.extract import extract_source
from stage1_5.features.store import FeatureStore, StoreKey, ids_digest
from stage1_5.features.testing import CountingExtractor, FakeDataset
from stage1_5.locks import exclusive
from stage1_5.data.manifest import Utterance, UtteranceSet


def _dataset(n: int = 10, content_hash: str = "h0") -> FakeDataset:
    utts = UtteranceSet(Utterance(id=f"u{i:02d}", speaker="s", accent="a", text_id="t", duration=1.0) for i in range(n))
    return FakeDataset(utts, content_hash=content_hash)


def _extract(store, dataset, extractor, **kw):
    kw = {"batch_size": 2, "chunk_size": 4, "store_dtype": "float32", "progress": False, **kw}
    return extract_source(extractor, dataset, store, **kw)


def _key(ids, **kw) -> StoreKey:
    return StoreKey(source="acoustic", dataset_hash="h", utt_ids_hash=ids_digest(ids), **kw)


def test_round_trip_returns_written_rows_in_utterance_order(tmp_path):
    ids = [f"u{i}" for i in range(5)]
    store = FeatureStore(tmp_path)
    entry = store.open(_key(ids), ["acoustic:a"], ids, chunk_size=2)
    data = np.arange(15, dtype=np.float32).reshape(5, 3)
    for index in entry.missing_chunks():
        start, stop = entry.chunk_range(index)
        entry.write_chunk(index, {"acoustic:a": data[start:stop]})
    entry.consolidate()
    np.testing.assert_array_equal(store.find_complete(_key(ids), ["acoustic:a"]).load()["acoustic:a"], data)


def test_complete_entry_is_memory_mapped_and_chunks_are_removed(tmp_path):
    store = FeatureStore(tmp_path)
    vectors, _ = _extract(store, _dataset(), CountingExtractor())
    assert all(isinstance(v, np.memmap) and v.shape == (10, 3) for v in vectors.values())
    entry_dir = next((tmp_path / "acoustic").iterdir())
    assert not list(entry_dir.glob("chunk_*.npz"))
    stem = json.loads((entry_dir / "meta.json").read_text())["files"]["acoustic:a"]
    loaded = np.load(entry_dir / f"{stem}.npy", mmap_mode="r")
    np.testing.assert_array_equal(loaded, vectors["acoustic:a"])


def test_second_call_reads_the_store_without_computing(tmp_path):
    store = FeatureStore(tmp_path)
    first, _ = _extract(store, _dataset(), CountingExtractor())
    again = CountingExtractor()
    second, stats = _extract(store, _dataset(), again)
    assert again.computed == [] and stats.from_cache
    np.testing.assert_array_equal(first["acoustic:b"], second["acoustic:b"])


def test_rerun_after_crash_computes_only_missing_chunks_and_equals_a_clean_run(tmp_path):
    store = FeatureStore(tmp_path / "resumed")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _extract(store, _dataset(), CountingExtractor(fail_after=3))  # chunk 0 written, chunk 1 half done
    resumed = CountingExtractor()
    vectors, stats = _extract(store, _dataset(), resumed)
    assert resumed.computed == [f"u{i:02d}" for i in range(4, 10)]
    assert stats.n_utterances == 6 and not stats.from_cache
    clean, _ = _extract(FeatureStore(tmp_path / "clean"), _dataset(), CountingExtractor())
    for name in clean:
        np.testing.assert_array_equal(vectors[name], clean[name])


def test_changed_extractor_config_gets_a_new_entry(tmp_path):
    store = FeatureStore(tmp_path)
    old, _ = _extract(store, _dataset(), CountingExtractor(setting=0))
    changed = CountingExtractor(setting=1)
    new, stats = _extract(store, _dataset(), changed)
    assert len(changed.computed) == 10 and not stats.from_cache
    assert not np.array_equal(old["acoustic:a"], new["acoustic:a"])


def test_changed_dataset_hash_gets_a_new_entry(tmp_path):
    store = FeatureStore(tmp_path)
    _extract(store, _dataset(content_hash="h0"), CountingExtractor())
    again = CountingExtractor()
    _extract(store, _dataset(content_hash="h1"), again)
    assert len(again.computed) == 10


def test_changed_code_version_gets_a_new_entry(tmp_path):
    store = FeatureStore(tmp_path)
    _extract(store, _dataset(), CountingExtractor(version="1"))
    again = CountingExtractor(version="2")
    _extract(store, _dataset(), again)
    assert len(again.computed) == 10


def test_complete_entry_serves_a_subset_request(tmp_path):
    store = FeatureStore(tmp_path)
    full, _ = _extract(store, _dataset(), CountingExtractor())
    subset = CountingExtractor(names=("acoustic:b",))
    vectors, stats = _extract(store, _dataset(), subset)
    assert subset.computed == [] and stats.from_cache and list(vectors) == ["acoustic:b"]
    np.testing.assert_array_equal(vectors["acoustic:b"], full["acoustic:b"])


def test_subset_is_its_own_entry_when_no_full_entry_exists(tmp_path):
    store = FeatureStore(tmp_path)
    _extract(store, _dataset(), CountingExtractor(names=("acoustic:b",)))
    full = CountingExtractor()
    _extract(store, _dataset(), full)
    assert len(full.computed) == 10
    assert len(list((tmp_path / "acoustic").iterdir())) == 2


def test_force_recomputes_a_complete_entry(tmp_path):
    store = FeatureStore(tmp_path)
    _extract(store, _dataset(), CountingExtractor())
    again = CountingExtractor()
    _, stats = _extract(store, _dataset(), again, force=True)
    assert len(again.computed) == 10 and not stats.from_cache


def test_float16_storage_rounds_to_half_precision(tmp_path):
    ext = CountingExtractor()
    vectors, _ = _extract(FeatureStore(tmp_path), _dataset(), ext, store_dtype="float16")
    assert vectors["acoustic:a"].dtype == np.float16
    np.testing.assert_array_equal(vectors["acoustic:a"][0], ext.vector("u00", "acoustic:a").astype(np.float16))


def test_float16_overflow_is_a_clear_error(tmp_path):
    ids = ["u0"]
    entry = FeatureStore(tmp_path).open(_key(ids, dtype="float16"), ["acoustic:a"], ids, chunk_size=1)
    with pytest.raises(FeatureError, match="overflow the store dtype float16"):
        entry.write_chunk(0, {"acoustic:a": np.array([[1e6]], dtype=np.float32)})


def test_unknown_store_dtype_is_rejected(tmp_path):
    with pytest.raises(FeatureError, match="store dtype 'int8'"):
        _key(["u0"], dtype="int8")


def test_non_finite_vector_names_the_utterance(tmp_path):
    class NaNExtractor(CountingExtractor):
        def vector(self, utt_id, name):
            return np.full(self.dim, np.nan if utt_id == "u03" else 0.0, dtype=np.float32)

    with pytest.raises(FeatureError, match="non-finite.*'u03'"):
        _extract(FeatureStore(tmp_path), _dataset(), NaNExtractor())


def test_missing_utterance_in_extractor_output_is_an_error(tmp_path):
    class Dropping(CountingExtractor):
        def extract_batches(self, utterances, batch_size):
            return super().extract_batches([u for u in utterances if u.id != "u05"], batch_size)

    with pytest.raises(FeatureError, match="no features for utterance 'u05'"):
        _extract(FeatureStore(tmp_path), _dataset(), Dropping())


def test_concurrent_run_waits_for_the_writer_and_reuses_its_entry(tmp_path):
    import threading

    entered, release = threading.Event(), threading.Event()

    class Gated(CountingExtractor):
        def extract_batches(self, utterances, batch_size):
            entered.set()
            release.wait(10)
            return super().extract_batches(utterances, batch_size)

    store, writer, reader = FeatureStore(tmp_path), Gated(), CountingExtractor()
    results = {}
    first = threading.Thread(target=lambda: results.setdefault("writer", _extract(store, _dataset(), writer)))
    first.start()
    assert entered.wait(120)  # the writer holds the entry's lock, blocked inside its extractor
    second = threading.Thread(target=lambda: results.setdefault("reader", _extract(store, _dataset(), reader)))
    second.start()
    time.sleep(0.3)  # the reader is now waiting on the lock
    release.set()
    first.join(120), second.join(120)  # return as soon as done; generous for a busy machine
    assert len(writer.computed) == 10 and reader.computed == []
    assert results["reader"][1].from_cache
    np.testing.assert_array_equal(results["reader"][0]["acoustic:a"], results["writer"][0]["acoustic:a"])


def test_writing_into_returned_vectors_never_changes_the_store(tmp_path):
    store = FeatureStore(tmp_path)
    vectors, _ = _extract(store, _dataset(), CountingExtractor())
    original = np.array(vectors["acoustic:a"])
    vectors["acoustic:a"][:] = 0.0  # e.g. an in-place standardisation downstream
    again, _ = _extract(store, _dataset(), CountingExtractor())
    np.testing.assert_array_equal(again["acoustic:a"], original)


def test_a_finished_extraction_leaves_no_lock_file(tmp_path):
    _extract(FeatureStore(tmp_path), _dataset(), CountingExtractor())
    assert not list(tmp_path.rglob(".lock"))


def test_the_lock_of_a_writer_killed_with_sigkill_is_cleared_by_the_next_one(tmp_path):
    import subprocess
    import sys

    ids = _dataset().utterances.ids
    entry = FeatureStore(tmp_path).open(_key(ids), ["acoustic:a"], ids, chunk_size=4)
    script = f"from stage1_5.locks import exclusive\nimport time\nwith exclusive({str(entry.path / '.lock')!r}, what='entry'):\n    print('held', flush=True)\n    time.sleep(60)\n"
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "held"
    writer.kill()  # kill -9 while computing: the lock file stays, naming a dead pid
    writer.wait()
    assert (entry.path / ".lock").exists()
    with exclusive(entry.path / ".lock", what="entry", wait=False):  # LockBusy if the dead pid still counted
        pass
    with entry.lock():
        pass
    assert not (entry.path / ".lock").exists()


@pytest.fixture
def small_disk(tmp_path):
    """A real 512 KiB tmpfs: the disk fills up for real (root only; skipped where mount is refused)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(store_root, ids, width):
    entry = FeatureStore(store_root).open(_key(ids), ["acoustic:a"], ids, chunk_size=50)
    for i in range(entry.n_chunks):
        entry.write_chunk(i, {"acoustic:a": np.random.default_rng(i).random((50, width), dtype=np.float32)})
    return entry


def test_a_full_disk_while_a_chunk_is_written_names_the_chunk_file(small_disk):
    ids = [f"u{i:03d}" for i in range(200)]
    with pytest.raises(OSError) as info:
        _fill(small_disk, ids, width=1000)  # 800 KB of chunks on a 512 KiB disk
    assert info.value.errno == errno.ENOSPC and info.value.filename.startswith(str(small_disk))
    assert os_error_line(info.value).endswith(".npz: No space left on device")
    assert not list(small_disk.rglob("*.tmp"))


def test_a_full_disk_while_consolidating_names_the_array_file_and_keeps_the_chunks(small_disk):
    ids = [f"u{i:03d}" for i in range(200)]
    entry = _fill(small_disk, ids, width=400)  # 320 KB of chunks fit; their 320 KB array does not
    with pytest.raises(OSError) as info:
        entry.consolidate()  # without preallocation the memory map dies of SIGBUS here
    assert os_error_line(info.value) == f"{entry.path / '000_acoustic__a.npy'}: No space left on device"
    assert not list(small_disk.rglob("*.tmp")) and entry.missing_chunks() == []  # a rerun with room resumes
