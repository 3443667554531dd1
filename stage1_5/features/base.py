"""The small interface every feature source implements, and the checks the driver and the probes share.

An extractor turns utterances into one vector per utterance per representation (`source:layer`).
It is built with the representations it must produce, so it computes only those; the driver
(`extract.py`) decides what to compute and stores it (`store.py`). Which extractor serves which
source is the registry's (`stage1_5.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Protocol, Sequence

import numpy as np

from stage1_5.errors import FeatureError, Stage15Error

if TYPE_CHECKING:
    from stage1_5.data.manifest import Utterance

@dataclass(frozen=True)
class FeatureBatch:
    """Pooled vectors for a few utterances: `vectors[name]` is float32 `(len(utt_ids), dim)`."""

    utt_ids: list[str]
    vectors: dict[str, np.ndarray]
    n_audio_seconds: float


class FeatureExtractor(Protocol):
    """What the driver needs from a source.

    `config_key()` holds every setting that changes the vectors (it keys the store) and nothing
    that doesn't (batch size, device, which layers: the layer set is keyed separately).
    `version` is bumped whenever the extractor's code changes its output.
    """

    source: str
    version: str

    def representation_names(self) -> list[str]: ...

    def config_key(self) -> dict[str, Any]: ...

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]: ...


def select_names(available: Sequence[str], requested: Sequence[str] | None, option: str) -> list[str]:
    """Keep `requested` (in `available` order); an unknown name is a `FeatureError` naming `option`."""
    if requested is None:
        return list(available)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise FeatureError(f"{option}: unknown representation(s) {', '.join(unknown)}; available: {', '.join(available)}")
    wanted = set(requested)
    return [name for name in available if name in wanted]


def check_feature_matrix(
    name: str, X: np.ndarray, utt_ids: Sequence[str], *, error: type[Stage15Error], where: str = ""
) -> np.ndarray:
    """One representation's matrix: 2-D, one row per utterance, numeric, finite. Raises `error`
    naming `where` (a file or the metadata), the representation and the first bad row's utt_id."""
    prefix = f"{where}: " if where else ""
    X = np.asarray(X)
    if X.ndim != 2:
        raise error(f"{prefix}representation {name!r} must be 2-D (utterances × dims), got shape {X.shape}")
    if X.shape[0] != len(utt_ids):
        raise error(f"{prefix}representation {name!r} has {X.shape[0]} feature rows for {len(utt_ids)} utterances")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise error(f"{prefix}representation {name!r} must be numeric, got dtype {X.dtype}")
    bad = ~np.isfinite(X).all(1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise error(
            f"{prefix}representation {name!r} has NaN or infinite values in row {row} (utt_id {utt_ids[row]!r}); "
            f"{int(bad.sum())} row(s) affected"
        )
    return X
