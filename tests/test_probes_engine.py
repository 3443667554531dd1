"""The batched engine solves scikit-learn's logistic-regression objective (its reference)."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

from stage1_5.config import ProbeConfig
from stage1_5.probes import evaluate_representations
from stage1_5.probes.engine import (
    BatchedLogisticRegression,
    FitJob,
    ProblemBatch,
    SklearnBackend,
    TorchBackend,
    balanced_weights,
    fit_set_basis,
    free_classes,
    solve_batch,
)
from stage1_5.probes.planted import planted_dataset

torch.set_num_threads(1)


def _problem(seed, n, d, k):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    centers = rng.normal(size=(k, d))
    X = centers[y] * rng.uniform(0.2, 1.5) + rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d)
    Xt = centers[np.arange(200) % k] + rng.normal(size=(200, d)) * 1.5
    return X, y, Xt, np.arange(200) % k


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(12, 60),
    d=st.integers(1, 90),
    k=st.integers(2, 4),
    C=st.sampled_from([0.01, 0.1, 1.0, 10.0]),
    balanced=st.booleans(),
)
def test_engine_agrees_with_sklearn_on_random_problems(seed, n, d, k, C, balanced):
    X, y, Xt, yt = _problem(seed, n, d, k)
    cw = "balanced" if balanced else None
    ours = BatchedLogisticRegression(C=C, class_weight=cw, tol=1e-8, max_iter=2000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = LogisticRegression(C=C, class_weight=cw, tol=1e-10, max_iter=20_000).fit(X, y)
    agree = (ours.predict(Xt) == ref.predict(Xt)).mean()
    assert agree >= 0.98
    f1_ours = f1_score(yt, ours.predict(Xt), average="macro")
    f1_ref = f1_score(yt, ref.predict(Xt), average="macro")
    assert abs(f1_ours - f1_ref) <= 0.01


def test_binary_coefficients_match_sklearn_binomial_fit():
    X, y, Xt, _ = _problem(1, 40, 6, 2)
    ours = BatchedLogisticRegression(C=0.5, tol=1e-10, max_iter=2000).fit(X, y)
    ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(X, y)
    assert ours.coef_.shape == ref.coef_.shape == (1, 6)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    np.testing.assert_allclose(ours.predict_proba(Xt), ref.predict_proba(Xt), atol=1e-4)


def test_wide_features_use_the_span_and_still_match_primal_weights():
    X, y, _, _ = _problem(2, 30, 400, 3)  # d >> n: solved in the 30-dim span
    ours = BatchedLogisticRegression(C=1.0, tol=1e-10, max_iter=3000).fit(X, y)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=20_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=2e-4)


def test_estimator_follows_sklearn_contract():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    est = BatchedLogisticRegression(C=3.0, class_weight="balanced")
    assert clone(est).get_params()["C"] == 3.0
    with pytest.raises(NotFittedError):
        est.predict(np.zeros((2, 3)))
    X, y, _, _ = _problem(3, 30, 3, 3)
    assert est.fit(X, np.array(["a", "b", "c"])[y]) is est
    assert list(est.classes_) == ["a", "b", "c"] and est.coef_.shape == (3, 3) and est.n_iter_[0] > 0


def test_torch_backend_matches_sklearn_backend_with_classes_missing_from_training():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 8)) + np.repeat(np.eye(8)[:4] * 2, 15, axis=0)
    y_full = np.repeat(np.arange(4), 15)
    fit, ev = np.arange(0, 60, 2), np.arange(1, 60, 2)
    labels = np.stack([y_full[fit], np.where(y_full[fit] == 3, 0, y_full[fit]), np.minimum(y_full[fit], 1)])
    job = FitJob(X=X, fit_rows=fit, eval_rows=ev, y=labels, C=np.tile([0.1, 1.0], (3, 1)), n_classes=4)
    ours = TorchBackend("cpu", tol=1e-8, max_iter=2000, dtype=torch.float64).decision_function([job])[0]
    ref = SklearnBackend(tol=1e-10, max_iter=10_000).decision_function([job])[0]
    assert ours.shape == ref.shape == (3, 2, len(ev), 4)
    assert np.isneginf(ours[1, :, :, 3]).all() and np.isneginf(ours[2, :, :, 2:]).all()
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax(ours), softmax(ref), atol=1e-4)  # logits agree up to a per-row shift


def test_row_multiplicities_match_sklearn_sample_weights_with_weighted_balancing():
    """Bootstrap refits: multiplicity m counts a row m times in the loss and in the class balance
    (standardisation stays that of the fold's training rows, in both backends)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 6)) + np.repeat(np.eye(6)[:3] * 1.5, 20, axis=0)
    y = np.repeat(np.arange(3), 20)
    fit, ev = np.arange(0, 60, 2), np.arange(1, 60, 2)
    mult = rng.integers(0, 3, size=(2, len(fit))).astype(float)
    job = FitJob(X=X, fit_rows=fit, eval_rows=ev, y=np.stack([y[fit]] * 2), C=np.array([[1.0], [1.0]]), n_classes=3, weight=mult)
    ours = TorchBackend("cpu", tol=1e-8, max_iter=2000, dtype=torch.float64).decision_function([job])[0]
    ref = SklearnBackend(tol=1e-10, max_iter=10_000).decision_function([job])[0]
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax(ours), softmax(ref), atol=1e-4)
    unweighted = TorchBackend("cpu", tol=1e-8, max_iter=2000, dtype=torch.float64).decision_function([FitJob(X, fit, ev, y[fit][None], np.array([[1.0]]), 3)])[0]
    assert not np.allclose(ours[0], unweighted[0], atol=1e-3)  # the weights do act


