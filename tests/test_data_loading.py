"""Audio batches decoded ahead of the model: length-bucketed, every utterance once, same audio with
a thread or with worker processes, one clear error for an unreadable file."""

from __future__ import annotations

import numpy as np
import pytest

from stage1_5.data.loading import prefetched_batches
from stage1_5.errors import DatasetError, FeatureError
from stage1_5.features.testing import write_tone_utterances


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    return write_tone_utterances(tmp_path_factory.mktemp("wav"), 7, min_s=0.2, max_s=0.8)


def test_batches_are_length_sorted_and_cover_every_utterance_once(utterances):
    batches = list(prefetched_batches(utterances, 3, sample_rate=16000))
    assert [len(b.utterances) for b in batches] == [3, 3, 1]
    durations = [u.duration for b in batches for u in b.utterances]
    assert durations == sorted(durations, reverse=True)
    assert sorted(u.id for b in batches for u in b.utterances) == sorted(utterances.ids)


def test_the_thread_worker_processes_and_no_prefetch_decode_the_same_audio(utterances):
    threaded = list(prefetched_batches(utterances, 2, sample_rate=24000))
    for other in (prefetched_batches(utterances, 2, sample_rate=24000, num_workers=1), prefetched_batches(utterances, 2, sample_rate=24000, depth=0)):
        other = list(other)
        assert [b.utterances for b in threaded] == [b.utterances for b in other]
        for a, b in zip(threaded, other):
            for x, y in zip(a.wavs, b.wavs):
                np.testing.assert_array_equal(x, y)
    assert threaded[0].audio_seconds(24000) == pytest.approx(sum(u.duration for u in threaded[0].utterances), abs=1e-3)


@pytest.mark.parametrize("workers, depth", [(0, 2), (1, 2), (0, 0)])
def test_an_unreadable_file_is_one_error_naming_the_utterance(utterances, workers, depth):
    broken = [*utterances[:2], utterances[2].copy_with(audio_path="/nonexistent/x.wav")]
    with pytest.raises(DatasetError, match=f"^utterance {broken[2].id}: cannot read audio /nonexistent/x.wav") as info:
        list(prefetched_batches(broken, 1, sample_rate=16000, num_workers=workers, depth=depth))
    assert "Traceback" not in str(info.value)


def test_the_caller_names_the_error_class(utterances):
    broken = [utterances[0].copy_with(audio_path="/nonexistent/x.wav")]
    with pytest.raises(FeatureError):
        list(prefetched_batches(broken, 1, sample_rate=16000, error=FeatureError))
