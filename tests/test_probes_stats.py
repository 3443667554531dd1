"""Permutation p-values, family-wise max-T, below-the-null min-T p, intervals and their fold-seed correction and the design's reachable p."""

import numpy as np
import pandas as pd
import pytest

from stage1_5.config import ProbeConfig
from stage1_5.probes.design import build_design, count_within_fold_labellings, jackknife_units
from stage1_5.probes.stats import (
    at_least_chance,
    bootstrap_interval,
    family_below_p_values,
    family_p_values,
    jackknife_interval,
    jackknife_se,
    permutation_p_values,
    seed_mean_draws,
    seeds_unstable,
    settled_count,
    shuffled_within,
    speaker_resamples,
)


def test_own_p_counts_null_values_at_least_the_observed():
    observed = np.array([0.9, 0.5])
    null = np.array([[0.1, 0.95, 0.2, 0.3], [0.4, 0.6, 0.45, 0.55]])
    np.testing.assert_allclose(permutation_p_values(observed, null), [2 / 5, 3 / 5])
    assert np.isnan(permutation_p_values(observed, np.zeros((2, 0)))).all()


def test_family_p_tests_each_member_against_the_family_maximum():
    observed = np.array([0.9, 0.5, 0.5])
    null = np.array([[0.1, 0.95, 0.2, 0.3], [0.4, 0.6, 0.45, 0.55], [0.0, 0.0, 0.0, 0.0]])
    p = family_p_values(observed, null, np.array(["backbone", "backbone", "ssl"]))
    # backbone max null = [.4, .95, .45, .55]; ssl is its own family
    np.testing.assert_allclose(p, [2 / 5, 3 / 5, 1 / 5])
    assert (p >= permutation_p_values(observed, null)).all()


def test_family_p_ignores_failed_members():
    observed = np.array([0.9, np.nan])
    null = np.array([[0.1, 0.2, 0.3], [np.nan, np.nan, np.nan]])
    p = family_p_values(observed, null, np.array(["b", "b"]))
    assert p[0] == pytest.approx(1 / 4) and np.isnan(p[1])


def test_family_p_controls_the_family_wise_error_under_the_null():
    rng = np.random.default_rng(0)
    layers, B, reps = 12, 99, 400
    own_hits = fam_hits = 0
    for _ in range(reps):
        # exchangeable null: observed is one more draw of the same (correlated) per-layer statistic
        common = rng.normal(size=(1, B + 1))
        stat = 0.5 * common + rng.normal(size=(layers, B + 1))
        observed, null = stat[:, 0], stat[:, 1:]
        own_hits += permutation_p_values(observed, null).min() < 0.05
        fam_hits += family_p_values(observed, null, np.zeros(layers)).min() < 0.05
    assert fam_hits / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    assert own_hits / reps > 0.2  # the uncorrected minimum would give false GOs


def test_sequential_p_is_h_over_the_permutations_up_to_the_hth_exceedance():
    observed = np.array([0.5])
    null = np.array([[0.6, 0.1, 0.7, 0.2, 0.8, 0.3]])  # exceedances at permutations 1, 3, 5
    np.testing.assert_allclose(permutation_p_values(observed, null, h=2), [2 / 3])
    np.testing.assert_allclose(permutation_p_values(observed, null, h=4), [(1 + 3) / (1 + 6)])  # never 4: fixed-count p


def test_sequential_p_decides_alpha_exactly_as_the_full_permutation_count():
    """Besag–Clifford with h = settled_count(alpha, B): p < alpha iff the full run's p < alpha,
    for every observed value, also when the run is cut short once h exceedances are seen."""
    rng = np.random.default_rng(1)
    for alpha, B in [(0.05, 199), (0.05, 99), (0.01, 999), (0.1, 49)]:
        h = settled_count(alpha, B)
        null = rng.uniform(size=(400, B))
        observed = rng.uniform(0.9, 1.0, size=400) ** rng.uniform(0.1, 3, size=400)
        full = permutation_p_values(observed, null)
        sequential = permutation_p_values(observed, null, h)
        np.testing.assert_array_equal(sequential < alpha, full < alpha)
        count = np.cumsum(null >= observed[:, None], axis=1)
        after_hth = np.concatenate([np.zeros((len(null), 1), bool), count[:, :-1] >= h], axis=1)
        np.testing.assert_allclose(permutation_p_values(observed, np.where(after_hth, np.nan, null), h), sequential)
        assert 0 < (full < alpha).mean() < 1  # both decisions occur


def test_sequential_family_p_controls_the_family_wise_error_under_the_null():
    rng = np.random.default_rng(2)
    layers, B, reps = 8, 199, 400
    h = settled_count(0.05, B)
    hits = 0
    for _ in range(reps):
        stat = 0.5 * rng.normal(size=(1, B + 1)) + rng.normal(size=(layers, B + 1))
        hits += family_p_values(stat[:, 0], stat[:, 1:], np.zeros(layers), h).min() < 0.05
    assert hits / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)


