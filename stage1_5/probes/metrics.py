"""Pure metric functions: scalar ones for single predictions, batched torch ones for the protocol.

The batched path follows torchmetrics (`_update` builds confusion counts, `_reduce` turns counts into a
score) and the scalar path reuses those same helpers, so the two cannot drift. Macro-F1 averages over
the labels present in y_true or y_pred, as scikit-learn's `f1_score(average="macro")` does.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch


def confusion_counts(
    y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Confusion counts [..., K, K] (rows = true, columns = predicted) over the last axis of
    y_true / y_pred [..., n]; `mask` [..., n] drops rows (weights are allowed: float masks)."""
    y_true, y_pred = torch.broadcast_tensors(torch.as_tensor(y_true), torch.as_tensor(y_pred))
    weight = torch.ones(y_true.shape, dtype=torch.float64) if mask is None else torch.as_tensor(mask).to(torch.float64)
    weight = weight.expand(y_true.shape).to(y_true.device)
    flat = (y_true.long() * n_classes + y_pred.long()).clamp(0, n_classes * n_classes - 1)
    out = torch.zeros(*y_true.shape[:-1], n_classes * n_classes, dtype=torch.float64, device=y_true.device)
    out.scatter_add_(-1, flat, weight)
    return out.view(*y_true.shape[:-1], n_classes, n_classes)


def macro_f1_from_confusion(conf: torch.Tensor) -> torch.Tensor:
    """Macro-F1 [...] from confusion counts [..., K, K], over classes seen in truth or prediction."""
    tp = conf.diagonal(dim1=-2, dim2=-1)
    true = conf.sum(-1)
    pred = conf.sum(-2)
    denom = true + pred
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1e-300), torch.zeros_like(tp))
    present = (denom > 0).to(conf.dtype)
    return (f1 * present).sum(-1) / present.sum(-1).clamp_min(1.0)


def accuracy_from_confusion(conf: torch.Tensor) -> torch.Tensor:
    total = conf.sum((-1, -2))
    return conf.diagonal(dim1=-2, dim2=-1).sum(-1) / total.clamp_min(1e-300)


def batched_macro_f1(
    y_true: torch.Tensor, y_pred: torch.Tensor, n_classes: int, mask: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Macro-F1 for every leading index of y_true / y_pred [..., n]."""
    return macro_f1_from_confusion(confusion_counts(y_true, y_pred, n_classes, mask))


def _codes(y_true, y_pred) -> tuple[torch.Tensor, torch.Tensor, int]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}")
    labels, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    n = len(y_true)
    return torch.as_tensor(codes[:n]), torch.as_tensor(codes[n:]), len(labels)


def macro_f1(y_true, y_pred) -> float:
    """Macro-F1 of label arrays (any hashable labels); equals sklearn's f1_score(average='macro')."""
    t, p, k = _codes(y_true, y_pred)
    return float(batched_macro_f1(t, p, max(k, 1)))


def accuracy(y_true, y_pred) -> float:
    t, p, k = _codes(y_true, y_pred)
    return float(accuracy_from_confusion(confusion_counts(t, p, max(k, 1))))


def majority_f1(y_true) -> float:
    """Macro-F1 of always predicting the most frequent class (ties: first in sorted order)."""
    labels, counts = np.unique(np.asarray(y_true), return_counts=True)
    return macro_f1(y_true, np.full(len(y_true), labels[counts.argmax()]))
