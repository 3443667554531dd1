"""Per-layer rules (DESIGN §5): every branch of `layer_level`, table-driven, at the default thresholds."""

import math

import pytest

from stage1_5.config import ExperimentConfig
from stage1_5.decision import Level, layer_level
from stage1_5.decision.dummies import dummy_metrics_row

NAN = float("nan")
DEFAULT = ExperimentConfig()
STRICT = ExperimentConfig(strict=True)

CASES = [
    # id, overrides, expected level, text that must appear in the reasons
    ("go", {}, Level.GO, "passes every GO gate"),
    ("go_at_exact_thresholds", dict(accent_f1=0.55, leak_excess_pp=7.0, text_drop=0.10, p_value_fwer=0.049), Level.GO, "passes"),
    ("conditional_f1_between_cond_and_go", dict(accent_f1=0.50), Level.CONDITIONAL, "F1 0.50 < 0.55 (GO)"),
    ("conditional_leak_between_margins", dict(leak_excess_pp=11.0), Level.CONDITIONAL, "leakage excess +11.0 pp > +7.0 pp (GO)"),
    ("nogo_family_p_not_below_alpha", dict(p_value_fwer=0.05), Level.NOGO, "family-wise p 0.050 >= 0.05 (max over 8 layers; conditional)"),
    ("nogo_family_p_nan", dict(p_value_fwer=NAN), Level.NOGO, "family-wise p not computed"),
    ("own_p_alone_does_not_pass", dict(p_value=0.001, p_value_fwer=0.2), Level.NOGO, "family-wise p 0.200"),
    ("nogo_leak_above_conditional_margin", dict(leak_excess_pp=15.5), Level.NOGO, "+15.5 pp > +15.0 pp (conditional)"),
    ("nogo_text_drop", dict(text_drop=0.11), Level.NOGO, "text_drop 0.11 > 0.10 (conditional)"),
    ("nogo_text_drop_nan", dict(text_drop=NAN), Level.NOGO, "text_drop not computed"),
    ("nogo_leak_nan", dict(leak_excess_pp=NAN), Level.NOGO, "leakage excess not computed"),
    ("borderline_band", dict(accent_f1=0.42), Level.NOGO, "borderline: F1 0.42 lies in [0.40, 0.45)"),
    ("clear_nogo", dict(accent_f1=0.30), Level.NOGO, "clear NOGO: F1 0.30 < 0.40"),
    ("failed_probe", dict(status="failed: NaN in row 5"), Level.NOGO, "probe failed: NaN in row 5"),
    ("rounding_never_reads_equal", dict(accent_f1=0.4496), Level.NOGO, "F1 0.4496 < 0.4500"),
]


