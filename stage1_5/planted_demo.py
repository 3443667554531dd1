"""The GO demo (`config/demo_go.yaml`): the `planted` source, synthetic vectors over the embedded demo's
utterances that carry a planted accent, so that a new user sees what a GO report, the Stage 2 handoff
and green gates look like. No network computed them: the report, figures, decision.json and Allure
name them `planted:<layer>` and the not-scientific banner says so.

The features are planted-truth vectors (`stage1_5.probes.planted`): each utterance is its accent's
direction times `strength`, plus a speaker offset that carries no accent, plus noise, drawn over the
demo's own design (accent × speaker × text) and stored beside the demo dataset. `planted:decoder_block_08`
carries the accent and `planted:decoder_block_00` none (layer names borrowed from the backbone's, so the
demo reads like a backbone run). The source is registered like the others (`stage1_5.sources`,
`sources.planted`) and decides, standing in for the backbone. The references are computed from the
demo's real audio as usual. `stage1_5 dataset demo --regenerate` rebuilds the file with the dataset.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from stage1_5.data.layout import DEMO_DATA
from stage1_5.errors import DatasetError, FeatureError
from stage1_5.io import atomic_open

if TYPE_CHECKING:
    from stage1_5.config import PlantedConfig
    from stage1_5.data.manifest import Utterance

PLANTED_BACKBONE = DEMO_DATA / "planted_backbone.npz"
"""Where the GO demo's planted backbone features live (beside the demo dataset, in the package)."""

SOURCE = "planted"
PLANTED_LAYERS = {f"{SOURCE}:decoder_block_08": 3.0, f"{SOURCE}:decoder_block_00": 0.0}
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


class PlantedExtractor:
    """The `planted` source: rows of the packaged planted features for the requested utterances (the
    embedded demo's only; another dataset's utterance is a `FeatureError` naming it)."""

    source = SOURCE
    version = "1"

    def __init__(self, cfg: "PlantedConfig", representations: Sequence[str] | None = None):
        from stage1_5.features.base import select_names

        self.cfg = cfg
        self._names = select_names([f"{SOURCE}:{layer}" for layer in cfg.layers], representations, "sources.planted")

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        from stage1_5.hashing import file_sha256

        return {"file": PLANTED_BACKBONE.name, "sha256": file_sha256(PLANTED_BACKBONE)[:16]}

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[Any]:
        from stage1_5.features.base import FeatureBatch
        from stage1_5.features.external import load_external_features

        ids, arrays = load_external_features(PLANTED_BACKBONE)
        missing = [name for name in self._names if name not in arrays]
        if missing:
            raise FeatureError(f"sources.planted.layers: {', '.join(missing)} not in {PLANTED_BACKBONE.name} (planted: {', '.join(arrays)})")
        row = {uid: i for i, uid in enumerate(ids)}
        for start in range(0, len(utterances), batch_size):
            batch = utterances[start : start + batch_size]
            unknown = [u.id for u in batch if u.id not in row]
            if unknown:
                raise FeatureError(f"sources.planted: utterance {unknown[0]!r} has no planted features (they exist only for the embedded demo dataset)")
            rows = [row[u.id] for u in batch]
            yield FeatureBatch(utt_ids=[u.id for u in batch], vectors={n: arrays[n][rows] for n in self._names}, n_audio_seconds=0.0)
