"""The gate suite's pure rules: gate objects, the selection a session needs, and the exit status."""

from types import SimpleNamespace

import pytest

from fixtures.gating import (
    DecisionGate,
    GateMiss,
    GateSpec,
    LayerGate,
    SessionOutcomes,
    EXIT_ERROR,
    exit_status_for,
    needed_representations,
    session_verdict,
)
from stage1_5.config import ExperimentConfig
from stage1_5.decision import Level, decide, layer_level
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row

B08 = "backbone:decoder_block_08"
B00 = "backbone:decoder_block_00"


def _gate(metric: str, level: str, **row) -> LayerGate:
    return LayerGate(B08, level, metric, layer_level(dummy_metrics_row(B08, **row), ExperimentConfig()))


def test_a_gate_miss_is_an_assertion_error_with_the_rationale_sentence():
    with pytest.raises(GateMiss, match=r"^F1 0\.41 < 0\.55 \(GO\)$") as err:
        _gate("accent_f1", "go", accent_f1=0.41).assert_passes()
    assert isinstance(err.value, AssertionError)


def test_a_conditional_f1_gate_tests_the_conditional_threshold():
    _gate("accent_f1", "conditional", accent_f1=0.50).assert_passes()
    with pytest.raises(GateMiss, match=r"\(conditional\)"):
        _gate("accent_f1", "conditional", accent_f1=0.41).assert_passes()


def test_leakage_gates_use_the_margin_of_their_level():
    _gate("leakage", "conditional", leak_excess_pp=10.0).assert_passes()
    with pytest.raises(GateMiss, match=r"leakage excess \+10\.0 pp > \+7\.0 pp \(GO\)"):
        _gate("leakage", "go", leak_excess_pp=10.0).assert_passes()


def test_significance_is_gated_family_wise_at_both_levels():
    for level in ("go", "conditional"):
        with pytest.raises(GateMiss, match=rf"family-wise p 0\.200 >= 0\.05 \(max over 8 layers; {'GO' if level == 'go' else 'conditional'}\)"):
            _gate("p_value", level, p_value_fwer=0.2).assert_passes()


def test_gate_marker_rejects_unknown_metrics_and_levels():
    assert GateSpec.from_marker(pytest.mark.stage1_5_gate("text_drop").mark, "t") == GateSpec("text_drop")
    with pytest.raises(ValueError, match="unknown gate metric 'f1'"):
        GateSpec.from_marker(pytest.mark.stage1_5_gate("f1").mark, "t")
    with pytest.raises(ValueError, match="levels"):
        GateSpec.from_marker(pytest.mark.stage1_5_gate("accent_f1", levels=("nogo",)).mark, "t")
    with pytest.raises(ValueError, match="use @pytest.mark"):
        GateSpec.from_marker(pytest.mark.stage1_5_gate("accent_f1", level="go").mark, "t")


def _decision(**row):
    metrics = dummy_metrics([dummy_metrics_row(B08, **row)])
    return decide(metrics, ExperimentConfig())


@pytest.mark.parametrize(
    ("row", "accept", "accepted"),
    [
        ({}, "go", True),
        ({"accent_f1": 0.50}, "go", False),  # conditional GO
        ({"accent_f1": 0.50}, "conditional", True),
        ({"accent_f1": 0.30}, "conditional", False),  # NOGO
    ],
)
def test_the_decision_gate_accepts_levels_at_or_above_gate_accept(row, accept, accepted):
    assert DecisionGate(_decision(**row), accept).accepted is accepted


def test_a_nogo_decision_fails_with_its_rationale_and_diagnosis():
    verdict = DecisionGate(_decision(accent_f1=0.30), "conditional")
    assert verdict.decision.decision is Level.NOGO
    with pytest.raises(GateMiss, match=r"^Decision NOGO: No backbone layer reaches conditional GO.*Diagnosis: "):
        verdict.assert_accepted()


def test_an_unaccepted_conditional_go_names_the_option():
    with pytest.raises(GateMiss, match=r"^Decision GO_CONDITIONAL, not accepted \(--gate-accept go\)"):
        DecisionGate(_decision(accent_f1=0.50), "go").assert_accepted()


def _item(marker=None, params=None, fixturenames=()):
    return SimpleNamespace(
        get_closest_marker=lambda name: marker if name == "stage1_5_gate" else None,
        callspec=SimpleNamespace(params=params or {}),
        fixturenames=list(fixturenames),
    )


def test_selected_layer_gates_need_only_their_representations():
    gate = pytest.mark.stage1_5_gate("accent_f1").mark
    items = [_item(gate, {"representation": B08, "level": "go"}), _item(gate, {"representation": B08, "level": "conditional"})]
    assert needed_representations(items) == {B08}


def test_a_selected_decision_or_reference_test_needs_every_representation():
    gate = pytest.mark.stage1_5_gate("accent_f1").mark
    items = [_item(gate, {"representation": B08, "level": "go"}), _item(fixturenames=["stage1_5_probe_results"])]
    assert needed_representations(items) is None


def test_tests_that_read_no_features_need_nothing():
    assert needed_representations([_item(fixturenames=["stage1_5_dataset", "benchmark"])]) == set()


def _outcomes(gates=(), misses=(), crashes=(), decision=None) -> SessionOutcomes:
    out = SessionOutcomes(gate_misses=list(misses), crashes=list(crashes), decision=decision)
    for rep, level, passed in gates:
        out.record_gate(rep, level, passed)
    return out


def test_gate_misses_under_an_accepted_decision_exit_zero():
    outcomes = _outcomes(gates=[(B00, "go", False), (B08, "go", True)], misses=["t[b00-go]"], decision="GO")
    assert exit_status_for(1, outcomes, "go") == 0


def test_a_nogo_decision_exits_one():
    outcomes = _outcomes(gates=[(B08, "go", False)], misses=["t[b08-go]", "test_decision"], decision="NOGO")
    assert exit_status_for(1, outcomes, "conditional") == 1


def test_a_crash_exits_3_whatever_the_decision():
    outcomes = _outcomes(misses=["t[b00-go]"], crashes=["test_reference[ssl]"], decision="GO")
    assert exit_status_for(1, outcomes, "go") == EXIT_ERROR == 3


@pytest.mark.parametrize("pytest_status", [pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.NO_TESTS_COLLECTED])
def test_a_gate_session_that_could_not_judge_exits_3(pytest_status):
    outcomes = _outcomes()
    outcomes.gates_collected = True  # e.g. a config error during collection, or -k matching nothing
    assert exit_status_for(int(pytest_status), outcomes, "go") == EXIT_ERROR


def test_without_the_decision_a_selected_layer_must_pass_all_its_gates_at_an_accepted_level():
    conditional_layer = [(B08, "go", True), (B08, "go", False), (B08, "conditional", True), (B08, "conditional", True)]
    outcomes = _outcomes(gates=conditional_layer, misses=["t[b08-go]"])
    assert session_verdict(outcomes, "go") is False
    assert session_verdict(outcomes, "conditional") is True
    assert exit_status_for(1, outcomes, "conditional") == 0


def test_a_session_without_gate_tests_has_no_verdict_and_keeps_its_status():
    assert session_verdict(_outcomes(), "go") is None
    assert exit_status_for(5, _outcomes(), "go") == 5
