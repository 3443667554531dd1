"""Acoustic extractor: MFCC statistics (librosa) and the eGeMAPS extra (opensmile)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from stage1_5.config import AcousticConfig
from stage1_5.data.testing import tone
from stage1_5.errors import FeatureError
from stage1_5.features.acoustic import AcousticExtractor, mfcc_stats
from stage1_5.features.testing import write_tone_utterances


@pytest.fixture(scope="module")
def utts(tmp_path_factory):
    return write_tone_utterances(tmp_path_factory.mktemp("acoustic_wav"), 3)


def _run(extractor, utts):
    return [b for b in extractor.extract_batches(utts, 2)]


def test_mfcc_stats_has_mean_and_std_of_mfcc_delta_and_delta_delta(utts):
    batches = _run(AcousticExtractor(AcousticConfig(n_mfcc=13)), utts)
    assert [b.vectors["acoustic:mfcc_stats"].shape for b in batches] == [(2, 78), (1, 78)]
    assert sum(b.n_audio_seconds for b in batches) == pytest.approx(sum(u.duration for u in utts))


def test_mfcc_stats_is_deterministic(utts):
    a = _run(AcousticExtractor(AcousticConfig()), utts)
    b = _run(AcousticExtractor(AcousticConfig()), utts)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.vectors["acoustic:mfcc_stats"], y.vectors["acoustic:mfcc_stats"])


def test_mfcc_stats_handles_clips_shorter_than_the_delta_window():
    out = mfcc_stats(tone(0.05), n_mfcc=20)  # 6 frames < 9-frame delta window
    assert out.shape == (120,) and np.isfinite(out).all()


def test_n_mfcc_is_part_of_the_store_key():
    assert AcousticExtractor(AcousticConfig(n_mfcc=13)).config_key() != AcousticExtractor(AcousticConfig(n_mfcc=20)).config_key()


def test_egemaps_without_opensmile_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)  # makes `import opensmile` raise ImportError
    with pytest.raises(FeatureError, match=r"pip install stage1_5\[egemaps\]"):
        AcousticExtractor(AcousticConfig(features=["mfcc_stats", "egemaps"]))


def test_requesting_a_subset_skips_egemaps(monkeypatch):
    monkeypatch.setitem(sys.modules, "opensmile", None)
    extractor = AcousticExtractor(AcousticConfig(features=["mfcc_stats", "egemaps"]), ["acoustic:mfcc_stats"])
    assert extractor.representation_names() == ["acoustic:mfcc_stats"]
