"""Test factories for metrics rows (lhotse `testing/dummies.py` style): a passing GO row by default,
override only the numbers a test is about."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping

import pandas as pd

from stage1_5.columns import METRIC_COLUMNS


def dummy_metrics_row(representation: str = "backbone:decoder_block_08", **overrides: Any) -> Dict[str, Any]:
    """One metrics row that passes every GO gate at the default thresholds, with `overrides` applied."""
    source, _, layer = representation.partition(":")
    f1 = overrides.get("accent_f1", 0.72)
    row: Dict[str, Any] = {
        "representation": representation,
        "source": source,
        "layer": layer or representation,
        "status": "ok",
        "n_speakers": 24,
        "n_utterances": 720,
        "n_accents": 3,
        "chance_f1": 1 / 3,
        "accent_f1": f1,
        "accent_f1_sd": 0.03,
        "accent_f1_seed_unstable": False,
        "accent_f1_ci_low": f1 - 0.07,
        "accent_f1_ci_high": f1 + 0.08,
        "p_value": 0.001,
        "family": source,
        "family_size": 8,
        "p_value_fwer": 0.004,
        "p_below_chance": 1.0,
        "n_permutations": 999,
        "null_f1_mean": 0.33,
        "null_f1_q95": 0.42,
        "majority_f1": 0.17,
        "text_f1_seen": f1 + 0.03,
        "text_f1_unseen": f1 - 0.02,
        "text_drop": 0.05,
        "text_drop_ci_low": 0.01,
        "text_drop_ci_high": 0.08,
        "leak_acc": 0.146,
        "leak_chance": 0.125,
        "leak_excess_pp": 2.1,
        "leak_excess_ci_low": -1.0,
        "leak_excess_ci_high": 5.0,
        "speaker_acc": 0.61,
    }
    unknown = set(overrides) - set(METRIC_COLUMNS)
    if unknown:
        raise KeyError(f"unknown metrics column(s): {sorted(unknown)}")
    row.update(overrides)
    return row


def dummy_metrics(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A metrics table (contract column order) from rows made by `dummy_metrics_row`."""
    return pd.DataFrame(list(rows), columns=METRIC_COLUMNS)
