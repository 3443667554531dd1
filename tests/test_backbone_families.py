"""Backbone families: the Qwen3-TTS family's features equal (to float32 rounding) those of the code before families
existed, a family is found from config.json's model_type (or `family:`), and a new family is one
class plus one registration (a toy family registered in this test alone runs through the generic
adapter: batching, hooks, early exit, pooling). Offline."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pytest
import torch
from torch import nn

from stage1_5.backbone.checkpoint import check_backbone, inspect_checkpoint
from stage1_5.backbone.family import (
    BackboneFamily,
    CheckpointShape,
    LayerSite,
    block_alias,
    family_named,
    registered_family,
    truncated_blocks,
)
from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.config import BackboneConfig
from stage1_5.errors import FeatureError
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)

FIXTURE = Path(__file__).parent / "fixtures" / "qwen3_tts_demo_features.npz"


def test_qwen3_tts_features_equal_those_of_the_code_before_the_family_refactor():
    from backbone_reference import feature_matrices

    now, before = feature_matrices(), np.load(FIXTURE, allow_pickle=False)
    assert sorted(now) == sorted(before.files)
    for key in before.files:  # float32 rounding apart (CPU kernels differ in the last bits)
        np.testing.assert_allclose(now[key], before[key], rtol=1e-4, atol=1e-6, err_msg=key)


# ------------------------------------------------------------------------------- a toy family


class ToyModel(nn.Module):
    """Embedding of 8-bit audio levels, `n` residual blocks, a final norm."""

    def __init__(self, n_layers: int, hidden: int):
        super().__init__()
        self.embed = nn.Embedding(256, hidden)
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers))
        self.norm = nn.LayerNorm(hidden)
        self.config = type("Config", (), {"_attn_implementation": "eager"})()
        self.block_calls = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids)
        for block in self.blocks:
            self.block_calls += 1
            h = h + torch.tanh(block(h))
        return self.norm(h)


class ToyFamily(BackboneFamily):
    """Everything a family is: config reading, aliases, loading, one teacher-forced pass."""

    name = "toy"
    title = "Toy"
    model_types = ("toy_tts",)
    sample_rate = 8000
    module_prefixes = ("blocks.",)
    block_axis = "frames"

    def describe(self, config: Mapping[str, Any]) -> CheckpointShape:
        return CheckpointShape("Toy", int(config["num_layers"]), int(config["hidden"]), {}, (), False)

    def tiny_config(self) -> dict[str, Any]:
        return {"model_type": "toy_tts", "num_layers": 3, "hidden": 8}

    def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
        sites = [LayerSite("text_encoder_out", "embed", "frames")]
        sites += [LayerSite(block_alias(i), f"blocks.{i}", "frames", i) for i in range(n_layers)]
        sites.append(LayerSite("pre_vocoder", "norm", "frames"))
        return {s.name: s for s in sites}

    def load(self, info, runtime, *, seed: int) -> ToyModel:
        shape = info.shape
        torch.manual_seed(seed)
        return ToyModel(shape.n_layers, shape.hidden_size).eval()

    def adopt(self, handle: ToyModel, device: torch.device) -> ToyModel:
        return handle.to(device).eval()

    def torch_model(self, handle: ToyModel) -> nn.Module:
        return handle

    def n_layers(self, handle: ToyModel) -> int:
        return len(handle.blocks)

    def axis_of(self, path: str) -> Optional[str]:
        return "frames" if path in ("embed", "norm") or path.startswith("blocks.") else None

    def block_of(self, path: str) -> Optional[int]:
        return int(path.split(".")[1]) if path.startswith("blocks.") else None

    def forward(self, handle, wavs: Sequence[np.ndarray], texts, sites, cfg, *, n_blocks, batch_speaker) -> dict[str, torch.Tensor]:
        frames = [np.clip((w[::400] + 1) * 127.5, 0, 255).astype(np.int64) for w in wavs]
        longest = max(len(f) for f in frames)
        ids = torch.zeros(len(frames), longest, dtype=torch.long)
        mask = torch.zeros(len(frames), longest, dtype=torch.bool)
        for i, f in enumerate(frames):
            ids[i, : len(f)] = torch.from_numpy(f)
            mask[i, : len(f)] = True
        with truncated_blocks(handle, "blocks", n_blocks):
            handle(ids)
        return {"frames": mask}


@pytest.fixture
def toy_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "toy_tts", "num_layers": 4, "hidden": 6}))
    return str(tmp_path)


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    return write_tone_utterances(tmp_path_factory.mktemp("wav"), 3, min_s=0.3, max_s=0.8)


def test_a_family_registered_in_a_test_alone_extracts_through_the_generic_adapter(toy_checkpoint, utterances):
    layers = ["text_encoder_out", "decoder_block_01", "pre_vocoder", "blocks.2"]
    with registered_family(ToyFamily):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, layers=layers, batch_size=2, num_workers=0, device="cpu", speaker_slot="zero")
        adapter = HuggingFaceBackboneAdapter(cfg)
        batches = list(adapter.extract_batches(utterances))
    assert isinstance(adapter.family, ToyFamily) and [s.block for s in adapter.sites] == [None, 1, None, 2]
    assert sorted(u for b in batches for u in b.utt_ids) == sorted(u.id for u in utterances)
    assert all(list(b.vectors) == layers and b.vectors["decoder_block_01"].shape[1] == 6 for b in batches)
    with pytest.raises(FeatureError, match="unknown backbone family 'toy'"):
        family_named("toy")  # the registration ended with the block


def test_early_exit_stops_the_toy_family_after_the_deepest_requested_block(toy_checkpoint, utterances):
    with registered_family(ToyFamily):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, layers=["decoder_block_01"], batch_size=3, num_workers=0, device="cpu", speaker_slot="zero")
        early = HuggingFaceBackboneAdapter(cfg)
        full = HuggingFaceBackboneAdapter(cfg.model_copy(update={"family": "toy"}), tts=early.tts, early_exit=False)
        calls = early.tts.block_calls
        got = list(early.extract_batches(utterances))[0]
        early_calls = early.tts.block_calls - calls
        want = list(full.extract_batches(utterances))[0]
    assert early_calls == 2  # one batch, blocks 0 and 1 of 4
    np.testing.assert_array_equal(got.vectors["decoder_block_01"], want.vectors["decoder_block_01"])


def test_the_family_is_found_from_model_type_and_family_overrides_it(toy_checkpoint, tmp_path):
    with registered_family(ToyFamily):
        assert inspect_checkpoint(toy_checkpoint).family == "toy"
        assert inspect_checkpoint("tiny-random", "toy").shape.n_layers == 3
        other = tmp_path / "other"
        other.mkdir()
        (other / "config.json").write_text(json.dumps({"model_type": "renamed_toy", "num_layers": 2, "hidden": 4}))
        with pytest.raises(FeatureError, match=r"model_type 'renamed_toy', which no backbone family reads .*set sources.backbone.family"):
            inspect_checkpoint(str(other))
        assert inspect_checkpoint(str(other), "toy").n_layers == 2


def test_a_missing_block_alias_names_the_family_depth_before_any_weight_loads(toy_checkpoint):
    with registered_family(ToyFamily):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, layers=["decoder_block_09"], device="cpu", speaker_slot="zero")
        with pytest.raises(FeatureError, match=r"'decoder_block_09' does not exist: .* has 4 decoder blocks"):
            check_backbone(cfg)


def test_an_unknown_family_name_lists_the_registered_ones():
    with pytest.raises(FeatureError, match=r"sources.backbone.family: unknown backbone family 'nope'; valid: qwen3_tts"):
        family_named("nope")


def test_a_family_name_cannot_be_registered_twice():
    with registered_family(ToyFamily), pytest.raises(ValueError, match="already registered"):
        with registered_family(ToyFamily):
            pass


def test_the_user_guides_hfattachconfig_snippet_lists_the_tiny_models_modules():
    from stage1_5.backbone.huggingface import HFAttachConfig

    adapter = HuggingFaceBackboneAdapter(HFAttachConfig(checkpoint="tiny-random", device="cpu"))
    names = list(dict(adapter.model.named_modules()).keys())[:20]
    assert "talker" in names and "talker.model.layers.0" in names
    assert [s.name for s in adapter.sites] == ["text_encoder_out"] and isinstance(HFAttachConfig(), BackboneConfig)


# ------------------------------------------------------------------- sites by class and structure


class WrappedToyModel(nn.Module):
    """The toy model under another prefix (`inner.`), as a wrapping model or a native port lays it out."""

    def __init__(self, inner: ToyModel):
        super().__init__()
        self.inner = inner


class ClassCheckedToyFamily(ToyFamily):
    """The toy family whose aliases name their module classes; the path stays the unwrapped one."""

    name = "toy_classes"

    def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
        classes = {"embed": ("Embedding",), "norm": ("LayerNorm",)}
        return {name: replace(site, module_classes=classes.get(site.module_path, ("Linear",))) for name, site in super().alias_sites(n_layers).items()}


class WrappedToyFamily(ClassCheckedToyFamily):
    name = "toy_wrapped"

    def load(self, info, runtime, *, seed: int) -> WrappedToyModel:
        return WrappedToyModel(super().load(info, runtime, seed=seed))

    def n_layers(self, handle: WrappedToyModel) -> int:
        return len(handle.inner.blocks)

    def forward(self, handle, wavs, texts, sites, cfg, *, n_blocks, batch_speaker):
        return super().forward(handle.inner, wavs, texts, sites, cfg, n_blocks=n_blocks, batch_speaker=batch_speaker)


def test_a_family_finds_its_sites_by_class_under_another_prefix(toy_checkpoint, utterances):
    layers = ["text_encoder_out", "decoder_block_01", "pre_vocoder"]
    with registered_family(ClassCheckedToyFamily), registered_family(WrappedToyFamily):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, layers=layers, batch_size=3, num_workers=0, device="cpu", speaker_slot="zero")
        plain = HuggingFaceBackboneAdapter(cfg.model_copy(update={"family": "toy_classes"}))
        wrapped = HuggingFaceBackboneAdapter(cfg.model_copy(update={"family": "toy_wrapped"}))
        want = list(plain.extract_batches(utterances))[0]
        got = list(wrapped.extract_batches(utterances))[0]
    assert [s.module_path for s in plain.sites] == ["embed", "blocks.1", "norm"]
    assert [s.module_path for s in wrapped.sites] == ["inner.embed", "inner.blocks.1", "inner.norm"]
    for name in layers:  # the hooks sit on the same modules: same seed, same vectors
        np.testing.assert_array_equal(got.vectors[name], want.vectors[name])


def test_a_site_whose_module_is_of_another_class_is_refused_naming_alias_path_and_class(toy_checkpoint):
    class Mislabelled(ClassCheckedToyFamily):
        name = "toy_mislabelled"

        def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
            sites = super().alias_sites(n_layers)
            return {**sites, "pre_vocoder": replace(sites["pre_vocoder"], module_path="blocks.0")}  # a Linear, not the norm

    with registered_family(Mislabelled):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, family="toy_mislabelled", layers=["pre_vocoder"], num_workers=0, device="cpu", speaker_slot="zero")
        with pytest.raises(FeatureError, match=r"^backbone layer 'pre_vocoder': module 'blocks.0' is a Linear, expected LayerNorm \(this checkpoint's layout is not the Toy one"):
            HuggingFaceBackboneAdapter(cfg)


def test_a_block_is_found_by_position_in_the_one_list_of_its_class(toy_checkpoint):
    class Renamed(ClassCheckedToyFamily):
        name = "toy_renamed"

        def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
            return {name: replace(site, module_path=site.module_path.replace("blocks.", "layers.")) for name, site in super().alias_sites(n_layers).items()}

    with registered_family(Renamed):
        cfg = BackboneConfig(checkpoint=toy_checkpoint, family="toy_renamed", layers=["decoder_block_02"], num_workers=0, device="cpu", speaker_slot="zero")
        assert [s.module_path for s in HuggingFaceBackboneAdapter(cfg).sites] == ["blocks.2"]


def test_qwen3_tts_aliases_are_class_checked_on_a_weightless_skeleton(tmp_path):
    from stage1_5.backbone.families.qwen3_tts import Qwen3TTSFamily
    from stage1_5.backbone.released import released_config

    class Mislabelled(Qwen3TTSFamily):
        name = "qwen3_tts_mislabelled"
        model_types = ()

        def alias_sites(self, n_layers: int) -> dict[str, LayerSite]:
            sites = super().alias_sites(n_layers)
            return {**sites, "text_encoder_out": replace(sites["text_encoder_out"], module_path="talker.model.layers.0")}

    (tmp_path / "config.json").write_text(json.dumps(released_config("0.6B-Base")))  # the released layout, no weights
    cfg = BackboneConfig(checkpoint=str(tmp_path), layers=["text_encoder_out", "decoder_block_08", "pre_vocoder"], device="cpu")
    assert check_backbone(cfg).checkpoint.family == "qwen3_tts"
    with registered_family(Mislabelled):
        with pytest.raises(FeatureError, match=r"^sources.backbone.layers: backbone layer 'text_encoder_out': module 'talker.model.layers.0' is a Qwen3TTSTalkerDecoderLayer, expected Qwen3TTSTalkerResizeMLP"):
            check_backbone(cfg.model_copy(update={"family": "qwen3_tts_mislabelled"}))
