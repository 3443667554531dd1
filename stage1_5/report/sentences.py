"""The decision's sentences as the report and `stage1_5 run` show them, in `report.language`.

English shows the sentences `stage1_5.decision` wrote (rationale, diagnosis text, each layer's reasons)
word for word. Another language composes them from the Decision's typed fields instead: the level,
the best representation, each gate check's value, operator and threshold, and the diagnosis enum,
through the catalogue (`stage1_5.report.i18n`). Pure: no I/O.
"""

from __future__ import annotations

from typing import List

from stage1_5.config import Language
from stage1_5.decision.levels import Decision, GateCheck, Level, LevelAssessment, is_missing
from stage1_5.decision.wording import fmt_p, fmt_pair
from stage1_5.report.i18n import DEFAULT_LANGUAGE, diagnosis_gloss, level_label, pt
from stage1_5.sources import deciding_label

PASSED_OP = {">=": "≥", "<=": "≤", "<": "<"}
FAILED_OP = {">=": "<", "<=": ">", "<": "≥"}
"""A gate's operator as printed when the value passes it, and when it fails it."""
ABOVE = {Level.CONDITIONAL: "go", Level.NOGO: "conditional"}
"""The gate level a representation failed to reach, by the level it sits at."""


def check_text(check: GateCheck) -> str:
    """One gate check in pt-BR: 'F1 0.41 < 0.45 (condicional)', 'excesso de vazamento +2.1 pp ≤ 6.9 pp (GO)'."""
    if check.metric == "p_value":
        value, threshold = fmt_p(check.value), f"{check.threshold:g}"
    elif is_missing(check.value):
        value, threshold = "n/a", f"{check.threshold:g}"
    else:
        unit = " pp" if check.metric == "leakage" else ""
        value, threshold = fmt_pair(check.value, check.threshold, unit=unit, signed=check.metric == "leakage")
    ops = PASSED_OP if check.passed else FAILED_OP
    return pt(
        "check", metric=pt(f"metric.{check.metric}"), value=value, op=ops.get(check.op, check.op),
        threshold=threshold, level=pt(f"gate.{check.level}"),
    )  # fmt: skip


def _checks_at(assessment: LevelAssessment, gate: str) -> List[GateCheck]:
    return [c for c in assessment.checks if c.level == gate]


def gate_reasons(assessment: LevelAssessment, lang: Language = DEFAULT_LANGUAGE) -> str:
    """Why a layer sits at its level: in English the decision's reasons; otherwise the gates it passes
    (GO) or the gates of the level above it that it fails."""
    if lang == "en":
        return "; ".join(assessment.reasons)
    if not assessment.checks:
        return pt("reasons.no_checks")
    if assessment.level == Level.GO:
        return pt("reasons.passed", level=level_label(Level.GO, lang))
    return "; ".join(check_text(c) for c in assessment.failed(ABOVE[assessment.level]))


def rationale(decision: Decision, lang: Language = DEFAULT_LANGUAGE) -> str:
    """Why the run got its decision: in English the decision's own sentence; otherwise the best
    representation's checks at the level it reached, or (NOGO) the diagnosis."""
    if lang == "en":
        return decision.rationale
    best = decision.best_representation
    if decision.decision != Level.NOGO and best in decision.assessments:
        gate = "go" if decision.decision == Level.GO else "conditional"
        checks = "; ".join(check_text(c) for c in _checks_at(decision.assessments[best], gate))
        return pt("rationale.level", best=best, level=level_label(decision.decision, lang), checks=checks)
    deciding = deciding_label(decision.assessments)
    if decision.diagnosis is None:
        return pt("rationale.nogo_plain", deciding=deciding)
    return pt("rationale.nogo", deciding=deciding, gloss=diagnosis_gloss(decision.diagnosis, lang))


def diagnosis_sentence(decision: Decision, lang: Language = DEFAULT_LANGUAGE) -> str:
    """The diagnosis in one sentence (the rationale when there is no diagnosis)."""
    if lang == "en":
        return decision.diagnosis_text or decision.rationale
    return diagnosis_gloss(decision.diagnosis, lang) if decision.diagnosis else rationale(decision, lang)
