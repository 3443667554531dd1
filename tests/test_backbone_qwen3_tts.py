"""Qwen3-TTS teacher forcing on the tiny random model: the prefill matches the package's own, hooks
match hidden states, aliases resolve. Never generates audio."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from stage1_5.backbone.base import attached_hooks, build_capture_hooks, single_capture
from stage1_5.backbone.families.qwen3_tts import (
    build_teacher_forced_inputs,
    codec_pre_transformer,
    Qwen3TTSFamily,
    encode_utterances,
    get_module,
    layer_aliases,
)
from stage1_5.backbone.synthetic import TINY_TALKER_LAYERS, build_tiny_qwen3_tts
from stage1_5.errors import FeatureError

torch.set_num_threads(1)

HOP = 1920  # samples per 12.5 Hz codec frame at 24 kHz


@pytest.fixture(scope="module")
def tts():
    return build_tiny_qwen3_tts(seed=0)


@pytest.fixture(scope="module")
def wav():
    # whole codec frames: the package encodes unpadded audio, we pad to whole frames (same codes here)
    return (np.random.default_rng(0).normal(size=10 * HOP) * 0.1).astype(np.float32)


class _StopGeneration(Exception):
    pass


def _package_prefill(tts, wav, text, language):
    """The inputs_embeds/attention_mask the package's voice-clone generate() hands to talker.generate."""
    captured = {}

    def fake_generate(**kwargs):
        captured.update(kwargs)
        raise _StopGeneration

    tts.model.talker.generate = fake_generate
    try:
        with pytest.raises(_StopGeneration):
            tts.generate_voice_clone(
                text="", ref_audio=(wav, 24000), ref_text=text, language=language, non_streaming_mode=True
            )
    finally:
        del tts.model.talker.generate
    return captured["inputs_embeds"], captured["attention_mask"]


@pytest.mark.parametrize("language", [None, "english"])
def test_teacher_forced_inputs_equal_the_packages_voice_clone_prefill(tts, wav, language):
    text = "Hello, accent world."
    expected, expected_mask = _package_prefill(tts, wav, text, language or "Auto")
    with torch.inference_mode():
        encoded = encode_utterances(tts, [wav], [text], language=language)
        mine = build_teacher_forced_inputs(tts.model, encoded)
    assert mine.inputs_embeds.shape == expected.shape
    torch.testing.assert_close(mine.inputs_embeds, expected, atol=1e-6, rtol=0)
    assert torch.equal(mine.attention_mask, expected_mask)


def test_audio_positions_are_one_per_codec_frame_and_text_positions_one_per_token(tts, wav):
    with torch.inference_mode():
        encoded = encode_utterances(tts, [wav, wav[: 4 * HOP]], ["abc", "abcdef"])
        inputs = build_teacher_forced_inputs(tts.model, encoded)
    assert inputs.position_masks["audio"].sum(1).tolist() == [10, 4]
    assert inputs.position_masks["text"].sum(1).tolist() == [3, 6]  # byte-level tiny tokenizer
    assert not (inputs.position_masks["audio"] & inputs.position_masks["text"]).any()
    assert inputs.text_mask.sum(1).tolist() == [3, 6]


def test_decoder_block_hooks_equal_hidden_states(tts, wav):
    """hidden_states[0] = (embeddings, block 0 .. block L-2, norm(block L-1)): block k is entry k+1."""
    aliases = layer_aliases(tts)
    names = [f"decoder_block_{k:02d}" for k in range(TINY_TALKER_LAYERS)]
    cache, hooks = build_capture_hooks({n: get_module(tts, aliases[n].module_path) for n in names})
    with torch.inference_mode():
        inputs = build_teacher_forced_inputs(tts.model, encode_utterances(tts, [wav, wav[: 3 * HOP]], ["one", "two two"]))
        with attached_hooks(hooks):
            out = tts.model.talker(
                inputs_embeds=inputs.inputs_embeds, attention_mask=inputs.attention_mask, use_cache=False, output_hidden_states=True
            )
    per_layer = out.hidden_states[0]
    assert len(per_layer) == TINY_TALKER_LAYERS + 1
    valid = inputs.position_masks["all"]
    for k in range(TINY_TALKER_LAYERS - 1):
        torch.testing.assert_close(single_capture(cache, names[k])[valid], per_layer[k + 1][valid], atol=1e-5, rtol=0)
    with torch.inference_mode():
        last = tts.model.talker.model.norm(single_capture(cache, names[-1]))
    torch.testing.assert_close(last[valid], per_layer[-1][valid], atol=1e-5, rtol=0)


def test_pre_vocoder_equals_the_pre_transformer_output_inside_the_full_decoder(tts, wav):
    decoder = tts.model.speech_tokenizer.model.decoder
    codes = torch.randint(0, 2048, (2, 6, 16), generator=torch.Generator().manual_seed(0))
    cache, hooks = build_capture_hooks({"pre": decoder.pre_transformer})
    with torch.inference_mode():
        with attached_hooks(hooks):
            decoder(codes.transpose(1, 2))  # the package's own decoder forward, vocoder included
        ours = codec_pre_transformer(tts.model.speech_tokenizer.model, codes)
    torch.testing.assert_close(ours, single_capture(cache, "pre"), atol=1e-6, rtol=0)


def test_tiny_model_aliases_are_text_encoder_out_four_blocks_and_pre_vocoder(tts):
    assert list(layer_aliases(tts)) == [
        "text_encoder_out", "decoder_block_00", "decoder_block_01", "decoder_block_02", "decoder_block_03", "pre_vocoder"
    ]


def test_unknown_layer_alias_lists_the_valid_ones(tts):
    with pytest.raises(FeatureError, match=r"unknown backbone layer 'decoder_block_99'.*decoder_block_03.*pre_vocoder"):
        Qwen3TTSFamily().resolve_layers(tts, ["decoder_block_99"])


def test_raw_module_paths_resolve_with_their_time_axis(tts):
    sites = Qwen3TTSFamily().resolve_layers(tts, ["talker.model.layers.1.mlp", "speech_tokenizer.model.decoder.pre_transformer.layers.0"])
    assert [s.axis for s in sites] == ["talker", "frames"]


def test_unsupported_language_lists_the_valid_ones(tts, wav):
    with pytest.raises(FeatureError, match="klingon.*chinese, english"):
        encode_utterances(tts, [wav], ["x"], language="klingon")
