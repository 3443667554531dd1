"""Linear probes under speaker- and text-disjoint splits (DESIGN §4)."""

PROTOCOL_VERSION = 3
"""Bumped when metrics.csv's columns or meaning change: cached probe results of another version are recomputed."""

from stage1_5.probes.metrics import (
    accuracy,
    accuracy_from_confusion,
    batched_macro_f1,
    confusion_counts,
    macro_f1,
    macro_f1_from_confusion,
    majority_f1,
)
from stage1_5.columns import METRIC_COLUMNS, PREDICTION_COLUMNS
from stage1_5.probes.protocol import DesignFacts, ProbeResults, evaluate_representations

__all__ = [
    "METRIC_COLUMNS",
    "PREDICTION_COLUMNS",
    "DesignFacts",
    "ProbeResults",
    "accuracy",
    "accuracy_from_confusion",
    "batched_macro_f1",
    "confusion_counts",
    "evaluate_representations",
    "macro_f1",
    "macro_f1_from_confusion",
    "majority_f1",
]
