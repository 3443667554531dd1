"""Confounds caught before any model runs (DESIGN §2): accents that read different texts, and accents
that differ in how they were recorded.

Both make any accent result meaningless: a probe then learns the texts or the microphones. This module
holds the typed findings and their wording; the numbers that need a probe (accent F1 and p-value from
recording statistics alone) are filled in by `stage1_5.probes.confounds`. With
`dataset.confounds: error` a confound stops the run (`raise_if_confounded`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from stage1_5.config import DatasetConfig
from stage1_5.data.manifest import UtteranceSet
from stage1_5.data.recording import (
    CATEGORICAL,
    LABELS,
    STATISTICS,
    RecordingStats,
    format_statistic,
    recording_matrix,
    statistic,
)
from stage1_5.errors import DatasetError

LEADING_SEPARATION = 0.5
"""A statistic whose separation (adjusted R² of accent over speaker means) reaches this is named as one
that separates the accents."""
MAX_NAMED = 3


class ConfoundError(DatasetError):
    """`dataset.confounds: error` and the dataset has a text or recording confound."""


# ----------------------------------------------------------------------------- texts


@dataclass(frozen=True)
class TextSharing:
    """Which texts the accents read. `shared`: texts read in every accent; `own_texts[a]`: texts read
    in accent a only. A confound when some texts are not shared and fewer than `min_shared` are."""

    n_texts: int
    shared: int
    texts_per_accent: Mapping[str, int]
    own_texts: Mapping[str, int]
    min_shared: int

    @property
    def confounded(self) -> bool:
        return self.shared < self.n_texts and self.shared < self.min_shared

    @property
    def warning(self) -> Optional[str]:
        if not self.confounded:
            return None
        per_accent = ", ".join(f"{a} reads {n} ({self.own_texts[a]} only in {a})" for a, n in self.texts_per_accent.items())
        return (
            f"TEXT CONFOUND: the accents share {self.shared} of {self.n_texts} texts "
            f"(< dataset.min_shared_texts={self.min_shared}): {per_accent}; "
            "when texts differ by accent, text drop and accent F1 cannot be separated"
        )


def text_sharing(utterances: UtteranceSet, min_shared: int) -> TextSharing:
    texts: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        texts[u.accent].add(u.text_id)
    accents = sorted(texts)
    shared = set.intersection(*(texts[a] for a in accents)) if accents else set()
    own = {a: len(texts[a] - set().union(*(texts[b] for b in accents if b != a))) for a in accents}
    return TextSharing(
        n_texts=len(set().union(*texts.values())),
        shared=len(shared),
        texts_per_accent={a: len(texts[a]) for a in accents},
        own_texts=own,
        min_shared=min_shared,
    )


# ----------------------------------------------------------------------------- recording conditions


@dataclass(frozen=True)
class AccentRecording:
    """One accent's recording conditions: file counts per value of each categorical statistic
    (formatted, e.g. '48 kHz'), and the median over its speakers of each continuous one."""

    accent: str
    n_speakers: int
    n_files: int
    values: Mapping[str, Mapping[str, int]]
    medians: Mapping[str, float]

    def describe(self, name: str) -> str:
        """This accent's value of a statistic, as a person reads it ('48 kHz', '16 kHz (90%) / 8 kHz')."""
        if name in self.medians:
            return format_statistic(name, self.medians[name])
        counts = self.values[name]
        if len(counts) == 1:
            return next(iter(counts))
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        return " / ".join(f"{v} ({n / total:.0%})" for v, n in ranked)


@dataclass(frozen=True)
class RecordingProbe:
    """The speaker-disjoint accent probe fitted on recording statistics alone (`probes.confounds`)."""

    accent_f1: float
    p_value: float
    permutations: int
    n_utterances: int
    n_speakers: int
    alpha: float

    @property
    def significant(self) -> bool:
        return bool(self.p_value < self.alpha)

    @property
    def summary(self) -> str:
        """The verdict in one phrase, for the console and the report."""
        verdict = "significant: recording confound" if self.significant else "not significant"
        return (f"accent F1 {self.accent_f1:.2f} from recording statistics alone, p = {self.p_value:.3g} "
                f"({self.permutations} speaker-level permutations, {self.n_utterances} utterances of "
                f"{self.n_speakers} speakers, alpha {self.alpha:g}): {verdict}")


