"""GO / conditional GO / NOGO from the per-representation metrics table (DESIGN §5, issue 9). Pure.

Rules, each once:
- GO and conditional GO both need the family-wise permutation p (`p_value_fwer`: the layer's F1
  against the null of the best of the source's layers) < alpha: the decision picks the best layer, so
  the best layer's chance of looking good is what must be small. The per-layer p is context only.
- F1 and leakage thresholds are applied chance-relative (`thresholds.py`); messages give the value,
  the threshold applied and the guide's number.
- Strict mode gates the interval bounds: F1's lower bound, text drop's and leakage excess's upper bounds.
- A NaN gated metric fails its gate: an unmeasured quantity is never taken as good. A failed probe
  (status "failed: ...") is NOGO with its reason.
- References never decide; they support a diagnosis only when significant (their own family-wise
  p < alpha) and above the conditional F1 threshold.
- Diagnoses, first that applies: no_backbone, random_weights, significance_unreachable,
  dataset_too_small, balanced_nuisance (a deciding layer below chance and significantly below its
  permutation null), accent_entangled,
  backbone_inadequate, accents_not_separable.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

import pandas as pd

from stage1_5.config import ExperimentConfig
from stage1_5.decision.levels import Decision, Diagnosis, GateCheck, Level, LevelAssessment, RunFacts, is_missing
from stage1_5.decision.thresholds import AppliedThresholds, applied_thresholds
from stage1_5.decision.wording import fmt_f1, fmt_p, fmt_pair, fmt_pp, fmt_threshold, layer_summary, row_float
from stage1_5.errors import Stage15Error
from stage1_5.sources import decides, deciding_label, reference_label

DECISION_COLUMNS = (
    "representation",
    "source",
    "layer",
    "accent_f1",
    "accent_f1_ci_low",
    "accent_f1_ci_high",
    "p_value_fwer",
    "text_drop",
    "leak_excess_pp",
)
"""Columns of the metrics table (metrics.csv contract) that the rules read."""


LEAKAGE_CAVEAT = (
    " The leakage excess is measured on the fitted ridge probe, which reads above zero even on a clean code (calibration: about "
    "+2 pp in well-conditioned coordinates, +14 pp when the same clean code is seen through correlated coordinates): before "
    "concluding, compare Stage 2's speaker-erasure F1 (erase_speaker_accent_f1), which asks whether a speaker-free readout keeps the accent."
)
"""Said with an accent_entangled diagnosis that leakage caused (docs/statistics.md, leakage calibration)."""

def _int(row: Mapping[str, Any], key: str, default: int) -> int:
    v = row_float(row, key)
    return default if is_missing(v) else int(v)


def row_thresholds(row: Mapping[str, Any], cfg: ExperimentConfig) -> AppliedThresholds:
    """The thresholds this row is tested on (its number of accents and leakage chance)."""
    return applied_thresholds(cfg, n_accents=_int(row, "n_accents", cfg.reference_accents), leak_chance=row_float(row, "leak_chance"))


def tested_f1(row: Mapping[str, Any], cfg: ExperimentConfig) -> float:
    """The F1 the gates test: the interval's lower bound in strict mode, else the point estimate."""
    return row_float(row, "accent_f1_ci_low" if cfg.strict else "accent_f1")


def _tag(level: str, strict: bool) -> str:
    return ("GO" if level == "go" else "conditional") + (", strict" if strict else "")


def _guide(applied: float, guide: float) -> str:
    return "" if abs(applied - guide) < 5e-4 else f"; guide {fmt_threshold(guide)}, chance-adjusted"


def _f1_check(f1: float, thr: float, guide: float, level: str, strict: bool) -> GateCheck:
    name = "F1 CI low" if strict else "F1"
    if is_missing(f1):
        what = "not computed (probes.bootstrap: 0)" if strict else "not computed"
        return GateCheck("accent_f1", level, f1, thr, ">=", False, f"{name} {what} ({_tag(level, strict)})", guide)
    ok = f1 >= thr
    a, b = fmt_pair(f1, thr)
    return GateCheck("accent_f1", level, f1, thr, ">=", ok, f"{name} {a} {'>=' if ok else '<'} {b} ({_tag(level, strict)}{_guide(thr, guide)})", guide)


def _upper_check(metric: str, label: str, value: float, limit: float, guide: float, level: str, strict: bool, pp: bool) -> GateCheck:
    """A gate that passes when value <= limit (leakage excess, text drop); a missing value fails it."""
    name = f"{label} CI high" if strict else label
    if is_missing(value):
        return GateCheck(metric, level, value, limit, "<=", False, f"{name} not computed ({_tag(level, strict)})", guide)
    ok = value <= limit
    a, b = fmt_pair(value, limit, decimals=1 if pp else 2, unit=" pp" if pp else "", signed=pp)
    return GateCheck(metric, level, value, limit, "<=", ok, f"{name} {a} {'<=' if ok else '>'} {b} ({_tag(level, strict)}{_guide(limit, guide)})", guide)