def test_an_f1_at_or_below_chance_is_never_significant_even_against_a_lower_null():
    # leave-speakers-out CV sits below chance under the null: a bare F1 of 0.45 would beat this null
    null = np.full((2, 99), 0.28)
    observed = np.array([0.45, 0.50])
    own = permutation_p_values(at_least_chance(observed, 0.5), at_least_chance(null, 0.5))
    fwer = family_p_values(at_least_chance(observed, 0.5), at_least_chance(null, 0.5), np.zeros(2))
    assert (own == 1.0).all() and (fwer == 1.0).all()
    assert permutation_p_values(at_least_chance(np.array([0.6]), 0.5), at_least_chance(null[:1], 0.5))[0] == pytest.approx(0.01)


def test_below_null_p_tests_each_member_against_the_family_minimum():
    null = np.array([[0.30, 0.40, 0.50, 0.60], [0.45, 0.20, 0.55, 0.65]])
    p = family_below_p_values(np.array([0.25, 0.35]), null, np.zeros(2))
    assert p == pytest.approx([2 / 5, 3 / 5])  # family minima 0.30, 0.20, 0.50, 0.60


def test_below_null_p_controls_the_family_wise_error_under_the_null():
    rng = np.random.default_rng(3)
    reps, layers = 400, 6
    hits = 0
    for _ in range(reps):
        stat = rng.normal(size=(layers, 100))  # column 0 observed, exchangeable with the 99 permutations
        hits += family_below_p_values(stat[:, 0], stat[:, 1:], np.zeros(layers)).min() < 0.05
    assert hits / reps <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)


def test_seed_mean_draws_remove_the_fold_seed_share_of_the_spread():
    draws = np.random.default_rng(0).normal(0.6, 0.10, 4000)
    seeds = np.array([0.55, 0.60, 0.65])  # variance 0.0025 over seeds
    shrunk = seed_mean_draws(draws, seeds)
    assert shrunk.mean() == pytest.approx(draws.mean())
    assert shrunk.var(ddof=1) == pytest.approx(draws.var(ddof=1) - (2 / 3) * 0.0025, rel=0.02)
    assert seed_mean_draws(draws, seeds[:1]) is draws  # one seed: nothing to average


def test_seed_mean_draws_never_shrink_below_independent_seeds():
    draws = np.random.default_rng(0).normal(0.6, 0.05, 4000)
    shrunk = seed_mean_draws(draws, np.array([0.3, 0.6, 0.9]))
    assert shrunk.var(ddof=1) == pytest.approx(draws.var(ddof=1) / 3, rel=0.02)


def test_seeds_unstable_when_their_spread_exceeds_one_seeds_standard_error():
    assert seeds_unstable(np.array([0.645, 0.33, 0.37, 0.35, 0.36]), 0.05)
    assert not seeds_unstable(np.array([0.48, 0.50, 0.52]), 0.05)
    assert not seeds_unstable(np.array([0.2, 0.8]), float("nan"))


def test_jackknife_se_of_a_stratified_mean_is_its_textbook_standard_error():
    # θ = mean of the strata's means; deleting unit i moves only its stratum's mean, and the
    # stratified jackknife (JKn) then equals sqrt(Σ_h W_h² s_h² / n_h) exactly (W_h = 1/H)
    rng = np.random.default_rng(0)
    strata = np.repeat([0, 1, 2], [5, 8, 6])
    x = rng.normal(size=len(strata)) + strata
    means = np.array([x[strata == h].mean() for h in range(3)])
    replicates = np.array([np.mean([np.delete(x, i)[np.delete(strata, i) == h].mean() for h in range(3)]) for i in range(len(x))])
    textbook = np.sqrt(sum(x[strata == h].var(ddof=1) / (strata == h).sum() for h in range(3)) / 9)
    assert jackknife_se(replicates, strata) == pytest.approx(textbook)
    assert means.mean() == pytest.approx(replicates.mean())  # a linear statistic: the replicates average to it


def test_jackknife_deletes_single_speakers_at_the_guides_design_and_groups_of_a_large_accent():
    guide = np.repeat([0, 1, 2], 8)
    units = jackknife_units(guide, ProbeConfig(seeds=5, bootstrap=200))  # up to 200 // (5 · 3) = 13 units per accent
    assert sorted(units) == list(range(24))
    assert sorted(jackknife_units(guide, ProbeConfig(seeds=5, bootstrap=20))) == list(range(24))  # never under 8 per accent
    large = np.repeat([0, 1, 2], 40)
    units = jackknife_units(large, ProbeConfig(seeds=5, bootstrap=200))
    assert len(np.unique(units)) == 3 * 13
    for a in range(3):
        sizes = np.unique(units[large == a], return_counts=True)[1]
        assert len(sizes) == 13 and set(sizes) <= {3, 4}  # near-equal groups, never across accents
    design = build_design(_meta(2, 3), ProbeConfig(seeds=1, permutations=0, bootstrap=200))
    assert design.jackknife_row_weights.shape == (6, len(design.y))
    assert (design.jackknife_row_weights.sum(0) == 5).all()  # every row is deleted by exactly one replicate


