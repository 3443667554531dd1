"""The `ge2e` reference source: Resemblyzer's pretrained GE2E speaker encoder, read from the weights in
its PyPI wheel with `weights_only=True` and probed layer by layer (stage1_5.features.ge2e)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stage1_5.config import Ge2eConfig
from stage1_5.errors import FeatureError
from stage1_5.features.ge2e import HIDDEN, LAYERS, N_MELS, Ge2eExtractor, load_layers, weights_path
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)
NAMES = [f"ge2e:{layer}" for layer in LAYERS]


@pytest.fixture(scope="module")
def utts(tmp_path_factory):
    return write_tone_utterances(tmp_path_factory.mktemp("ge2e_wav"), 3, min_s=0.3, max_s=1.0)


def _pooled(extractor, utts, batch_size) -> dict[str, np.ndarray]:
    rows: dict[str, dict[str, np.ndarray]] = {}
    for batch in extractor.extract_batches(utts, batch_size):
        for i, uid in enumerate(batch.utt_ids):
            rows[uid] = {name: v[i] for name, v in batch.vectors.items()}
    return {name: np.stack([rows[u.id][name] for u in utts]) for name in extractor.representation_names()}


def test_the_three_loaded_layers_compute_the_released_three_layer_lstm():
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]
    full = torch.nn.LSTM(N_MELS, HIDDEN, num_layers=3, batch_first=True)
    full.load_state_dict({k.removeprefix("lstm."): v for k, v in state.items() if k.startswith("lstm.")})
    x = torch.rand(2, 30, N_MELS)
    y = x
    with torch.inference_mode():
        for layer in load_layers(weights_path()):
            y, _ = layer(y)
        assert torch.allclose(full(x)[0], y, atol=1e-6)


def test_every_layer_gives_one_finite_vector_per_utterance_whatever_the_batching(utts):
    alone = _pooled(Ge2eExtractor(Ge2eConfig()), utts, 1)
    batched = _pooled(Ge2eExtractor(Ge2eConfig()), utts, 3)  # lengths differ: the batch is padded
    assert list(alone) == NAMES
    for name in NAMES:
        assert alone[name].shape == (len(utts), HIDDEN) and np.isfinite(alone[name]).all()
        np.testing.assert_allclose(batched[name], alone[name], atol=1e-5)
    assert not np.allclose(alone["ge2e:lstm_1"], alone["ge2e:lstm_3"])


def test_an_unknown_layer_is_refused_naming_the_option():
    with pytest.raises(FeatureError, match=r"sources.ge2e: unknown representation\(s\) ge2e:lstm_4"):
        Ge2eExtractor(Ge2eConfig(), ["ge2e:lstm_4"])


def test_a_file_that_is_not_a_resemblyzer_checkpoint_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(FeatureError, match=r"other.pt holds no 'model_state'"):
        load_layers(tmp_path / "other.pt")
