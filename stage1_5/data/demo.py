"""The demo dataset embedded in the package (`dataset.path: demo`), so the main job runs with no download.

espeak-ng English: 3 accents (en-us, en-gb, en-gb-scotland) x 4 pseudo-speakers x 8 short shared
sentences = 96 utterances, FLAC at 16 kHz. It is below the design minima on purpose: reports on it
are marked "not a scientific result". Regenerate (deterministic) with

    python -m stage1_5.data.demo --regenerate
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from stage1_5.data.synth import SynthConfig, synthesize

DEMO_CONFIG = SynthConfig(
    engine="espeak",
    language="en",
    accents=3,
    accent_names=("en-us", "en-gb", "en-gb-scotland"),
    speakers_per_accent=4,
    texts=8,
    seed=0,
    sample_rate=16000,
    audio_format="flac",
)


_README = """# stage1_5 demo dataset

Synthetic English speech from espeak-ng (through the PyPI `espeakng-loader` library): 3 accents
(en-us, en-gb, en-gb-scotland) x 4 pseudo-speakers (voice variants with pitch/rate offsets) x 8 shared
sentences = 96 utterances, FLAC 16 kHz. `synth.json` holds the generating parameters.

It is below the design minima on purpose (it only shows that the pipeline runs offline): results on it
are "not a scientific result". Regenerate, deterministically, with

    python -m stage1_5.data.demo --regenerate
"""


def demo_dataset_path() -> Path:
    return Path(__file__).resolve().parent.parent / "demo_data"


def regenerate(target: Path | None = None, progress: bool = True) -> Path:
    """Rebuild the demo set from `DEMO_CONFIG`, replacing `target` (default: the packaged folder)."""
    target = target or demo_dataset_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo_data.", dir=target.parent) as tmp:
        fresh = synthesize(Path(tmp) / "demo_data", DEMO_CONFIG, progress=progress)
        (fresh / "README.md").write_text(_README, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        fresh.rename(target)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stage1_5.data.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--regenerate", action="store_true", help="rebuild stage1_5/demo_data from espeak-ng")
    parser.add_argument("--out", type=Path, default=None, help="write here instead of the packaged folder")
    args = parser.parse_args(argv)
    if not args.regenerate:
        print(demo_dataset_path())
        return
    path = regenerate(args.out)
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"wrote {path} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