def _p_check(p: float, alpha: float, level: str, family_size: int) -> GateCheck:
    family = f"max over {family_size} layers" if family_size > 1 else "one layer"
    if is_missing(p):
        msg = f"family-wise p not computed (probes.permutations: 0): significance cannot pass ({_tag(level, False)})"
        return GateCheck("p_value", level, p, alpha, "<", False, msg, alpha)
    ok = p < alpha
    return GateCheck("p_value", level, p, alpha, "<", ok, f"family-wise p {fmt_p(p)} {'<' if ok else '>='} {fmt_threshold(alpha)} ({family}; {_tag(level, False)})", alpha)


def layer_level(row: Mapping[str, Any], cfg: ExperimentConfig) -> LevelAssessment:
    """Level of one metrics row against the experiment thresholds.

    `reasons` says why the row is not higher: for conditional GO the GO gates it misses, for NOGO
    the conditional gates it misses (plus one note: borderline only when the layer is significant,
  a clear NOGO below nogo_f1, else not distinguishable from chance); for GO, that every gate passes.
    """
    t = row_thresholds(row, cfg)
    rep = str(row.get("representation", "?"))
    status = str(row.get("status", "ok") or "ok")
    f1 = tested_f1(row, cfg)
    if status != "ok" and status != "nan":
        return LevelAssessment(rep, Level.NOGO, [f"probe {status}"], [], float("nan"))
    excess = row_float(row, "leak_excess_ci_high" if cfg.strict else "leak_excess_pp")
    drop = row_float(row, "text_drop_ci_high" if cfg.strict else "text_drop")
    p = row_float(row, "p_value_fwer")
    size = _int(row, "family_size", 1)
    checks = []
    for level, f1_thr, f1_guide, leak, leak_guide in (
        ("go", t.f1_go, cfg.min_f1_go, t.leak_go_pp, cfg.leakage_margin_pp),
        ("conditional", t.f1_conditional, cfg.min_f1_conditional, t.leak_conditional_pp, cfg.leakage_margin_conditional_pp),
    ):
        checks += [
            _f1_check(f1, f1_thr, f1_guide, level, cfg.strict),
            _upper_check("leakage", "leakage excess", excess, leak, leak_guide, level, cfg.strict, pp=True),
            _upper_check("text_drop", "text_drop", drop, t.max_text_drop, cfg.max_text_drop, level, cfg.strict, pp=False),
            _p_check(p, t.alpha, level, size),
        ]
    go = [c for c in checks if c.level == "go"]
    cond = [c for c in checks if c.level == "conditional"]
    borderline = False
    if all(c.passed for c in go):
        level, reasons = Level.GO, ["passes every GO gate"]
    elif all(c.passed for c in cond):
        level, reasons = Level.CONDITIONAL, [c.message for c in go if not c.passed]
    else:
        level, reasons = Level.NOGO, [c.message for c in cond if not c.passed]
        if not is_missing(f1) and t.nogo_f1 <= f1 < t.f1_conditional and significant(row, cfg):
            borderline = True
            reasons.append(f"borderline: F1 {fmt_f1(f1)} lies in [{fmt_f1(t.nogo_f1)}, {fmt_f1(t.f1_conditional)}); more speakers may lift it")
        elif not is_missing(f1) and f1 < t.nogo_f1:
            a, b = fmt_pair(f1, t.nogo_f1)
            reasons.append(f"clear NOGO: F1 {a} < {b} (nogo_f1)")
        elif not is_missing(f1):
            reasons.append(f"not significant: nothing distinguishes F1 {fmt_f1(f1)} from chance (family-wise p {fmt_p(p)})")
    return LevelAssessment(rep, level, reasons, checks, f1, borderline)


def _validate(metrics: pd.DataFrame) -> None:
    missing = [c for c in DECISION_COLUMNS if c not in metrics.columns]
    if missing:
        raise Stage15Error(f"metrics table: missing column(s) {', '.join(missing)} (metrics.csv contract)")
    dup = metrics["representation"][metrics["representation"].duplicated()]
    if len(dup):
        raise Stage15Error(f"metrics table: representation {dup.iloc[0]!r} appears more than once")


def _rank_key(a: LevelAssessment, row: Mapping[str, Any]) -> tuple:
    """Highest tested F1 first, then point F1; NaN ranks last; ties by name for determinism."""
    f1 = -math.inf if is_missing(a.f1) else a.f1
    point = row_float(row, "accent_f1")
    return (-f1, math.inf if is_missing(point) else -point, a.representation)


