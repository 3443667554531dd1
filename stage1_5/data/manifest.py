"""Typed manifest records (lhotse style): store paths, load audio on demand, changes return copies."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from stage1_5.io import atomic_open

MANIFEST_COLUMNS = ["utt_id", "speaker", "accent", "text_id", "text", "audio_path", "duration", "sample_rate", "group"]


@dataclass(frozen=True)
class Utterance:
    """One recording of one text by one speaker. `audio_path` is None when only features exist;
    `group` is the speaker's nuisance group (metadata.csv's optional group column), None without one."""

    id: str
    speaker: str
    accent: str
    text_id: str
    audio_path: Optional[str] = None
    text: Optional[str] = None
    duration: Optional[float] = None
    sample_rate: Optional[int] = None
    group: Optional[str] = None
    custom: Optional[Dict[str, Any]] = None

    def load_audio(self, target_sr: Optional[int] = None) -> np.ndarray:
        """Mono float32 waveform, resampled to `target_sr` when given."""
        if self.audio_path is None:
            raise ValueError(f"Utterance {self.id}: no audio (features-only dataset)")
        from stage1_5.data.audio import read_audio

        return read_audio(self.audio_path, target_sr)[0]

    def copy_with(self, **changes: Any) -> "Utterance":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Utterance":
        return cls(**data)


class UtteranceSet(Sequence[Utterance]):
    """An ordered, id-indexed collection of utterances. Filtering and mapping return new sets."""

    def __init__(self, utterances: Iterable[Utterance]):
        self._utts = list(utterances)
        self._index = {u.id: i for i, u in enumerate(self._utts)}
        if len(self._index) != len(self._utts):
            seen: set[str] = set()
            dup = next(u.id for u in self._utts if u.id in seen or seen.add(u.id))
            raise ValueError(f"duplicate utterance id {dup!r}")

    def __len__(self) -> int:
        return len(self._utts)

    def __iter__(self) -> Iterator[Utterance]:
        return iter(self._utts)

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return self._utts[self._index[key]]
        if isinstance(key, slice):
            return UtteranceSet(self._utts[key])
        return self._utts[key]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UtteranceSet) and self._utts == other._utts

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self._utts]

    def filter(self, predicate: Callable[[Utterance], bool]) -> "UtteranceSet":
        return UtteranceSet(u for u in self._utts if predicate(u))

    def map(self, fn: Callable[[Utterance], Utterance]) -> "UtteranceSet":
        return UtteranceSet(fn(u) for u in self._utts)

    def subset(self, ids: Iterable[str]) -> "UtteranceSet":
        return UtteranceSet(self[i] for i in ids)

    def to_frame(self) -> pd.DataFrame:
        """One row per utterance with MANIFEST_COLUMNS (the probes read speaker/accent/text_id/group here)."""
        rows = [
            {
                "utt_id": u.id,
                "speaker": u.speaker,
                "accent": u.accent,
                "text_id": u.text_id,
                "text": u.text,
                "audio_path": u.audio_path,
                "duration": u.duration,
                "sample_rate": u.sample_rate,
                "group": u.group,
            }
            for u in self._utts
        ]
        return pd.DataFrame(rows, columns=MANIFEST_COLUMNS)

    def to_file(self, path: str | Path) -> None:
        """Write JSON lines (one utterance a line), atomically."""
        with atomic_open(path, "w", encoding="utf-8") as fh:
            for u in self._utts:
                fh.write(json.dumps(u.to_dict(), ensure_ascii=False) + "\n")

    @classmethod
    def from_file(cls, path: str | Path) -> "UtteranceSet":
        with open(path, encoding="utf-8") as fh:
            return cls(Utterance.from_dict(json.loads(line)) for line in fh if line.strip())


def length_sorted_batches(utterances: Sequence["Utterance"], batch_size: int) -> Iterator[list["Utterance"]]:
    """Batches of utterances of similar duration (longest first), so padded batches waste little."""
    order = sorted(range(len(utterances)), key=lambda i: -(utterances[i].duration or 0.0))
    for start in range(0, len(order), batch_size):
        yield [utterances[i] for i in order[start : start + batch_size]]
