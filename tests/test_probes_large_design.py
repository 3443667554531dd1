"""A design beyond `probes.speaker_fold_limit` (grouped outer folds instead of one speaker per accent
per fold) keeps the permutation test's guarantee: under a planted null the false-GO rate stays at or
below alpha (the calibration study is the referee of the fold design's statistics)."""

import numpy as np
import pytest

from stage1_5.config import ExperimentConfig, ProbeConfig
from stage1_5.decision import Level, decide
from stage1_5.probes import evaluate_representations
from stage1_5.probes.calibration import World

ALPHA = ExperimentConfig().alpha
LARGE = ProbeConfig(seeds=1, permutations=99, bootstrap=0, c_grid=[1.0], device="cpu", speaker_fold_limit=6, large_design_folds=3)
"""A 10-speaker-per-accent world is 'large' at a limit of 6: three grouped folds, as a corpus beyond 20 speakers gets."""
WORLD = World(n_accents=3, speakers_per_accent=10, n_texts=4, accent=0.0)


def _null_replicate(seed) -> tuple[float, Level]:
    meta, features = WORLD.draw(np.random.default_rng(seed), 1)
    res = evaluate_representations(features, meta, LARGE, progress=False)
    return float(res.metrics.p_value.iloc[0]), decide(res.metrics, ExperimentConfig()).decision


def test_a_null_world_on_grouped_folds_is_nogo_and_reports_its_fold_design():
    meta, features = WORLD.draw(np.random.default_rng(0), 1)
    res = evaluate_representations(features, meta, LARGE, progress=False)
    assert "3 grouped outer folds" in res.facts.design_line() and "beyond 6 speakers" in res.facts.design_line()
    assert decide(res.metrics, ExperimentConfig()).decision == Level.NOGO


@pytest.mark.slow
def test_false_go_rate_of_grouped_folds_under_planted_nulls_is_at_most_alpha():
    replicates = 60
    outcomes = [_null_replicate([25, r]) for r in range(replicates)]
    false_go = sum(level != Level.NOGO for _, level in outcomes)
    below = sum(p < ALPHA for p, _ in outcomes)
    ceiling = replicates * ALPHA + 3 * np.sqrt(replicates * ALPHA * (1 - ALPHA))
    assert false_go <= ceiling, f"{false_go}/{replicates} false GO"
    assert below <= ceiling, f"{below}/{replicates} permutation p < alpha"
