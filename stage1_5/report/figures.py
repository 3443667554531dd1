"""The report's PNG figures. Each function takes already computed results and a path, draws, writes
the PNG atomically and returns the path; pass/fail comes from the `Decision`, never recomputed here.

Figures are drawn on `matplotlib.figure.Figure` objects (Agg canvas), so no pyplot global state and
no display backend is touched.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from stage1_5.decision.levels import Decision, Level, is_missing
from stage1_5.decision.wording import fmt_p
from stage1_5.io import atomic_write_bytes
from stage1_5.report.layout import FIGURES, ordered
from stage1_5.sources import decides, deciding_label, source_sort_key, source_spec, source_style

LEVEL_COLOURS = {Level.GO: "#2e7d32", Level.CONDITIONAL: "#f9a825", Level.NOGO: "#c62828"}
LEVEL_SHORT = {Level.GO: "GO", Level.CONDITIONAL: "COND", Level.NOGO: "NOGO"}
LEVEL_MARKERS = {Level.GO: "o", Level.CONDITIONAL: "D", Level.NOGO: "X"}
"""A point's level by its shape as well as its fill, so that GO and NOGO differ without colour vision."""
# gate cell colours: passes GO, passes only the conditional gate, fails, not gated
CELL_GO, CELL_COND, CELL_FAIL, CELL_CONTEXT = "#a5d6a7", "#ffe082", "#ef9a9a", "#e3eaf2"
BEST_RING = dict(s=260, marker="o", facecolor="none", edgecolor="black", linewidth=1.6, zorder=5)
"""The best representation: a ring drawn around its point, so that it hides no other point."""


def _source_colour(source: str) -> str:
    return source_style(source)[0]


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())
    return path


def _group_spans(sources: Sequence[str]) -> List[Tuple[str, int, int]]:
    """(source, first index, last index) of each run of equal sources in an ordered list."""
    spans: List[Tuple[str, int, int]] = []
    for i, s in enumerate(sources):
        if spans and spans[-1][0] == s:
            spans[-1] = (s, spans[-1][1], i)
        else:
            spans.append((s, i, i))
    return spans


# --------------------------------------------------------------------------------------------------
# heatmap: representation x metric, every gate marked


def _gate_cell(decision: Decision, rep: str, metric: str) -> Tuple[str, str]:
    """(colour, mark) of one gated cell from the decision's checks."""
    a = decision.assessments[rep]
    if not a.checks:  # a failed probe: no gate was tested
        return CELL_FAIL, "—"
    go = a.check(metric, "go")
    if go.passed:
        return CELL_GO, "✓"
    if a.check(metric, "conditional").passed:
        return CELL_COND, "~"
    return CELL_FAIL, "✗"


