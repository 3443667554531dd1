"""Classic acoustic features, the no-deep-learning reference: MFCC statistics (librosa) and eGeMAPS (opensmile)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from stage1_5.errors import FeatureError
from stage1_5.features.base import FeatureBatch, select_names

if TYPE_CHECKING:
    from stage1_5.config import AcousticConfig
    from stage1_5.data.manifest import Utterance

SAMPLE_RATE = 16_000
N_FFT = 400  # 25 ms window
HOP_LENGTH = 160  # 10 ms hop
DELTA_WIDTH = 9


def mfcc_stats(wav: np.ndarray, n_mfcc: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Mean and standard deviation over frames of MFCC, delta and delta-delta: `(6 * n_mfcc,)` float32."""
    import librosa

    mfcc = librosa.feature.mfcc(y=wav, sr=sr, n_mfcc=n_mfcc, n_fft=N_FFT, hop_length=HOP_LENGTH)
    # Short clips have fewer frames than the delta window: 'nearest' edge handling works at any length.
    delta = librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=1, mode="nearest")
    delta2 = librosa.feature.delta(mfcc, width=DELTA_WIDTH, order=2, mode="nearest")
    frames = np.concatenate([mfcc, delta, delta2], axis=0)
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)]).astype(np.float32)


class _Egemaps:
    """eGeMAPSv02 functionals (88 values per utterance) through opensmile, built once."""

    def __init__(self) -> None:
        try:
            import opensmile
        except ImportError:
            raise FeatureError(
                "acoustic:egemaps needs opensmile, which is not installed: pip install stage1_5[egemaps] "
                "(or drop 'egemaps' from sources.acoustic.features)"
            ) from None
        self._smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.Functionals)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        return self._smile.process_signal(wav, SAMPLE_RATE).to_numpy(dtype=np.float32).reshape(-1)


class AcousticExtractor:
    """`acoustic:mfcc_stats` / `acoustic:egemaps`, one utterance at a time on the CPU (fast enough:
    a few milliseconds per utterance)."""

    source = "acoustic"
    version = "1"

    def __init__(self, cfg: "AcousticConfig", representations: Sequence[str] | None = None):
        self.cfg = cfg
        available = [f"acoustic:{name}" for name in cfg.features]
        self._names = select_names(available, representations, "sources.acoustic.features")
        self._egemaps = _Egemaps() if "acoustic:egemaps" in self._names else None

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        return {
            "n_mfcc": self.cfg.n_mfcc,
            "sample_rate": SAMPLE_RATE,
            "n_fft": N_FFT,
            "hop_length": HOP_LENGTH,
            "delta_width": DELTA_WIDTH,
        }

    def _one(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "acoustic:mfcc_stats" in self._names:
            out["acoustic:mfcc_stats"] = mfcc_stats(wav, self.cfg.n_mfcc)
        if self._egemaps is not None:
            out["acoustic:egemaps"] = self._egemaps(wav)
        return out

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        utts = list(utterances)
        for start in range(0, len(utts), batch_size):
            batch = utts[start : start + batch_size]
            wavs = [u.load_audio(SAMPLE_RATE) for u in batch]
            rows = [self._one(w) for w in wavs]
            yield FeatureBatch(
                utt_ids=[u.id for u in batch],
                vectors={name: np.stack([r[name] for r in rows]) for name in self._names},
                n_audio_seconds=sum(len(w) for w in wavs) / SAMPLE_RATE,
            )
