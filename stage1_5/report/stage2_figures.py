"""The Stage 2 figures (erasure per backbone layer, CKA heatmap), in the style of `report.figures`:
already computed results in, one PNG written atomically, its path out."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from stage1_5.decision.levels import Decision, Level
from stage1_5.report.figures import LEVEL_COLOURS, _group_spans, _save, _source_colour
from stage1_5.report.layout import STAGE2_FIGURES, ordered
from stage1_5.sources import decides, deciding_label

BEFORE, AFTER, CHANCE = "#90a4ae", "#37474f", LEVEL_COLOURS[Level.NOGO]


def _bars(ax, xs: np.ndarray, before: np.ndarray, after: np.ndarray, drop_low: np.ndarray, drop_high: np.ndarray) -> None:
    """Paired bars (before light, after dark); the error bar on `after` is the drop's interval."""
    low, high = before - drop_high, before - drop_low
    width = 0.38
    ax.bar(xs - width / 2, before, width, color=BEFORE, zorder=2)
    yerr = np.vstack([after - low, high - after])
    yerr = np.where(np.isfinite(yerr), np.clip(yerr, 0, None), 0.0)
    ax.bar(xs + width / 2, after, width, color=AFTER, yerr=yerr, capsize=3, zorder=2, error_kw={"elinewidth": 1})


def plot_erasure(
    metrics: pd.DataFrame,
    decision: Decision,
    path: str | Path,
    *,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
) -> Path:
    """Two panels over the deciding (backbone) layers: within-accent speaker-ID accuracy before / after
    erasing accent, with chance; accent F1 before / after erasing the within-accent speaker contrasts."""
    rows = ordered(metrics, layer_order)
    rows = rows[[decides(str(s)) for s in rows["source"]]].reset_index(drop=True)
    get = lambda col: rows[col].to_numpy(float) if col in rows.columns else np.full(len(rows), np.nan)  # noqa: E731
    xs = np.arange(len(rows), dtype=float)
    width = min(max(8.0, 2.5 + 1.1 * len(rows)), 18)
    fig = Figure(figsize=(width, 5.2))
    left, right = fig.subplots(1, 2, sharex=True)

    before, after = get("erase_accent_speaker_acc"), get("erase_accent_speaker_acc_erased")
    _bars(left, xs, before, after, get("erase_accent_speaker_drop_ci_low"), get("erase_accent_speaker_drop_ci_high"))
    left.scatter(xs, get("erase_accent_speaker_chance"), marker="_", s=400, color=CHANCE, zorder=3)
    for x, loss in zip(xs, get("erase_accent_speaker_loss")):
        if np.isfinite(loss):
            lost = f"{'−' if loss >= 0 else '+'}{abs(100 * loss):.0f}%"  # a negative loss is a gain: "+4%", never "−-4%"
            left.annotate(lost, (x, 1.0), xytext=(0, -12), textcoords="offset points", ha="center", fontsize=8)
    left.set_title("Erase accent → within-accent speaker ID", fontsize=10)
    left.set_ylabel("accuracy (held-out speakers)")

    base, erased = get("erase_speaker_accent_f1_base"), get("erase_speaker_accent_f1")
    _bars(right, xs, base, erased, get("erase_speaker_accent_f1_drop_ci_low"), get("erase_speaker_accent_f1_drop_ci_high"))
    right.set_title("Erase within-accent speaker contrasts → accent F1", fontsize=10)
    right.set_ylabel("accent macro-F1 (held-out speakers)")

    best = decision.best_representation
    labels = [f"★ {r.layer}" if r.representation == best else str(r.layer) for r in rows.itertuples()]
    for ax in (left, right):
        ax.set_ylim(0, 1.05)
        ax.set_xticks(xs, labels, rotation=40, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    handles = [
        Patch(color=BEFORE, label="before erasure"),
        Patch(color=AFTER, label="after erasure (error bar: 95% CI of the drop)"),
        Line2D([], [], color=CHANCE, marker="_", linestyle="", markersize=14, label="chance (1 / held-out speakers of the accent)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3 if width >= 11 else 2, fontsize=8, frameon=False)
    deciding = deciding_label(rows["representation"])
    none = f" (no {deciding} layer analysed)" if rows.empty else ""
    fig.suptitle(f"LEACE concept erasure per {deciding} layer{none}\n−x%: share of above-chance speaker ID lost (+x%: gained)", fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if width >= 11 else 0.1, 1, 1))
    return _save(fig, path)


def plot_cka(
    cka: pd.DataFrame,
    metrics: pd.DataFrame,
    path: str | Path,
    *,
    highlight: Optional[str] = None,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
) -> Path:
    """CKA heatmap, rows and columns in the report's order (grouped by source, separators between
    sources); values written in the cells when there are few enough; `highlight` in bold."""
    known = ordered(metrics[metrics["representation"].isin(cka.index)], layer_order)
    names = list(known["representation"]) + [n for n in cka.index if n not in set(known["representation"])]
    matrix = cka.loc[names, names].to_numpy(float)
    n = len(names)
    side = min(max(5.0, 0.42 * n + 3.0), 18)
    fig = Figure(figsize=(side + 1.5, side))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    if n <= 24:
        for (i, j), v in np.ndenumerate(matrix):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.6 else "white")
    ax.set_xticks(range(n), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    for tick_labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        for label in tick_labels:
            label.set_color(_source_colour(label.get_text().partition(":")[0]))
            if label.get_text() == highlight:
                label.set_fontweight("bold")
    for _, first, _ in _group_spans([name.partition(":")[0] for name in names]):
        if first > 0:
            ax.axhline(first - 0.5, color="white", linewidth=1.5)
            ax.axvline(first - 0.5, color="white", linewidth=1.5)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="linear CKA")
    ax.set_title("Layer similarity (linear CKA, held-out speakers)" + (f"\nbold: best layer {highlight}" if highlight else ""), fontsize=10, loc="left")
    fig.tight_layout()
    return _save(fig, path)


def render_stage2_figures(
    metrics: pd.DataFrame,
    cka: Optional[pd.DataFrame],
    decision: Decision,
    out_dir: str | Path,
    *,
    highlight: Optional[str] = None,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
) -> Dict[str, Path]:
    """Write the Stage 2 figures under `out_dir` (names in `layout.STAGE2_FIGURES`); the CKA heatmap
    only when there is a matrix."""
    out = Path(out_dir)
    paths = {"erasure": plot_erasure(metrics, decision, out / STAGE2_FIGURES["erasure"], layer_order=layer_order)}
    if cka is not None and len(cka):
        paths["cka"] = plot_cka(cka, metrics, out / STAGE2_FIGURES["cka"], highlight=highlight, layer_order=layer_order)
    return paths
