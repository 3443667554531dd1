"""Digests of the Qwen3-TTS `tiny-random` features on nine demo utterances, for the test that the
family refactor left them bit-identical (`tests/fixtures/qwen3_tts_demo_digest.json` holds the values
computed with the code before the refactor). Regenerate only for an intended change:
`python tests/backbone_digest.py > tests/fixtures/qwen3_tts_demo_digest.json`."""

from __future__ import annotations

import csv
import hashlib
import json
import os

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


def feature_digests() -> dict[str, dict[str, str]]:
    """settings name -> layer -> sha256 of the (utterance-sorted) float32 matrix, with one intra-op
    thread (as the fixture was computed: CPU reductions differ in their last bits with the thread count)."""
    from stage1_5.runtime import torch_threads

    utterances = demo_utterances()
    with torch_threads(1):
        return {label: _digests(utterances, changes) for label, changes in SETTINGS.items()}


def _digests(utterances: list[Utterance], changes: dict) -> dict[str, str]:
    from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
    from stage1_5.config import BackboneConfig

    cfg = BackboneConfig(checkpoint="tiny-random", layers=LAYERS, batch_size=4, num_workers=0, device="cpu", dtype="float32", **changes)
    rows: dict[str, dict[str, np.ndarray]] = {}
    for batch in HuggingFaceBackboneAdapter(cfg).extract_batches(utterances):
        for layer, matrix in batch.vectors.items():
            rows.setdefault(layer, {}).update(zip(batch.utt_ids, matrix))
    return {layer: hashlib.sha256(np.stack([by_id[k] for k in sorted(by_id)]).astype(np.float32).tobytes()).hexdigest() for layer, by_id in rows.items()}


if __name__ == "__main__":
    print(json.dumps(feature_digests(), indent=1, sort_keys=True))
