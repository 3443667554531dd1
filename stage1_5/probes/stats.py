"""Speaker-level statistics: cluster bootstrap over speakers, speaker-level label permutations, p-values.

Speakers are nested in accents, so every resampling unit here is a speaker, never an utterance.
"""

from __future__ import annotations

import numpy as np
import torch

from stage1_5.probes.metrics import macro_f1_from_confusion


def cluster_bootstrap_ci(
    speaker_confusion: torch.Tensor,
    speaker_accent: np.ndarray,
    n_boot: int,
    rng: np.random.Generator,
    *,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile CI of the mean-over-seeds macro-F1, resampling speakers within accent.

    speaker_confusion [seeds, n_speakers, K, K]: each speaker's out-of-fold confusion counts per seed.
    Each resample draws, within every accent, as many speakers as it has, with replacement, and sums
    their counts; the statistic is the macro-F1 averaged over seeds, as the point estimate is.
    (nan, nan) when n_boot is 0.
    """
    if n_boot <= 0:
        return float("nan"), float("nan")
    speaker_accent = np.asarray(speaker_accent)
    draws = np.zeros((n_boot, len(speaker_accent)))
    for acc in np.unique(speaker_accent):
        members = np.flatnonzero(speaker_accent == acc)
        picks = rng.integers(0, len(members), size=(n_boot, len(members)))
        np.add.at(draws, (np.arange(n_boot)[:, None], members[picks]), 1.0)
    w = torch.as_tensor(draws, dtype=speaker_confusion.dtype)
    conf = torch.einsum("bs,tskl->btkl", w, speaker_confusion)
    stat = macro_f1_from_confusion(conf).mean(1).numpy()
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stat, [tail, 100 - tail])
    return float(low), float(high)


def within_fold_permutations(
    speaker_accent: np.ndarray, speaker_fold: np.ndarray, n_perm: int, rng: np.random.Generator
) -> np.ndarray:
    """Speaker-level accent relabellings [n_perm, n_speakers] that keep each outer fold's accent counts.

    Labels are shuffled among the speakers held out together in one fold, so accent counts are kept
    overall, in every test fold and in every training set: each permuted CV is as stratified as the
    real one. With folds drawn uniformly among stratified assignments this is an exact test of
    "accent labels are exchangeable across speakers", and unlike free shuffling under fixed folds it
    never starves a training set of a class (which would lower the null F1 and make p too small).
    """
    speaker_accent, speaker_fold = np.asarray(speaker_accent), np.asarray(speaker_fold)
    out = np.empty((n_perm, len(speaker_accent)), dtype=speaker_accent.dtype)
    for b in range(n_perm):
        perm = speaker_accent.copy()
        for k in np.unique(speaker_fold):
            members = np.flatnonzero(speaker_fold == k)
            perm[members] = speaker_accent[rng.permutation(members)]
        out[b] = perm
    return out


def permutation_p_values(observed: np.ndarray, null: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p = (1 + #{null ≥ observed}) / (1 + B) per representation, and the family-wise version from the
    max-over-representations null (the same permutation is used for every representation per round).

    observed [R], null [R, B]. With B = 0 both are NaN.
    """
    observed, null = np.asarray(observed, dtype=float), np.asarray(null, dtype=float)
    B = null.shape[1]
    if B == 0:
        nan = np.full(observed.shape, np.nan)
        return nan, nan.copy()
    p = (1 + (null >= observed[:, None] - 1e-12).sum(1)) / (1 + B)
    max_null = null.max(0)
    p_fwer = (1 + (max_null[None, :] >= observed[:, None] - 1e-12).sum(1)) / (1 + B)
    return p, p_fwer
