"""Speaker-grouped, accent-stratified folds and the crossed speaker × text folds (DESIGN §4).

Splitters follow scikit-learn's BaseCrossValidator: `split(X, y, groups)` yields (train, test) index
arrays; subclasses implement `_iter_test_indices`. Here y = accent and groups = speaker (or text).
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import numpy as np
from sklearn.model_selection import BaseCrossValidator, StratifiedGroupKFold
from sklearn.utils import check_random_state

from stage1_5.errors import ProbeError


def speakers_by_accent(y, groups) -> dict:
    """accent → sorted unique speakers; a speaker under two accents is an error."""
    y, groups = np.asarray(y), np.asarray(groups)
    out: dict = {}
    owner: dict = {}
    for acc, spk in zip(y, groups):
        if owner.setdefault(spk, acc) != acc:
            raise ProbeError(f"speaker {spk!r} is listed under two accents ({owner[spk]!r} and {acc!r})")
        out.setdefault(acc, set()).add(spk)
    return {a: sorted(s) for a, s in sorted(out.items())}


class SpeakerPerAccentFold(BaseCrossValidator):
    """Each fold holds out (at least) one speaker of every accent.

    n_splits=None gives min(speakers per accent) folds, so the smallest accent loses exactly one
    speaker per fold; the speakers of larger accents are spread round-robin over the folds. An int
    n_splits (≤ that minimum) gives fewer, larger folds. Speakers are shuffled within accent with
    `random_state`, so different seeds give different speaker-to-fold assignments.
    """

    def __init__(self, n_splits: Optional[int] = None, *, random_state=None):
        self.n_splits = n_splits
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        if y is None or groups is None:
            if self.n_splits is None:
                raise ValueError("n_splits=None needs y and groups to count speakers per accent")
            return self.n_splits
        smallest = min(len(s) for s in speakers_by_accent(y, groups).values())
        if self.n_splits is None:
            return smallest
        if self.n_splits > smallest:
            raise ProbeError(f"{self.n_splits} speaker folds need ≥ {self.n_splits} speakers in every accent (smallest has {smallest})")
        return self.n_splits

    def fold_of_speaker(self, y, groups) -> dict:
        """speaker → fold index (the assignment `split` uses)."""
        k = self.get_n_splits(None, y, groups)
        if k < 2:
            raise ProbeError("speaker folds need at least 2 speakers in every accent")
        rng = check_random_state(self.random_state)
        offset = 0
        fold = {}
        for spks in speakers_by_accent(y, groups).values():
            for j, spk in enumerate(rng.permutation(np.asarray(spks, dtype=object))):
                fold[spk] = (offset + j) % k
            offset += len(spks)  # spread the remainders of different accents over different folds
        return fold

    def _iter_test_indices(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        groups = np.asarray(groups)
        fold = self.fold_of_speaker(y, groups)
        row_fold = np.array([fold[g] for g in groups])
        for k in range(self.get_n_splits(None, y, groups)):
            yield np.flatnonzero(row_fold == k)


class RankPairedFold(SpeakerPerAccentFold):
    """SpeakerPerAccentFold with a deterministic pairing of held-out speakers (the protocol's outer CV).

    Within every accent the speakers are sorted by ID; fold j of rotation r holds out, from the a-th
    accent, the speaker of rank (j + r·a) mod k (larger accents continue round-robin over the folds).
    Rotation 0 therefore holds out the equally ranked speakers of every accent together (spkNE01 with
    spkSE01, ...), and each further rotation shifts the pairing by one rank per accent. Random pairing
    tilts a fold against a voice shared across accents (a donor, a device); deterministic pairing makes
    the folds reproducible from the speaker IDs alone. Declare such a factor with metadata.csv's
    `group` column to keep it out of training altogether (NuisanceGroupFold).
    """

    def __init__(self, n_splits: Optional[int] = None, *, rotation: int = 0):
        super().__init__(n_splits)
        self.rotation = rotation

    def fold_of_speaker(self, y, groups) -> dict:
        k = self.get_n_splits(None, y, groups)
        if k < 2:
            raise ProbeError("speaker folds need at least 2 speakers in every accent")
        fold = {}
        for a, spks in enumerate(speakers_by_accent(y, groups).values()):
            for j, spk in enumerate(spks):
                fold[spk] = (j + self.rotation * a) % k
        return fold


class NuisanceGroupFold(BaseCrossValidator):
    """Folds that hold out whole nuisance groups (metadata.csv's `group`: voice donor, device, session).

    groups are per-row (speaker, nuisance group) pairs given as two arrays through `split(X, y,
    groups=(speaker, nuisance))`. The sorted nuisance groups are dealt round-robin to min(n_splits,
    #groups) folds, starting at `rotation`, so a group's speakers are never split between training and
    test. A fold whose training set would lose an accent is an error naming the group.
    """

    def __init__(self, n_splits: int, *, rotation: int = 0):
        self.n_splits = n_splits
        self.rotation = rotation

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        if groups is None:
            return self.n_splits
        return min(self.n_splits, len(np.unique(np.asarray(groups[1]))))

    def split(self, X=None, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(np.asarray(y))
        for test in self._iter_test_indices(X, y, groups):
            yield np.setdiff1d(np.arange(n), test), test

    def _iter_test_indices(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        _speaker, nuisance = (np.asarray(g) for g in groups)
        y = np.asarray(y)
        names = np.unique(nuisance)
        k = self.get_n_splits(None, y, groups)
        if k < 2:
            raise ProbeError(f"group folds need at least 2 distinct groups, got {list(names)}")
        fold_of = {g: (i + self.rotation) % k for i, g in enumerate(names)}
        row_fold = np.array([fold_of[g] for g in nuisance])
        for f in range(k):
            test = np.flatnonzero(row_fold == f)
            if len(np.unique(y[row_fold != f])) < len(np.unique(y)):
                held = sorted({str(g) for g in nuisance[test]})
                raise ProbeError(f"holding out group(s) {held} leaves an accent without training speakers; regroup or drop the group column")
            yield test


class TextFold(BaseCrossValidator):
    """Splits the distinct texts (groups = text_id) into n_splits shuffled groups of near-equal size."""

    def __init__(self, n_splits: int = 2, *, random_state=None):
        self.n_splits = n_splits
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None) -> Iterator[np.ndarray]:
        groups = np.asarray(groups)
        texts = np.unique(groups)
        if len(texts) < self.n_splits:
            raise ProbeError(f"text folds: {self.n_splits} folds need ≥ {self.n_splits} distinct text_id values, got {len(texts)}")
        rng = check_random_state(self.random_state)
        fold_of = {t: i % self.n_splits for i, t in enumerate(rng.permutation(texts))}
        row_fold = np.array([fold_of[t] for t in groups])
        for k in range(self.n_splits):
            yield np.flatnonzero(row_fold == k)


def outer_splitter(outer_folds: Union[str, int], random_state) -> BaseCrossValidator:
    """The outer speaker CV of the config: 'speaker_per_accent' or k StratifiedGroupKFold folds."""
    if outer_folds == "speaker_per_accent":
        return SpeakerPerAccentFold(random_state=random_state)
    return StratifiedGroupKFold(n_splits=int(outer_folds), shuffle=True, random_state=random_state)


def crossed_splits(speaker_splits, text_splits) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Crossed speaker × text folds over the same rows.

    Yields (speaker_fold, text_fold, train, test_seen, test_unseen): train = training speakers ×
    training texts; test_seen = held-out speakers × training texts; test_unseen = held-out speakers ×
    held-out texts. No held-out speaker is ever in train, nor (for test_unseen) any held-out text.
    """
    text_splits = list(text_splits)
    for f, (sp_train, sp_test) in enumerate(speaker_splits):
        for g, (tx_train, tx_test) in enumerate(text_splits):
            yield (
                f,
                g,
                np.intersect1d(sp_train, tx_train),
                np.intersect1d(sp_test, tx_train),
                np.intersect1d(sp_test, tx_test),
            )