def test_jackknife_interval_is_the_point_plus_minus_z_se_clipped_and_nan_without_replicates():
    strata = np.repeat([0, 1], 4)
    replicates = np.array([0.90, 0.92, 0.94, 0.96, 0.91, 0.93, 0.95, 0.97])
    se = jackknife_se(replicates, strata)
    low, high = jackknife_interval(0.95, replicates, strata, level=0.95)
    assert low == pytest.approx(0.95 - 1.959964 * se) and high == pytest.approx(min(1.0, 0.95 + 1.959964 * se))
    assert all(np.isnan(jackknife_interval(0.5, np.array([]), np.array([]), level=0.95)))


def test_normal_interval_is_centred_on_the_point_and_clipped():
    draws = np.random.default_rng(0).normal(0.9, 0.1, 5000)
    low, high = bootstrap_interval(0.95, draws, level=0.95, method="normal")
    assert high == 1.0 and low == pytest.approx(0.95 - 1.96 * 0.1, abs=0.01)
    p_low, p_high = bootstrap_interval(0.95, draws, level=0.95, method="percentile")
    assert p_low == pytest.approx(0.9 - 1.96 * 0.1, abs=0.01)


def test_interval_without_draws_is_nan():
    assert all(np.isnan(bootstrap_interval(0.5, np.array([]), level=0.95, method="normal")))


def test_bootstrap_draws_resample_speakers_within_accent():
    acc = np.repeat(np.arange(3), [2, 4, 5])
    w = speaker_resamples(acc, 300, np.random.default_rng(0))
    for a, n in enumerate([2, 4, 5]):
        assert (w[:, acc == a].sum(1) == n).all()
    assert (w == 0).any() and (w >= 2).any()


def test_labelling_count_is_the_product_of_per_fold_multinomials():
    acc = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    fold = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert count_within_fold_labellings(acc, fold) == 2**4
    assert count_within_fold_labellings(np.array([0, 1, 2]), np.zeros(3, int)) == 6


def _meta(accents: int, speakers: int, texts: int = 4) -> pd.DataFrame:
    rows = [
        (f"a{a}s{s}t{t}", f"a{a}s{s}", f"acc{a}", f"t{t}")
        for a in range(accents)
        for s in range(speakers)
        for t in range(texts)
    ]
    return pd.DataFrame(rows, columns=["utt_id", "speaker", "accent", "text_id"])


def test_two_accents_of_four_speakers_cannot_reach_p_005():
    design = build_design(_meta(2, 4), ProbeConfig(seeds=1, permutations=999, bootstrap=0))
    assert design.distinct_labellings == 16
    assert design.smallest_reachable_p == pytest.approx(1 / 16)


def test_ten_permutations_cannot_reach_p_005():
    design = build_design(_meta(3, 8), ProbeConfig(seeds=1, permutations=10, bootstrap=0))
    assert design.smallest_reachable_p == pytest.approx(1 / 11)


def test_held_out_speakers_are_paired_by_rank_without_groups():
    design = build_design(_meta(2, 3), ProbeConfig(seeds=2, permutations=0, bootstrap=0))
    spk = np.asarray(design.speakers)
    held = [sorted(set(spk[design.spk[te]])) for _, te in design.outer[0]]
    assert held == [["a0s0", "a1s0"], ["a0s1", "a1s1"], ["a0s2", "a1s2"]]
    held1 = [sorted(set(spk[design.spk[te]])) for _, te in design.outer[1]]
    assert held1 != held  # the next fold seed rotates the pairing


def test_group_column_keeps_whole_groups_out_together():
    meta = _meta(2, 4)
    meta["group"] = meta["speaker"].str[-1].map(lambda s: f"donor{int(s) % 2}")
    design = build_design(meta, ProbeConfig(seeds=1, permutations=0, bootstrap=0))
    assert len(design.outer[0]) == 2
    for tr, te in design.outer[0]:
        assert not set(meta["group"].iloc[tr]) & set(meta["group"].iloc[te])


def test_a_within_group_shuffle_keeps_every_groups_labels_and_moves_them():
    labels, groups = np.arange(40), np.repeat([0, 1], 20)
    out = shuffled_within(labels, groups, np.random.default_rng(0))
    for g in (0, 1):
        assert sorted(out[groups == g]) == sorted(labels[groups == g])
    assert (out != labels).any()
