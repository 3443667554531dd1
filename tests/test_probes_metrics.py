"""Metric and statistics functions: scalar and batched paths agree with scikit-learn and each other."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from stage1_5.probes import batched_macro_f1, macro_f1, majority_f1
from stage1_5.probes.metrics import confusion_counts, macro_f1_from_confusion
from stage1_5.probes.stats import cluster_bootstrap_ci, permutation_p_values, within_fold_permutations

labels = st.lists(st.integers(0, 4), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_macro_f1_equals_sklearn(data):
    y_true = data.draw(labels)
    y_pred = data.draw(st.lists(st.integers(0, 4), min_size=len(y_true), max_size=len(y_true)))
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)


def test_batched_macro_f1_equals_scalar_per_row():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, (7, 50)), rng.integers(0, 3, (7, 50))
    batched = batched_macro_f1(torch.as_tensor(t), torch.as_tensor(p), 3).numpy()
    np.testing.assert_allclose(batched, [macro_f1(a, b) for a, b in zip(t, p)])


def test_majority_f1_of_three_balanced_classes_is_one_sixth():
    assert majority_f1(["a", "b", "c"] * 10) == 1 / 6  # F1(majority) = 2·(1/3)/(1+1/3) = 1/2, averaged over 3


def test_confusion_rows_are_truth_columns_predictions():
    conf = confusion_counts(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 1]), 3)
    assert conf.tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert float(macro_f1_from_confusion(conf)) == pytest.approx(f1_score([0, 0, 1, 2], [0, 1, 1, 1], average="macro"))


def _speaker_confusion(correct_rate, n_speakers=12, k=3, per_speaker=10, seeds=2, seed=0):
    rng = np.random.default_rng(seed)
    acc = np.arange(n_speakers) % k
    conf = np.zeros((seeds, n_speakers, k, k))
    for s in range(seeds):
        for spk in range(n_speakers):
            for _ in range(per_speaker):
                pred = acc[spk] if rng.random() < correct_rate else rng.integers(0, k)
                conf[s, spk, acc[spk], pred] += 1
    return torch.as_tensor(conf), acc


def test_cluster_bootstrap_ci_brackets_the_estimate_and_narrows_with_perfect_predictions():
    conf, acc = _speaker_confusion(0.6)
    point = float(macro_f1_from_confusion(conf.sum(1)).mean())
    low, high = cluster_bootstrap_ci(conf, acc, 500, np.random.default_rng(1))
    assert low < point < high and high - low > 0.05
    perfect, acc = _speaker_confusion(1.0)
    assert cluster_bootstrap_ci(perfect, acc, 200, np.random.default_rng(1)) == (1.0, 1.0)


def test_cluster_bootstrap_resamples_speakers_not_utterances():
    # every utterance of a speaker is right or wrong together: the speaker-level CI must be wide
    k, n_spk = 2, 8
    acc = np.arange(n_spk) % k
    conf = torch.zeros(1, n_spk, k, k, dtype=torch.float64)
    for spk in range(n_spk):
        pred = acc[spk] if spk < 6 else 1 - acc[spk]
        conf[0, spk, acc[spk], pred] = 100
    low, high = cluster_bootstrap_ci(conf, acc, 1000, np.random.default_rng(0))
    assert high - low > 0.3  # 800 utterances but only 8 speakers of evidence


def test_bootstrap_zero_gives_nan():
    conf, acc = _speaker_confusion(0.5)
    assert all(np.isnan(cluster_bootstrap_ci(conf, acc, 0, np.random.default_rng(0))))


def test_permutations_keep_accent_counts_within_every_fold():
    acc = np.repeat(np.arange(3), 4)
    fold = np.tile(np.arange(4), 3)
    perms = within_fold_permutations(acc, fold, 50, np.random.default_rng(0))
    for p in perms:
        for f in range(4):
            assert sorted(p[fold == f]) == sorted(acc[fold == f])
    assert len({tuple(p) for p in perms}) > 40


def test_p_value_formula_and_fwer_is_never_smaller():
    observed = np.array([0.9, 0.5])
    null = np.array([[0.1, 0.95, 0.2, 0.3], [0.4, 0.6, 0.45, 0.55]])
    p, p_fwer = permutation_p_values(observed, null)
    np.testing.assert_allclose(p, [(1 + 1) / 5, (1 + 2) / 5])
    np.testing.assert_allclose(p_fwer, [(1 + 1) / 5, (1 + 2) / 5])  # max null = [.4, .95, .45, .55]
    assert (p_fwer >= p).all()
    assert np.isnan(permutation_p_values(observed, np.zeros((2, 0)))[0]).all()
