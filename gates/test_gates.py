"""The go/no-go gates (DESIGN §5, §7): `pytest gates --stage1-5-config config/x.yaml`.

Every backbone representation gets one test per gate and level, e.g.
`test_accent_f1[backbone:decoder_block_08-go]` and `...-conditional]`; `-k decoder_block_08` runs
(and extracts, and probes) one layer. The thresholds and the sentences are the decision module's
(`stage1_5.decision.layer_level`), so a gate reads like the report's rationale:
"F1 0.41 < 0.55 (GO)".

A layer reaches GO when its four `-go` tests pass (F1, leakage, text drop, family-wise significance)
and conditional GO when its four `-conditional` tests pass (significance is required at both levels). Per-layer misses are evidence; `test_decision` is
the verdict (the recommended backbone's, when several are listed), and the exit status follows it
(GO → 0, NOGO → 1; `--gate-accept conditional` lets a conditional GO pass). Each listed backbone
also gets its own verdict, `test_backbone_decision[csm1b]`: `-k csm1b` exits with that backbone's. A crash anywhere (dataset, extraction, probing) is an error, never a NOGO.
"""

import pytest


@pytest.mark.stage1_5_gate("accent_f1")
def test_accent_f1(stage1_5_gate):
    """Accent macro-F1 on held-out speakers reaches min_f1_go (go) or min_f1_conditional (conditional);
    with experiment.strict the CI's lower bound is tested instead."""
    stage1_5_gate.assert_passes()


@pytest.mark.stage1_5_gate("leakage")
def test_leakage(stage1_5_gate):
    """Speaker identity read from the accent direction, above chance within accent, stays within
    leakage_margin_pp (go) or leakage_margin_conditional_pp (conditional)."""
    stage1_5_gate.assert_passes()


@pytest.mark.stage1_5_gate("text_drop")
def test_text_drop(stage1_5_gate):
    """F1 on seen texts minus F1 on unseen texts stays within max_text_drop (both levels)."""
    stage1_5_gate.assert_passes()


@pytest.mark.stage1_5_gate("p_value")
def test_significance(stage1_5_gate):
    """The family-wise speaker-level permutation p (this layer's F1 against the null of the best
    backbone layer) is below alpha (both levels)."""
    stage1_5_gate.assert_passes()


@pytest.mark.stage1_5_reference
def test_reference(stage1_5_reference):
    """References (ssl, ecapa, acoustic, external columns) never decide; their numbers are recorded
    (Allure parameters, a CSV attachment, junit properties) and the test passes once they exist."""
    stage1_5_reference.assert_measured()


def test_decision(stage1_5_verdict):
    """The best backbone level reaches --gate-accept: NOGO always fails, conditional GO fails unless
    --gate-accept conditional. The failure message is the decision's rationale and diagnosis."""
    stage1_5_verdict.assert_accepted()


@pytest.mark.stage1_5_backbone
def test_backbone_decision(stage1_5_backbone_verdict):
    """This listed backbone's own decision (its layers, its family-wise p, `stage1_5.decision.backbones`)
    reaches --gate-accept; `-k csm1b` judges that backbone alone (its id is the backbone's name)."""
    stage1_5_backbone_verdict.assert_accepted()


def test_report(stage1_5_report, stage1_5_decision):
    """`stage1_5 run` over the same cache writes the Markdown report with the gates' decision."""
    report = stage1_5_report.paths.report_md.read_text(encoding="utf-8")
    assert stage1_5_report.decision.decision == stage1_5_decision.decision
    assert "## Decision" in report
    assert stage1_5_decision.decision.value in report
