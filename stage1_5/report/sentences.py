"""The decision's sentences as the report and `stage1_5 run` show them, in `report.language`.

English shows the sentences `stage1_5.decision` wrote (rationale, diagnosis text, each layer's reasons)
word for word. Another language composes them from the Decision's typed fields instead: the level,
the best representation, each gate check's value, operator and threshold, and the diagnosis enum,
through the catalogue (`stage1_5.report.i18n`). Pure: no I/O.
"""

from __future__ import annotations

from typing import List

from stage1_5.config import Language
from stage1_5.data.confounds import RecordingProbe
from stage1_5.decision.levels import Decision, Diagnosis, GateCheck, Level, LevelAssessment, is_missing
from stage1_5.decision.wording import fmt_f1, fmt_p, fmt_pair
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
        leakage = check.metric == "leakage"
        value, threshold = fmt_pair(check.value, check.threshold, decimals=1 if leakage else 2, unit=" pp" if leakage else "", signed=leakage)
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


def _passes(assessment: LevelAssessment, metric: str) -> bool:
    try:
        return assessment.check(metric, "conditional").passed
    except KeyError:
        return False


def separating_references(decision: Decision, limit: int = 3) -> List[LevelAssessment]:
    """References whose F1 and family-wise p pass the conditional gates (the accent is in the audio),
    highest F1 first."""
    refs = [decision.assessments[r] for r in decision.references if r in decision.assessments]
    strong = [a for a in refs if not is_missing(a.f1) and _passes(a, "accent_f1") and _passes(a, "p_value")]
    return sorted(strong, key=lambda a: -a.f1)[:limit]


def diagnosis_sentence(decision: Decision, lang: Language = DEFAULT_LANGUAGE) -> str:
    """The diagnosis in one sentence (the rationale when there is no diagnosis): in English the decision's
    own; otherwise the diagnosis' meaning, the best deciding layer's F1 and the references that separate accents."""
    if lang == "en":
        return decision.diagnosis_text or decision.rationale
    if decision.diagnosis is None:
        return rationale(decision, lang)
    details = []
    best = decision.assessments.get(decision.best_representation or "")
    if best is not None:
        details.append(pt("details.best", deciding=deciding_label(decision.assessments), rep=best.representation, f1=fmt_f1(best.f1)))
    if best is not None and decision.diagnosis == Diagnosis.ACCENT_ENTANGLED and any(c.metric == "leakage" for c in best.failed("conditional")):
        details.append(pt("details.leakage_caveat"))
    refs = separating_references(decision)
    if refs:
        items = ", ".join(pt("details.reference", rep=a.representation, f1=fmt_f1(a.f1), p=fmt_p(a.check("p_value", "conditional").value)) for a in refs)
        details.append(pt("details.references", references=items))
    gloss = diagnosis_gloss(decision.diagnosis, lang)
    return pt("diagnosis", gloss=gloss, details="; ".join(details)) if details else gloss


def recording_probe_summary(probe: RecordingProbe, lang: Language = DEFAULT_LANGUAGE) -> str:
    """The recording probe's verdict in one phrase: in English the data layer's own; otherwise composed
    from its fields."""
    if lang == "en":
        return probe.summary
    return pt(
        "recording_probe", f1=f"{probe.accent_f1:.2f}", p=f"{probe.p_value:.3g}", permutations=probe.permutations,
        n_utterances=probe.n_utterances, n_speakers=probe.n_speakers, alpha=f"{probe.alpha:g}",
        verdict=pt("recording_probe.significant" if probe.significant else "recording_probe.not_significant"),
    )  # fmt: skip
