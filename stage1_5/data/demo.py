"""The demo dataset embedded in the package (`dataset.path: demo`), so the main job runs with no download.

espeak-ng English: 3 accents (en-us, en-gb, en-gb-scotland) x 8 pseudo-speakers x 8 short shared
sentences = 192 utterances, FLAC at 16 kHz, in the user guide's layout. Eight speakers per accent (the
design minimum) is what lets MFCC statistics see the accents on held-out speakers (F1 ≈ 0.5 against a
chance of 0.33; with 4 speakers the voice variants dominated and every reference sat at chance). It is below the design minima
on purpose: reports on it are marked "not a scientific result". Regenerate (deterministic, byte for
byte) with `stage1_5 dataset demo --regenerate`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from stage1_5.data.layout import DEMO_DATA
from stage1_5.data.synth import SynthConfig, synthesize
from stage1_5.io import atomic_write_text

DEMO_CONFIG = SynthConfig(
    engine="espeak",
    language="en",
    accents=3,
    accent_names=("en-us", "en-gb", "en-gb-scotland"),
    speakers_per_accent=8,
    texts=8,
    seed=0,
    sample_rate=16000,
    audio_format="flac",
)


_README = """# stage1_5 demo dataset

Synthetic English speech from espeak-ng (through the PyPI `espeakng-loader` library): 3 accents
(en-us, en-gb, en-gb-scotland) x 8 pseudo-speakers (voice variants with pitch/rate offsets) x 8 shared
sentences = 192 utterances, FLAC 16 kHz, in the user guide's layout (`wav/<speaker>/<text>.flac`,
`rel_path` relative to `wav/`). `synth.json` holds the generating parameters.

It is below the design minima on purpose (it only shows that the pipeline runs offline): results on it
are "not a scientific result". Regenerate, deterministically, with

    stage1_5 dataset demo --regenerate
"""


def regenerate(target: Path | None = None, progress: bool = True) -> Path:
    """Rebuild the demo set from `DEMO_CONFIG`, replacing `target` (default: the packaged folder)."""
    target = Path(target) if target is not None else DEMO_DATA
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".demo_data.", dir=target.parent) as tmp:
        fresh = synthesize(Path(tmp) / "demo_data", DEMO_CONFIG, progress=progress)
        atomic_write_text(fresh / "README.md", _README)
        if target.exists():
            shutil.rmtree(target)
        fresh.rename(target)
    return target
