"""The CSM family on its tiny random model: the teacher-forced layout equals the model's own merge of
(text, audio), every alias pools, batching and early exit change nothing, a checkpoint in the
released layout loads by its model_type, and the released config ships for offline `layers`.
Offline: nothing is downloaded."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from stage1_5.backbone.checkpoint import check_backbone, inspect_checkpoint
from stage1_5.backbone.families.csm import SAMPLE_RATE, CsmFamily, build_tiny_csm, save_tiny_checkpoint
from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.cli import cli
from stage1_5.config import BackboneConfig
from stage1_5.errors import FeatureError
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)

LAYERS = [
    "text_encoder_out", "audio_embeddings", "decoder_block_00", "decoder_block_02", "backbone_out",
    "depth_decoder_out", "pre_vocoder", "backbone_model.layers.1.mlp",
]  # fmt: skip
TEXTS = ["Hello there.", "A longer sentence, with a comma.", "Hi", "The quick brown fox."]


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    utts = write_tone_utterances(tmp_path_factory.mktemp("wav"), 4, min_s=0.3, max_s=1.1)
    return [u.copy_with(text=TEXTS[i]) for i, u in enumerate(utts)]


def _config(**changes) -> BackboneConfig:
    return BackboneConfig(**{"checkpoint": "tiny-random", "family": "csm", "layers": LAYERS, "batch_size": 4, "num_workers": 0, "device": "cpu", **changes})


@pytest.fixture(scope="module")
def adapter():
    return HuggingFaceBackboneAdapter(_config())


def _by_utterance(batches) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for batch in batches:
        for layer, matrix in batch.vectors.items():
            out.setdefault(layer, {}).update(zip(batch.utt_ids, matrix))
    return out


@pytest.fixture(scope="module")
def together(adapter, utterances):
    return _by_utterance(adapter.extract_batches(utterances))


def test_every_csm_alias_gives_a_finite_vector_per_utterance(together, utterances):
    assert list(together) == LAYERS
    for layer, rows in together.items():
        assert sorted(rows) == sorted(u.id for u in utterances), layer
        assert all(np.isfinite(v).all() for v in rows.values()), layer
    assert next(iter(together["decoder_block_00"].values())).shape == (64,)
    assert next(iter(together["depth_decoder_out"].values())).shape == (32,)


@torch.inference_mode()
def test_teacher_forced_inputs_equal_the_models_own_merge_of_text_and_audio(adapter, utterances):
    handle, family = adapter.tts, CsmFamily()
    wav = utterances[1].load_audio(SAMPLE_RATE)
    codes = family._codes(handle.model, [wav])
    ours = family._layout(handle, [TEXTS[1]], codes).inputs_embeds[0]
    tok, cfg = handle.tokenizer, handle.model.config
    ids = [cfg.bos_token_id, *tok.encode("[0]", add_special_tokens=False), *tok.encode(TEXTS[1], add_special_tokens=False), tok.eos_token_id]
    ids += [cfg.audio_token_id] * int(codes[0].shape[0]) + [cfg.audio_eos_token_id]
    merged = handle.model._merge_input_ids_with_input_values(
        torch.tensor([ids]), torch.from_numpy(wav)[None, None], torch.tensor([[len(wav)]])
    )["inputs_embeds"][0]
    torch.testing.assert_close(ours, merged, rtol=0, atol=0)


def test_csm_features_do_not_depend_on_the_batch(together, utterances):
    alone = _by_utterance(HuggingFaceBackboneAdapter(_config(), tts=build_tiny_csm(0)).extract_batches(utterances, batch_size=1))
    for layer in LAYERS:
        for utt_id, vector in together[layer].items():
            np.testing.assert_allclose(vector, alone[layer][utt_id], rtol=1e-4, atol=1e-5, err_msg=f"{layer} {utt_id}")


def test_early_exit_leaves_a_csm_block_unchanged(adapter, utterances):
    early = HuggingFaceBackboneAdapter(_config(layers=["decoder_block_01"]), tts=adapter.tts)
    full = HuggingFaceBackboneAdapter(_config(layers=["decoder_block_01"]), tts=adapter.tts, early_exit=False)
    assert early.family.blocks_needed(early.sites) == 2
    got, want = (_by_utterance(a.extract_batches(utterances))["decoder_block_01"] for a in (early, full))
    for utt_id in want:
        np.testing.assert_array_equal(got[utt_id], want[utt_id])


def test_a_checkpoint_in_the_released_layout_is_found_by_model_type_and_loads(tmp_path, utterances, together):
    folder = save_tiny_checkpoint(tmp_path / "csm", seed=0)
    info = inspect_checkpoint(folder)
    assert (info.family, info.kind, info.n_layers, info.origin) == ("csm", "CSM", 4, "local")
    loaded = HuggingFaceBackboneAdapter(_config(checkpoint=folder, family=None, layers=["decoder_block_02"]))
    got = _by_utterance(loaded.extract_batches(utterances))["decoder_block_02"]
    for utt_id, vector in together["decoder_block_02"].items():
        np.testing.assert_allclose(got[utt_id], vector, rtol=1e-5, atol=1e-6)


def test_layers_lists_the_released_csm_offline_from_the_shipped_config():
    result = CliRunner().invoke(cli, ["layers", "--checkpoint", "sesame/csm-1b"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# CSM: sesame/csm-1b (CSM, 16 decoder blocks, hidden 2048; config shipped with stage1_5")
    names = [line.split()[0] for line in result.output.splitlines() if not line.startswith("#")]
    assert names[:3] == ["text_encoder_out", "audio_embeddings", "decoder_block_00"] and "decoder_block_15" in names
    assert "decoder_block_16" not in names and names[-1] == "pre_vocoder"


def test_a_dataset_language_csm_was_not_trained_on_is_noted_not_refused():
    from stage1_5.backbone.family import language_note

    check_backbone(_config(language="german"))  # no tag to check: accepted
    note = language_note(CsmFamily(), "german", "csm1b")
    assert note is not None and note.startswith("backbone csm1b is CSM, trained on english only; this dataset is german")
    assert language_note(CsmFamily(), "English", "csm1b") is None and language_note(CsmFamily(), None, "csm1b") is None


def test_the_report_notes_name_only_the_backbones_set_to_a_language_they_were_not_trained_on():
    from stage1_5.backbone.checkpoint import language_notes
    from stage1_5.config import NamedBackboneConfig

    notes = language_notes([
        NamedBackboneConfig(name="csm1b", checkpoint="tiny-random", family="csm", language="german"),
        NamedBackboneConfig(name="qwen", checkpoint="tiny-random", language="english"),
        NamedBackboneConfig(name="csm_en", checkpoint="tiny-random", family="csm", language="english"),
    ])  # fmt: skip
    assert len(notes) == 1 and notes[0].startswith("backbone csm1b is CSM, trained on english only")


def test_a_csm_alias_on_a_module_of_another_class_is_refused_before_any_weight_loads(tmp_path):
    from dataclasses import replace

    from stage1_5.backbone.families.csm import released_config
    from stage1_5.backbone.family import registered_family

    class Mislabelled(CsmFamily):
        name = "csm_mislabelled"
        model_types = ()

        def alias_sites(self, n_layers):
            sites = super().alias_sites(n_layers)
            return {**sites, "decoder_block_03": replace(sites["decoder_block_03"], module_path="backbone_model.norm")}

    (tmp_path / "config.json").write_text(json.dumps(released_config("sesame/csm-1b")))  # csm-1b's layout, no weights
    cfg = BackboneConfig(checkpoint=str(tmp_path), layers=["decoder_block_03", "depth_decoder_out"], device="cpu")
    assert check_backbone(cfg).checkpoint.n_layers == 16  # the real layout passes, on a weightless skeleton
    with registered_family(Mislabelled):
        bad = cfg.model_copy(update={"family": "csm_mislabelled"})
        with pytest.raises(FeatureError, match=r"^sources.backbone.layers: backbone layer 'decoder_block_03': module 'backbone_model.norm' is a CsmRMSNorm, expected CsmDecoderLayer"):
            check_backbone(bad)
