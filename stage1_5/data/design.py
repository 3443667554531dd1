"""The dataset's design in numbers (counts per accent, speaker and group) and the warnings it earns:
under the guide's minima, unbalanced accents, mixed sample rates. Warnings, never errors: small or
uneven sets may run, and the report says what they can and cannot show."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Mapping

from stage1_5.config import DatasetConfig
from stage1_5.data.manifest import UtteranceSet


@dataclass(frozen=True)
class DatasetSummary:
    n_utterances: int
    n_speakers: int
    n_accents: int
    n_texts: int
    total_hours: float
    speakers_per_accent: dict[str, int]
    utterances_per_accent: dict[str, int]
    min_texts_per_speaker: int
    sample_rates: dict[int, int]
    """sample rate (Hz) -> number of utterances; empty without audio."""
    speakers_per_group: dict[str, int]
    """group -> number of speakers; empty without a group column."""


def summarize(utterances: UtteranceSet) -> DatasetSummary:
    speakers: dict[str, set[str]] = defaultdict(set)
    texts_of: dict[str, set[str]] = defaultdict(set)
    groups: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        speakers[u.accent].add(u.speaker)
        texts_of[u.speaker].add(u.text_id)
        if u.group is not None:
            groups[u.group].add(u.speaker)
    return DatasetSummary(
        n_utterances=len(utterances),
        n_speakers=len(texts_of),
        n_accents=len(speakers),
        n_texts=len({u.text_id for u in utterances}),
        total_hours=sum(u.duration or 0.0 for u in utterances) / 3600.0,
        speakers_per_accent={a: len(s) for a, s in sorted(speakers.items())},
        utterances_per_accent=dict(sorted(Counter(u.accent for u in utterances).items())),
        min_texts_per_speaker=min((len(t) for t in texts_of.values()), default=0),
        sample_rates=dict(sorted(Counter(u.sample_rate for u in utterances if u.sample_rate).items())),
        speakers_per_group={g: len(s) for g, s in sorted(groups.items())},
    )


def sample_rate_notes(sample_rates: Mapping[int, int]) -> list[str]:
    """Mixed sample rates are allowed: each extractor resamples to its own rate."""
    if len(sample_rates) <= 1:
        return []
    counts = ", ".join(f"{sr} Hz: {n} files" for sr, n in sorted(sample_rates.items()))
    return [f"mixed sample rates ({counts}); audio is resampled to each extractor's rate"]


def minima_warnings(summary: DatasetSummary, config: DatasetConfig) -> list[str]:
    """Loud warnings for a dataset under the design minima; the report marks it 'not a scientific result'."""
    short = []
    if summary.n_accents < config.min_accents:
        short.append(f"{summary.n_accents} accent(s) < dataset.min_accents={config.min_accents}")
    few = {a: n for a, n in summary.speakers_per_accent.items() if n < config.min_speakers_per_accent}
    if few:
        listed = ", ".join(f"{a}: {n}" for a, n in sorted(few.items()))
        short.append(f"speakers per accent ({listed}) < dataset.min_speakers_per_accent={config.min_speakers_per_accent}")
    if summary.min_texts_per_speaker < config.min_texts_per_speaker:
        short.append(
            f"a speaker reads only {summary.min_texts_per_speaker} text(s) < "
            f"dataset.min_texts_per_speaker={config.min_texts_per_speaker}"
        )
    return [f"DATASET BELOW DESIGN MINIMA, NOT A SCIENTIFIC RESULT: {s}" for s in short]


def balance_warnings(summary: DatasetSummary, config: DatasetConfig) -> list[str]:
    """Accents with very different numbers of speakers or utterances: macro-F1 weighs every accent
    equally, so the small accents carry as much of the result on far less evidence."""
    warnings = []
    for what, counts in (("speakers", summary.speakers_per_accent), ("utterances", summary.utterances_per_accent)):
        if len(counts) < 2 or not min(counts.values()):
            continue
        ratio = max(counts.values()) / min(counts.values())
        if ratio > config.max_imbalance:
            listed = ", ".join(f"{a}: {n}" for a, n in counts.items())
            warnings.append(
                f"UNBALANCED DESIGN: {what} per accent {listed} (largest / smallest = {ratio:.2f} > "
                f"dataset.max_imbalance={config.max_imbalance:g}); the small accents weigh as much in macro-F1 "
                "on less evidence"
            )
    return warnings
