"""load_dataset: manifest round trip, a location-independent content hash, caches, the demo set."""

from __future__ import annotations

import json
import os

import pytest

from stage1_5.config import DEMO_DATASET, DatasetConfig
from stage1_5.data import dataset as dataset_module
from stage1_5.data.dataset import load_dataset
from stage1_5.data.layout import DEMO_DATA, write_metadata
from stage1_5.data.manifest import UtteranceSet
from stage1_5.data.testing import audio_file, dataset_rows, write_dataset, zip_folder
from stage1_5.errors import DatasetError


def load(path, tmp_path, **config):
    return load_dataset(path, DatasetConfig(**config), work_dir=tmp_path / "work", progress=False)


def test_folder_to_manifest_round_trip(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path)
    ds.utterances.to_file(tmp_path / "manifest.jsonl")
    back = UtteranceSet.from_file(tmp_path / "manifest.jsonl")
    assert back == ds.utterances
    first = json.loads((tmp_path / "manifest.jsonl").read_text().splitlines()[0])
    assert first["duration"] == pytest.approx(0.5) and first["sample_rate"] == 16000


def test_zip_and_folder_give_the_same_content_hash(tmp_path):
    root = write_dataset(tmp_path / "ds")
    flat = zip_folder(root, tmp_path / "flat.zip")
    nested = zip_folder(root, tmp_path / "nested.zip", prefix="my_dataset/")
    hashes = {load(p, tmp_path).content_hash for p in (root, flat, nested)}
    assert len(hashes) == 1


def test_zip_is_unpacked_under_work_dir_and_audio_paths_point_there(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    ds = load(z, tmp_path)
    assert ds.root.is_relative_to((tmp_path / "work").resolve())
    assert all(os.path.isfile(u.audio_path) and u.audio_path.startswith(str(ds.root)) for u in ds.utterances)


def test_hash_changes_when_one_audio_byte_changes(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    before = load(root, tmp_path).content_hash
    audio = audio_file(root, rows[3])
    data = bytearray(audio.read_bytes())
    data[-10] ^= 0x01  # one bit of one sample, same file size
    st = audio.stat()
    audio.write_bytes(bytes(data))
    os.utime(audio, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as any later write would
    assert load(root, tmp_path).content_hash != before


def test_hash_changes_with_the_group_column(tmp_path):
    rows = dataset_rows()
    plain = load(write_dataset(tmp_path / "a", rows), tmp_path).content_hash
    grouped = load(write_dataset(tmp_path / "b", [{**r, "group": r["speaker"][-1]} for r in rows]), tmp_path).content_hash
    assert plain != grouped


def test_recording_statistics_are_kept_per_utterance(tmp_path):
    ds = load(write_dataset(tmp_path / "ds", sample_rate={"north": 48000, "south": 16000}), tmp_path)
    assert {u.accent: ds.recordings[u.id].sample_rate for u in ds.utterances} == {"north": 48000, "south": 16000}
    assert all(ds.recordings[u.id].codec == "WAV PCM_16" for u in ds.utterances)


def test_hash_changes_with_metadata_and_texts(tmp_path):
    root = write_dataset(tmp_path / "a")
    base = load(root, tmp_path).content_hash
    write_metadata(root / "metadata.csv", dataset_rows()[::-1])  # same files, rows reordered
    reordered = load(root, tmp_path).content_hash
    other_texts = load(write_dataset(tmp_path / "b", texts={"t01": "x", "t02": "y"}), tmp_path).content_hash
    no_texts = load(write_dataset(tmp_path / "c", texts=False), tmp_path).content_hash
    assert len({base, reordered, other_texts, no_texts}) == 4


def test_reload_reuses_cached_hashes_and_stats(tmp_path, monkeypatch):
    root = write_dataset(tmp_path / "ds")
    first = load(root, tmp_path)

    def fail(*_args, **_kwargs):
        raise AssertionError("audio was re-read although unchanged")

    monkeypatch.setattr(dataset_module, "measure_recording", fail)
    monkeypatch.setattr(dataset_module, "file_sha256", fail)
    again = load(root, tmp_path)
    assert again.content_hash == first.content_hash and again.utterances == first.utterances


def test_damaged_file_index_is_ignored(tmp_path):
    root = write_dataset(tmp_path / "ds")
    first = load(root, tmp_path).content_hash
    (tmp_path / "work" / "file_index.json").write_text("{not json")
    assert load(root, tmp_path).content_hash == first


def test_features_only_hash_covers_metadata_and_texts(tmp_path):
    a = load(write_dataset(tmp_path / "a", audio=False), tmp_path, audio_required=False)
    b = load(write_dataset(tmp_path / "b", audio=False), tmp_path, audio_required=False)
    assert a.content_hash == b.content_hash and not a.has_audio


def test_partial_audio_in_features_only_mode_is_noted(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    audio_file(root, rows[0]).unlink()
    ds = load(root, tmp_path, audio_required=False)
    assert not ds.has_audio and any("7 of 8 audio files" in w for w in ds.warnings)


@pytest.mark.parametrize("name", ["nowhere", "file.txt"])
def test_unknown_path_is_a_dataset_error(tmp_path, name):
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(DatasetError, match="give a folder, a .zip file or 'demo'"):
        load(tmp_path / name, tmp_path)


def test_folder_without_metadata_is_a_dataset_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="metadata.csv not found"):
        load(tmp_path / "empty", tmp_path)


def test_demo_dataset_loads_with_three_accents_of_eight_speakers(tmp_path):
    ds = load(DEMO_DATASET, tmp_path)
    assert ds.root == DEMO_DATA
    assert ds.summary.speakers_per_accent == {"en-gb": 8, "en-gb-scotland": 8, "en-us": 8}
    assert ds.summary.n_utterances == 192 and ds.summary.min_texts_per_speaker == 8
    assert all(u.text for u in ds.utterances) and ds.summary.sample_rates == {16000: 192}
    assert not ds.meets_minima and ds.has_audio


def test_demo_dataset_is_small_enough_to_ship():
    sizes = [p.stat().st_size for p in DEMO_DATA.rglob("*") if p.is_file()]
    assert sum(sizes) <= 8_000_000 and max(sizes) <= 3_000_000