def significant(row: Mapping[str, Any], cfg: ExperimentConfig) -> bool:
    """F1 above chance at the family-wise level alpha (what a reference needs to support a diagnosis)."""
    p = row_float(row, "p_value_fwer")
    return not is_missing(p) and p < cfg.alpha


def below_chance(row: Mapping[str, Any], cfg: ExperimentConfig) -> bool:
    """A deciding layer's F1 below chance and significantly below its permutation null (family-wise,
    min-T): anti-learning. Only the deciding source is consulted, so the diagnosis's rate on nulls
    without a nuisance is at most alpha."""
    p, f1 = row_float(row, "p_below_chance"), row_float(row, "accent_f1")
    chance = 1.0 / _int(row, "n_accents", cfg.reference_accents)
    return decides(str(row.get("source", ""))) and not is_missing(p) and p < cfg.alpha and f1 < chance


def decide(metrics: pd.DataFrame, thresholds: ExperimentConfig, *, facts: RunFacts = RunFacts()) -> Decision:
    """The decision is the best level over the deciding source's layers; references only diagnose."""
    _validate(metrics)
    rows = {str(r["representation"]): r for r in metrics.to_dict("records")}
    assessments = {rep: layer_level(row, thresholds) for rep, row in rows.items()}
    roles = {rep: ("backbone" if decides(str(row["source"])) else "reference") for rep, row in rows.items()}
    backbone = [assessments[r] for r in rows if roles[r] == "backbone"]
    if backbone:
        level = max((a.level for a in backbone), key=lambda lv: lv.rank)
        best: Optional[LevelAssessment] = sorted((a for a in backbone if a.level == level), key=lambda a: _rank_key(a, rows[a.representation]))[0]
    else:
        level, best = Level.NOGO, None
    rationale = _rationale(level, best, rows, backbone, thresholds)
    diagnosis, diagnosis_text = (None, None)
    if level == Level.NOGO:
        diagnosis, diagnosis_text = _diagnose(best, rows, roles, assessments, thresholds, facts)
    out = thresholds.model_dump(mode="json")
    out["applied"] = {r: row_thresholds(rows[r], thresholds).to_json() for r in rows} if rows else {}
    return Decision(
        decision=level,
        best_representation=best.representation if best else None,
        rationale=rationale,
        diagnosis=diagnosis,
        diagnosis_text=diagnosis_text,
        roles=roles,
        assessments=assessments,
        thresholds=out,
        facts=facts,
    )


def _layer_name(row: Mapping[str, Any]) -> str:
    layer = row.get("layer")
    return str(layer) if isinstance(layer, str) and layer else str(row["representation"])


def _rationale(level: Level, best: Optional[LevelAssessment], rows, backbone: Sequence[LevelAssessment], cfg: ExperimentConfig) -> str:
    if best is None:
        return f"No {deciding_label()} layer was evaluated, so no layer can pass; the references below only give context."
    row = rows[best.representation]
    n = len(backbone)
    deciding = deciding_label(a.representation for a in backbone)
    selected = f" (the best of {n} {deciding} layers)" if n > 1 else ""
    strict = " (strict: interval bounds gated)" if cfg.strict else ""
    if level == Level.GO:
        text = f"Layer {_layer_name(row)}{selected} passes GO thresholds ({layer_summary(row)}){strict}."
    elif level == Level.CONDITIONAL:
        text = f"Layer {_layer_name(row)}{selected} passes conditional-GO thresholds ({layer_summary(row)}){strict}; it misses GO: {'; '.join(best.reasons)}."
    else:
        misses = [r for r in best.reasons if not r.startswith(("borderline", "clear NOGO", "not significant"))]
        text = f"No {deciding} layer reaches conditional GO{strict}. Best layer: {_layer_name(row)} ({layer_summary(row)}); it fails {'; '.join(misses)}."
        t = row_thresholds(row, cfg)
        if best.borderline:
            text += f" Its F1 is in the borderline band [{fmt_f1(t.nogo_f1)}, {fmt_f1(t.f1_conditional)}) and significant: more speakers may lift it."
        elif not is_missing(best.f1) and best.f1 < t.nogo_f1:
            a, b = fmt_pair(best.f1, t.nogo_f1)
            text += f" F1 {a} < {b}: a clear NOGO."
        elif not is_missing(best.f1):
            text += f" Nothing distinguishes its F1 from chance (family-wise p {fmt_p(row_float(row, 'p_value_fwer'))} ≥ {fmt_threshold(cfg.alpha)})."
    n_at = sum(a.level == level for a in backbone)
    if level != Level.NOGO and n_at > 1:
        text += f" {n_at} of {n} {deciding} layers reach {level.label}."
    return text


