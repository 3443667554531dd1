"""Linear probes under speaker- and text-disjoint splits (DESIGN §4)."""

from stage1_5.probes.metrics import (
    accuracy,
    accuracy_from_confusion,
    batched_macro_f1,
    confusion_counts,
    macro_f1,
    macro_f1_from_confusion,
    majority_f1,
)
from stage1_5.probes.protocol import METRIC_COLUMNS, ProbeResults, evaluate_representations

__all__ = [
    "METRIC_COLUMNS",
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
