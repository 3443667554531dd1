"""Test factories (lhotse `testing/dummies.py` style): tiny valid datasets written in milliseconds.

`write_dataset(tmp_path)` gives a valid 2 accents x 2 speakers x 2 texts folder in the user guide's
layout; pass `rows` (from `dataset_rows`, edited) to plant a problem, and `zip_folder` to get the same
set as a zip.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import soundfile as sf

from stage1_5.data.layout import METADATA, TEXTS, under_audio_dir, write_metadata, write_texts

Row = dict[str, str]


def dataset_rows(
    accents: Sequence[str] = ("north", "south"),
    speakers_per_accent: int = 2,
    texts: int = 2,
    ext: str = "wav",
) -> list[Row]:
    """Metadata rows of a full crossing accents x speakers x texts, ids like `north_s01_t02`, with
    rel_path relative to wav/ (`north_s01/t02.wav`) as the user guide writes it."""
    return [
        {
            "utt_id": f"{accent}_s{s:02d}_t{t:02d}",
            "speaker": f"{accent}_s{s:02d}",
            "accent": accent,
            "text_id": f"t{t:02d}",
            "rel_path": f"{accent}_s{s:02d}/t{t:02d}.{ext}",
        }
        for accent in accents
        for s in range(1, speakers_per_accent + 1)
        for t in range(1, texts + 1)
    ]


def tone(duration_s: float = 0.5, sample_rate: int = 16000, freq: float = 220.0, amplitude: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: loud enough to pass the silence check, far from clipping."""
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    wav = sum(np.sin(2 * np.pi * k * freq * t) / k for k in (1, 2, 3))
    wav = amplitude * wav / max(np.abs(wav).max(initial=0.0), 1e-9)
    noise = np.random.default_rng(seed).normal(0, 0.01 * amplitude, len(t))
    return (wav + noise).astype(np.float32)


def audio_file(root: Union[str, Path], row: Mapping[str, str]) -> Path:
    """Where `write_dataset` put a row's audio (under wav/ unless its rel_path starts with wav/)."""
    return Path(root) / under_audio_dir(row["rel_path"])


def write_dataset(
    root: Union[str, Path],
    rows: Optional[Sequence[Mapping[str, str]]] = None,
    *,
    texts: Union[bool, Mapping[str, str]] = True,
    audio: bool = True,
    sample_rate: Union[int, Mapping[str, int]] = 16000,
    duration_s: float = 0.5,
) -> Path:
    """Write metadata.csv, texts.json (True: one sentence per text_id; a mapping: as given; False: none)
    and one tone per distinct rel_path (pitch set by the speaker, so speakers differ), under wav/ unless
    the rel_path already starts with wav/. `sample_rate` may map accent -> rate. Returns `root`."""
    root = Path(root)
    rows = dataset_rows() if rows is None else rows
    root.mkdir(parents=True, exist_ok=True)
    write_metadata(root / METADATA, rows)
    if texts is not False:
        mapping = {r["text_id"]: f"This is sentence {r['text_id']}." for r in rows} if texts is True else dict(texts)
        write_texts(root / TEXTS, mapping)
    if audio:
        speakers = sorted({r["speaker"] for r in rows})
        written: set[str] = set()
        for i, r in enumerate(rows):
            if r["rel_path"] in written:
                continue
            written.add(r["rel_path"])
            path = audio_file(root, r)
            path.parent.mkdir(parents=True, exist_ok=True)
            sr = sample_rate if isinstance(sample_rate, int) else sample_rate[r["accent"]]
            freq = 110.0 + 20.0 * speakers.index(r["speaker"])
            sf.write(path, tone(duration_s, sr, freq, seed=i), sr)
    return root


def zip_folder(folder: Union[str, Path], zip_path: Union[str, Path], prefix: str = "") -> Path:
    """Zip every file under `folder` (names relative to it, under `prefix` when given)."""
    folder, zip_path = Path(folder), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            zf.write(path, prefix + path.relative_to(folder).as_posix())
    return zip_path
