"""Linear CKA: its defining properties, the Gram form against the feature-space formula, and the rows it uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stage1_5.config import Stage2Config
from stage1_5.probes.planted import planted_dataset
from stage1_5.stage2 import cka_matrix, linear_cka
from stage1_5.stage2.erasure import accent_erasure_folds
from stage1_5.stage2.similarity import cka_rows

rng = np.random.default_rng(0)
X = rng.normal(size=(120, 20))


def feature_space_cka(A, B):
    A, B = A - A.mean(0), B - B.mean(0)
    return np.linalg.norm(B.T @ A) ** 2 / (np.linalg.norm(A.T @ A) * np.linalg.norm(B.T @ B))


def test_a_representation_is_identical_to_itself():
    assert linear_cka(X, X) == pytest.approx(1.0)


def test_cka_ignores_rotations_isotropic_scaling_and_offsets():
    Q = np.linalg.qr(rng.normal(size=(20, 20)))[0]
    assert linear_cka(X, 3.0 * X @ Q + 7.0) == pytest.approx(1.0)


def test_the_gram_form_equals_the_feature_space_formula():
    Y = X[:, :5] @ rng.normal(size=(5, 30)) + 0.5 * rng.normal(size=(120, 30))
    assert linear_cka(X, Y) == pytest.approx(feature_space_cka(X, Y), rel=1e-10)


def test_independent_noise_is_far_less_alike_than_a_noisy_copy():
    noise = rng.normal(size=X.shape)
    assert linear_cka(X, noise) < 0.3 < 0.7 < linear_cka(X, X + 0.3 * noise)


def test_the_matrix_is_symmetric_with_a_unit_diagonal_and_nan_for_a_constant():
    vectors = {"a": X, "b": X[:, :4], "c": np.ones((120, 3))}
    m = cka_matrix(vectors, np.arange(120))
    assert list(m.index) == list(m.columns) == ["a", "b", "c"]
    np.testing.assert_allclose(m.loc[["a", "b"], ["a", "b"]].to_numpy(), m.loc[["a", "b"], ["a", "b"]].to_numpy().T)
    assert m.loc["a", "a"] == 1.0 and np.isnan(m.loc["c", "c"]) and np.isnan(m.loc["a", "c"])
    assert m.loc["a", "b"] == pytest.approx(linear_cka(X, X[:, :4]))


def test_the_rows_are_the_first_accent_erasure_folds_held_out_speakers():
    meta = planted_dataset(n_accents=3, speakers_per_accent=8, n_texts=10, dim=8).meta
    cfg = Stage2Config()
    rows = cka_rows(meta, cfg)
    held = accent_erasure_folds(meta["accent"].to_numpy(), meta["speaker"].to_numpy(), cfg, 0)[0][1]
    np.testing.assert_array_equal(rows, held)


def test_a_row_cap_drops_whole_speakers_round_robin_over_accents():
    meta = planted_dataset(n_accents=3, speakers_per_accent=8, n_texts=10, dim=8).meta
    rows = cka_rows(meta, Stage2Config(cka_rows=65))
    kept = meta.iloc[rows]
    assert len(rows) <= 65
    assert (kept.groupby("speaker").size() == 10).all()  # whole speakers only
    per_accent = kept.groupby("accent")["speaker"].nunique()
    assert per_accent.max() - per_accent.min() <= 1 and len(per_accent) == 3


def test_too_few_speakers_for_the_erasure_folds_use_every_row():
    meta = pd.DataFrame({"accent": list("aabb"), "speaker": ["s1", "s2", "s3", "s4"], "text_id": ["t"] * 4, "utt_id": list("wxyz")})
    np.testing.assert_array_equal(cka_rows(meta, Stage2Config()), np.arange(4))
