"""Cheap per-file recording statistics: the conditions a file was recorded under, not what was said.

One streaming pass per file, cached by the loader's file index (keyed by size and mtime): header facts
(sample rate, channels, container format and subtype, hence bit depth or codec), level (RMS, clipping,
DC offset, non-finite samples), noise floor (the quietest frames) and bandwidth (the upper edge of the
long-term spectrum, which a codec, a microphone or a resampled upload cuts). Validation reads the level
facts; the recording-confound probe reads `recording_matrix`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

CLIP_LEVEL = 0.999
"""A sample at or above this magnitude counts as clipped (full scale)."""

SILENT_DBFS = -200.0
"""RMS level reported for all-zero or zero-length audio (finite, so it survives JSON)."""

FRAME_S = 0.032
"""Analysis frame for the noise floor and the long-term spectrum (non-overlapping, Hann window)."""

FRAME_FLOOR_DBFS = -120.0
"""Frame levels are floored here (digital silence), below any real recording's noise."""

NOISE_FLOOR_PERCENTILE = 10.0
"""The noise floor is this percentile of frame levels: the pauses between words, not the speech."""

BANDWIDTH_DROP_DB = 50.0
"""Bandwidth: the highest frequency whose long-term power is within this many dB of the peak."""

BIT_DEPTHS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}
"""soundfile subtype -> bits per sample; lossy codecs (VORBIS, OPUS, MPEG...) have none."""


@dataclass(frozen=True)
class RecordingStats:
    """One audio file's recording facts (levels in dBFS; `dc_offset` as a fraction of full scale)."""

    sample_rate: int
    frames: int
    channels: int
    format: str
    subtype: str
    rms_dbfs: float
    clipped_fraction: float
    nonfinite_samples: int
    dc_offset: float
    noise_floor_dbfs: float
    bandwidth_hz: float

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0

    @property
    def bit_depth(self) -> Optional[int]:
        return BIT_DEPTHS.get(self.subtype)

    @property
    def codec(self) -> str:
        return f"{self.format} {self.subtype}"


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else SILENT_DBFS