def _diagnose(best, rows, roles, assessments, cfg: ExperimentConfig, facts: RunFacts) -> tuple[Diagnosis, str]:
    refs = [a for r, a in assessments.items() if roles[r] == "reference"]
    backbone = [a for r, a in assessments.items() if roles[r] == "backbone"]

    def cond_thr(a: LevelAssessment) -> float:
        return row_thresholds(rows[a.representation], cfg).f1_conditional

    strong_refs = sorted(
        (a for a in refs if not is_missing(a.f1) and a.f1 >= cond_thr(a) and significant(rows[a.representation], cfg)),
        key=lambda a: _rank_key(a, rows[a.representation]),
    )
    ref_text = ", ".join(f"{a.representation} F1={fmt_f1(a.f1)} (family-wise p={fmt_p(row_float(rows[a.representation], 'p_value_fwer'))})" for a in strong_refs[:3])
    if best is None:
        return Diagnosis.NO_BACKBONE, (
            f"No {deciding_label()} representation was evaluated (enable sources.backbone or name its layers); references never decide."
            + (f" References that separate accents: {ref_text}." if ref_text else "")
        )
    if facts.random_weights:
        return Diagnosis.RANDOM_WEIGHTS, (
            f"The {deciding_label()} has randomly initialised weights, so this NOGO says nothing about the released model: "
            "run with the real checkpoint (backbone.checkpoint)." + (f" The references do see the accent: {ref_text}." if ref_text else "")
        )
    if facts.significance_limit:
        return Diagnosis.SIGNIFICANCE_UNREACHABLE, f"This design cannot reach significance: {facts.significance_limit}."
    if facts.dataset_too_small:
        return Diagnosis.DATASET_TOO_SMALL, (
            "The dataset is below the design minima (see the dataset warnings): this NOGO is not evidence against the backbone; "
            "record more speakers and rerun."
        )
    anti = [r for r in rows if below_chance(rows[r], cfg)]
    if anti:
        shown = ", ".join(f"{r} F1={fmt_f1(row_float(rows[r], 'accent_f1'))} (family-wise p below the null {fmt_p(row_float(rows[r], 'p_below_chance'))})" for r in anti[:3])
        return Diagnosis.BALANCED_NUISANCE, (
            f"F1 is below chance and significantly below its permutation null ({shown}): a factor shared by every accent (a voice donor, a device, a session) "
            "tilts each fold against the held-out speakers. Add a group column to metadata.csv naming that factor, so folds keep whole groups out together."
        )
    entangled = [a for a in backbone if not is_missing(a.f1) and a.f1 >= cond_thr(a) and significant(rows[a.representation], cfg)]
    if entangled:
        fails = sorted({c.metric for a in entangled for c in a.failed("conditional")} - {"accent_f1", "p_value"})
        if fails:
            what = " and ".join({"leakage": "speaker leakage", "text_drop": "text drop"}.get(m, m) for m in fails)
            top = min(entangled, key=lambda a: _rank_key(a, rows[a.representation]))
            return Diagnosis.ACCENT_ENTANGLED, (
                f"{deciding_label().capitalize()} layers separate accents (best F1={fmt_f1(top.f1)} at {top.representation}) but fail on {what}: "
                "the accent direction is tied to speaker identity or to the sentences, not a clean accent code."
                + (LEAKAGE_CAVEAT if "leakage" in fails else "")
            )
    if strong_refs:
        return Diagnosis.BACKBONE_INADEQUATE, (
            f"References separate accents significantly ({ref_text}) while the best {deciding_label()} layer reaches F1={fmt_f1(best.f1)} "
            "without passing: the accent is in the audio but not linearly in this backbone's layers."
        )
    if not refs:
        return Diagnosis.ACCENTS_NOT_SEPARABLE, (
            f"The best {deciding_label()} layer reaches F1={fmt_f1(best.f1)} without passing and no reference ({reference_label()}) was "
            "evaluated to tell a weak backbone from inseparable data; enable a reference source."
        )
    best_ref = min(refs, key=lambda a: _rank_key(a, rows[a.representation]))
    return Diagnosis.ACCENTS_NOT_SEPARABLE, (
        f"No representation separates accents significantly (best {deciding_label()} F1={fmt_f1(best.f1)}, best reference "
        f"{best_ref.representation} F1={fmt_f1(best_ref.f1)}, p={fmt_p(row_float(rows[best_ref.representation], 'p_value_fwer'))}): "
        "the accents are not separable in this data with linear probes; check the labels and the recordings."
    )
