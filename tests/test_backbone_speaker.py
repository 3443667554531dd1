"""The batched Qwen3-TTS speaker encoder equals the package's one-utterance-at-a-time x-vectors."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from stage1_5.backbone.families.qwen3_tts import import_qwen_tts
from stage1_5.backbone.speaker import _reflect_index, encode_mels, log_mels, speaker_embeddings
from stage1_5.backbone.synthetic import build_tiny_qwen3_tts

torch.set_num_threads(1)


def _wavs(seconds):
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(int(24000 * s))).astype(np.float32) for s in seconds]


def test_reflect_index_matches_torch_reflect_padding_for_each_length():
    lengths = torch.tensor([7, 4])
    index = _reflect_index(lengths, width=7, pad=2)
    for row, n in zip(index, lengths.tolist()):
        frames = torch.arange(n, dtype=torch.float32)[None, None]
        want = torch.nn.functional.pad(frames, (2, 2), mode="reflect")[0, 0]
        assert row[: n + 4].tolist() == want.long().tolist()
        assert int(row.max()) <= n - 1


@pytest.fixture(scope="module")
def released_encoder():
    """The released speaker-encoder shape (ECAPA 512-512-512-512-1536, enc_dim 1024), random weights."""
    models = import_qwen_tts().core.models
    config = models.configuration_qwen3_tts.Qwen3TTSSpeakerEncoderConfig(enc_dim=1024, sample_rate=24000)
    torch.manual_seed(0)
    encoder = models.modeling_qwen3_tts.Qwen3TTSSpeakerEncoder(config).eval()
    for p in encoder.parameters():  # default init leaves the biases at zero: randomise everything
        torch.nn.init.normal_(p, std=0.05)
    return encoder


def test_padded_batch_equals_one_utterance_at_a_time_at_the_released_shape(released_encoder):
    mels = log_mels(build_tiny_qwen3_tts(seed=0).model, _wavs([2.0, 1.3, 0.6, 1.31]), 24000)
    with torch.inference_mode():
        alone = torch.cat([released_encoder(m.unsqueeze(0)) for m in mels])
        batched = encode_mels(released_encoder, mels)
    assert batched.shape == (4, 1024)
    # float32 sums over 1024 channels in another order (batch size, threads): a few 1e-5 on elements near zero
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=5e-5)
    assert (batched - alone).norm() / alone.norm() < 1e-5


def test_speaker_embeddings_equal_the_package_extract_speaker_embedding():
    tts = build_tiny_qwen3_tts(seed=0)
    wavs = _wavs([0.9, 0.4, 0.65])
    with torch.inference_mode():
        alone = torch.stack([tts.model.extract_speaker_embedding(audio=w, sr=24000) for w in wavs])
        batched = speaker_embeddings(tts.model, wavs, 24000)
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)


def test_adapter_features_with_batched_x_vectors_equal_the_one_at_a_time_path(tmp_path):
    from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
    from stage1_5.config import BackboneConfig
    from stage1_5.features.testing import write_tone_utterances

    utts = [u.copy_with(text=f"Line {i}.") for i, u in enumerate(write_tone_utterances(tmp_path, 4, min_s=0.3, max_s=1.0))]
    cfg = BackboneConfig(checkpoint="tiny-random", layers=["decoder_block_01"], batch_size=4, num_workers=0, device="cpu")
    batched = HuggingFaceBackboneAdapter(cfg)
    alone = HuggingFaceBackboneAdapter(cfg, tts=batched.tts, batch_speaker=False)
    (got,), (want,) = list(batched.extract_batches(utts)), list(alone.extract_batches(utts))
    assert got.utt_ids == want.utt_ids
    np.testing.assert_allclose(got.vectors["decoder_block_01"], want.vectors["decoder_block_01"], rtol=1e-4, atol=1e-5)