def plot_metric_heatmap(
    metrics: pd.DataFrame,
    decision: Decision,
    path: str | Path,
    *,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
) -> Path:
    """Representation x metric table: gated cells coloured by pass/fail, context cells pale blue."""
    rows = ordered(metrics, layer_order)
    strict = bool(decision.thresholds.get("strict"))
    # (column title, metrics column, gate metric or None, formatter)
    columns = [
        ("Accent F1", "accent_f1", None if strict else "accent_f1", lambda v: f"{v:.2f}"),
        ("F1 CI low", "accent_f1_ci_low", "accent_f1" if strict else None, lambda v: f"{v:.2f}"),
        ("Leak excess\n(pp)", "leak_excess_pp", "leakage", lambda v: f"{v:+.1f}"),
        ("Text drop", "text_drop", "text_drop", lambda v: f"{v:.2f}"),
        ("p family-wise", "p_value_fwer", "p_value", fmt_p),
        ("Speaker acc\n(context)", "speaker_acc", None, lambda v: f"{v:.2f}"),
    ]
    n, m = len(rows), len(columns) + 1
    fig = Figure(figsize=(1.25 * m + 4.0, 0.42 * n + 2.0))
    ax = fig.add_subplot(1, 1, 1)
    for i, row in rows.iterrows():
        rep = str(row["representation"])
        for j, (_, col, gate, fmt) in enumerate(columns):
            v = row.get(col)
            text = "n/a" if is_missing(v) else fmt(float(v))
            if gate is None:
                colour = CELL_CONTEXT
            else:
                colour, mark = _gate_cell(decision, rep, gate)
                text = f"{text} {mark}"
            ax.add_patch(_cell(j, i, colour))
            ax.text(j, i, text, ha="center", va="center", fontsize=9)
        level = decision.levels[rep]
        ax.add_patch(_cell(m - 1, i, LEVEL_COLOURS[level]))
        label = LEVEL_SHORT[level] + ("" if decides(str(row["source"])) else " (ref)")
        ax.text(m - 1, i, label, ha="center", va="center", fontsize=9, color="white", fontweight="bold")

    ax.set_xlim(-0.5, m - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks(range(m), [c[0] for c in columns] + ["Level"], fontsize=9)
    ax.xaxis.tick_top()
    best = decision.best_representation
    ticks = [f"★ {r['layer']}" if r["representation"] == best else str(r["layer"]) for _, r in rows.iterrows()]
    ax.set_yticks(range(n), ticks, fontsize=9)
    for lbl, (_, r) in zip(ax.get_yticklabels(), rows.iterrows()):
        if r["representation"] == best:
            lbl.set_fontweight("bold")
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    for src, first, last in _group_spans([str(s) for s in rows["source"]]):
        if first > 0:
            ax.axhline(first - 0.5, color="black", linewidth=1.5)
        ax.annotate(
            src, xy=(1.01, (first + last) / 2), xycoords=("axes fraction", "data"),
            ha="left", va="center", fontsize=10, fontweight="bold", color=_source_colour(src),
        )  # fmt: skip
    t = {**decision.thresholds, **applied_f1_lines(decision)}
    legend = [
        Patch(color=CELL_GO, label="✓ passes GO gate"),
        Patch(color=CELL_COND, label="~ passes the conditional gate only"),
        Patch(color=CELL_FAIL, label="✗ fails the conditional gate"),
        Patch(color=CELL_CONTEXT, label="context (not gated)"),
    ]
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        f"Gates: F1{' CI low' if strict else ''} ≥ {t['min_f1_go']:.2f} GO / {t['min_f1_conditional']:.2f} cond · "
        f"leak ≤ {t['leakage_margin_pp']:.1f} / {t['leakage_margin_conditional_pp']:.1f} pp · "
        f"text drop ≤ {t['max_text_drop']:.2f} · p < {t['alpha']:g} (GO)",
        fontsize=9, y=0.995,
    )  # fmt: skip
    fig.tight_layout()
    return _save(fig, path)


def _cell(x: float, y: float, colour: str) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=1.5)


# --------------------------------------------------------------------------------------------------
# accent F1 by layer


def applied_f1_lines(decision: Decision) -> dict[str, float]:
    """The thresholds actually applied to the best layer (chance-adjusted for this dataset's number of
    accents and speakers) and the chance level, keyed like the config's; the config's numbers without rows."""
    applied = decision.thresholds.get("applied") or {}
    t = decision.thresholds
    if not applied:
        return {"min_f1_go": t["min_f1_go"], "min_f1_conditional": t["min_f1_conditional"], "nogo_f1": t["nogo_f1"], "chance_f1": float("nan")}
    a = applied.get(decision.best_representation) or next(iter(applied.values()))
    return {
        "min_f1_go": a["f1_go"],
        "min_f1_conditional": a["f1_conditional"],
        "nogo_f1": a["nogo_f1"],
        "chance_f1": a["chance_f1"],
        "leakage_margin_pp": a["leak_go_pp"],
        "leakage_margin_conditional_pp": a["leak_conditional_pp"],
    }


