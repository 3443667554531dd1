"""The GO demo (`config/demo_go.yaml`): backbone features of the embedded demo's utterances that carry a
planted accent, so that a new user sees what a GO report, the Stage 2 handoff and green gates look like.

The features are planted-truth vectors (`stage1_5.probes.planted`): each utterance is its accent's
direction times `strength`, plus a speaker offset that carries no accent, plus noise, drawn over the
demo's own design (accent × speaker × text) and written as an external feature file whose columns are
named like backbone layers (`sources.external`). `backbone:decoder_block_08` carries the accent and
`backbone:decoder_block_00` none. The references (MFCC statistics) are computed from the demo's real
audio as usual. `stage1_5 dataset demo --regenerate` rebuilds this file with the dataset.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from stage1_5.data.layout import DEMO_DATA
from stage1_5.errors import DatasetError
from stage1_5.io import atomic_open

PLANTED_BACKBONE = DEMO_DATA / "planted_backbone.npz"
"""Where the GO demo's planted backbone features live (beside the demo dataset, in the package)."""

PLANTED_LAYERS = {"backbone:decoder_block_08": 3.0, "backbone:decoder_block_00": 0.0}
"""Representation → planted accent strength (relative to the utterance noise's norm)."""


def planted_backbone_features(
    metadata: pd.DataFrame,
    layers: Mapping[str, float] = PLANTED_LAYERS,
    *,
    dim: int = 32,
    speaker: float = 0.5,
    random_state: int = 0,
) -> dict[str, np.ndarray]:
    """{representation: [N, dim] float32} in the row order of `metadata` (utt_id, speaker, accent, text_id),
    which must be a full design: every speaker of every accent reads every text, the same number of
    speakers per accent."""
    from stage1_5.probes.planted import planted_dataset

    accents = sorted(metadata["accent"].unique())
    texts = sorted(metadata["text_id"].unique())
    speakers = {a: sorted(metadata.loc[metadata["accent"] == a, "speaker"].unique()) for a in accents}
    sizes = {len(s) for s in speakers.values()}
    n_speakers = min(sizes)
    if len(sizes) != 1 or len(metadata) != len(accents) * n_speakers * len(texts):
        raise DatasetError("planted demo features need a full design: every speaker reads every text, as many speakers per accent")
    index = {
        (a, spk, t): (ai * n_speakers + si) * len(texts) + ti
        for ai, a in enumerate(accents)
        for si, spk in enumerate(speakers[a])
        for ti, t in enumerate(texts)
    }
    rows = [index[(r.accent, r.speaker, r.text_id)] for r in metadata.itertuples()]
    out = {}
    for k, (name, strength) in enumerate(layers.items()):
        drawn = planted_dataset(
            n_accents=len(accents), speakers_per_accent=n_speakers, n_texts=len(texts), dim=dim,
            accent=strength, speaker=speaker, name=name, random_state=random_state + k,
        )  # fmt: skip
        out[name] = drawn.features[name][rows]
    return out


def write_planted_backbone(dataset_dir: str | Path = DEMO_DATA, target: str | Path = PLANTED_BACKBONE) -> Path:
    """Write the planted backbone features of the dataset in `dataset_dir` (its metadata.csv) to `target`."""
    metadata = pd.read_csv(Path(dataset_dir) / "metadata.csv", dtype=str)
    arrays = {"utt_id": metadata["utt_id"].to_numpy(dtype=str), **planted_backbone_features(metadata)}
    with atomic_open(target, "wb") as fh, zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():  # np.savez's layout, with fixed timestamps: byte for byte reproducible
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
    return Path(target)
