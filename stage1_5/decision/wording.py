"""Number formats and sentences of the decision, shared with the report so the numbers read the same
everywhere. Pure: no I/O."""

from __future__ import annotations

from typing import Any, Mapping

from stage1_5.decision.levels import is_missing


def fmt_f1(x: float) -> str:
    return "n/a" if is_missing(x) else f"{x:.2f}"


def fmt_pp(x: float) -> str:
    return "n/a" if is_missing(x) else f"{x:+.1f} pp"


def fmt_p(x: float) -> str:
    """p-values: 3 decimals, small ones in scientific notation, NaN as 'n/a' (no permutation test)."""
    if is_missing(x):
        return "n/a"
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def fmt_threshold(x: float) -> str:
    return f"{x:g}"


def fmt_pair(value: float, threshold: float, decimals: int = 2, unit: str = "", signed: bool = False) -> tuple[str, str]:
    """value and threshold printed with enough decimals to tell them apart (never 'F1 0.45 < 0.45')."""
    spec = "+" if signed else ""
    for d in range(decimals, 5):
        a, b = f"{value:{spec}.{d}f}", f"{threshold:{spec}.{d}f}"
        if a != b or value == threshold:
            break
    return a + unit, b + unit


def layer_summary(row: Mapping[str, Any]) -> str:
    """'F1=0.72 [0.65, 0.80], leakage excess=+2.1 pp, text_drop=0.05, family-wise p=0.004'."""
    lo, hi = row_float(row, "accent_f1_ci_low"), row_float(row, "accent_f1_ci_high")
    ci = "" if is_missing(lo) or is_missing(hi) else f" [{fmt_f1(lo)}, {fmt_f1(hi)}]"
    return (
        f"F1={fmt_f1(row_float(row, 'accent_f1'))}{ci}, "
        f"leakage excess={fmt_pp(row_float(row, 'leak_excess_pp'))}, "
        f"text_drop={fmt_f1(row_float(row, 'text_drop'))}, "
        f"family-wise p={fmt_p(row_float(row, 'p_value_fwer'))}"
    )


def row_float(row: Mapping[str, Any], key: str) -> float:
    """A metrics-row value as float; absent or unparsable is NaN (not measured)."""
    v = row.get(key)
    if v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


