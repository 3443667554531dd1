"""Dataset loading cost: recording statistics and hashes for an hour of audio, cold and warm.

Writes `--hours` of speech-like audio (noise bursts with pauses, `--seconds` per file) in the user
guide's layout, then times, in one process over the same files:

- decode only: soundfile reads every file once (the floor any statistic pays);
- cold load: `load_dataset` with an empty work folder (decode + recording statistics + sha256);
- warm load: the same call again (the file index is keyed by size and mtime: only stat calls);
- the recording-confound probe on the loaded set (`check_confounds`, probe cache cleared).

    .venv/bin/python benchmarks/bench_dataset.py                   # 1 h of 16 kHz FLAC in 4 s files
    .venv/bin/python benchmarks/bench_dataset.py --format wav --rate 48000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.layout import METADATA, write_metadata
from stage1_5.probes.confounds import RECORDING_PROBE_FOLDER, check_confounds


def write_hour(root: Path, hours: float, seconds: float, rate: int, fmt: str) -> int:
    rng = np.random.default_rng(0)
    n_files = int(round(hours * 3600 / seconds))
    accents, speakers = 3, 8
    rows = []
    for i in range(n_files):
        accent, speaker = i % accents, (i // accents) % speakers
        spk = f"a{accent}_s{speaker:02d}"
        rel = f"{spk}/u{i:05d}.{fmt}"
        wav = 0.2 * rng.standard_normal(int(seconds * rate))
        wav *= np.where((np.arange(len(wav)) // int(0.2 * rate)) % 3 == 0, 0.005, 1.0)  # pauses
        path = root / "wav" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wav.astype(np.float32), rate, subtype="PCM_16")
        rows.append({"utt_id": f"u{i:05d}", "speaker": spk, "accent": f"a{accent}", "text_id": f"t{i // (accents * speakers):03d}", "rel_path": rel})
    write_metadata(root / METADATA, rows)
    return n_files


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each file")
    parser.add_argument("--rate", type=int, default=16000)
    parser.add_argument("--format", choices=["flac", "wav"], default="flac")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root, work = Path(tmp) / "ds", Path(tmp) / "work"
        n = write_hour(root, args.hours, args.seconds, args.rate, args.format)
        files = sorted((root / "wav").rglob(f"*.{args.format}"))
        decode, _ = timed(lambda: [sf.read(f, dtype="float32") for f in files])
        config = DatasetConfig(min_shared_texts=1)
        cold, ds = timed(lambda: load_dataset(root, config, work_dir=work, progress=False))
        warm, _ = timed(lambda: load_dataset(root, config, work_dir=work, progress=False))
        shutil.rmtree(work / RECORDING_PROBE_FOLDER, ignore_errors=True)
        probe, checked = timed(lambda: check_confounds(ds, config, alpha=0.05, work_dir=work))
        audio_h = ds.summary.total_hours
        p = checked.confounds.recording.probe
    print(f"{n} {args.format} files, {audio_h:.2f} h at {args.rate} Hz")
    print(f"decode only      {decode:7.2f} s   ({audio_h * 3600 / decode:8.0f} audio-s/s)")
    print(f"cold load        {cold:7.2f} s   ({audio_h * 3600 / cold:8.0f} audio-s/s)   cold / decode = {cold / decode:.2f}")
    print(f"warm load        {warm:7.2f} s   cold / warm = {cold / warm:.0f}x")
    print(f"recording probe  {probe:7.2f} s   ({p.n_utterances} utterances of {p.n_speakers} speakers; F1 {p.accent_f1:.2f}, p = {p.p_value:.3g})")


if __name__ == "__main__":
    main()
