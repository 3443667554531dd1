"""Test factories for feature extraction (lhotse `testing/dummies` style): small procedural audio,
a minimal dataset object and a deterministic extractor that counts its work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from stage1_5.data.manifest import Utterance, UtteranceSet
from stage1_5.features.base import FeatureBatch
from stage1_5.hashing import text_digest

SAMPLE_RATE = 16_000


def write_tone_utterances(folder: str | Path, n: int, *, seed: int = 0, min_s: float = 0.3, max_s: float = 0.9) -> UtteranceSet:
    """`n` wav files of harmonic tones of varied pitch and length under `folder`, as an UtteranceSet
    (lengths vary so that batches are padded)."""
    import soundfile as sf

    from stage1_5.data.testing import tone

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utts = []
    for i in range(n):
        wav = tone(float(rng.uniform(min_s, max_s)), SAMPLE_RATE, float(rng.uniform(100, 400)), seed=seed + i)
        path = folder / f"utt{i:04d}.wav"
        sf.write(path, wav, SAMPLE_RATE, subtype="FLOAT")
        utts.append(
            Utterance(
                id=f"utt{i:04d}",
                speaker=f"spk{i % 4}",
                accent=f"acc{i % 2}",
                text_id=f"t{i % 3}",
                audio_path=str(path),
                duration=len(wav) / SAMPLE_RATE,
                sample_rate=SAMPLE_RATE,
            )
        )
    return UtteranceSet(utts)


@dataclass
class FakeDataset:
    """The three attributes extraction reads from `stage1_5.data.dataset.Dataset`."""

    utterances: UtteranceSet
    content_hash: str = ""
    has_audio: bool = True

    def __post_init__(self) -> None:
        if not self.content_hash:
            self.content_hash = text_digest("\n".join(self.utterances.ids))


@dataclass
class CountingExtractor:
    """Deterministic vectors from the utterance id; counts utterances it computed and can fail after
    `fail_after` batches (a simulated crash)."""

    source: str = "acoustic"
    version: str = "test"
    names: Sequence[str] = ("acoustic:a", "acoustic:b")
    dim: int = 3
    fail_after: int | None = None
    computed: list[str] = field(default_factory=list)
    batches: int = 0
    setting: int = 0

    def representation_names(self) -> list[str]:
        return list(self.names)

    def config_key(self) -> dict[str, Any]:
        return {"setting": self.setting}

    def vector(self, utt_id: str, name: str) -> np.ndarray:
        seed = int(text_digest(f"{utt_id}/{name}/{self.setting}", 8), 16)
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def extract_batches(self, utterances: Sequence[Utterance], batch_size: int) -> Iterator[FeatureBatch]:
        utts = list(utterances)
        for start in range(0, len(utts), batch_size):
            if self.fail_after is not None and self.batches >= self.fail_after:
                raise RuntimeError("simulated crash")
            batch = utts[start : start + batch_size]
            self.batches += 1
            self.computed += [u.id for u in batch]
            yield FeatureBatch(
                utt_ids=[u.id for u in batch],
                vectors={name: np.stack([self.vector(u.id, name) for u in batch]) for name in self.names},
                n_audio_seconds=float(sum(u.duration or 0.0 for u in batch)),
            )