def _threshold_lines(ax, t: Mapping[str, Any], label: bool) -> None:
    if np.isfinite(t.get("chance_f1", float("nan"))):
        ax.axhline(t["chance_f1"], color="black", linestyle=(0, (4, 3)), linewidth=0.9, alpha=0.7, zorder=1)
        if label:
            ax.annotate(
                f"chance {t['chance_f1']:.2f}", xy=(1.0, t["chance_f1"]), xycoords=("axes fraction", "data"),
                xytext=(3, 0), textcoords="offset points", va="center", fontsize=8, color="black",
            )  # fmt: skip
    for key, name, colour, style in (
        ("min_f1_go", "GO", LEVEL_COLOURS[Level.GO], "--"),
        ("min_f1_conditional", "conditional", LEVEL_COLOURS[Level.CONDITIONAL], "--"),
        ("nogo_f1", "NOGO below", LEVEL_COLOURS[Level.NOGO], ":"),
    ):
        ax.axhline(t[key], color=colour, linestyle=style, linewidth=1.2, zorder=1)
        if label:
            ax.annotate(
                f"{name} {t[key]:.2f}", xy=(1.0, t[key]), xycoords=("axes fraction", "data"),
                xytext=(3, 0), textcoords="offset points", va="center", fontsize=8, color=colour,
            )  # fmt: skip


def _draw_series(ax, xs: np.ndarray, group: pd.DataFrame, decision: Decision, colour: str, label: str):
    f1 = group["accent_f1"].to_numpy(float)
    lo = group["accent_f1_ci_low"].to_numpy(float)
    hi = group["accent_f1_ci_high"].to_numpy(float)
    if len(xs) > 1:
        ax.plot(xs, f1, color=colour, linewidth=1.8, zorder=3, label=label)
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.15, linewidth=0, zorder=2)
    else:
        yerr = np.array([[f1[0] - lo[0]], [hi[0] - f1[0]]])
        yerr = None if np.isnan(yerr).any() else yerr
        ax.errorbar(xs, f1, yerr=yerr, color=colour, capsize=4, zorder=3, label=label)
    for x, (_, row) in zip(xs, group.iterrows()):
        rep = row["representation"]
        level = decision.levels[rep]
        ax.scatter([x], [row["accent_f1"]], s=55, marker=LEVEL_MARKERS[level], facecolor=LEVEL_COLOURS[level], edgecolor=colour, linewidth=1.2, zorder=4)
        if rep == decision.best_representation:
            ax.scatter([x], [row["accent_f1"]], **BEST_RING)
    majority = group["majority_f1"].to_numpy(float)
    if len(xs) > 1:
        ax.plot(xs, majority, color="grey", linestyle=(0, (1, 2)), linewidth=1, zorder=1)
    else:  # one point: a dotted level across its slot (a short solid bar would read as an error-bar cap)
        ax.hlines(majority, xs - 0.45, xs + 0.45, color="grey", linestyle=(0, (1, 2)), linewidth=1, zorder=1)


