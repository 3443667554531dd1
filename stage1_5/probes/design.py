"""The probing design: every split, permutation and bootstrap draw of the protocol, from the metadata
alone (no features), so that all representations are tested on exactly the same resamplings.

Random streams are named (`Stream`), never magic numbers: each draws from
SeedSequence([probes.seed, stream, *indices]).

- Outer folds (`FoldDesign`, chosen by `fold_design`): with a `group` column, whole nuisance groups are
  held out together (`NuisanceGroupFold`); otherwise `speaker_per_accent` pairs held-out speakers
  deterministically by rank (`RankPairedFold`, rotation = fold seed) up to `probes.speaker_fold_limit`
  speakers in the smallest accent, and beyond it uses `probes.large_design_folds` grouped folds
  (`SpeakerPerAccentFold`: speakers shuffled within accent per fold seed and dealt round-robin, so
  speakers are never split and every fold holds out the same share of every accent); an int k uses
  StratifiedGroupKFold. A fixed fold count keeps the probe stage linear in the corpus: with one
  speaker per accent per fold, the number of folds, each refitting on almost all rows, grows with it.
- The speaker-ID context probe (one class per speaker) runs on at most `probes.speaker_id_max_speakers`
  speakers (`SpeakerIdPlan`: a fixed subsample spread evenly over the accents).
- Permutations relabel speakers within seed 0's outer folds (`stats.within_fold_permutations`).
- Bootstrap draws resample speakers within accent (with replacement); each draw is a vector of
  speaker multiplicities that the protocol turns into row weights of refitted probes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Optional

import numpy as np
import pandas as pd

from stage1_5.config import ProbeConfig
from stage1_5.errors import ProbeError
from stage1_5.probes.splits import (
    NuisanceGroupFold,
    RankPairedFold,
    SpeakerPerAccentFold,
    TextFold,
    crossed_splits,
    speakers_by_accent,
)
from stage1_5.probes.stats import speaker_resamples, within_fold_permutations

META_COLUMNS = ("utt_id", "speaker", "accent", "text_id")


class Stream(IntEnum):
    """Names of the protocol's random streams (the first SeedSequence tag after probes.seed)."""

    OUTER_FOLDS = 1
    INNER_FOLDS = 2
    TEXT_FOLDS = 3
    LEAK_INNER = 4
    SPEAKER_INNER = 5
    PERMUTATIONS = 6
    LEAK_CHANCE = 7
    BOOTSTRAP = 8
    SPEAKER_ID_SAMPLE = 9
    JACKKNIFE = 10


def stream_rng(config: ProbeConfig, stream: Stream, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, int(stream), *index]))


def stream_seed(config: ProbeConfig, stream: Stream, *index: int) -> int:
    return int(np.random.SeedSequence([config.seed, int(stream), *index]).generate_state(1)[0])


@dataclass(frozen=True)
class Inner:
    """A fit set whose C is chosen by an inner CV: rows + inner splits (indices into rows)."""

    rows: np.ndarray
    splits: tuple  # ((train, test), ...) relative to rows; empty → no inner CV possible


@dataclass(frozen=True)
class FoldDesign:
    """The outer CV a design gets, read by the protocol, preflight, the run log and the report.

    kind: "speaker_per_accent" (one speaker of every accent held out per fold), "grouped" (k folds of
    whole speakers, the same share of every accent: a large design, or an int probes.outer_folds) or
    "groups" (whole metadata groups held out); folds: the fold count; smallest_accent_speakers: the
    speakers of the smallest accent; limit: probes.speaker_fold_limit."""

    kind: Literal["speaker_per_accent", "grouped", "groups"]
    folds: int
    smallest_accent_speakers: int
    limit: int
    configured: str  # probes.outer_folds as written

    @property
    def large(self) -> bool:
        """speaker_per_accent was asked for, and the design is beyond the limit."""
        return self.configured == "speaker_per_accent" and self.kind == "grouped"

    def describe(self) -> str:
        if self.kind == "groups":
            return f"{self.folds} outer folds holding out whole metadata groups"
        if self.kind == "speaker_per_accent":
            return f"{self.folds} outer folds holding out one speaker of every accent (speaker_per_accent)"
        why = (
            f"speaker_per_accent beyond {self.limit} speakers in the smallest accent ({self.smallest_accent_speakers}): "
            "probes.large_design_folds"
            if self.large
            else "probes.outer_folds"
        )
        return f"{self.folds} grouped outer folds, speakers never split, accents balanced ({why})"


