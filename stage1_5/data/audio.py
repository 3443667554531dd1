"""Audio I/O at the edge: soundfile to read, soxr to resample (never a hand-written resampler)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr


def read_audio(path: str | Path, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read mono float32 audio in [-1, 1]; downmix channels; resample to `target_sr` when given."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if target_sr is not None and sr != target_sr:
        wav = soxr.resample(wav, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
        sr = target_sr
    return np.ascontiguousarray(wav, dtype=np.float32), sr