def _wide_standardised(seed=7, n=30, m=20, d=80):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.normal(size=(n + m, d)) @ rng.normal(size=(d, d)) * 0.3 + 2.0)
    tr, ev = torch.arange(n), torch.arange(n, n + m)
    Xtr = X[tr]
    mean, scale = Xtr.mean(0), Xtr.std(0, correction=0)
    return X, tr, ev, (X[tr] - mean) / scale, (X[ev] - mean) / scale


@pytest.mark.parametrize("method", ["eigen", "triangular"])
def test_both_bases_preserve_every_inner_product_of_the_standardised_rows(method):
    X, tr, ev, Ztr, Zev = _wide_standardised()
    basis = fit_set_basis(X, tr, ev, method=method, primal=True)
    assert basis.train.shape[1] == len(tr) - 1  # centred rows span n − 1 dimensions
    np.testing.assert_allclose(basis.train @ basis.train.T, Ztr @ Ztr.T, atol=1e-8)
    np.testing.assert_allclose(basis.evals @ basis.train.T, Zev @ Ztr.T, atol=1e-8)
    np.testing.assert_allclose(Ztr @ basis.to_primal, basis.train, atol=1e-8)  # W = to_primal @ V gives the same logits
    np.testing.assert_allclose(basis.to_primal.T @ basis.to_primal, torch.eye(len(tr) - 1, dtype=torch.float64), atol=1e-8)  # orthonormal


def test_collinear_rows_fall_back_from_the_triangular_basis_to_the_eigenbasis():
    X, tr, ev, Ztr, Zev = _wide_standardised()
    X[1] = X[0]  # a duplicated utterance: the Cholesky factor of the Gram matrix is singular
    basis = fit_set_basis(X, tr, ev, method="triangular")
    assert basis.train.shape[1] == len(tr) - 2
    gram = basis.train.T @ basis.train
    np.testing.assert_allclose(gram - torch.diag(torch.diagonal(gram)), 0.0, atol=1e-8)  # orthogonal columns: the eigenbasis


def test_wide_fit_sets_match_sklearn_on_the_triangular_basis():
    X, tr, ev, _, _ = _wide_standardised(seed=8)
    y = (np.arange(len(tr)) % 3)[None]
    job = FitJob(X=X.numpy(), fit_rows=tr.numpy(), eval_rows=ev.numpy(), y=y, C=np.array([[0.1, 1.0]]), n_classes=3)
    assert TorchBackend.basis_method == "triangular"
    ours = TorchBackend("cpu", tol=1e-8, max_iter=3000, dtype=torch.float64).decision_function([job])[0]
    ref = SklearnBackend(tol=1e-10, max_iter=10_000).decision_function([job])[0]
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)
    np.testing.assert_allclose(softmax(ours), softmax(ref), atol=1e-4)


