"""docs/columns.md documents every column of metrics.csv and predictions.csv, in the code's order."""

from __future__ import annotations

import re
from pathlib import Path

from stage1_5.columns import METRIC_COLUMNS, PREDICTION_COLUMNS
from stage1_5.pipeline import DECISION_SCHEMA_VERSION
from stage1_5.stage2.erasure import ERASURE_COLUMNS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "columns.md"


def _table(heading: str) -> list[str]:
    """The first column of the table under `## heading`."""
    section = PAGE.read_text().split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.M)


def test_the_metrics_table_lists_every_metrics_csv_column_in_order():
    assert _table("metrics.csv") == METRIC_COLUMNS + ERASURE_COLUMNS


def test_the_predictions_table_lists_every_predictions_csv_column_in_order():
    assert _table("predictions.csv") == PREDICTION_COLUMNS


def test_the_page_states_the_current_decision_schema_version():
    assert f"`schema_version` (now {DECISION_SCHEMA_VERSION})" in PAGE.read_text()
