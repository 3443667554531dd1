"""The Qwen3-TTS `tiny-random` features on nine demo utterances, for the test that the family refactor
left them unchanged. `tests/fixtures/qwen3_tts_demo_features.npz` holds the matrices computed with the
code before the refactor (commit c40e155, float32, one intra-op thread); on one machine the current code
reproduces them bit for bit, across CPUs (Intel / AMD kernels) only to float32 rounding, so the test
compares values, not digests. Regenerate only for an intended change:
`python tests/backbone_reference.py tests/fixtures/qwen3_tts_demo_features.npz`."""

from __future__ import annotations

import csv
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from stage1_5.data.layout import DEMO_DATA
from stage1_5.data.manifest import Utterance

LAYERS = ["text_encoder_out", "decoder_block_00", "decoder_block_01", "decoder_block_02", "decoder_block_03", "pre_vocoder", "talker.model.layers.1.mlp"]
SETTINGS = {
    "default": {},
    "all_positions_mean_std_english_zero_slot": {"positions": "all", "pooling": "mean_std", "language": "english", "speaker_slot": "zero"},
}


def demo_utterances() -> list[Utterance]:
    """Speaker s01 of each accent reading t01..t03."""
    texts = json.loads((DEMO_DATA / "texts.json").read_text(encoding="utf-8"))
    with open(DEMO_DATA / "metadata.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["speaker"].endswith("_s01") and r["text_id"] in ("t01", "t02", "t03")]
    return [
        Utterance(r["utt_id"], r["speaker"], r["accent"], r["text_id"], audio_path=str(DEMO_DATA / "wav" / r["rel_path"]), text=texts[r["text_id"]])
        for r in rows
    ]


def feature_matrices() -> dict[str, np.ndarray]:
    """"settings/layer" -> the (utterance-sorted) float32 feature matrix, with one intra-op thread (as the
    reference was computed)."""
    from stage1_5.runtime import torch_threads

    utterances = demo_utterances()
    with torch_threads(1):
        return {f"{label}/{layer}": matrix for label, changes in SETTINGS.items() for layer, matrix in _matrices(utterances, changes).items()}


def _matrices(utterances: list[Utterance], changes: dict) -> dict[str, np.ndarray]:
    from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
    from stage1_5.config import BackboneConfig

    cfg = BackboneConfig(checkpoint="tiny-random", layers=LAYERS, batch_size=4, num_workers=0, device="cpu", dtype="float32", **changes)
    rows: dict[str, dict[str, np.ndarray]] = {}
    for batch in HuggingFaceBackboneAdapter(cfg).extract_batches(utterances):
        for layer, matrix in batch.vectors.items():
            rows.setdefault(layer, {}).update(zip(batch.utt_ids, matrix))
    return {layer: np.stack([by_id[k] for k in sorted(by_id)]).astype(np.float32) for layer, by_id in rows.items()}


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1], **feature_matrices())