def test_dropping_finished_problems_changes_no_solution():
    """Compaction moves running problems into smaller tensors; each problem's iterates are its own."""
    rng = np.random.default_rng(6)
    F, P, n, r, K = 3, 8, 40, 12, 3
    phi = torch.as_tensor(rng.normal(size=(F, n, r)))
    y = torch.as_tensor(rng.integers(0, K, size=(F, P, n)))
    weight, present = balanced_weights(y, torch.ones(F, P, n, dtype=torch.float64), K)
    C = torch.as_tensor(np.tile(np.geomspace(0.01, 100, P), (F, 1)))  # very different iteration counts
    batch = ProblemBatch(phi=phi, lam=(phi**2).sum(1), y=y, weight=weight, C=C, class_mask=present, free=free_classes(present))
    compacted = solve_batch(batch, tol=1e-8, max_iter=1000)
    kept = solve_batch(batch, tol=1e-8, max_iter=1000, compact_below=0.0)
    assert compacted.n_iter.min() < compacted.n_iter.max() // 2  # compaction did happen
    np.testing.assert_array_equal(compacted.n_iter, kept.n_iter)
    np.testing.assert_allclose(compacted.coef, kept.coef, atol=1e-7)  # summation order only
    assert compacted.converged.all() and kept.converged.all()


def test_float32_solver_gives_the_float64_f1_and_p_values():
    data = planted_dataset(speakers_per_accent=6, n_texts=10, dim=256, accent=0.3, speaker=0.5, leak=0.2, random_state=3)
    cfg = ProbeConfig(seeds=2, permutations=19, bootstrap=50, device="cpu")
    single = evaluate_representations(data.features, data.meta, cfg, progress=False, backend=TorchBackend("cpu")).metrics.iloc[0]
    double = evaluate_representations(data.features, data.meta, cfg, progress=False, backend=TorchBackend("cpu", dtype=torch.float64)).metrics.iloc[0]
    for column in ["accent_f1", "accent_f1_ci_low", "accent_f1_ci_high", "text_f1_seen", "text_f1_unseen", "leak_acc", "speaker_acc"]:
        assert abs(single[column] - double[column]) <= 0.01, column
    assert abs(single.p_value - double.p_value) <= 2 / 20  # at most two near-tied permutations flip


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")
def test_narrow_fit_sets_stream_memory_mapped_rows_in_blocks_into_the_standardised_eigenbasis(tmp_path, monkeypatch):
    from stage1_5.probes import engine

    rng = np.random.default_rng(3)
    data = (rng.normal(size=(90, 12)) @ rng.normal(size=(12, 12)) + 5.0).astype(np.float32)
    data[:, 4] = 2.5  # a constant column stays unscaled, as StandardScaler leaves it
    np.save(tmp_path / "X.npy", data)
    X = torch.as_tensor(np.load(tmp_path / "X.npy", mmap_mode="r"))  # the memory-mapped array, as the feature store hands it over
    tr, ev = torch.arange(0, 90, 2), torch.arange(1, 90, 2)
    monkeypatch.setattr(engine, "BASIS_BLOCK_ROWS", 7)  # several blocks, the last one partial
    basis = fit_set_basis(X, tr, ev)
    Xtr = data[tr.numpy()].astype(np.float64)
    mean, sd = Xtr.mean(0), Xtr.std(0)
    sd[sd == 0] = 1.0
    Ztr, Zev = (Xtr - mean) / sd, (data[ev.numpy()] - mean) / sd
    assert basis.train.shape == (45, 11)  # d coordinates, less the constant column's
    np.testing.assert_allclose(basis.train @ basis.train.T, Ztr @ Ztr.T, atol=2e-3)
    np.testing.assert_allclose(basis.evals @ basis.train.T, Zev @ Ztr.T, atol=2e-3)
    np.testing.assert_allclose(basis.mean, mean, rtol=1e-6)
    monkeypatch.setattr(engine, "BASIS_BLOCK_ROWS", 4096)
    np.testing.assert_allclose(fit_set_basis(X, tr, ev).lam, basis.lam, rtol=1e-4)  # block size does not change the basis