@dataclass(frozen=True)
class RecordingConfound:
    """Recording conditions per accent, how well each statistic separates the accents (adjusted R² of
    accent over speaker means: 0 = no more than chance, 1 = accents fully apart), the categorical
    statistics under which some accent has values no other accent has (`isolated`: accent names),
    and the probe's verdict once run."""

    per_accent: tuple[AccentRecording, ...]
    separation: Mapping[str, float]
    isolated: Mapping[str, tuple[str, ...]]
    probe: Optional[RecordingProbe] = None
    probe_note: Optional[str] = None
    """Why the probe did not run (too few texts or speakers...); None when it ran or has not yet."""

    @property
    def confounded(self) -> bool:
        return bool(self.isolated) or (self.probe is not None and self.probe.significant)

    @property
    def leading(self) -> list[str]:
        """The statistics that separate the accents most: isolating ones first, then by separation."""
        ranked = sorted(self.separation, key=lambda s: (s not in self.isolated, -self.separation[s]))
        named = [s for s in ranked if s in self.isolated or self.separation[s] >= LEADING_SEPARATION]
        return (named or ranked[:1])[:MAX_NAMED]

    def per_accent_text(self, name: str) -> str:
        values = [(a.accent, a.describe(name)) for a in self.per_accent]
        if name == "sample_rate":
            (first, v0), *rest = values
            return f"accent {first} was recorded at {v0}" + "".join(f", {a} at {v}" for a, v in rest)
        return f"{LABELS[name]} " + ", ".join(f"{a} {v}" for a, v in values)

    @property
    def warning(self) -> Optional[str]:
        if not self.confounded:
            return None
        leading = self.leading
        named = _join([LABELS[s] for s in leading])
        details = "; ".join(self.per_accent_text(s) for s in leading)
        p = self.probe
        if p is not None and p.significant:
            head = (f"accent is predictable from recording conditions alone: F1 {p.accent_f1:.2f} "
                    f"(p = {p.p_value:.3g} < {p.alpha:g}, speaker-level permutation test) from {named}")
        else:
            isolating = [s for s in leading if s in self.isolated]
            accents = sorted({a for s in isolating for a in self.isolated[s]})
            verb = "tells" if len(isolating) == 1 else "tell"
            if len(accents) == len(self.per_accent):
                head = f"{_join([LABELS[s] for s in isolating])} alone {verb} the accents apart"
            else:
                head = (f"{_join([LABELS[s] for s in isolating])} alone set{'s' * (len(isolating) == 1)} accent"
                        f"{'s' * (len(accents) > 1)} {_join(accents)} apart from the others")
            if p is not None:
                head += f" (the probe on all statistics: F1 {p.accent_f1:.2f}, p = {p.p_value:.3g}, not significant with these speakers)"
        return f"RECORDING CONFOUND: {head}; {details}"

    @property
    def caveat(self) -> Optional[str]:
        if not self.confounded:
            return None
        p = self.probe
        numbers = f" (F1 {p.accent_f1:.2f}, p = {p.p_value:.3g})" if p is not None else ""
        return f"accent is predictable from recording conditions{numbers}: {_join([LABELS[s] for s in self.leading])}"


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _separation(values: np.ndarray, groups: np.ndarray) -> float:
    """Adjusted R² of the accent (one-way ANOVA over speaker means, epsilon²), floored at 0: the share
    of between-speaker variance the accents explain, corrected for what chance gives few speakers."""
    n, k = len(values), len(np.unique(groups))
    total = float(((values - values.mean()) ** 2).sum())
    if n <= k or total <= 1e-12 * max(1.0, float(np.abs(values).max())) ** 2:
        return 0.0
    within = sum(float(((values[groups == g] - values[groups == g].mean()) ** 2).sum()) for g in np.unique(groups))
    return max(0.0, 1.0 - (within / (n - k)) / (total / (n - 1)))


