"""Layer similarity: linear CKA (Kornblith et al., 2019) between every pair of representations.

    CKA(X, Y) = ‖Yᶜᵀ Xᶜ‖²_F / (‖Xᶜᵀ Xᶜ‖_F · ‖Yᶜᵀ Yᶜ‖_F),   Xᶜ = X with column means removed

computed from the n × n Gram matrices (one per representation, so a d = 2048 layer costs the same as
a 20-dimensional one). It is invariant to rotations and isotropic scaling of either representation,
not to per-feature scaling, and reads "how alike are the utterance-to-utterance geometries".

Rows: the utterances of the speakers held out in the first accent-erasure fold of the first fold
seed (half of every accent's speakers with the default `erasure_folds: 2`), whole speakers dropped
round-robin over accents (the last in name order first, one speaker per accent always kept) until at
most `stage2.cka_rows` remain; all speakers when that fold cannot be built. CKA fits nothing, so any rows would do; these are the rows the erasure numbers are
reported on, and the cap bounds the n × n Gram matrices.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from stage1_5.config import Stage2Config
from stage1_5.probes.splits import speakers_by_accent
from stage1_5.stage2.erasure import accent_erasure_folds


def centred_gram(X: np.ndarray) -> np.ndarray:
    """Gram matrix [n, n] of X [n, d] with its column means removed, in float64."""
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(0, keepdims=True)
    return Xc @ Xc.T


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two representations of the same rows (NaN when either is constant)."""
    return cka_from_grams(centred_gram(X), centred_gram(Y))


def cka_from_grams(K: np.ndarray, L: np.ndarray) -> float:
    """Linear CKA from two centred Gram matrices: ⟨K, L⟩ / (‖K‖ ‖L‖) (Frobenius)."""
    denom = np.linalg.norm(K) * np.linalg.norm(L)
    return float(np.sum(K * L) / denom) if denom > 0 else float("nan")


def cka_matrix(vectors: Mapping[str, np.ndarray], rows: np.ndarray) -> pd.DataFrame:
    """Symmetric representation × representation CKA on `rows`, in `vectors`' order."""
    names = list(vectors)
    grams = [centred_gram(np.asarray(vectors[n])[rows]) for n in names]
    out = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i):
            out[i, j] = out[j, i] = cka_from_grams(grams[i], grams[j])
        if not np.linalg.norm(grams[i]) > 0:
            out[i, i] = np.nan
    return pd.DataFrame(out, index=names, columns=names)


def cka_rows(meta: pd.DataFrame, cfg: Stage2Config) -> np.ndarray:
    """The rows the similarity matrix is computed on (see the module docstring), sorted."""
    accents, speakers = (meta[c].to_numpy().astype(str) for c in ("accent", "speaker"))
    folds = accent_erasure_folds(accents, speakers, cfg, 0)
    held = folds[0][1] if folds else np.arange(len(meta))
    per_accent = speakers_by_accent(accents[held], speakers[held])
    keep = {spk for group in per_accent.values() for spk in group}
    size = {spk: int(n) for spk, n in zip(*np.unique(speakers[held], return_counts=True))}
    total = sum(size.values())
    queue = [list(group) for group in per_accent.values()]
    turn = 0
    while total > cfg.cka_rows and any(len(q) > 1 for q in queue):  # keep at least one speaker per accent
        q = queue[turn % len(queue)]
        turn += 1
        if len(q) > 1:
            dropped = q.pop()
            keep.discard(dropped)
            total -= size[dropped]
    return np.sort(held[np.isin(speakers[held], sorted(keep))])
