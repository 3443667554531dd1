"""Speaker-level statistics: permutation p-values (own, family-wise max-T, below the null min-T), bootstrap
intervals and their fold-seed corrections.

Speakers are nested in accents, so every resampling unit here is a speaker, never an utterance.
"""

from __future__ import annotations

from typing import Optional

import numpy as np



def bootstrap_interval(
    point: float, draws: np.ndarray, *, level: float, method: str, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """Interval from bootstrap draws of a statistic (NaN draws ignored; (nan, nan) without draws).

    normal: point ± z·SD(draws), clipped to `bounds` — centred on the point estimate, which averages
    the fold seeds and so is less noisy than any one draw; percentile: the draws' quantiles.
    """
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < 2 or not np.isfinite(point):
        return float("nan"), float("nan")
    if method == "percentile":
        tail = 100 * (1 - level) / 2
        low, high = np.percentile(draws, [tail, 100 - tail])
    elif method == "normal":
        from scipy.stats import norm

        half = float(norm.ppf(0.5 + level / 2)) * float(draws.std(ddof=1))
        low, high = point - half, point + half
    else:
        raise ValueError(f"unknown interval method {method!r}")
    return float(np.clip(low, *bounds)), float(np.clip(high, *bounds))


def jackknife_se(replicates: np.ndarray, strata: np.ndarray) -> float:
    """Stratified delete-one jackknife standard error (JKn): sqrt(Σ_h (n_h − 1)/n_h · Σ_{i∈h} (θ_(i) − θ̄_h)²),
    θ_(i) the statistic recomputed without unit i (a speaker, or a group of speakers of one accent),
    h its stratum (its accent), θ̄_h the mean over the stratum. NaN when a replicate is not finite
    or no stratum has two units.

    Why it suits a cross-validated F1: every replicate reruns the CV on a real set of speakers (one
    fewer, none duplicated), so the probes' training variability enters at its real size, where a
    refit bootstrap trains on ~63 % distinct speakers and inflates it; and by the Efron–Stein
    inequality the jackknife variance is, in expectation, never below the statistic's variance (on
    n − 1 units), so what it errs by is width, not coverage."""
    replicates, strata = np.asarray(replicates, dtype=float), np.asarray(strata)
    if len(replicates) != len(strata) or not np.isfinite(replicates).all():
        return float("nan")
    var, usable = 0.0, False
    for h in np.unique(strata):
        x = replicates[strata == h]
        if len(x) >= 2:
            var += (len(x) - 1) / len(x) * float(((x - x.mean()) ** 2).sum())
            usable = True
    return float(np.sqrt(var)) if usable else float("nan")


def jackknife_interval(
    point: float, replicates: np.ndarray, strata: np.ndarray, *, level: float, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """point ± z·SE (`jackknife_se`), clipped to `bounds`; (nan, nan) without replicates. z, not a t
    quantile: the jackknife's upward bias on a refitted CV F1 already outweighs what t would add
    (coverage ≥ 95 % with z on every design of docs/statistics.md's calibration), and t would only
    widen it."""
    from scipy.stats import norm

    se = jackknife_se(replicates, strata)
    if not (np.isfinite(se) and np.isfinite(point)):
        return float("nan"), float("nan")
    half = float(norm.ppf(0.5 + level / 2)) * se
    return float(np.clip(point - half, *bounds)), float(np.clip(point + half, *bounds))


def speaker_resamples(speaker_accent: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Cluster-bootstrap weights [n_boot, S]: within every accent, as many speakers as it has, drawn
    with replacement (a speaker's weight is how often it was drawn)."""
    speaker_accent = np.asarray(speaker_accent)
    weights = np.zeros((n_boot, len(speaker_accent)))
    for accent in np.unique(speaker_accent):
        members = np.flatnonzero(speaker_accent == accent)
        picks = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        np.add.at(weights, (np.arange(n_boot)[:, None], picks), 1.0)
    return weights


def shuffled_within(labels: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`labels` with their rows shuffled within each group (groups in ascending order): the within-accent
    speaker shuffle whose identification accuracy is the leakage's chance."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    out = labels.copy()
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        out[rows] = labels[rng.permutation(rows)]
    return out


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


def settled_count(alpha: float, n_perm: int) -> int:
    """Besag–Clifford's h for a test at level alpha with at most n_perm permutations: once h permuted
    statistics reach the observed one, p ≥ alpha is settled whatever the remaining permutations give,
    and the sequential p h/L (L = permutations run by then) is ≥ alpha too, so every p < alpha
    decision equals the full run's."""
    return int(np.ceil(alpha * (n_perm + 1)))


def _p_from_exceedances(exceed: np.ndarray, h: Optional[int]) -> float:
    """exceed [L] bool in permutation order → Besag–Clifford p: h / (permutations up to the h-th
    exceedance) when h exceedances occur, else (1 + #exceedances) / (1 + L) (the fixed-count p,
    which it also is with h = None)."""
    count = np.cumsum(exceed)
    if h is not None and len(count) and count[-1] >= h:
        return h / (int(np.searchsorted(count, h)) + 1)
    return (1 + (count[-1] if len(count) else 0)) / (1 + len(exceed))


def permutation_p_values(observed: np.ndarray, null: np.ndarray, h: Optional[int] = None) -> np.ndarray:
    """Permutation p per representation; observed [R], null [R, B] with NaN after the permutations a
    representation did not run (sequential stop). p = (1 + #{null ≥ observed}) / (1 + L), or with h
    the Besag–Clifford p (`_p_from_exceedances`). NaN when no permutation ran or observed is NaN."""
    observed, null = np.asarray(observed, dtype=float), np.asarray(null, dtype=float)
    out = np.full(observed.shape, np.nan)
    for i, (obs, row) in enumerate(zip(observed, null)):
        row = row[np.isfinite(row)]
        if np.isfinite(obs) and len(row):
            out[i] = _p_from_exceedances(row >= obs - 1e-12, h)
    return out


def at_least_chance(f1: np.ndarray, chance: float) -> np.ndarray:
    """The statistic the upper-tail p-values test: F1 raised to chance (NaN kept). Any function of the
    data gives an exact permutation test; this one makes an F1 at or below chance never significant
    (every permuted value reaches chance, so its p is 1), where leave-speakers-out CV sits below chance
    under the null and a bare F1 could beat a null centred lower still."""
    return np.maximum(np.asarray(f1, dtype=float), chance)


def family_below_p_values(observed: np.ndarray, null: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Family-wise p of F1 *below* its permutation null (anti-learning), min-T: each member's observed F1
    against the permutation distribution of the family's *minimum*, p = (1 + #{min ≤ observed})/(1 + L).
    Against the permutation null rather than against 1/K: leave-speakers-out CV sits below chance under
    the null, so a binomial test against chance fires on nulls. A nuisance balanced across accents (a
    voice donor under every accent) tilts the real labelling, where every donor has one speaker per
    accent, more than the permuted ones, which is what this detects. NaN observed or no null → NaN.
    The family's minimum is the maximum of the negated values: `family_p_values` on −F1."""
    return family_p_values(-np.asarray(observed, dtype=float), -np.asarray(null, dtype=float), family)


def seed_mean_draws(draws: np.ndarray, seed_values: np.ndarray) -> np.ndarray:
    """Bootstrap draws of one fold seed's F1 [R] shrunk about their mean to the spread of the mean over
    the S fold seeds (the reported F1). One seed's F1 varies with the speakers (shared by every seed)
    and with the fold assignment (averaged over seeds); the seeds' own variance estimates the second,
    so Var(mean) ≈ Var(draws) − (1 − 1/S)·Var(seeds), floored at Var(draws)/S (independent seeds)."""
    draws, seed_values = np.asarray(draws, dtype=float), np.asarray(seed_values, dtype=float)
    S, finite = len(seed_values), draws[np.isfinite(draws)]
    if S < 2 or len(finite) < 2 or not finite.std() > 0:
        return draws
    var_draws = float(finite.var(ddof=1))
    var_mean = max(var_draws - (1 - 1 / S) * float(seed_values.var(ddof=1)), var_draws / S)
    centre = float(finite.mean())
    return centre + (draws - centre) * np.sqrt(var_mean / var_draws)


def seeds_unstable(seed_values: np.ndarray, one_seed_sd: float) -> bool:
    """Fold seeds disagree beyond what the speakers allow: their SD exceeds `one_seed_sd`, the
    standard error of one seed's F1 over the speakers (the SD of its refit bootstrap draws, which holds
    the speakers' and the folds' variability together, or its jackknife SE). False when it cannot be
    told (one seed, no standard error)."""
    seed_values = np.asarray(seed_values, dtype=float)
    if len(seed_values) < 2 or not np.isfinite(one_seed_sd):
        return False
    return bool(seed_values.std(ddof=1) > one_seed_sd)


def family_p_values(observed: np.ndarray, null: np.ndarray, family: np.ndarray, h: Optional[int] = None) -> np.ndarray:
    """Family-wise p (max-T, Westfall & Young): each representation's observed F1 against the
    permutation distribution of the family's *maximum* F1. Every representation is tested on the same
    permutations, so the max over a family's members per permutation is the null of "the best layer"
    (a family's members run the same permutations, also under a sequential stop). Members with NaN
    observed values (failed probes) take no part and get NaN. h: as in `permutation_p_values`."""
    observed, null, family = np.asarray(observed, dtype=float), np.asarray(null, dtype=float), np.asarray(family)
    out = np.full(observed.shape, np.nan)
    for name in np.unique(family):
        members = np.flatnonzero((family == name) & np.isfinite(observed))
        if not len(members):
            continue
        max_null = null[members].max(0)
        max_null = max_null[np.isfinite(max_null)]
        if not len(max_null):
            continue
        for i in members:
            out[i] = _p_from_exceedances(max_null >= observed[i] - 1e-12, h)
    return out
