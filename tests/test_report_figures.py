"""Report figures are written as real PNGs for typical and edge inputs."""

import matplotlib.colors
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from stage1_5.config import ExperimentConfig
from stage1_5.decision import decide
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.report import FIGURES
from stage1_5.report.figures import (
    plot_confusion,
    plot_f1_by_layer,
    plot_leakage_vs_f1,
    plot_metric_heatmap,
    render_figures,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")


def assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 5_000  # something was drawn


def typical():
    layers = ["text_encoder_out", "decoder_block_04", "decoder_block_08", "pre_vocoder"]
    rows = [row(f"backbone:{l}", accent_f1=f, leak_excess_pp=lk) for l, f, lk in zip(layers, [0.4, 0.6, 0.72, 0.5], [1, 9, 2, 20])]
    rows += [row(f"ssl:layer_{i:02d}", accent_f1=0.5 + 0.05 * i) for i in range(4)]
    rows += [row("ecapa:embedding", accent_f1=0.8, leak_excess_pp=25.0), row("acoustic:mfcc_stats", p_value=NAN)]
    m = dummy_metrics(rows)
    return m, decide(m, ExperimentConfig())


EDGE_CASES = {
    "single_representation": [row()],
    "all_nan_p_values": [row("backbone:decoder_block_08", p_value=NAN), row("ssl:layer_01", p_value=NAN)],
    "nan_metrics": [row(accent_f1_ci_low=NAN, accent_f1_ci_high=NAN, leak_excess_pp=NAN, text_drop=NAN)],
    "references_only": [row("ssl:layer_01"), row("ecapa:embedding", accent_f1=0.3)],
    "strict_mode": [row(accent_f1_ci_low=0.5)],
}


def test_render_figures_writes_the_four_pngs(tmp_path):
    m, d = typical()
    labels = ["en-gb", "en-us", "en-029"]
    paths = render_figures(m, {d.best_representation: (labels, np.array([[9, 1, 0], [2, 7, 1], [0, 0, 10]]))}, d, tmp_path)
    assert {k: p.name for k, p in paths.items()} == FIGURES
    for p in paths.values():
        assert_png(p)


def test_render_figures_skips_confusion_without_matrix(tmp_path):
    m, d = typical()
    assert "confusion" not in render_figures(m, {}, d, tmp_path)


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_figures_handle_edge_inputs(case, tmp_path):
    m = dummy_metrics(EDGE_CASES[case])
    d = decide(m, ExperimentConfig(strict=case == "strict_mode"))
    for plot, name in ((plot_metric_heatmap, "h.png"), (plot_f1_by_layer, "f.png"), (plot_leakage_vs_f1, "l.png")):
        assert_png(plot(m, d, tmp_path / name))


def test_confusion_with_an_empty_true_row(tmp_path):
    path = plot_confusion(["a", "b"], np.array([[3, 1], [0, 0]]), tmp_path / "c.png", title="t")
    assert_png(path)


def test_confusion_rejects_mismatched_labels(tmp_path):
    with pytest.raises(ValueError, match="does not match 3 labels"):
        plot_confusion(["a", "b", "c"], np.eye(2), tmp_path / "c.png")


def test_figures_are_reproducible(tmp_path):
    m, d = typical()
    a = plot_metric_heatmap(m, d, tmp_path / "a.png").read_bytes()
    b = plot_metric_heatmap(m, d, tmp_path / "b.png").read_bytes()
    assert a == b


def _kept_figure(monkeypatch):
    import stage1_5.report.figures as figures

    kept = {}
    save = figures._save
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.setdefault("fig", fig) and save(fig, path))
    return kept


def test_f1_by_layer_draws_layers_in_depth_whatever_order_they_come_in(tmp_path, monkeypatch):
    kept = _kept_figure(monkeypatch)
    rows = [row(f"backbone:{layer}") for layer in ("decoder_block_08", "pre_vocoder", "decoder_block_00", "text_encoder_out")]
    m = dummy_metrics(rows)
    plot_f1_by_layer(m, decide(m, ExperimentConfig()), tmp_path / "f1.png")
    ticks = [t.get_text() for t in kept["fig"].axes[0].get_xticklabels()]
    assert ticks == ["text_encoder_out", "decoder_block_00", "decoder_block_08", "pre_vocoder"]


@pytest.mark.parametrize("plot", [plot_f1_by_layer, plot_leakage_vs_f1])
def test_go_and_nogo_points_differ_in_shape_not_only_in_colour(plot, tmp_path, monkeypatch):
    from stage1_5.decision.levels import Level
    from stage1_5.report.figures import LEVEL_COLOURS

    kept = _kept_figure(monkeypatch)
    m = dummy_metrics([row("backbone:decoder_block_08", accent_f1=0.9, p_value=0.001), row("backbone:decoder_block_00", accent_f1=0.2, p_value=0.9)])
    d = decide(m, ExperimentConfig())
    assert {d.levels[r] for r in m["representation"]} == {Level.GO, Level.NOGO}
    plot(m, d, tmp_path / "fig.png")
    shapes = {}
    for coll in kept["fig"].axes[0].collections:
        if not isinstance(coll, PathCollection):  # scatter points only, not the shaded regions
            continue
        face = coll.get_facecolor()
        for level, colour in LEVEL_COLOURS.items():
            if len(face) and np.allclose(face[0][:3], matplotlib.colors.to_rgb(colour)) and coll.get_paths():
                shapes[level] = coll.get_paths()[0].vertices.round(3).tobytes()
    assert set(shapes) == {Level.GO, Level.NOGO} and shapes[Level.GO] != shapes[Level.NOGO]
