"""`extract_features`: sources from the config, representation subsets, clear errors, crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from stage1_5.config import Stage15Config
from stage1_5.errors import FeatureError
from stage1_5.features.external import load_external_features
from stage1_5.features.extract import export_features, extract_features
from stage1_5.features.testing import FakeDataset, write_tone_utterances

torch.set_num_threads(1)

ONLY_ACOUSTIC = {"backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False}}


def _cfg(tmp_path, sources=None, **output) -> Stage15Config:
    output = {"cache_dir": str(tmp_path / "cache"), **output}
    return Stage15Config.model_validate({"sources": sources or ONLY_ACOUSTIC, "output": output})


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return FakeDataset(write_tone_utterances(tmp_path_factory.mktemp("extract_wav"), 6))


def test_feature_set_rows_follow_the_dataset_and_stats_describe_the_run(tmp_path, dataset):
    features = extract_features(_cfg(tmp_path), dataset, progress=False)
    assert features.utt_ids == dataset.utterances.ids
    assert list(features.vectors) == ["acoustic:mfcc_stats"] and features.vectors["acoustic:mfcc_stats"].shape == (6, 120)
    stats = features.stats["acoustic"]
    assert stats.n_utterances == 6 and not stats.from_cache and stats.peak_memory_bytes > 0
    assert stats.audio_seconds == pytest.approx(sum(u.duration for u in dataset.utterances))
    assert stats.utterances_per_s == pytest.approx(6 / stats.wall_s)


def test_second_run_is_served_from_the_store(tmp_path, dataset):
    first = extract_features(_cfg(tmp_path), dataset, progress=False)
    second = extract_features(_cfg(tmp_path), dataset, progress=False)
    assert second.stats["acoustic"].from_cache
    np.testing.assert_array_equal(first.vectors["acoustic:mfcc_stats"], second.vectors["acoustic:mfcc_stats"])


def test_changed_source_config_never_reads_stale_vectors(tmp_path, dataset):
    extract_features(_cfg(tmp_path), dataset, progress=False)
    changed = extract_features(_cfg(tmp_path, {**ONLY_ACOUSTIC, "acoustic": {"n_mfcc": 13}}), dataset, progress=False)
    assert not changed.stats["acoustic"].from_cache and changed.vectors["acoustic:mfcc_stats"].shape == (6, 78)


def test_representations_restrict_what_is_extracted(tmp_path, dataset):
    cfg = _cfg(tmp_path, {**ONLY_ACOUSTIC, "ssl": {"model": "tiny-random"}})
    features = extract_features(cfg, dataset, representations={"ssl:layer_01"}, progress=False)
    assert list(features.vectors) == ["ssl:layer_01"] and set(features.stats) == {"ssl"}
    (entry,) = (Path(cfg.output.cache_dir) / "features" / "ssl").iterdir()
    assert json.loads((entry / "meta.json").read_text())["representations"] == ["ssl:layer_01"]


def test_backbone_source_extracts_only_the_requested_layers(tmp_path, dataset):
    backbone = {"checkpoint": "tiny-random", "layers": ["decoder_block_00", "decoder_block_01"], "dtype": "float32"}
    cfg = _cfg(tmp_path, {**ONLY_ACOUSTIC, "backbone": backbone, "acoustic": {"enabled": False}})
    features = extract_features(cfg, dataset, representations={"backbone:decoder_block_01"}, progress=False)
    assert list(features.vectors) == ["backbone:decoder_block_01"]
    assert features.vectors["backbone:decoder_block_01"].shape[0] == 6


def test_unknown_source_is_a_clear_error(tmp_path, dataset):
    with pytest.raises(FeatureError, match="unknown feature source 'mfcc'; expected one of backbone, planted, ssl, ecapa, ge2e, acoustic"):
        extract_features(_cfg(tmp_path), dataset, sources=["mfcc"], progress=False)


def test_representation_of_a_disabled_source_is_a_clear_error(tmp_path, dataset):
    with pytest.raises(FeatureError, match=r"'ssl:layer_01'.*disabled.*sources.ssl.enabled"):
        extract_features(_cfg(tmp_path), dataset, representations={"ssl:layer_01"}, progress=False)


def test_representation_without_a_source_prefix_is_a_clear_error(tmp_path, dataset):
    with pytest.raises(FeatureError, match="'layer_01': expected 'source:name'"):
        extract_features(_cfg(tmp_path), dataset, representations={"layer_01"}, progress=False)


def test_unknown_layer_of_an_enabled_source_is_a_clear_error(tmp_path, dataset):
    with pytest.raises(FeatureError, match="acoustic:prosody"):
        extract_features(_cfg(tmp_path), dataset, representations={"acoustic:prosody"}, progress=False)


def test_features_only_dataset_skips_enabled_audio_sources_with_a_warning(tmp_path, dataset):
    no_audio = FakeDataset(dataset.utterances, has_audio=False)
    with pytest.warns(UserWarning, match="skipping feature source 'acoustic'"):
        features = extract_features(_cfg(tmp_path), no_audio, progress=False)
    assert features.vectors == {}
    with pytest.raises(FeatureError, match="needs audio"):
        extract_features(_cfg(tmp_path), no_audio, sources=["acoustic"], progress=False)


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_export_reads_back_as_an_external_source(tmp_path, dataset, suffix):
    features = extract_features(_cfg(tmp_path), dataset, progress=False)
    path = export_features(features, tmp_path / f"features{suffix}")
    ids, arrays = load_external_features(path)
    assert ids == dataset.utterances.ids
    np.testing.assert_array_equal(arrays["acoustic:mfcc_stats"], features.vectors["acoustic:mfcc_stats"])


def test_external_file_adds_its_representations_in_dataset_order(tmp_path, dataset):
    ids = dataset.utterances.ids
    vectors = np.arange(len(ids) * 2, dtype=np.float32).reshape(-1, 2)
    path = tmp_path / "mine.npz"
    np.savez(path, utt_id=np.array(ids[::-1]), **{"mymodel:layer_03": vectors[::-1]})
    cfg = _cfg(tmp_path, {**ONLY_ACOUSTIC, "acoustic": {"enabled": False}, "external": [str(path)]})
    features = extract_features(cfg, dataset, progress=False)
    assert list(features.vectors) == ["mymodel:layer_03"] and set(features.stats) == {"external"}
    np.testing.assert_array_equal(features.vectors["mymodel:layer_03"], vectors)
    only = extract_features(cfg, dataset, representations={"mymodel:layer_03"}, progress=False)
    assert list(only.vectors) == ["mymodel:layer_03"]


def test_external_column_named_like_a_computed_representation_is_an_error(tmp_path, dataset):
    path = tmp_path / "clash.npz"
    np.savez(path, utt_id=np.array(dataset.utterances.ids), **{"acoustic:mfcc_stats": np.zeros((6, 2), np.float32)})
    cfg = _cfg(tmp_path, {**ONLY_ACOUSTIC, "external": [str(path)]})
    with pytest.raises(FeatureError, match="'acoustic:mfcc_stats' comes from two sources"):
        extract_features(cfg, dataset, progress=False)


_CRASHING_RUN = textwrap.dedent(
    """
    import pathlib, sys, time
    from stage1_5.config import Stage15Config
    from stage1_5.data.manifest import UtteranceSet
    from stage1_5.features import acoustic
    from stage1_5.features.extract import extract_features
    from stage1_5.features.testing import FakeDataset

    manifest, cache = sys.argv[1], sys.argv[2]
    slow = acoustic.AcousticExtractor.extract_batches
    def stalled(self, utterances, batch_size):
        for batch in slow(self, utterances, batch_size):
            if list(pathlib.Path(cache).glob("features/acoustic/*/chunk_*.npz")):
                time.sleep(600)  # a chunk is stored: wait here for the parent's kill -9, however slow it is
            yield batch
    acoustic.AcousticExtractor.extract_batches = stalled

    cfg = Stage15Config.model_validate({"sources": %r, "output": {"cache_dir": cache, "feature_chunk_size": 2}})
    extract_features(cfg, FakeDataset(UtteranceSet.from_file(manifest)), progress=False)
    """
    % ONLY_ACOUSTIC
)


def test_kill_9_midway_then_rerun_resumes_and_equals_a_clean_run(tmp_path, dataset):
    manifest = tmp_path / "manifest.jsonl"
    dataset.utterances.to_file(manifest)
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _CRASHING_RUN, str(manifest), str(cache)])
    deadline = time.monotonic() + 300  # generous: a busy machine starts the child slowly; it stalls once a chunk is stored
    chunks: list[Path] = []
    while len(chunks) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        chunks = list((cache / "features" / "acoustic").glob("*/chunk_*.npz"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    entry = chunks[0].parent
    done = len(list(entry.glob("chunk_*.npz")))
    assert 1 <= done < 3 and not json.loads((entry / "meta.json").read_text())["complete"]

    resumed = extract_features(_cfg(tmp_path, feature_chunk_size=2), dataset, progress=False)
    assert resumed.stats["acoustic"].n_utterances == 6 - 2 * done
    clean = extract_features(_cfg(tmp_path / "clean", feature_chunk_size=2), dataset, progress=False)
    np.testing.assert_array_equal(resumed.vectors["acoustic:mfcc_stats"], clean.vectors["acoustic:mfcc_stats"])


def test_each_source_s_extractor_is_freed_and_the_cuda_cache_emptied_before_the_next_loads(tmp_path, dataset, monkeypatch):
    import weakref

    from stage1_5.features import extract

    built, alive_at_build, emptied = [], [], []
    real_build = extract.build_extractor

    def build(source, cfg, representations=None):
        alive_at_build.append([ref() is not None for ref in built])
        extractor = real_build(source, cfg, representations)
        built.append(weakref.ref(extractor))
        return extractor

    monkeypatch.setattr(extract, "build_extractor", build)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # as on a GPU run
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(len(built)))
    sources = {**ONLY_ACOUSTIC, "ssl": {"enabled": True, "model": "tiny-random"}}
    extract_features(_cfg(tmp_path, sources), dataset, progress=False)
    assert len(built) == 2 and alive_at_build == [[], [False]]
    assert emptied == [1, 2]  # after each source