@pytest.mark.parametrize("overrides, level, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_layer_level_branch(overrides, level, reason):
    a = layer_level(dummy_metrics_row(**overrides), DEFAULT)
    assert a.level == level
    assert any(reason in r for r in a.reasons), a.reasons


def test_borderline_flag_set_only_in_band():
    assert layer_level(dummy_metrics_row(accent_f1=0.40), DEFAULT).borderline
    assert not layer_level(dummy_metrics_row(accent_f1=0.39), DEFAULT).borderline
    assert not layer_level(dummy_metrics_row(accent_f1=0.45, text_drop=0.3), DEFAULT).borderline


def test_nogo_above_conditional_f1_is_not_borderline():
    a = layer_level(dummy_metrics_row(accent_f1=0.70, leak_excess_pp=30.0), DEFAULT)
    assert a.level == Level.NOGO and not a.borderline


@pytest.mark.parametrize(
    "ci_low, level",
    [(0.60, Level.GO), (0.50, Level.CONDITIONAL), (0.42, Level.NOGO)],
    ids=["ci_low_passes_go", "ci_low_flips_go_to_conditional", "ci_low_flips_go_to_nogo"],
)
def test_strict_mode_gates_ci_low(ci_low, level):
    row = dummy_metrics_row(accent_f1=0.72, accent_f1_ci_low=ci_low)
    assert layer_level(row, DEFAULT).level == Level.GO
    a = layer_level(row, STRICT)
    assert a.level == level
    assert a.f1 == ci_low


def test_strict_mode_reason_names_ci_low():
    a = layer_level(dummy_metrics_row(accent_f1=0.72, accent_f1_ci_low=0.50), STRICT)
    assert "F1 CI low 0.50 < 0.55 (GO, strict)" in a.reasons


def test_strict_mode_gates_the_upper_bounds_of_leakage_and_text_drop():
    row = dummy_metrics_row(leak_excess_pp=2.0, leak_excess_ci_high=9.0, text_drop=0.05, text_drop_ci_high=0.12)
    assert layer_level(row, DEFAULT).level == Level.GO
    a = layer_level(row, STRICT)
    assert a.level == Level.NOGO
    assert not a.check("text_drop", "conditional").passed and not a.check("leakage", "go").passed


def test_strict_mode_without_bootstrap_fails_f1_gate():
    a = layer_level(dummy_metrics_row(accent_f1_ci_low=NAN), STRICT)
    assert a.level == Level.NOGO
    assert not a.check("accent_f1", "conditional").passed


def test_checks_record_value_threshold_and_outcome():
    a = layer_level(dummy_metrics_row(leak_excess_pp=9.0), DEFAULT)
    go_leak = a.check("leakage", "go")
    assert (go_leak.value, go_leak.threshold, go_leak.passed) == (9.0, 7.0, False)
    assert a.check("leakage", "conditional").passed
    assert {(c.metric, c.level) for c in a.checks} == {
        (m, lv) for m in ("accent_f1", "leakage", "text_drop", "p_value") for lv in ("go", "conditional")
    }


def test_significance_is_required_at_the_conditional_level_too():
    a = layer_level(dummy_metrics_row(accent_f1=0.50, p_value_fwer=0.3), DEFAULT)
    assert a.level == Level.NOGO
    assert not a.check("p_value", "conditional").passed


def test_nan_p_check_serialises_as_null():
    a = layer_level(dummy_metrics_row(p_value_fwer=NAN), DEFAULT)
    p = a.check("p_value", "go").to_json()
    assert p["value"] is None and p["passed"] is False
    assert math.isnan(a.check("p_value", "go").value)


@pytest.mark.parametrize("k, go, conditional", [(2, 0.6625, 0.5875), (3, 0.55, 0.45), (5, 0.46, 0.34)])
def test_f1_thresholds_are_chance_adjusted(k, go, conditional):
    a = layer_level(dummy_metrics_row(n_accents=k), DEFAULT)
    assert a.check("accent_f1", "go").threshold == pytest.approx(go)
    assert a.check("accent_f1", "conditional").threshold == pytest.approx(conditional)
    assert a.check("accent_f1", "go").guide == 0.55


def test_two_accents_at_chance_plus_a_little_is_not_conditional():
    """F1 0.52 with 2 accents (chance 0.50) used to pass the fixed 0.45 threshold."""
    a = layer_level(dummy_metrics_row(n_accents=2, accent_f1=0.52, p_value_fwer=0.01), DEFAULT)
    assert a.level == Level.NOGO
    assert any("F1 0.52 < 0.59" in r and "guide 0.45, chance-adjusted" in r for r in a.reasons), a.reasons


def test_absolute_f1_scale_keeps_the_written_thresholds():
    a = layer_level(dummy_metrics_row(n_accents=2), ExperimentConfig(f1_scale="absolute"))
    assert a.check("accent_f1", "go").threshold == 0.55


def test_leakage_margin_scales_with_the_room_above_chance():
    four = layer_level(dummy_metrics_row(leak_chance=0.25), DEFAULT).check("leakage", "go").threshold
    eight = layer_level(dummy_metrics_row(leak_chance=0.125), DEFAULT).check("leakage", "go").threshold
    assert eight == pytest.approx(7.0) and four == pytest.approx(7.0 * 0.75 / 0.875)
    assert layer_level(dummy_metrics_row(leak_chance=0.25), ExperimentConfig(leakage_scale="absolute")).check("leakage", "go").threshold == 7.0


def test_custom_thresholds_are_used():
    loose = ExperimentConfig(min_f1_go=0.3, min_f1_conditional=0.2, nogo_f1=0.1)
    assert layer_level(dummy_metrics_row(accent_f1=0.35), loose).level == Level.GO


def test_dummy_row_follows_the_metrics_contract():
    from stage1_5.columns import METRIC_COLUMNS

    assert list(dummy_metrics_row()) == METRIC_COLUMNS