def plot_f1_by_layer(metrics: pd.DataFrame, decision: Decision, path: str | Path) -> Path:
    """Accent F1 (95% CI band) per layer with the GO / conditional / NOGO lines; deciding sources
    (the backbone) left, references right. Layers are drawn in network depth, whatever order the config
    lists them in: the line is read as a trend over depth."""
    rows = ordered(metrics)
    t = {**decision.thresholds, **applied_f1_lines(decision)}
    deciding = rows["source"].map(lambda src: decides(str(src))).astype(bool)
    deciders, refs = rows[deciding], rows[~deciding]
    titles = [spec.title for src in dict.fromkeys(deciders["source"]) if (spec := source_spec(str(src))) is not None]
    decider = " + ".join(titles) or deciding_label().capitalize()
    panels = [(p, df) for p, df in ((f"{decider} (decides)", deciders), ("References (diagnose only)", refs)) if len(df)]
    if not panels:
        panels = [("No representations", rows)]
    widths = [max(len(df), 2) for _, df in panels]
    width = min(max(8.0, 3.0 + 0.55 * sum(widths)), 18)
    fig = Figure(figsize=(width, 5.4))
    axes = fig.subplots(1, len(panels), sharey=True, gridspec_kw={"width_ratios": widths}, squeeze=False)[0]
    for k, (ax, (title, df)) in enumerate(zip(axes, panels)):
        xs_all: List[float] = []
        labels: List[str] = []
        pos = 0.0
        for src, group in sorted(df.groupby("source", sort=False), key=lambda kv: source_sort_key(str(kv[0]))):
            xs = pos + np.arange(len(group), dtype=float)
            _draw_series(ax, xs, group, decision, _source_colour(str(src)), str(src))
            xs_all += list(xs)
            labels += [str(x) for x in group["layer"]]
            if df is refs or len(panels) == 1:
                ax.annotate(str(src), xy=(xs.mean(), 0.02), xycoords=("data", "axes fraction"), ha="center",
                            fontsize=9, fontweight="bold", color=_source_colour(str(src)), annotation_clip=False)  # fmt: skip
            pos = xs[-1] + 1.6
        _threshold_lines(ax, t, label=(k == len(panels) - 1))
        ax.set_xticks(xs_all, labels, rotation=40, ha="right", fontsize=8)
        ax.set_xlim(min(xs_all, default=0) - 0.8, max(xs_all, default=0) + 0.8)  # room for a source's name under one point
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 1.02)
    axes[0].set_ylabel("Accent macro-F1 (held-out speakers)")
    legend = [
        Line2D([], [], color="black", marker="o", linestyle="-", label="mean F1, band = 95% CI"),
        Line2D([], [], color="grey", linestyle=(0, (1, 2)), label="majority baseline"),
        Line2D([], [], color="black", linestyle=(0, (4, 3)), linewidth=0.9, label="chance (1/K)"),
        Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="", markersize=13, label="best representation (ring)"),
    ] + [Line2D([], [], color=c, marker=LEVEL_MARKERS[lv], linestyle="", label=f"{lv.label}") for lv, c in LEVEL_COLOURS.items()]
    fig.legend(handles=legend, loc="lower center", ncol=6 if width >= 11 else 3, fontsize=8, frameon=False)
    strict = " (strict: gates test the CI low)" if t.get("strict") else ""
    none = f" (no {deciding_label()} layer evaluated)" if deciders.empty else ""
    fig.suptitle(f"Accent F1 by layer — decision: {decision.decision.label}{none}{strict}", fontsize=12)
    fig.tight_layout(rect=(0, 0.06 if width >= 11 else 0.1, 0.97, 1))
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# confusion matrix


