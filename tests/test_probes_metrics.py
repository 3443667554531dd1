"""Metric and statistics functions: scalar and batched paths agree with scikit-learn and each other."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from stage1_5.probes import batched_macro_f1, macro_f1, majority_f1
from stage1_5.probes.metrics import confusion_counts, macro_f1_from_confusion
from stage1_5.probes.stats import within_fold_permutations

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


def test_permutations_keep_accent_counts_within_every_fold():
    acc = np.repeat(np.arange(3), 4)
    fold = np.tile(np.arange(4), 3)
    perms = within_fold_permutations(acc, fold, 50, np.random.default_rng(0))
    for p in perms:
        for f in range(4):
            assert sorted(p[fold == f]) == sorted(acc[fold == f])
    assert len({tuple(p) for p in perms}) > 40
