"""HuggingFaceBackboneAdapter on the tiny random Qwen3-TTS: one pass per batch, every layer pooled,
batching-invariant, hooks cleaned up, clear errors. Offline: nothing is downloaded."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import logging

import numpy as np
import pytest
import torch

from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.families.qwen3_tts import get_module
from stage1_5.backbone.runtime import choose_attention, resolve_backbone_runtime
from stage1_5.backbone.synthetic import save_tiny_checkpoint
from stage1_5.config import BackboneConfig
from stage1_5.errors import FeatureError
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)

LAYERS = ("text_encoder_out", "decoder_block_00", "decoder_block_02", "decoder_block_03", "pre_vocoder", "talker.model.layers.1.mlp")
TEXTS = ["Hello there.", "A longer sentence, with a comma.", "Hi", "The quick brown fox.", "Accent probing"]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    utts = write_tone_utterances(tmp_path_factory.mktemp("wav"), 5, min_s=0.3, max_s=1.2)
    return [u.copy_with(text=TEXTS[i]) for i, u in enumerate(utts)]


@pytest.fixture(scope="module")
def config():
    return BackboneConfig(checkpoint="tiny-random", layers=list(LAYERS), batch_size=5, num_workers=0, device="cpu")


def _with(config: BackboneConfig, **changes) -> BackboneConfig:
    return BackboneConfig.model_validate({**config.model_dump(), **changes})


@pytest.fixture(scope="module")
def adapter(config):
    return HuggingFaceBackboneAdapter(config)


def _by_utterance(batches):
    """layer -> utt_id -> vector, over all batches."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for batch in batches:
        for layer, matrix in batch.vectors.items():
            for utt_id, row in zip(batch.utt_ids, matrix):
                out.setdefault(layer, {})[utt_id] = row
    return out


def _extract(adapter, utterances, **kwargs):
    return _by_utterance(adapter.extract_batches(utterances, **kwargs))


@pytest.fixture(scope="module")
def batched(adapter, utterances):
    return list(adapter.extract_batches(utterances))


def test_one_batch_gives_every_utterance_for_every_requested_layer(batched, utterances):
    assert len(batched) == 1
    batch = batched[0]
    assert sorted(batch.utt_ids) == sorted(u.id for u in utterances)
    assert list(batch.vectors) == list(LAYERS)
    for layer, matrix in batch.vectors.items():
        assert matrix.dtype == np.float32 and matrix.shape[0] == 5 and np.isfinite(matrix).all()
    assert batch.vectors["decoder_block_00"].shape == (5, 64)
    assert batch.vectors["pre_vocoder"].shape == (5, 32)


def test_batch_reports_utterance_and_audio_second_counts(batched, utterances):
    assert batched[0].n_utterances == 5
    assert batched[0].n_audio_seconds == pytest.approx(sum(u.duration for u in utterances), rel=1e-3)


def test_batched_equals_one_utterance_at_a_time(adapter, batched, utterances):
    together = _by_utterance(batched)
    alone = _extract(adapter, utterances, batch_size=1)
    for layer in LAYERS:
        for utt_id, vec in together[layer].items():
            np.testing.assert_allclose(alone[layer][utt_id], vec, atol=1e-5, rtol=0, err_msg=f"{layer} {utt_id}")


def test_no_forward_hooks_remain_after_extraction(adapter, batched):
    for site in adapter.sites:
        assert len(get_module(adapter.tts, site.module_path)._forward_hooks) == 0, site.name


def test_capture_context_removes_its_hooks_even_on_error(adapter):
    modules = [get_module(adapter.tts, s.module_path) for s in adapter.sites]
    with pytest.raises(RuntimeError), adapter.capture():
        assert all(len(m._forward_hooks) == 1 for m in modules)
        raise RuntimeError("interrupted")
    assert all(len(m._forward_hooks) == 0 for m in modules)


def test_mean_std_pooling_doubles_the_width(adapter, config, utterances):
    other = HuggingFaceBackboneAdapter(_with(config, pooling="mean_std"), tts=adapter.tts)
    batch = next(other.extract_batches(utterances[:2]))
    assert batch.vectors["decoder_block_02"].shape == (2, 128)
    assert batch.vectors["pre_vocoder"].shape == (2, 64)


def test_text_and_audio_positions_give_different_block_vectors_but_the_same_text_encoder_out(adapter, config, utterances, batched):
    audio = _by_utterance(batched)
    text = _extract(HuggingFaceBackboneAdapter(_with(config, positions="text"), tts=adapter.tts), utterances)
    uid = utterances[0].id
    assert not np.allclose(text["decoder_block_02"][uid], audio["decoder_block_02"][uid], atol=1e-3)
    np.testing.assert_array_equal(text["text_encoder_out"][uid], audio["text_encoder_out"][uid])


def test_zeroed_speaker_slot_changes_block_vectors_but_not_the_codec_view(adapter, config, utterances, batched):
    xvec = _by_utterance(batched)
    zero = _extract(HuggingFaceBackboneAdapter(_with(config, speaker_slot="zero"), tts=adapter.tts), utterances)
    uid = utterances[1].id
    assert not np.allclose(zero["decoder_block_03"][uid], xvec["decoder_block_03"][uid], atol=1e-4)
    np.testing.assert_allclose(zero["pre_vocoder"][uid], xvec["pre_vocoder"][uid], atol=1e-6)


