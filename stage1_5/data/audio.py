"""Audio I/O at the edge: soundfile to read, soxr to resample (never a hand-written resampler)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

CLIP_LEVEL = 0.999
"""A sample at or above this magnitude counts as clipped (full scale)."""

_SILENT_DBFS = -200.0
"""RMS level reported for all-zero or zero-length audio (finite, so it survives JSON)."""


def read_audio(path: str | Path, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    """Read mono float32 audio in [-1, 1]; downmix channels; resample to `target_sr` when given."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if target_sr is not None and sr != target_sr:
        wav = soxr.resample(wav, sr, target_sr, quality="HQ").astype(np.float32, copy=False)
        sr = target_sr
    return np.ascontiguousarray(wav, dtype=np.float32), sr


@dataclass(frozen=True)
class AudioStats:
    """What dataset validation needs to know about one file: header facts plus level statistics."""

    sample_rate: int
    frames: int
    channels: int
    rms_dbfs: float
    clipped_fraction: float

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def measure_audio(path: str | Path, block_frames: int = 1 << 16) -> AudioStats:
    """Sample rate from the header; length, RMS level and clipped fraction streamed block by block.

    Counting decoded frames (not trusting the header's count) catches truncated files; streaming keeps
    memory flat for hour-long files. Raises soundfile's error when the file is not readable audio.
    """
    with sf.SoundFile(str(path)) as fh:
        sample_rate, channels = fh.samplerate, fh.channels
        sum_sq, n_clipped, n_samples = 0.0, 0, 0
        for block in fh.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
            sum_sq += float(np.square(block, dtype=np.float64).sum())
            n_clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
            n_samples += block.size
    frames = n_samples // channels if channels else 0
    rms = math.sqrt(sum_sq / n_samples) if n_samples else 0.0
    return AudioStats(
        sample_rate=int(sample_rate),
        frames=int(frames),
        channels=int(channels),
        rms_dbfs=20.0 * math.log10(rms) if rms > 0 else _SILENT_DBFS,
        clipped_fraction=n_clipped / n_samples if n_samples else 0.0,
    )