def fold_design(y: np.ndarray, spk: np.ndarray, config: ProbeConfig, *, grouped_by: Optional[np.ndarray] = None) -> FoldDesign:
    """The outer CV of a design from its accent and speaker labels per row (and its metadata groups)."""
    smallest = min(len(s) for s in speakers_by_accent(y, spk).values())
    common = dict(smallest_accent_speakers=smallest, limit=config.speaker_fold_limit, configured=str(config.outer_folds))
    if grouped_by is not None:
        k = config.outer_folds if isinstance(config.outer_folds, int) else len(np.unique(grouped_by))
        return FoldDesign(kind="groups", folds=min(k, len(np.unique(grouped_by))), **common)
    if config.outer_folds != "speaker_per_accent":
        return FoldDesign(kind="grouped", folds=int(config.outer_folds), **common)
    if smallest > config.speaker_fold_limit:
        return FoldDesign(kind="grouped", folds=config.large_design_folds, **common)
    return FoldDesign(kind="speaker_per_accent", folds=smallest, **common)


@dataclass(frozen=True)
class SpeakerIdPlan:
    """The speakers the speaker-ID context probe is fitted on: rows [n] of those speakers, labels [N]
    (their class, −1 on other rows), n_classes probed out of total_speakers."""

    rows: np.ndarray
    labels: np.ndarray
    n_classes: int
    total_speakers: int

    @property
    def capped(self) -> bool:
        return self.n_classes < self.total_speakers

    def describe(self) -> str:
        if not self.capped:
            return f"speaker-ID context probe on all {self.total_speakers} speakers"
        return (
            f"speaker-ID context probe on a fixed subsample of {self.n_classes} of {self.total_speakers} speakers, "
            "spread evenly over the accents (probes.speaker_id_max_speakers)"
        )


def speaker_id_plan(speaker_accent: np.ndarray, spk: np.ndarray, config: ProbeConfig) -> SpeakerIdPlan:
    """All speakers up to probes.speaker_id_max_speakers; beyond, that many drawn within accent (as evenly
    as the accents allow) from the SPEAKER_ID_SAMPLE stream."""
    S = len(speaker_accent)
    keep = np.arange(S)
    if S > config.speaker_id_max_speakers:
        rng = stream_rng(config, Stream.SPEAKER_ID_SAMPLE)
        order = [rng.permutation(np.flatnonzero(speaker_accent == a)) for a in np.unique(speaker_accent)]
        dealt = [members[j] for j in range(max(map(len, order))) for members in order if j < len(members)]  # round-robin over accents
        keep = np.sort(np.asarray(dealt[: config.speaker_id_max_speakers]))
    label_of = np.full(S, -1, dtype=np.int64)
    label_of[keep] = np.arange(len(keep))
    labels = label_of[spk]
    return SpeakerIdPlan(rows=np.flatnonzero(labels >= 0), labels=labels, n_classes=len(keep), total_speakers=S)


