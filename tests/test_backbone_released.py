"""Checkpoints in the released Qwen3-TTS format (config files copied from the released ones, a Qwen2
BPE tokenizer of the real 151,675-token size) load through `Qwen3TTSModel.from_pretrained` like a hub
checkpoint, extract every alias, and are checked against the options before any weight loads.

Built once per module in the test's temp dir, reduced in depth and text-embedding width only
(`released.QUICK`), so every token id, codec id, rope setting and language map is the released one."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from stage1_5.backbone.checkpoint import check_backbone, inspect_checkpoint
from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.families.qwen3_tts import encode_utterances
from stage1_5.backbone.released import QUICK, TEXT_TOKENIZER_SIZE, VARIANTS, released_config, released_text_tokenizer, save_released_checkpoints
from stage1_5.cli import cli
from stage1_5.config import BackboneConfig
from stage1_5.data.testing import write_dataset
from stage1_5.errors import FeatureError
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)

BASE, CUSTOM = "0.6B-Base", "0.6B-CustomVoice"
ALIASES = ["text_encoder_out", "decoder_block_00", "decoder_block_01", "pre_vocoder"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_released_checkpoints(tmp_path_factory.mktemp("released"), [BASE, CUSTOM], reduction=QUICK)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    utts = write_tone_utterances(tmp_path_factory.mktemp("wav"), 2, min_s=0.25, max_s=0.4)
    return [u.copy_with(text=t) for u, t in zip(utts, ["Hello there, accent.", "A longer sentence to read."])]


@pytest.fixture
def from_pretrained_calls(monkeypatch):
    """Every path `Qwen3TTSModel.from_pretrained` is called with (the call still happens)."""
    from stage1_5.backbone.families.qwen3_tts import import_qwen_tts

    model_class = import_qwen_tts().Qwen3TTSModel
    calls: list[str] = []
    real = model_class.from_pretrained.__func__
    monkeypatch.setattr(model_class, "from_pretrained", classmethod(lambda cls, path, **kw: calls.append(str(path)) or real(cls, path, **kw)))
    return calls


def _config(folder, **changes) -> BackboneConfig:
    fields = dict(checkpoint=str(folder), layers=ALIASES, dtype="float32", device="cpu", num_workers=0, batch_size=2)
    return BackboneConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def base_adapter(checkpoints):
    return HuggingFaceBackboneAdapter(_config(checkpoints[BASE]))


def test_every_released_config_is_packaged_with_the_real_token_ids():
    for variant in VARIANTS:
        config = released_config(variant)
        talker = config["talker_config"]
        assert (config["tts_bos_token_id"], config["tts_eos_token_id"], config["tts_pad_token_id"]) == (151672, 151673, 151671)
        assert talker["num_hidden_layers"] == 28 and talker["text_vocab_size"] == 151936
        assert talker["hidden_size"] == (1024 if variant.startswith("0.6B") else 2048)
        assert talker["rope_scaling"]["mrope_section"] == [24, 20, 20]
        assert ("speaker_encoder_config" in config) == variant.endswith("Base")


def test_text_tokenizer_has_the_real_size_and_the_real_special_ids():
    tok = released_text_tokenizer()
    assert len(tok) == TEXT_TOKENIZER_SIZE == 151_675
    ids = tok.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>", "assistant"])
    assert ids == [151643, 151644, 151645, 151671, 151672, 151673, 77091]


def test_a_released_base_folder_loads_through_from_pretrained(checkpoints, from_pretrained_calls):
    adapter = HuggingFaceBackboneAdapter(_config(checkpoints[BASE], layers=["decoder_block_00"]))
    assert from_pretrained_calls == [str(checkpoints[BASE])]
    assert adapter.model.tts_model_type == "base" and len(adapter.tts.processor.tokenizer) == TEXT_TOKENIZER_SIZE


def test_every_alias_of_a_released_base_checkpoint_extracts(base_adapter, utterances):
    batch = next(base_adapter.extract_batches(utterances))
    assert list(batch.vectors) == ALIASES
    assert {name: m.shape for name, m in batch.vectors.items()} == {
        "text_encoder_out": (2, 1024), "decoder_block_00": (2, 1024), "decoder_block_01": (2, 1024), "pre_vocoder": (2, 1024)
    }
    assert all(np.isfinite(m).all() for m in batch.vectors.values())


def test_the_role_prefix_is_the_three_real_tokens_the_package_slices(base_adapter, utterances):
    wav = utterances[0].load_audio(24000)
    encoded = encode_utterances(base_adapter.tts, [wav], ["Hello"], speaker_slot="zero")
    assert encoded.role_ids.tolist() == [151644, 77091, 198]  # <|im_start|> assistant \n


def test_a_released_custom_voice_checkpoint_extracts_with_a_zero_speaker_slot(checkpoints, utterances):
    adapter = HuggingFaceBackboneAdapter(_config(checkpoints[CUSTOM], speaker_slot="zero"))
    assert adapter.model.tts_model_type == "custom_voice" and adapter.model.speaker_encoder is None
    batch = next(adapter.extract_batches(utterances))
    assert batch.vectors["decoder_block_01"].shape == (2, 1024)


def test_custom_voice_with_xvector_fails_in_one_line_before_any_weight_loads(checkpoints, from_pretrained_calls):
    with pytest.raises(FeatureError) as info:
        HuggingFaceBackboneAdapter(_config(checkpoints[CUSTOM], speaker_slot="xvector"))
    message = str(info.value)
    assert message.startswith("sources.backbone.speaker_slot: 'xvector' needs a Base checkpoint") and "use speaker_slot: zero" in message
    assert "\n" not in message and from_pretrained_calls == []


def test_a_layer_beyond_the_checkpoint_depth_fails_before_any_weight_loads(checkpoints, from_pretrained_calls):
    with pytest.raises(FeatureError, match=r"'decoder_block_20' does not exist: .* has 2 decoder blocks"):
        HuggingFaceBackboneAdapter(_config(checkpoints[BASE], layers=["decoder_block_20"]))
    assert from_pretrained_calls == []


def test_a_language_missing_from_the_checkpoint_fails_before_any_weight_loads(checkpoints, from_pretrained_calls):
    with pytest.raises(FeatureError, match=r"language: 'sichuan_dialect' is not supported.*valid: auto, chinese, english"):
        HuggingFaceBackboneAdapter(_config(checkpoints[BASE], language="sichuan_dialect"))  # a CustomVoice-only dialect tag
    assert from_pretrained_calls == []


def test_a_bfloat16_talker_keeps_the_float32_speech_tokenizer_weights(checkpoints):
    from safetensors.torch import load_file

    saved = load_file(checkpoints[BASE] / "speech_tokenizer" / "model.safetensors")
    adapter = HuggingFaceBackboneAdapter(_config(checkpoints[BASE], dtype="bfloat16", layers=["decoder_block_00"]))
    loaded = adapter.tts.model.speech_tokenizer.model.state_dict()
    assert next(adapter.model.talker.parameters()).dtype == torch.bfloat16
    float_keys = [k for k, v in saved.items() if v.dtype == torch.float32]
    assert float_keys and all(torch.equal(loaded[k], saved[k]) for k in float_keys)


def test_a_cached_hub_checkpoint_loads_offline_from_its_snapshot_folder(checkpoints, tmp_path, monkeypatch, from_pretrained_calls):
    import huggingface_hub.constants

    repo = "Qwen/Qwen3-TTS-12Hz-0.6B-Base"
    cache = tmp_path / "hub"
    snapshot = cache / "models--Qwen--Qwen3-TTS-12Hz-0.6B-Base" / "snapshots" / "0123456789abcdef"
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123456789abcdef")
    for item in checkpoints[BASE].iterdir():
        (snapshot / item.name).symlink_to(item)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    info = inspect_checkpoint(repo)
    assert (info.origin, info.location, info.kind) == ("hub-cache", str(snapshot), "Base")
    HuggingFaceBackboneAdapter(_config(repo, layers=["decoder_block_00"]))
    assert from_pretrained_calls == [str(snapshot)]


def test_a_1_7b_config_alone_inspects_as_28_blocks_at_hidden_2048(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(released_config("1.7B-CustomVoice")))
    info = inspect_checkpoint(str(tmp_path))
    assert (info.kind, info.n_layers, info.hidden_size) == ("CustomVoice", 28, 2048)
    assert "sichuan_dialect" in info.language_ids and "eric" in info.speakers


def _preflight_config(tmp_path, checkpoint, **backbone) -> str:
    cfg = {
        "dataset": {"path": str(write_dataset(tmp_path / "data"))},
        "sources": {
            "backbone": {"checkpoint": str(checkpoint), "layers": ALIASES, "dtype": "float32", "batch_size": 1, **backbone},
            "ssl": {"enabled": False}, "ecapa": {"enabled": False}, "acoustic": {"enabled": False},
        },
        "probes": {"device": "cpu"},
        "output": {"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_preflight_passes_on_a_released_base_checkpoint(checkpoints, tmp_path):
    result = CliRunner().invoke(cli, ["preflight", _preflight_config(tmp_path, checkpoints[BASE])])
    assert result.exit_code == 0, result.output
    assert "no problem found" in result.output and "(Base, 2 decoder blocks, hidden 1024; local folder)" in result.output
    assert "throughput  backbone" in result.output and not (tmp_path / "cache" / "features").exists()


def test_preflight_fails_in_one_line_on_custom_voice_with_xvector(checkpoints, tmp_path, from_pretrained_calls):
    result = CliRunner().invoke(cli, ["preflight", _preflight_config(tmp_path, checkpoints[CUSTOM], speaker_slot="xvector")])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "sources.backbone.speaker_slot" in errors[0] and "Traceback" not in result.output
    assert from_pretrained_calls == []


def test_cheap_checks_of_a_released_checkpoint_read_only_its_config(checkpoints):
    check = check_backbone(_config(checkpoints[CUSTOM], speaker_slot="zero"))
    assert check.checkpoint.kind == "CustomVoice" and check.runtime.dtype == "float32"
