"""Backbones compared side by side: the report's table and one figure (F1 by relative depth).

Reads the per-backbone decisions (`stage1_5.decision.backbones.BackboneComparison`) and the metrics;
recomputes nothing. Relative depth puts every backbone's configured layers on [0, 1] in network
order (first layer 0, last 1), so a 16-block and a 28-block backbone share one axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stage1_5.decision.backbones import BackboneComparison
from stage1_5.decision.wording import fmt_p
from stage1_5.report.figures import _save, _threshold_lines, applied_f1_lines
from stage1_5.sources import layer_sort_key, source_of, source_style

COMPARISON_FIGURE = "backbones_f1_by_depth.png"


def _rows(metrics: pd.DataFrame, backbone: str, layer_order: Optional[Mapping[str, Sequence[str]]]) -> pd.DataFrame:
    rows = metrics[metrics["representation"].map(lambda r: source_of(str(r)) == backbone)].copy()
    rows["layer"] = rows["representation"].map(lambda r: str(r).partition(":")[2])
    listed = list((layer_order or {}).get(backbone) or [])
    key = {layer: i for i, layer in enumerate(listed)}
    rows["order"] = rows["layer"].map(lambda layer: (0, key[layer]) if layer in key else (1, layer_sort_key(backbone, layer)))
    rows = rows.sort_values("order").reset_index(drop=True)
    rows["depth"] = np.linspace(0.0, 1.0, len(rows)) if len(rows) > 1 else np.zeros(len(rows))
    return rows


def comparison_lines(metrics: pd.DataFrame, comparison: BackboneComparison) -> List[str]:
    """The report's '## Backbones compared' section: one row per backbone (recommended first)."""
    rows = metrics.set_index("representation")
    lines = [
        "## Backbones compared",
        "",
        "Each backbone decides on its own layers (its own family-wise p); references never decide. The recommended "
        "backbone has the highest level, then the higher F1 lower bound of its best layer.",
        "",
        "| Backbone | Decision | Best layer | Accent F1 [CI] | family-wise p |",
        "|---|---|---|---|---|",
    ]
    for name in comparison.ranking:
        d = comparison.decisions[name]
        best = d.best_representation
        if best is None or best not in rows.index:
            lines.append(f"| {name} | {d.decision.label} | – | – | – |")
            continue
        r = rows.loc[best]
        mark = " (recommended)" if name == comparison.recommended else ""
        lines.append(
            f"| {name}{mark} | {d.decision.label} | `{best}` | {r['accent_f1']:.2f} [{r['accent_f1_ci_low']:.2f}, {r['accent_f1_ci_high']:.2f}] "
            f"| {fmt_p(r['p_value_fwer'])} |"
        )
    diff = comparison.difference
    if diff is not None:
        verdict = "an interval that excludes 0" if diff.ci_low > 0 or diff.ci_high < 0 else "an interval that includes 0: no clear winner"
        lines += [
            "",
            f"{diff.first} − {diff.second}, best layers' accent F1 (`{diff.first_representation}` − `{diff.second_representation}`): "
            f"{diff.difference:+.3f} [{diff.ci_low:+.3f}, {diff.ci_high:+.3f}] ({diff.level:.0%} paired speaker bootstrap, "
            f"{diff.draws} draws over the same folds' held-out predictions), {verdict}.",
        ]
    return lines + [""]


def plot_backbones_by_depth(
    metrics: pd.DataFrame,
    comparison: BackboneComparison,
    path: str | Path,
    layer_order: Optional[Mapping[str, Sequence[str]]] = None,
) -> Path:
    """Accent F1 (with its interval) by relative depth, one line per backbone, with chance and the
    applied thresholds of the recommended backbone's best layer; each backbone's best layer ringed."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    for name in comparison.decisions:
        rows = _rows(metrics, name, layer_order)
        if rows.empty:
            continue
        colour, marker = source_style(name)
        xs = rows["depth"].to_numpy(float)
        f1 = rows["accent_f1"].to_numpy(float)
        mark = ", recommended" if name == comparison.recommended else ""
        ax.plot(xs, f1, color=colour, marker=marker, linewidth=1.8, zorder=3, label=f"{name} ({comparison.decisions[name].decision.label}{mark})")
        ax.fill_between(xs, rows["accent_f1_ci_low"].to_numpy(float), rows["accent_f1_ci_high"].to_numpy(float), color=colour, alpha=0.15, linewidth=0)
        best = comparison.decisions[name].best_representation
        for x, (_, row) in zip(xs, rows.iterrows()):
            if row["representation"] == best:
                ax.scatter([x], [row["accent_f1"]], s=200, marker="o", facecolor="none", edgecolor="black", linewidth=1.4, zorder=5)
    _threshold_lines(ax, applied_f1_lines(comparison.decision), label=True)
    ax.set_xlim(-0.05, 1.05)
    ax.set_xlabel("relative depth (first configured layer 0, last 1)")
    ax.set_ylabel("accent macro-F1 (held-out speakers)")
    ax.set_title("Backbones compared: accent F1 by relative depth", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return _save(fig, path)