@dataclass
class Design:
    utt_ids: np.ndarray
    accents: list[str]
    speakers: list[str]
    y: np.ndarray  # [N] accent codes
    spk: np.ndarray  # [N] speaker codes
    text: np.ndarray  # [N] text codes
    nuisance: Optional[np.ndarray]  # [N] group codes, None without a group column
    speaker_accent: np.ndarray  # [S]
    outer: list[list[tuple[np.ndarray, np.ndarray]]]  # [seed][fold] (train, test)
    outer_inner: list[list[Inner]]
    crossed: list[list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]]
    text_folds: list[list[tuple[np.ndarray, np.ndarray]]]  # [seed][g]
    leak_inner: list[list[Inner]]  # [seed][g], speaker-grouped on training texts
    spk_inner: list[list[Inner]]  # [seed][g], text-grouped on training texts of speaker_id's speakers
    folds: FoldDesign
    speaker_id: SpeakerIdPlan
    perm_labels: np.ndarray  # [B, N] permuted accent codes (seed-0 folds)
    boot_speaker_weights: np.ndarray  # [R, S] speaker multiplicities of the bootstrap draws
    jackknife_units: np.ndarray  # [S] the jackknife unit (deleted together) of every speaker: `jackknife_units`
    distinct_labellings: int  # speaker relabellings the within-fold permutation can produce
    notes: list[str]

    @property
    def boot_row_weights(self) -> np.ndarray:
        """[R, N] row multiplicities of the bootstrap draws."""
        return self.boot_speaker_weights[:, self.spk]

    @property
    def jackknife_row_weights(self) -> np.ndarray:
        """[U, N] row weights of the jackknife: replicate u drops the rows of unit u's speakers."""
        units = self.jackknife_units[self.spk]
        return (units[None, :] != np.arange(units.max() + 1)[:, None]).astype(np.float64)

    @property
    def jackknife_strata(self) -> np.ndarray:
        """[U] the accent of every jackknife unit (the jackknife's strata)."""
        strata = np.empty(self.jackknife_units.max() + 1, dtype=np.int64)
        strata[self.jackknife_units] = self.speaker_accent
        return strata

    @property
    def smallest_reachable_p(self) -> float:
        """The smallest permutation p the design can give: 1/(1+B), and never below 1/#labellings."""
        B = len(self.perm_labels)
        if B == 0:
            return float("nan")
        return max(1.0 / (1 + B), 1.0 / self.distinct_labellings)