def assess_recording(utterances: UtteranceSet, recordings: Mapping[str, RecordingStats]) -> RecordingConfound:
    """Per-accent conditions and per-statistic separation, from the stats of every utterance's file."""
    stats = [recordings[u.id] for u in utterances]
    accents = np.array([u.accent for u in utterances])
    speakers = np.array([u.speaker for u in utterances])
    names, X = recording_matrix(stats)
    speaker_ids, inverse = np.unique(speakers, return_inverse=True)
    speaker_means = np.stack([X[inverse == i].mean(0) for i in range(len(speaker_ids))])
    speaker_accent = np.array([accents[inverse == i][0] for i in range(len(speaker_ids))])
    separation: dict[str, float] = {}
    for j, name in enumerate(names):
        key = name.split("=", 1)[0]  # codec indicators count as one statistic
        separation[key] = max(separation.get(key, 0.0), _separation(speaker_means[:, j], speaker_accent))
    separation.setdefault("codec", 0.0)

    per_accent = []
    value_sets: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for accent in sorted(set(accents)):
        rows = np.flatnonzero(accents == accent)
        mine = speaker_accent == accent
        values = {}
        for name in STATISTICS:
            if name in CATEGORICAL:
                counts = Counter(format_statistic(name, statistic(stats[i], name)) for i in rows)
                values[name] = dict(sorted(counts.items()))
                value_sets[name][accent] = set(counts)
        medians = {
            name: float(np.median(speaker_means[mine, names.index(name)]))
            for name in STATISTICS
            if name not in CATEGORICAL
        }
        per_accent.append(AccentRecording(str(accent), int(mine.sum()), len(rows), values, medians))

    isolated = {}
    for name, sets in value_sets.items():
        alone = tuple(str(a) for a, vs in sets.items() if all(not (vs & other) for b, other in sets.items() if b != a))
        if len(sets) > 1 and alone:
            isolated[name] = alone
    return RecordingConfound(per_accent=tuple(per_accent), separation=separation, isolated=isolated)


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ConfoundReport:
    """Every confound check of one dataset; `recording` is None for a features-only dataset."""

    texts: TextSharing
    recording: Optional[RecordingConfound] = None
    mode: str = "warn"
    """dataset.confounds: 'warn' or 'error'."""

    @property
    def warnings(self) -> list[str]:
        found = [self.texts.warning, self.recording.warning if self.recording else None]
        return [w for w in found if w]

    @property
    def caveats(self) -> list[str]:
        """Short reasons for the report's "not a scientific result" banner."""
        found = [
            f"the accents share only {self.texts.shared} of {self.texts.n_texts} texts" if self.texts.confounded else None,
            self.recording.caveat if self.recording else None,
        ]
        return [c for c in found if c]

    def with_probe(self, probe: Optional[RecordingProbe], note: Optional[str] = None) -> "ConfoundReport":
        if self.recording is None:
            return self
        return dataclasses.replace(self, recording=dataclasses.replace(self.recording, probe=probe, probe_note=note))


def assess_confounds(
    utterances: UtteranceSet, recordings: Mapping[str, RecordingStats], config: DatasetConfig
) -> ConfoundReport:
    """The checks that need no model: text sharing, and recording conditions when audio was measured."""
    return ConfoundReport(
        texts=text_sharing(utterances, config.min_shared_texts),
        recording=assess_recording(utterances, recordings) if recordings else None,
        mode=config.confounds,
    )


def raise_if_confounded(report: ConfoundReport) -> None:
    """With `dataset.confounds: error`, any confound is an error (exit 2) listing every one."""
    if report.mode == "error" and report.warnings:
        first, *rest = report.warnings
        lines = [f"{first} (dataset.confounds=error)"] + [f"  {w}" for w in rest]
        raise ConfoundError("\n".join(lines))
