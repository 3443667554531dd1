"""Row order and file names shared by the figures and the Markdown report, so both read the same way.

Source order and each source's natural layer order come from the registry (`stage1_5.sources`).
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import pandas as pd

from stage1_5.sources import layer_sort_key, source_sort_key

FIGURES = {
    "heatmap": "metrics_heatmap.png",
    "f1_by_layer": "f1_by_layer.png",
    "confusion": "confusion_best.png",
    "leakage_vs_f1": "leakage_vs_f1.png",
}
"""File names of the four figures under artifacts/analysis/."""

STAGE2_FIGURES = {"erasure": "erasure.png", "cka": "cka.png"}
"""File names of the Stage 2 figures under artifacts/stage2/."""


def ordered(metrics: pd.DataFrame, layer_order: Optional[Mapping[str, Sequence[str]]] = None) -> pd.DataFrame:
    """Rows grouped by source (registry order, then other sources alphabetically) and in layer depth
    order within a source.

    `layer_order` maps a source to its configured layer list (`stage1_5.sources.configured_layer_order`);
    layers named there come in that order, any others after them in the source's natural order.
    """
    layer_order = layer_order or {}

    def key(row: pd.Series) -> tuple:
        src, layer = str(row["source"]), str(row["layer"])
        given = list(layer_order.get(src, ()))
        pos = (0, given.index(layer), ()) if layer in given else (1, 0, layer_sort_key(src, layer))
        return (source_sort_key(src), pos)

    keys = metrics.apply(key, axis=1) if len(metrics) else pd.Series([], dtype=object)
    return metrics.iloc[sorted(range(len(metrics)), key=lambda i: keys.iloc[i])].reset_index(drop=True)