def check_meta(meta: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ProbeError(f"metadata is missing column(s) {missing}; need {list(META_COLUMNS)}")
    meta = meta.reset_index(drop=True)
    for col in META_COLUMNS:
        bad = meta[col].isna() | (meta[col].astype(str).str.strip() == "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ProbeError(f"metadata row {row} (utt_id {meta['utt_id'].iloc[row]!r}): empty {col}")
    dup = meta["utt_id"].astype(str).duplicated()
    if dup.any():
        raise ProbeError(f"metadata: duplicate utt_id {meta['utt_id'].astype(str)[dup].iloc[0]!r}")
    return meta.astype({c: str for c in META_COLUMNS})


def nuisance_groups(meta: pd.DataFrame) -> Optional[np.ndarray]:
    """The `group` column as strings, or None when absent or empty everywhere; a partly empty column or a
    speaker in two groups is an error naming the row."""
    if "group" not in meta.columns:
        return None
    g = meta["group"]
    empty = g.isna() | (g.astype(str).str.strip() == "")
    if empty.all():
        return None
    if empty.any():
        row = int(np.flatnonzero(empty.to_numpy())[0])
        raise ProbeError(f"metadata row {row} (utt_id {meta['utt_id'].iloc[row]!r}): empty group while other rows have one")
    g = g.astype(str).to_numpy()
    per_speaker = pd.Series(g).groupby(meta["speaker"].to_numpy()).nunique()
    if (per_speaker > 1).any():
        raise ProbeError(f"speaker {per_speaker[per_speaker > 1].index[0]!r} is listed under two groups")
    return g


def count_within_fold_labellings(speaker_accent: np.ndarray, speaker_fold: np.ndarray) -> int:
    """Distinct speaker→accent labellings that keep each fold's accent counts: Π_folds multinomial."""
    total = 1
    for f in np.unique(speaker_fold):
        counts = np.bincount(speaker_accent[speaker_fold == f])
        total *= math.factorial(int(counts.sum())) // math.prod(math.factorial(int(c)) for c in counts)
    return total


def _inner_by_speaker(rows, y, spk, nuisance, inner_folds: int, rotation: int) -> Inner:
    per_accent = speakers_by_accent(y[rows], spk[rows])
    if len(per_accent) < len(np.unique(y)):
        return Inner(rows, ())
    if nuisance is not None:
        splitter = NuisanceGroupFold(inner_folds, rotation=rotation)
        try:
            return Inner(rows, tuple(splitter.split(None, y[rows], (spk[rows], nuisance[rows]))))
        except ProbeError:
            return Inner(rows, ())
    k = min(inner_folds, min(len(s) for s in per_accent.values()))
    if k < 2:
        return Inner(rows, ())
    splitter = SpeakerPerAccentFold(k, random_state=rotation)
    return Inner(rows, tuple(splitter.split(np.zeros((len(rows), 1)), y[rows], spk[rows])))


def _inner_by_text(rows, text, inner_folds: int, random_state) -> Inner:
    k = min(inner_folds, len(np.unique(text[rows])))
    if k < 2:
        return Inner(rows, ())
    splitter = TextFold(k, random_state=random_state)
    return Inner(rows, tuple(splitter.split(np.zeros((len(rows), 1)), None, text[rows])))


def jackknife_units(speaker_accent: np.ndarray, config: ProbeConfig) -> np.ndarray:
    """[S] jackknife unit of every speaker, numbered 0..U−1 accent by accent. One speaker per unit
    (delete-one-speaker) while an accent has at most G = max(JACKKNIFE_MIN_UNITS, ⌊probes.bootstrap /
    (seeds · K)⌋) speakers; a larger accent's speakers are dealt at random into G near-equal groups,
    deleted together (the delete-a-group jackknife: the same variance formula over groups). So the
    jackknife refits about as many problems per fold as the bootstrap refits of one seed, and its cost
    stops growing with the corpus."""
    accents = np.unique(speaker_accent)
    groups = max(JACKKNIFE_MIN_UNITS, config.bootstrap // (config.seeds * len(accents)))
    rng = stream_rng(config, Stream.JACKKNIFE)
    units, start = np.empty(len(speaker_accent), dtype=np.int64), 0
    for accent in accents:
        members = np.flatnonzero(speaker_accent == accent)
        g = min(len(members), groups)
        units[members] = start + rng.permutation(len(members)) % g
        start += g
    return units


JACKKNIFE_MIN_UNITS = 8
"""Jackknife units per accent never drop below this: the guide's design (8 speakers per accent) stays
delete-one-speaker, the design the interval was calibrated on (docs/statistics.md), whatever
probes.bootstrap and probes.seeds are; fewer units would leave the SE few degrees of freedom."""


def _outer_folds(config: ProbeConfig, folds: FoldDesign, seed_index: int, y, spk, nuisance) -> list[tuple[np.ndarray, np.ndarray]]:
    X0 = np.zeros((len(y), 1))
    if nuisance is not None:
        k = config.outer_folds if isinstance(config.outer_folds, int) else len(np.unique(nuisance))
        splits = NuisanceGroupFold(k, rotation=seed_index).split(X0, y, (spk, nuisance))
    elif folds.kind == "speaker_per_accent":
        splits = RankPairedFold(rotation=seed_index).split(X0, y, spk)
    elif folds.large:
        splits = SpeakerPerAccentFold(folds.folds, random_state=stream_seed(config, Stream.OUTER_FOLDS, seed_index)).split(X0, y, spk)
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        splitter = StratifiedGroupKFold(n_splits=int(config.outer_folds), shuffle=True, random_state=stream_seed(config, Stream.OUTER_FOLDS, seed_index))
        splits = splitter.split(X0, y, spk)
    return [(np.sort(tr), np.sort(te)) for tr, te in splits]


def fallback_c(config: ProbeConfig) -> float:
    """The C used where an inner CV is impossible: the middle of the sorted grid."""
    grid = sorted(config.c_grid)
    return float(grid[len(grid) // 2])


def design_line(meta: pd.DataFrame, config: ProbeConfig) -> str:
    """The outer folds and the speaker-ID probe the probes will use on this metadata, in one line
    (preflight's plan; the same text as `DesignFacts.design_line` after the run)."""
    meta = check_meta(meta)
    _, y = np.unique(meta["accent"].to_numpy(), return_inverse=True)
    speakers, spk = np.unique(meta["speaker"].to_numpy(), return_inverse=True)
    speaker_accent = np.empty(len(speakers), dtype=np.int64)
    speaker_accent[spk] = y
    folds = fold_design(y, spk, config, grouped_by=nuisance_groups(meta))
    return f"{folds.describe()}; {speaker_id_plan(speaker_accent, spk, config).describe()}"


def build_design(meta: pd.DataFrame, config: ProbeConfig) -> Design:
    """Every split, permutation and bootstrap draw of the protocol, from the metadata alone."""
    meta = check_meta(meta)
    accents, y = np.unique(meta["accent"].to_numpy(), return_inverse=True)
    speakers, spk = np.unique(meta["speaker"].to_numpy(), return_inverse=True)
    _, text = np.unique(meta["text_id"].to_numpy(), return_inverse=True)
    nuisance = nuisance_groups(meta)
    if len(accents) < 2:
        raise ProbeError(f"probing needs at least 2 accents; the metadata has only {list(accents)}")
    per_accent = speakers_by_accent(meta["accent"].to_numpy(), meta["speaker"].to_numpy())
    small = {a: len(s) for a, s in per_accent.items() if len(s) < 2}
    if small:
        raise ProbeError(f"every accent needs at least 2 speakers for speaker-disjoint folds; too few in {small}")
    speaker_accent = np.empty(len(speakers), dtype=np.int64)
    speaker_accent[spk] = y
    if len(np.unique(text)) < config.text_folds:
        raise ProbeError(
            f"probes.text_folds={config.text_folds} needs at least that many distinct text_id values, got {len(np.unique(text))}"
        )
    notes: list[str] = []
    X0 = np.zeros((len(meta), 1))
    plan = fold_design(y, spk, config, grouped_by=nuisance)
    speaker_id = speaker_id_plan(speaker_accent, spk, config)
    outer, outer_inner, crossed, text_folds, leak_inner, spk_inner = [], [], [], [], [], []
    for s in range(config.seeds):
        folds = _outer_folds(config, plan, s, y, spk, nuisance)
        for f, (tr, _) in enumerate(folds):
            if len(np.unique(y[tr])) < len(accents):
                raise ProbeError(
                    f"probes.outer_folds={config.outer_folds}: fold {f} of seed {s} leaves an accent without "
                    "training speakers; use fewer folds or 'speaker_per_accent'"
                )
        outer.append(folds)
        outer_inner.append(
            [_inner_by_speaker(tr, y, spk, nuisance, config.inner_folds, stream_seed(config, Stream.INNER_FOLDS, s, f)) for f, (tr, _) in enumerate(folds)]
        )
        splitter = TextFold(config.text_folds, random_state=stream_seed(config, Stream.TEXT_FOLDS, s))
        tfolds = [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(X0, None, text)]
        text_folds.append(tfolds)
        crossed.append(list(crossed_splits(folds, tfolds)))
        leak_inner.append(
            [_inner_by_speaker(tr, y, spk, None, config.inner_folds, stream_seed(config, Stream.LEAK_INNER, s, g)) for g, (tr, _) in enumerate(tfolds)]
        )
        spk_inner.append(
            [
                _inner_by_text(np.intersect1d(tr, speaker_id.rows), text, config.inner_folds, stream_seed(config, Stream.SPEAKER_INNER, s, g))
                for g, (tr, _) in enumerate(tfolds)
            ]
        )
    if len(config.c_grid) > 1 and any(not inner.splits for inner in outer_inner[0]):
        notes.append(f"inner CV impossible (a training fold has < 2 speakers in some accent): C = {fallback_c(config)} is used there")
    if nuisance is not None:
        notes.append(f"outer folds hold out whole groups (metadata group column, {len(np.unique(nuisance))} groups)")
    speaker_fold = np.empty(len(speakers), dtype=np.int64)
    for f, (_, te) in enumerate(outer[0]):
        speaker_fold[spk[te]] = f
    perm_speaker = within_fold_permutations(speaker_accent, speaker_fold, config.permutations, stream_rng(config, Stream.PERMUTATIONS))
    return Design(
        utt_ids=meta["utt_id"].to_numpy(),
        accents=[str(a) for a in accents],
        speakers=[str(s) for s in speakers],
        y=y,
        spk=spk,
        text=text,
        nuisance=nuisance,
        speaker_accent=speaker_accent,
        outer=outer,
        outer_inner=outer_inner,
        crossed=crossed,
        text_folds=text_folds,
        leak_inner=leak_inner,
        spk_inner=spk_inner,
        folds=plan,
        speaker_id=speaker_id,
        perm_labels=perm_speaker[:, spk] if config.permutations else np.empty((0, len(meta)), dtype=np.int64),
        boot_speaker_weights=speaker_resamples(speaker_accent, config.bootstrap, stream_rng(config, Stream.BOOTSTRAP)),
        jackknife_units=jackknife_units(speaker_accent, config),
        distinct_labellings=count_within_fold_labellings(speaker_accent, speaker_fold),
        notes=notes,
    )