def measure_recording(path: str | Path, block_frames: int = 1 << 16) -> RecordingStats:
    """All statistics in one pass over the decoded samples, block by block (flat memory for long files).

    Counting decoded frames (not trusting the header's count) catches truncated files. NaN or infinite
    samples are counted and left out of every level statistic. Raises soundfile's error when the file
    is not readable audio.
    """
    with sf.SoundFile(str(path)) as fh:
        sample_rate, channels = int(fh.samplerate), int(fh.channels)
        container, subtype = str(fh.format), str(fh.subtype)
        n = max(16, int(round(FRAME_S * sample_rate)))
        window = np.hanning(n)
        spectrum = np.zeros(n // 2 + 1)
        levels: list[np.ndarray] = []
        carry = np.zeros(0, dtype=np.float64)
        sum_sq = sum_mono = 0.0
        n_clipped = n_nonfinite = n_samples = n_frames = 0
        for block in fh.blocks(blocksize=block_frames, dtype="float32", always_2d=True):
            finite = np.isfinite(block)
            if not finite.all():
                n_nonfinite += int(block.size - np.count_nonzero(finite))
                block = np.where(finite, block, 0.0).astype(np.float32)
            sum_sq += float(np.square(block, dtype=np.float64).sum())
            n_clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
            n_samples += block.size
            n_frames += block.shape[0]
            mono = block.mean(axis=1, dtype=np.float64)
            sum_mono += float(mono.sum())
            mono = np.concatenate([carry, mono])
            k = len(mono) // n
            carry = mono[k * n :]
            if k:
                frames = mono[: k * n].reshape(k, n)
                levels.append(np.square(frames).mean(axis=1))
                power = np.fft.rfft(frames * window, axis=1)
                spectrum += (power.real**2 + power.imag**2).sum(axis=0)
    finite_samples = n_samples - n_nonfinite
    mean_square = sum_sq / finite_samples if finite_samples else 0.0
    floor = 10.0 ** (FRAME_FLOOR_DBFS / 10.0)
    if levels:
        frame_db = 10.0 * np.log10(np.maximum(np.concatenate(levels), floor))
        noise_floor = float(np.percentile(frame_db, NOISE_FLOOR_PERCENTILE))
    else:  # shorter than one frame
        noise_floor = max(_db(mean_square), FRAME_FLOOR_DBFS)
    return RecordingStats(
        sample_rate=sample_rate,
        frames=n_frames,
        channels=channels,
        format=container,
        subtype=subtype,
        rms_dbfs=_db(mean_square),
        clipped_fraction=n_clipped / n_samples if n_samples else 0.0,
        nonfinite_samples=n_nonfinite,
        dc_offset=sum_mono / n_frames if n_frames else 0.0,
        noise_floor_dbfs=noise_floor,
        bandwidth_hz=_bandwidth(spectrum, sample_rate),
    )


def _bandwidth(spectrum: np.ndarray, sample_rate: int) -> float:
    """Highest frequency of the long-term spectrum (smoothed over 5 bins) within BANDWIDTH_DROP_DB of its peak."""
    if not spectrum.size or spectrum.max() <= 0:
        return 0.0
    smooth = np.convolve(spectrum, np.ones(5) / 5.0, mode="same")
    above = np.flatnonzero(smooth >= smooth.max() * 10.0 ** (-BANDWIDTH_DROP_DB / 10.0))
    return float(above[-1] * sample_rate / (2 * (len(spectrum) - 1)))


# ----------------------------------------------------------------------------- as probe features

STATISTICS = ("sample_rate", "channels", "bit_depth", "codec", "duration", "rms_dbfs", "dc_offset", "noise_floor_dbfs", "bandwidth_hz")
"""What the recording-confound probe sees, in report order."""

CATEGORICAL = frozenset({"sample_rate", "channels", "bit_depth", "codec"})
"""Statistics that take a few discrete values; an accent with values of its own is a confound by itself."""

LABELS = {
    "sample_rate": "sample rate",
    "channels": "channels",
    "bit_depth": "bit depth",
    "codec": "codec",
    "duration": "duration",
    "rms_dbfs": "RMS level",
    "dc_offset": "DC offset",
    "noise_floor_dbfs": "noise floor",
    "bandwidth_hz": "bandwidth",
}


def statistic(stats: RecordingStats, name: str) -> float | str:
    """One statistic of a file by name (bit depth 0 for lossy codecs)."""
    if name == "bit_depth":
        return stats.bit_depth or 0
    return getattr(stats, name)


def format_statistic(name: str, value: float | str) -> str:
    """A value as a person reads it: '48 kHz', '16-bit', '-21.4 dBFS', '7.9 kHz', '2.31 s'."""
    if name == "codec":
        return str(value)
    v = float(value)
    if name == "sample_rate":
        return f"{v / 1000:g} kHz"
    if name == "channels":
        return {1: "mono", 2: "stereo"}.get(int(v), f"{int(v)} channels")
    if name == "bit_depth":
        return f"{int(v)}-bit" if v else "lossy"
    if name == "duration":
        return f"{v:.2f} s"
    if name in ("rms_dbfs", "noise_floor_dbfs"):
        return f"{v:.1f} dBFS"
    if name == "dc_offset":
        return f"{v:+.1e}"
    if name == "bandwidth_hz":
        return f"{v / 1000:.1f} kHz"
    return f"{v:g}"


def recording_matrix(stats: Sequence[RecordingStats]) -> tuple[list[str], np.ndarray]:
    """The probe's feature matrix: one row per file, one column per numeric statistic, plus one
    indicator column per codec when files use more than one (`codec=FLAC PCM_16`)."""
    names = [s for s in STATISTICS if s != "codec"]
    columns = [np.array([float(statistic(st, s)) for st in stats]) for s in names]
    codecs = sorted({st.codec for st in stats})
    if len(codecs) > 1:
        for codec in codecs:
            names.append(f"codec={codec}")
            columns.append(np.array([float(st.codec == codec) for st in stats]))
    X = np.stack(columns, axis=1) if stats else np.zeros((0, len(names)))
    return names, X.astype(np.float64)
