"""The talker stops after the deepest requested block: fewer blocks run, the captured layers are
identical to a full pass, and the block list is restored. Offline, tiny random Qwen3-TTS."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.families.qwen3_tts import Qwen3TTSFamily
from stage1_5.backbone.family import LayerSite, truncated_blocks
from stage1_5.config import BackboneConfig
from stage1_5.features.testing import write_tone_utterances

torch.set_num_threads(1)

LAYERS = ["text_encoder_out", "decoder_block_00", "decoder_block_01", "pre_vocoder"]


FAMILY = Qwen3TTSFamily()


def _site(path: str, axis: str = "talker") -> LayerSite:
    return LayerSite(path, path, axis, FAMILY.block_of(path))


def blocks_needed(sites):
    return FAMILY.blocks_needed(sites)


def test_blocks_needed_is_one_past_the_deepest_requested_block():
    sites = [_site("talker.model.layers.3"), _site("talker.model.layers.11.mlp"), _site("talker.text_projection", "text")]
    assert blocks_needed(sites) == 12


def test_blocks_needed_runs_every_block_for_a_site_after_the_blocks():
    assert blocks_needed([_site("talker.model.layers.1"), _site("talker.model.norm")]) is None
    assert blocks_needed([_site("talker.codec_head")]) is None


def test_blocks_needed_is_zero_without_a_talker_site():
    assert blocks_needed([_site("talker.text_projection", "text"), _site("speech_tokenizer.model.decoder.pre_transformer", "frames")]) == 0


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    utts = write_tone_utterances(tmp_path_factory.mktemp("wav"), 4, min_s=0.3, max_s=1.0)
    return [u.copy_with(text=f"Sentence {i}.") for i, u in enumerate(utts)]


@pytest.fixture(scope="module")
def config():
    return BackboneConfig(checkpoint="tiny-random", layers=LAYERS, batch_size=4, num_workers=0, device="cpu")


def _vectors(adapter, utterances):
    out = {}
    for batch in adapter.extract_batches(utterances):
        for layer, matrix in batch.vectors.items():
            out.update({(layer, uid): row for uid, row in zip(batch.utt_ids, matrix)})
    return out


class _BlockCounter:
    def __init__(self, layers):
        self.calls = 0
        self.handles = [layer.register_forward_hook(self) for layer in layers]

    def __call__(self, *_):
        self.calls += 1

    def remove(self):
        for handle in self.handles:
            handle.remove()


def test_early_exit_runs_only_the_blocks_up_to_the_deepest_requested_one(config, utterances):
    adapter = HuggingFaceBackboneAdapter(config)
    layers = adapter.model.talker.model.layers
    assert len(layers) > 2  # the tiny model has blocks after decoder_block_01
    counter = _BlockCounter(layers)
    try:
        list(adapter.extract_batches(utterances))
    finally:
        counter.remove()
    assert counter.calls == 2  # one batch, blocks 0 and 1
    assert adapter.model.talker.model.layers is layers


def test_early_exit_features_equal_a_full_pass(config, utterances):
    early = HuggingFaceBackboneAdapter(config)
    full = HuggingFaceBackboneAdapter(config, tts=early.tts, early_exit=False)
    got, want = _vectors(early, utterances), _vectors(full, utterances)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=str(key))


def test_truncated_blocks_restores_the_block_list_after_an_error(config):
    adapter = HuggingFaceBackboneAdapter(config)
    talker = adapter.model.talker
    layers = talker.model.layers
    with pytest.raises(RuntimeError), truncated_blocks(talker.model, "layers", 1):
        assert len(talker.model.layers) == 1
        raise RuntimeError("boom")
    assert talker.model.layers is layers
