"""Every figure of the demo and of the GO demo reads on its own: no text leaves the canvas, and no two
texts written in one plot (point labels, cell values) cover each other.

The figures are drawn from the metrics, confusion matrix and CKA matrix that `make demo` and
`make demo-go` wrote (tests/data/report_figures/<demo>/, copied from runs/<demo>/artifacts), through the
report's own figure functions; after drawing, every visible text artist's window extent must lie
inside the figure's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text

import stage1_5.report.figures as figures
import stage1_5.report.stage2_figures as stage2_figures
from stage1_5.config import ExperimentConfig
from stage1_5.decision import decide

DATA = Path(__file__).resolve().parent / "data" / "report_figures"
DEMOS = sorted(p.name for p in DATA.iterdir() if p.is_dir())


@pytest.fixture
def drawn(monkeypatch):
    """{file name: Figure} of every figure saved while the fixture is active."""
    out = {}
    save = figures._save

    def keep(fig, path):
        out[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    monkeypatch.setattr(stage2_figures, "_save", keep)
    return out


def _undrawn_tick_labels(fig) -> set[int]:
    """Tick labels of ticks outside their axis' view interval: matplotlib keeps them but never draws them."""
    skip = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    skip |= {id(tick.label1), id(tick.label2)}
    return skip


def _outside(fig) -> list[str]:
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    box = fig.bbox
    bad = []
    skip = _undrawn_tick_labels(fig)
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip() or id(text) in skip:
            continue
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.y0 < box.y0 - 1 or ext.x1 > box.x1 + 1 or ext.y1 > box.y1 + 1:
            bad.append(f"{text.get_text()[:60]!r} at x {ext.x0:.0f}..{ext.x1:.0f}, y {ext.y0:.0f}..{ext.y1:.0f} (canvas {box.x1:.0f}×{box.y1:.0f})")
    return bad


def _overlapping(fig) -> list[str]:
    """Pairs of texts drawn inside one axes (annotations, cell values) whose boxes overlap."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    bad = []
    for ax in fig.axes:
        # Text's own extent: the words, without an annotation's connector line
        boxes = [(t.get_text(), Text.get_window_extent(t, renderer)) for t in ax.texts if t.get_visible() and t.get_text().strip()]
        for i, (a, box_a) in enumerate(boxes):
            bad += [f"{a!r} over {b!r}" for b, box_b in boxes[i + 1 :] if box_a.overlaps(box_b)]
    return bad


def _draw_demo(demo: str, tmp_path: Path) -> None:
    folder = DATA / demo
    metrics = pd.read_csv(folder / "metrics.csv")
    decision = decide(metrics, ExperimentConfig())
    confusion = pd.read_csv(folder / "confusion_best.csv", index_col=0)
    figures.render_figures(
        metrics, {decision.best_representation: (list(confusion.index), confusion.to_numpy())}, decision, tmp_path, fold_seeds=2
    )
    cka = pd.read_csv(folder / "cka.csv", index_col=0)
    stage2_figures.render_stage2_figures(metrics, cka, decision, tmp_path, highlight=decision.best_representation)


@pytest.mark.parametrize("demo", DEMOS)
def test_no_two_texts_of_one_plot_cover_each_other(demo, drawn, tmp_path):
    _draw_demo(demo, tmp_path)
    overlapping = {name: bad for name, fig in drawn.items() if (bad := _overlapping(fig))}
    assert not overlapping, "\n".join(f"{name}: {line}" for name, bad in overlapping.items() for line in bad)


@pytest.mark.parametrize("demo", DEMOS)
def test_no_text_of_any_demo_figure_leaves_the_canvas(demo, drawn, tmp_path):
    _draw_demo(demo, tmp_path)
    assert set(drawn) == {"metrics_heatmap.png", "f1_by_layer.png", "confusion_best.png", "leakage_vs_f1.png", "erasure.png", "cka.png"}
    outside = {name: bad for name, fig in drawn.items() if (bad := _outside(fig))}
    assert not outside, "\n".join(f"{name}: {line}" for name, bad in outside.items() for line in bad)