def plot_confusion(
    labels: Sequence[str], matrix: np.ndarray, path: str | Path, *, title: str = "", fold_seeds: Optional[int] = None
) -> Path:
    """Confusion matrix (rows = true accent) coloured by row share, annotated with counts and percentages
    (scikit-learn's `ConfusionMatrixDisplay`, drawn on the share, its cell texts given the counts too).
    `fold_seeds`: how many fold seeds the counts are summed over, said under the matrix."""
    from sklearn.metrics import ConfusionMatrixDisplay

    counts = np.asarray(matrix, dtype=float)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"confusion matrix shape {counts.shape} does not match {k} labels")
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    side = min(max(4.5, 0.9 * k + 2.5), 14)
    fig = Figure(figsize=(side + 1.2, side))
    ax = fig.add_subplot(1, 1, 1)
    display = ConfusionMatrixDisplay(share, display_labels=list(labels)).plot(
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=30, im_kw={"vmin": 0, "vmax": 1}, text_kw={"fontsize": 9}
    )
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_text(f"{int(counts[i, j])}\n{share[i, j]:.0%}")
        text.set_color("white" if share[i, j] > 0.6 else "black")  # against the fixed 0..1 scale, not the data's range
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    summed = (
        "\n" + textwrap.fill(f"counts summed over {fold_seeds} fold seeds: each held-out utterance is counted once per seed", int(11 * side))
        if fold_seeds and fold_seeds > 1 else ""
    )  # fmt: skip
    ax.set_xlabel(f"predicted accent{summed}")
    ax.set_ylabel("true accent")
    fig.colorbar(display.im_, ax=ax, fraction=0.046, pad=0.04, label="share of the true accent's utterances")
    ax.set_title(title or "Confusion matrix", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# leakage excess vs F1


def plot_leakage_vs_f1(metrics: pd.DataFrame, decision: Decision, path: str | Path) -> Path:
    """Speaker-leakage excess against the F1 the gates test, with the GO and conditional regions shaded."""
    t = {**decision.thresholds, **applied_f1_lines(decision)}
    strict = bool(t.get("strict"))
    rows = ordered(metrics)
    xs = np.array([decision.assessments[r].f1 for r in rows["representation"]], dtype=float)
    ys = rows["leak_excess_pp"].to_numpy(float)
    ok = ~(np.isnan(xs) | np.isnan(ys))
    y_lo = min(-5.0, float(np.nanmin(ys[ok])) - 3) if ok.any() else -5.0
    y_hi = max(t["leakage_margin_conditional_pp"] + 8, float(np.nanmax(ys[ok])) + 3) if ok.any() else 25.0

    fig = Figure(figsize=(9, 6.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.fill_between([t["min_f1_conditional"], 1.0], y_lo, t["leakage_margin_conditional_pp"],
                    color=LEVEL_COLOURS[Level.CONDITIONAL], alpha=0.15, linewidth=0, label="conditional-GO region")
    ax.fill_between([t["min_f1_go"], 1.0], y_lo, t["leakage_margin_pp"],
                    color=LEVEL_COLOURS[Level.GO], alpha=0.25, linewidth=0, label="GO region")  # fmt: skip
    ax.axvline(t["nogo_f1"], color=LEVEL_COLOURS[Level.NOGO], linestyle=":", linewidth=1.2,
               label=f"nogo_f1 {t['nogo_f1']:.2f}")  # fmt: skip
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlim(0, 1.03)  # a point at F1 = 1 is drawn whole
    ax.set_ylim(y_lo, y_hi)
    # label every deciding (backbone) layer, the best one, single-layer references, and the top layer of each other source
    top_ref = {}
    for i, (_, row) in enumerate(rows.iterrows()):
        src = str(row["source"])
        if ok[i] and not decides(src) and (src not in top_ref or xs[i] > xs[top_ref[src]]):
            top_ref[src] = i
    labels = []
    for i, (_, row) in enumerate(rows.iterrows()):
        if not ok[i]:
            continue
        rep, src = row["representation"], str(row["source"])
        best = rep == decision.best_representation
        level = decision.levels[rep]
        ax.scatter(
            [xs[i]], [ys[i]], s=70, marker=LEVEL_MARKERS[level],
            facecolor=LEVEL_COLOURS[level], edgecolor=_source_colour(src), linewidth=1.5, zorder=3,
        )  # fmt: skip
        if best:
            ax.scatter([xs[i]], [ys[i]], **BEST_RING)
        if decides(src) or best or top_ref.get(src) == i:
            name = str(row["layer"]) if decides(src) else f"{src}:{row['layer']}"
            labels.append((xs[i], ys[i], name, _source_colour(src), best))
    handles, _ = ax.get_legend_handles_labels()
    present = sorted({str(s) for s in rows["source"]}, key=source_sort_key)
    handles += [Patch(facecolor="white", edgecolor=_source_colour(s), linewidth=2, label=f"{s} (outline)") for s in present]
    handles += [Line2D([], [], marker=LEVEL_MARKERS[lv], color=c, linestyle="", label=lv.label) for lv, c in LEVEL_COLOURS.items()]
    handles += [Line2D([], [], marker="o", color="black", markerfacecolor="none", linestyle="", markersize=13, label="best representation")]
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=2, framealpha=0.9)
    ax.set_xlabel(f"Accent F1{' CI low (strict)' if strict else ''}")
    ax.set_ylabel("Speaker leakage A→S: excess over chance (pp)")
    ax.grid(alpha=0.3)
    title = "Leakage vs accent F1 (regions ignore text drop and p; fill and shape = level, outline = source)"
    if not all(decides(str(src)) for src in rows["source"]):
        title += "\nreference sources with several layers: only their best layer is labelled"
    missing = [str(r) for r, good in zip(rows["representation"], ok) if not good]
    if missing:
        title += f"\nnot plotted (not measured): {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}"
    ax.set_title(title, fontsize=9.5)
    fig.tight_layout()
    _place_labels(ax, labels, [(x, y) for x, y, good in zip(xs, ys, ok) if good])  # after layout: pixel boxes hold
    return _save(fig, path)


def _place_labels(
    ax, labels: Sequence[Tuple[float, float, str, str, bool]], points: Sequence[Tuple[float, float]]
) -> None:
    """Greedy label placement: try offsets around each point and keep the first whose drawn text box
    (measured by the renderer) overlaps no earlier label and no other point and stays inside the axes;
    when none is free, the one with the fewest collisions."""
    renderer = FigureCanvasAgg(ax.figure).get_renderer()
    pts = [tuple(ax.transData.transform((x, y))) for x, y in points]
    boxes: List[Any] = []
    candidates = [(6, 3), (6, -12), (-6, 3), (-6, -12), (6, 13), (6, -22), (-6, 13), (-6, -22), (10, 24), (10, -32),
                  (-10, 24), (-10, -32), (14, 36), (14, -44), (-14, 36), (-14, -44), (18, 50), (18, -58), (-18, 50), (-18, -58)]  # fmt: skip
    frame = ax.bbox  # a label must stay inside the axes: a point at the right edge is labelled on its left
    for x, y, text, colour, bold in labels:
        best = None
        for dx, dy in candidates:
            # every label has a connector line to its own point, so a label never seems to name a neighbour
            arrow = {"arrowstyle": "-", "color": colour, "lw": 0.6, "alpha": 0.8, "shrinkA": 0, "shrinkB": 4}
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=7.5, color=colour,
                               ha="right" if dx < 0 else "left", va="bottom", fontweight="bold" if bold else "normal",
                               arrowprops=arrow)  # fmt: skip
            note.update_positions(renderer)
            box = Text.get_window_extent(note, renderer)  # the words only: an annotation's own extent adds its connector
            # a label over a label cannot be read; one over a point only hides a marker's corner
            collisions = 5 * sum(box.overlaps(b) for b in boxes) + sum(box.x0 - 3 < p[0] < box.x1 + 3 and box.y0 - 3 < p[1] < box.y1 + 3 for p in pts)
            collisions += 10 * (box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0 or box.y1 > frame.y1)
            if best is None or collisions < best[0]:
                if best is not None:
                    best[1].remove()
                best = (collisions, note, box)
            else:
                note.remove()
            if collisions == 0:
                break
        boxes.append(best[2])


# --------------------------------------------------------------------------------------------------


def render_figures(
    metrics: pd.DataFrame,
    confusion: Mapping[str, Tuple[Sequence[str], np.ndarray]],
    decision: Decision,
    out_dir: str | Path,
    *,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
    fold_seeds: Optional[int] = None,
) -> Dict[str, Path]:
    """Write the four figures under `out_dir` (names in `layout.FIGURES`); the confusion matrix is the
    best representation's (its counts summed over `fold_seeds`) and is skipped when there is none or it has no matrix."""
    out = Path(out_dir)
    paths = {
        "heatmap": plot_metric_heatmap(metrics, decision, out / FIGURES["heatmap"], layer_order=layer_order),
        "f1_by_layer": plot_f1_by_layer(metrics, decision, out / FIGURES["f1_by_layer"]),
        "leakage_vs_f1": plot_leakage_vs_f1(metrics, decision, out / FIGURES["leakage_vs_f1"]),
    }
    best = decision.best_representation
    if best is not None and best in confusion:
        labels, matrix = confusion[best]
        title = f"{best} ({decision.decision.label}) — held-out speakers"
        paths["confusion"] = plot_confusion(labels, matrix, out / FIGURES["confusion"], title=title, fold_seeds=fold_seeds)
    return paths
