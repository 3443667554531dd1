"""Row order and file names shared by the figures and the Markdown report, so both read the same way."""

from __future__ import annotations

import re
from typing import Mapping, Optional, Sequence

import pandas as pd

SOURCE_ORDER = ("backbone", "ssl", "ecapa", "acoustic")
"""Known sources first, in this order; any other (user-supplied) source follows alphabetically."""

FIGURES = {
    "heatmap": "metrics_heatmap.png",
    "f1_by_layer": "f1_by_layer.png",
    "confusion": "confusion_best.png",
    "leakage_vs_f1": "leakage_vs_f1.png",
}
"""File names of the four figures under artifacts/analysis/."""

_BACKBONE_RANK = {"text_encoder_out": 0, "pre_vocoder": 2}


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def layer_sort_key(source: str, layer: str) -> tuple:
    """Natural depth order: for the backbone text_encoder_out, decoder_block_NN ascending, pre_vocoder."""
    if source == "backbone":
        rank = _BACKBONE_RANK.get(layer, 1 if layer.startswith("decoder_block_") else 3)
        return (rank, _natural(layer))
    return (0, _natural(layer))


def source_sort_key(source: str) -> tuple:
    return (SOURCE_ORDER.index(source), "") if source in SOURCE_ORDER else (len(SOURCE_ORDER), source)


def ordered(metrics: pd.DataFrame, layer_order: Optional[Mapping[str, Sequence[str]]] = None) -> pd.DataFrame:
    """Rows grouped by source (SOURCE_ORDER) and in layer depth order within a source.

    `layer_order` maps a source to its configured layer list (e.g. backbone -> cfg.sources.backbone.layers);
    layers named there come in that order, any others after them in natural order.
    """
    layer_order = layer_order or {}

    def key(row: pd.Series) -> tuple:
        src, layer = str(row["source"]), str(row["layer"])
        given = list(layer_order.get(src, ()))
        pos = (0, given.index(layer), ()) if layer in given else (1, 0, layer_sort_key(src, layer))
        return (source_sort_key(src), pos)

    keys = metrics.apply(key, axis=1) if len(metrics) else pd.Series([], dtype=object)
    return metrics.iloc[sorted(range(len(metrics)), key=lambda i: keys.iloc[i])].reset_index(drop=True)