def test_cuda_out_of_memory_halves_the_batch_and_loses_nothing(adapter, utterances, monkeypatch, caplog):
    real_forward = adapter._forward
    sizes = []

    def forward(chunk, sites):
        if len(chunk) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        sizes.append(len(chunk))
        return real_forward(chunk, sites)

    monkeypatch.setattr(adapter, "_forward", forward)
    with caplog.at_level(logging.WARNING):
        got = list(adapter.extract_batches(utterances))
    assert sorted(uid for b in got for uid in b.utt_ids) == sorted(u.id for u in utterances)
    assert max(sizes) <= 2 and "out of memory" in caplog.text


def test_unknown_layer_fails_at_construction_listing_valid_aliases(adapter, config):
    with pytest.raises(FeatureError, match=r"unknown backbone layer 'decoder_block_42'.*text_encoder_out.*pre_vocoder"):
        HuggingFaceBackboneAdapter(_with(config, layers=("decoder_block_42",)), tts=adapter.tts)


def test_missing_audio_names_the_utterance(adapter, utterances):
    broken = utterances[0].copy_with(audio_path="/nonexistent/x.wav")
    with pytest.raises(FeatureError, match=f"utterance {broken.id}: cannot read audio"):
        list(adapter.extract_batches([broken]))


@pytest.fixture
def offline_hub(monkeypatch):
    """Guarantee no download attempt, even if transformers was imported before HF_HUB_OFFLINE was set."""
    import huggingface_hub.constants
    import transformers.utils.hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(transformers.utils.hub, "_is_offline_mode", True)


def test_unknown_checkpoint_says_it_cannot_be_found_or_downloaded(config, offline_hub):
    with pytest.raises(FeatureError, match=r"'no-such-org/no-such-model' is not a local folder .*not in the Hugging Face cache while HF_HUB_OFFLINE is set"):
        HuggingFaceBackboneAdapter(_with(config, checkpoint="no-such-org/no-such-model"))


def test_missing_local_folder_is_named(config, tmp_path):
    with pytest.raises(FeatureError, match="local folder .* not found"):
        HuggingFaceBackboneAdapter(_with(config, checkpoint=str(tmp_path / "absent")))


def test_local_tiny_checkpoint_loads_through_from_pretrained_and_matches_the_in_memory_model(
    config, utterances, batched, tmp_path, offline_hub, monkeypatch
):
    from qwen_tts import Qwen3TTSModel

    calls = []
    real = Qwen3TTSModel.from_pretrained.__func__
    monkeypatch.setattr(Qwen3TTSModel, "from_pretrained", classmethod(lambda cls, path, **kw: calls.append(path) or real(cls, path, **kw)))
    folder = save_tiny_checkpoint(tmp_path / "tiny", seed=config.seed)
    loaded = HuggingFaceBackboneAdapter(_with(config, checkpoint=str(folder)))
    assert calls == [str(folder)]
    from_disk = _extract(loaded, utterances)
    in_memory = _by_utterance(batched)
    for layer in LAYERS:
        for uid, vec in in_memory[layer].items():
            np.testing.assert_allclose(from_disk[layer][uid], vec, atol=1e-6, rtol=0)


def test_flash_attention_without_flash_attn_is_a_clear_error(config, monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "flash_attn" else object())
    with pytest.raises(FeatureError, match="flash_attention_2 needs the flash-attn package"):
        choose_attention("flash_attention_2", torch.device("cuda"), torch.bfloat16)


def test_auto_resolves_to_fp32_sdpa_on_cpu():
    runtime = resolve_backbone_runtime(BackboneConfig(device="cpu"))
    assert (runtime.dtype, runtime.attn_implementation, runtime.speech_tokenizer_dtype) == ("float32", "sdpa", "float32")


def test_background_audio_workers_give_the_same_vectors(adapter, config, utterances, batched):
    with_workers = HuggingFaceBackboneAdapter(_with(config, num_workers=1), tts=adapter.tts)
    got = _extract(with_workers, utterances, batch_size=2)
    expected = _by_utterance(batched)
    for uid, vec in expected["decoder_block_03"].items():
        np.testing.assert_allclose(got["decoder_block_03"][uid], vec, atol=1e-5, rtol=0)


def test_an_utterance_without_text_is_read_as_its_text_id(adapter, utterances):
    bare = utterances[2].copy_with(text=None)
    as_text = bare.copy_with(text=bare.text_id)
    a = next(adapter.extract_batches([bare])).vectors["text_encoder_out"]
    b = next(adapter.extract_batches([as_text])).vectors["text_encoder_out"]
    np.testing.assert_array_equal(a, b)


def test_bf16_stays_within_a_few_percent_of_fp32_and_keeps_codec_codes_exact(config, utterances, batched):
    bf16 = HuggingFaceBackboneAdapter(_with(config, dtype="bfloat16"))
    got = _extract(bf16, utterances)
    expected = _by_utterance(batched)
    for layer in ("decoder_block_00", "decoder_block_03"):
        for uid, vec in expected[layer].items():
            assert np.abs(got[layer][uid] - vec).max() <= 0.05 * np.abs(vec).max(), (layer, uid)
    for uid, vec in expected["pre_vocoder"].items():  # the speech tokenizer runs in float32
        np.testing.assert_allclose(got["pre_vocoder"][uid], vec, atol=1e-6)


def test_missing_audio_in_a_background_worker_is_one_clear_error(adapter, config, utterances):
    with_workers = HuggingFaceBackboneAdapter(_with(config, num_workers=1), tts=adapter.tts)
    broken = utterances[0].copy_with(audio_path="/nonexistent/y.wav")
    with pytest.raises(FeatureError, match=f"^utterance {broken.id}: cannot read audio") as info:
        list(with_workers.extract_batches([broken]))
    assert "Traceback" not in str(info.value)
