"""SSL extractor (tiny random WavLM): one pass over all hidden states, padding-safe batching, local checkpoints."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from stage1_5.config import SSLConfig
from stage1_5.errors import FeatureError
from stage1_5.features.ssl import SSLExtractor, build_tiny_wavlm, tiny_wavlm_config
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def utts(tmp_path_factory):
    return write_tone_utterances(tmp_path_factory.mktemp("ssl_wav"), 5, min_s=0.2, max_s=0.8)


def _vectors(extractor, utts, batch_size):
    out: dict[str, dict[str, np.ndarray]] = {}
    for batch in extractor.extract_batches(utts, batch_size):
        for name, arr in batch.vectors.items():
            out.setdefault(name, {}).update(zip(batch.utt_ids, arr))
    return {name: np.stack([rows[u.id] for u in utts]) for name, rows in out.items()}


def test_tiny_model_names_one_representation_per_hidden_state():
    extractor = SSLExtractor(SSLConfig(model="tiny-random"))
    n_layers = tiny_wavlm_config().num_hidden_layers
    assert extractor.representation_names() == [f"ssl:layer_{i:02d}" for i in range(n_layers + 1)]


def test_forward_returns_layers_plus_one_hidden_states():
    model = build_tiny_wavlm(0)
    with torch.inference_mode():
        out = model(torch.randn(1, 8000), output_hidden_states=True)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1


def test_batched_equals_one_at_a_time(utts):
    extractor = SSLExtractor(SSLConfig(model="tiny-random"))
    batched = _vectors(extractor, utts, batch_size=5)
    single = _vectors(extractor, utts, batch_size=1)
    for name in extractor.representation_names():
        np.testing.assert_allclose(batched[name], single[name], atol=1e-4, rtol=1e-4)


def test_tiny_model_is_deterministic_given_the_seed(utts):
    a = _vectors(SSLExtractor(SSLConfig(model="tiny-random", seed=3)), utts[:2], 2)
    b = _vectors(SSLExtractor(SSLConfig(model="tiny-random", seed=3)), utts[:2], 2)
    c = _vectors(SSLExtractor(SSLConfig(model="tiny-random", seed=4)), utts[:2], 2)
    np.testing.assert_array_equal(a["ssl:layer_02"], b["ssl:layer_02"])
    assert not np.allclose(a["ssl:layer_02"], c["ssl:layer_02"])


def test_local_checkpoint_loads_through_from_pretrained(utts, tmp_path):
    build_tiny_wavlm(0).save_pretrained(tmp_path / "wavlm")
    local = SSLExtractor(SSLConfig(model=str(tmp_path / "wavlm")))
    tiny = SSLExtractor(SSLConfig(model="tiny-random", seed=0))
    assert local.representation_names() == tiny.representation_names()
    got, want = _vectors(local, utts[:3], 3), _vectors(tiny, utts[:3], 3)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-6)


def test_missing_checkpoint_is_a_feature_error_naming_the_option(tmp_path):
    with pytest.raises(FeatureError, match="sources.ssl.model"):
        SSLExtractor(SSLConfig(model=str(tmp_path / "nowhere"))).representation_names()


def test_layer_selection_and_request_restrict_the_output(utts):
    extractor = SSLExtractor(SSLConfig(model="tiny-random", layers=["layer_00", "layer_02"]), ["ssl:layer_02"])
    assert extractor.representation_names() == ["ssl:layer_02"]
    assert list(_vectors(extractor, utts[:2], 2)) == ["ssl:layer_02"]


def test_unknown_layer_is_a_feature_error():
    with pytest.raises(FeatureError, match="sources.ssl.layers.*layer_09"):
        SSLExtractor(SSLConfig(model="tiny-random", layers=["layer_09"])).representation_names()


def test_mean_std_pooling_doubles_the_dimension(utts):
    mean = _vectors(SSLExtractor(SSLConfig(model="tiny-random")), utts[:2], 2)
    mean_std = _vectors(SSLExtractor(SSLConfig(model="tiny-random", pooling="mean_std")), utts[:2], 2)
    hidden = tiny_wavlm_config().hidden_size
    assert mean["ssl:layer_01"].shape == (2, hidden) and mean_std["ssl:layer_01"].shape == (2, 2 * hidden)
    np.testing.assert_allclose(mean_std["ssl:layer_01"][:, :hidden], mean["ssl:layer_01"], atol=1e-6)


def _hand_written_features(model, wavs):
    """What this extractor computed before it used the checkpoint's feature extractor: per-utterance
    normalisation, zero padding, a sample mask, frame lengths from the CNN, then a masked mean."""
    from stage1_5.torch_utils import masked_pool

    normed = [(w - w.mean()) / np.sqrt(w.var() + 1e-7) for w in wavs]
    lengths = torch.tensor([len(w) for w in normed])
    audio = torch.zeros(len(normed), int(lengths.max()))
    for i, w in enumerate(normed):
        audio[i, : len(w)] = torch.from_numpy(w.astype(np.float32))
    samples = (torch.arange(audio.shape[1])[None, :] < lengths[:, None]).long()
    with torch.inference_mode():
        hidden = model(audio, attention_mask=samples, output_hidden_states=True).hidden_states
        frames = model._get_feat_extract_output_lengths(lengths)
        mask = torch.arange(hidden[0].shape[1])[None, :] < frames[:, None]
        return {f"ssl:layer_{i:02d}": masked_pool(h, mask, "mean").numpy() for i, h in enumerate(hidden)}


@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask:UserWarning")
def test_feature_extractor_gives_the_hand_written_features_within_1e_5(utts):
    extractor = SSLExtractor(SSLConfig(model="tiny-random", dtype="float32"))
    got = _vectors(extractor, utts, batch_size=5)
    want = _hand_written_features(extractor.model, [u.load_audio(16_000) for u in utts])
    for name in extractor.representation_names():
        np.testing.assert_allclose(got[name], want[name], atol=1e-5, rtol=0)


def test_checkpoint_feature_extractor_settings_are_used(tmp_path):
    from transformers import Wav2Vec2FeatureExtractor

    build_tiny_wavlm(0).save_pretrained(tmp_path / "wavlm")
    Wav2Vec2FeatureExtractor(do_normalize=False, return_attention_mask=True).save_pretrained(tmp_path / "wavlm")
    key = SSLExtractor(SSLConfig(model=str(tmp_path / "wavlm"))).config_key()
    assert (key["normalize"], key["attention_mask"]) == (False, True)


def test_group_norm_model_without_feature_extractor_gets_no_attention_mask(utts, tmp_path):
    from transformers import WavLMModel

    config = tiny_wavlm_config()
    config.feat_extract_norm = "group"
    WavLMModel(config).save_pretrained(tmp_path / "group")
    extractor = SSLExtractor(SSLConfig(model=str(tmp_path / "group")))
    assert extractor.config_key()["attention_mask"] is False and extractor.config_key()["normalize"] is True
    assert _vectors(extractor, utts[:2], 2)["ssl:layer_01"].shape == (2, config.hidden_size)


def test_checkpoint_whose_feature_extractor_takes_no_waveform_is_a_feature_error(tmp_path):
    from transformers import WhisperFeatureExtractor

    build_tiny_wavlm(0).save_pretrained(tmp_path / "odd")
    WhisperFeatureExtractor().save_pretrained(tmp_path / "odd")
    with pytest.raises(FeatureError, match="sources.ssl.model: .* takes input_features, not a waveform"):
        SSLExtractor(SSLConfig(model=str(tmp_path / "odd"))).config_key()
