"""GO / conditional GO / NOGO from the per-representation metrics table (DESIGN §5). Pure: no I/O.

Choices the design leaves open, made here once:

- A NaN p-value (``probes.permutations: 0``) cannot pass the GO significance gate: without a
  permutation test there is no evidence that F1 beats chance. Such a layer tops out at conditional GO.
- Any other NaN gated metric (text drop, leakage excess, F1 or, in strict mode, the CI's lower bound)
  fails its gate: an unmeasured quantity is never taken as good.
- Strict mode gates ``accent_f1_ci_low`` instead of ``accent_f1``, and the same value ranks layers
  and sets the borderline band, so one number drives everything the decision says about F1.
- No backbone row at all gives NOGO with diagnosis ``no_backbone`` (rather than an exception) so the
  run still writes its report with the reference numbers.
- A dataset under the design minima is named first among the NOGO diagnoses: with too few speakers
  the other diagnoses are not evidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional, Sequence

import pandas as pd

from stage1_5.config import TINY_RANDOM
from stage1_5.errors import Stage15Error

BACKBONE = "backbone"
"""The only source that decides; every other source is a reference that diagnoses a NOGO."""

DECISION_COLUMNS = (
    "representation",
    "source",
    "layer",
    "accent_f1",
    "accent_f1_ci_low",
    "accent_f1_ci_high",
    "p_value",
    "text_drop",
    "leak_excess_pp",
)
"""Columns of the metrics table (metrics.csv contract) that the rules read."""

class Level(str, Enum):
    """Decision level; the value is what decision.json and the report print."""

    GO = "GO"
    CONDITIONAL = "GO_CONDITIONAL"
    NOGO = "NOGO"

    @property
    def rank(self) -> int:
        return {Level.NOGO: 0, Level.CONDITIONAL: 1, Level.GO: 2}[self]

    @property
    def label(self) -> str:
        """Human wording for sentences ("passes conditional-GO thresholds")."""
        return {Level.GO: "GO", Level.CONDITIONAL: "conditional-GO", Level.NOGO: "NOGO"}[self]


@dataclass(frozen=True)
class GateCheck:
    """One threshold test: ``value <op> threshold`` at one level ("go" or "conditional")."""

    metric: str  # accent_f1 | leakage | text_drop | p_value
    level: str  # go | conditional
    value: float  # NaN when not measured
    threshold: float
    op: str  # ">=", "<=", "<"
    passed: bool
    message: str  # the sentence used in reasons, e.g. "F1 0.41 < 0.55 (GO)"

    def to_json(self) -> Dict[str, Any]:
        return {
            "metric": self.metric,
            "level": self.level,
            "value": _json_float(self.value),
            "threshold": self.threshold,
            "op": self.op,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class LevelAssessment:
    """The level one representation reaches, why, and every gate it was tested on."""

    representation: str
    level: Level
    reasons: List[str]
    checks: List[GateCheck]
    f1: float  # the F1 the gates tested (the CI's lower bound in strict mode)
    borderline: bool = False  # NOGO with nogo_f1 <= F1 < min_f1_conditional

    def check(self, metric: str, level: str) -> GateCheck:
        """The gate for `metric` at `level` ("go" / "conditional"); KeyError when not tested there."""
        for c in self.checks:
            if c.metric == metric and c.level == level:
                return c
        raise KeyError(f"no {metric!r} gate at level {level!r}")

    def failed(self, level: str) -> List[GateCheck]:
        return [c for c in self.checks if c.level == level and not c.passed]

    def to_json(self) -> Dict[str, Any]:
        return {
            "level": self.level.value,
            "reasons": list(self.reasons),
            "borderline": self.borderline,
            "f1_tested": _json_float(self.f1),
            "checks": [c.to_json() for c in self.checks],
        }


DIAGNOSES = {
    "no_backbone": "no backbone representation was evaluated",
    "dataset_too_small": "the dataset is below the design minima",
    "backbone_inadequate": "references separate accents, the backbone does not",
    "accent_entangled": "backbone separates accents but fails the speaker-leakage or text-drop gates",
    "accents_not_separable": "no representation separates accents in this data",
}
"""Diagnosis codes of a NOGO (decision.json `diagnosis`), with a one-line gloss."""


@dataclass(frozen=True)
class Decision:
    """The run's verdict: best backbone level, the layer behind it, and the numbers that justify it."""

    decision: Level
    best_representation: Optional[str]
    rationale: str
    diagnosis: Optional[str]  # a DIAGNOSES code, only for NOGO
    diagnosis_text: Optional[str]
    levels: Dict[str, Level]  # every representation, references included
    roles: Dict[str, str]  # representation -> "backbone" | "reference" (references never decide)
    assessments: Dict[str, LevelAssessment]
    thresholds: Dict[str, Any]
    scientific: bool
    dataset_too_small: bool
    caveats: List[str] = field(default_factory=list)  # why the result is not scientific

    @property
    def references(self) -> List[str]:
        return [r for r, role in self.roles.items() if role == "reference"]

    @property
    def borderline(self) -> List[str]:
        return [r for r, a in self.assessments.items() if a.borderline and self.roles[r] == BACKBONE]

    def to_json(self) -> Dict[str, Any]:
        """What the pipeline writes as decision.json (NaN becomes null)."""
        return {
            "decision": self.decision.value,
            "best_representation": self.best_representation,
            "rationale": self.rationale,
            "diagnosis": self.diagnosis,
            "diagnosis_text": self.diagnosis_text,
            "levels": {r: lv.value for r, lv in self.levels.items()},
            "roles": dict(self.roles),
            "references": self.references,
            "borderline": self.borderline,
            "layers": {r: a.to_json() for r, a in self.assessments.items()},
            "thresholds": dict(self.thresholds),
            "scientific": self.scientific,
            "dataset_too_small": self.dataset_too_small,
            "caveats": list(self.caveats),
        }


DATASET_CAVEAT = "the dataset is below the design minima (accents, speakers per accent or texts per speaker)"
RANDOM_BACKBONE_CAVEAT = "the backbone has randomly initialised weights (checkpoint 'tiny-random')"


# --------------------------------------------------------------------------------------------------
# formatting (shared with the report so the numbers read the same everywhere)


def is_missing(x: Any) -> bool:
    """None or NaN: a metric that was not measured."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def _json_float(x: Any) -> Optional[float]:
    return None if is_missing(x) else float(x)


def fmt_f1(x: float) -> str:
    return "n/a" if is_missing(x) else f"{x:.2f}"


def fmt_pp(x: float) -> str:
    return "n/a" if is_missing(x) else f"{x:+.1f} pp"


def fmt_p(x: float) -> str:
    """p-values: 3 decimals, small ones in scientific notation, NaN as 'n/a' (no permutation test)."""
    if is_missing(x):
        return "n/a"
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def fmt_threshold(x: float) -> str:
    return f"{x:g}"


def layer_summary(row: Mapping[str, Any]) -> str:
    """'F1=0.72 [0.65, 0.80], leakage excess=+2.1 pp, text_drop=0.05, p=0.004' for one metrics row."""
    lo, hi = _float(row, "accent_f1_ci_low"), _float(row, "accent_f1_ci_high")
    ci = "" if is_missing(lo) or is_missing(hi) else f" [{fmt_f1(lo)}, {fmt_f1(hi)}]"
    return (
        f"F1={fmt_f1(_float(row, 'accent_f1'))}{ci}, "
        f"leakage excess={fmt_pp(_float(row, 'leak_excess_pp'))}, "
        f"text_drop={fmt_f1(_float(row, 'text_drop'))}, "
        f"p={fmt_p(_float(row, 'p_value'))}"
    )


# --------------------------------------------------------------------------------------------------
# per-layer rules


def _float(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    if v is None:
        return float("nan")
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def tested_f1(row: Mapping[str, Any], thresholds: Any) -> float:
    """The F1 the gates test: the CI's lower bound in strict mode, else the point estimate."""
    return _float(row, "accent_f1_ci_low" if thresholds.strict else "accent_f1")


def _f1_check(f1: float, thr: float, level: str, strict: bool) -> GateCheck:
    name = "F1 CI low" if strict else "F1"
    tag = f"({'GO' if level == 'go' else 'conditional'}{', strict' if strict else ''})"
    if is_missing(f1):
        what = "not computed (probes.bootstrap: 0)" if strict else "not computed"
        return GateCheck("accent_f1", level, f1, thr, ">=", False, f"{name} {what} {tag}")
    ok = f1 >= thr
    sign = ">=" if ok else "<"
    return GateCheck("accent_f1", level, f1, thr, ">=", ok, f"{name} {fmt_f1(f1)} {sign} {fmt_f1(thr)} {tag}")


def _upper_bound_check(
    metric: str, label: str, value: float, limit: float, level: str, show_value, show_limit
) -> GateCheck:
    """A gate that passes when `value <= limit` (leakage excess, text drop); a missing value fails it."""
    tag = f"({'GO' if level == 'go' else 'conditional'})"
    if is_missing(value):
        return GateCheck(metric, level, value, limit, "<=", False, f"{label} not computed {tag}")
    ok = value <= limit
    sign = "<=" if ok else ">"
    return GateCheck(metric, level, value, limit, "<=", ok, f"{label} {show_value(value)} {sign} {show_limit(limit)} {tag}")


def _leak_check(excess: float, margin: float, level: str) -> GateCheck:
    return _upper_bound_check(
        "leakage", "leakage excess", excess, margin, level, fmt_pp, lambda m: f"{fmt_threshold(m)} pp"
    )


def _text_check(drop: float, max_drop: float, level: str) -> GateCheck:
    return _upper_bound_check("text_drop", "text_drop", drop, max_drop, level, fmt_f1, fmt_f1)


def _p_check(p: float, alpha: float) -> GateCheck:
    if is_missing(p):
        msg = "p not computed (probes.permutations: 0): the GO significance gate cannot pass (GO)"
        return GateCheck("p_value", "go", p, alpha, "<", False, msg)
    ok = p < alpha
    sign = "<" if ok else ">="
    return GateCheck("p_value", "go", p, alpha, "<", ok, f"p {fmt_p(p)} {sign} {fmt_threshold(alpha)} (GO)")


def layer_level(row: Mapping[str, Any], thresholds: Any) -> LevelAssessment:
    """Level of one metrics row against `thresholds` (an `ExperimentConfig`).

    `reasons` says why the row is not higher: for conditional GO the GO gates it misses, for NOGO
    the conditional gates it misses (plus the borderline note); for GO, that every gate passes.
    """
    t = thresholds
    f1 = tested_f1(row, t)
    excess = _float(row, "leak_excess_pp")
    drop = _float(row, "text_drop")
    go = [
        _f1_check(f1, t.min_f1_go, "go", t.strict),
        _leak_check(excess, t.leakage_margin_pp, "go"),
        _text_check(drop, t.max_text_drop, "go"),
        _p_check(_float(row, "p_value"), t.alpha),
    ]
    cond = [
        _f1_check(f1, t.min_f1_conditional, "conditional", t.strict),
        _leak_check(excess, t.leakage_margin_conditional_pp, "conditional"),
        _text_check(drop, t.max_text_drop, "conditional"),
    ]
    rep = str(row.get("representation", "?"))
    borderline = False
    if all(c.passed for c in go):
        level, reasons = Level.GO, ["passes every GO gate"]
    elif all(c.passed for c in cond):
        level, reasons = Level.CONDITIONAL, [c.message for c in go if not c.passed]
    else:
        level, reasons = Level.NOGO, [c.message for c in cond if not c.passed]
        if not is_missing(f1) and t.nogo_f1 <= f1 < t.min_f1_conditional:
            borderline = True
            reasons.append(
                f"borderline: F1 {fmt_f1(f1)} lies in [{fmt_f1(t.nogo_f1)}, {fmt_f1(t.min_f1_conditional)}); "
                "more speakers may lift it"
            )
        elif not is_missing(f1) and f1 < t.nogo_f1:
            reasons.append(f"clear NOGO: F1 {fmt_f1(f1)} < {fmt_f1(t.nogo_f1)} (nogo_f1)")
    return LevelAssessment(rep, level, reasons, go + cond, f1, borderline)


# --------------------------------------------------------------------------------------------------
# decision over layers


def _thresholds_dict(thresholds: Any) -> Dict[str, Any]:
    if hasattr(thresholds, "model_dump"):
        return thresholds.model_dump(mode="json")
    keys = ("min_f1_go", "min_f1_conditional", "nogo_f1", "leakage_margin_pp", "leakage_margin_conditional_pp",
            "max_text_drop", "alpha", "strict")  # fmt: skip
    return {k: getattr(thresholds, k) for k in keys}


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
    point = _float(row, "accent_f1")
    return (-f1, math.inf if is_missing(point) else -point, a.representation)


def decide(
    metrics: pd.DataFrame,
    thresholds: Any,
    *,
    scientific: bool,
    dataset_too_small: bool,
    caveats: Sequence[str] = (),
) -> Decision:
    """The decision is the best level over backbone layers; references (any other source) only diagnose.

    `caveats` say why the run is not scientific (see `scientific_caveats`); a dataset under the minima
    always makes the result not scientific and adds its caveat.
    """
    _validate(metrics)
    caveats = list(caveats)
    if dataset_too_small and DATASET_CAVEAT not in caveats:
        caveats.append(DATASET_CAVEAT)
    rows = {str(r["representation"]): r for r in metrics.to_dict("records")}
    assessments = {rep: layer_level(row, thresholds) for rep, row in rows.items()}
    roles = {rep: (BACKBONE if row["source"] == BACKBONE else "reference") for rep, row in rows.items()}
    backbone = [assessments[r] for r in rows if roles[r] == BACKBONE]
    refs = [assessments[r] for r in rows if roles[r] != BACKBONE]

    if backbone:
        level = max((a.level for a in backbone), key=lambda lv: lv.rank)
        at_level = sorted((a for a in backbone if a.level == level), key=lambda a: _rank_key(a, rows[a.representation]))
        best: Optional[LevelAssessment] = at_level[0]
    else:
        level, best = Level.NOGO, None

    rationale = _rationale(level, best, rows, backbone, thresholds)
    diagnosis, diagnosis_text = (None, None)
    if level == Level.NOGO:
        diagnosis, diagnosis_text = _diagnose(best, backbone, refs, rows, thresholds, dataset_too_small)
    return Decision(
        decision=level,
        best_representation=best.representation if best else None,
        rationale=rationale,
        diagnosis=diagnosis,
        diagnosis_text=diagnosis_text,
        levels={r: a.level for r, a in assessments.items()},
        roles=roles,
        assessments=assessments,
        thresholds=_thresholds_dict(thresholds),
        scientific=scientific and not dataset_too_small,
        dataset_too_small=dataset_too_small,
        caveats=caveats,
    )


def _layer_name(row: Mapping[str, Any]) -> str:
    layer = row.get("layer")
    return str(layer) if isinstance(layer, str) and layer else str(row["representation"])


def _rationale(
    level: Level,
    best: Optional[LevelAssessment],
    rows: Mapping[str, Mapping[str, Any]],
    backbone: Sequence[LevelAssessment],
    thresholds: Any,
) -> str:
    if best is None:
        return "No backbone layer was evaluated, so no layer can pass; the references below only give context."
    row = rows[best.representation]
    head = f"{_layer_name(row)} ({layer_summary(row)})"
    strict = " (strict: F1 gated on the CI's lower bound)" if thresholds.strict else ""
    if level == Level.GO:
        text = f"Layer {_layer_name(row)} passes GO thresholds ({layer_summary(row)}){strict}."
    elif level == Level.CONDITIONAL:
        text = (
            f"Layer {_layer_name(row)} passes conditional-GO thresholds ({layer_summary(row)}){strict}; "
            f"it misses GO: {'; '.join(best.reasons)}."
        )
    else:
        misses = [r for r in best.reasons if not r.startswith(("borderline", "clear NOGO"))]
        text = (
            f"No backbone layer reaches conditional GO{strict}. Best layer: {head}; "
            f"it fails {'; '.join(misses)}."
        )
        if best.borderline:
            text += (
                f" Its F1 is in the borderline band [{fmt_f1(thresholds.nogo_f1)}, "
                f"{fmt_f1(thresholds.min_f1_conditional)}): more speakers may lift it."
            )
        elif not is_missing(best.f1) and best.f1 < thresholds.nogo_f1:
            text += f" F1 {fmt_f1(best.f1)} < {fmt_f1(thresholds.nogo_f1)}: a clear NOGO."
    n_at = sum(a.level == level for a in backbone)
    if level != Level.NOGO and n_at > 1:
        text += f" {n_at} of {len(backbone)} backbone layers reach {level.label}."
    return text


def _diagnose(
    best: Optional[LevelAssessment],
    backbone: Sequence[LevelAssessment],
    refs: Sequence[LevelAssessment],
    rows: Mapping[str, Mapping[str, Any]],
    thresholds: Any,
    dataset_too_small: bool,
) -> tuple[str, str]:
    cond = thresholds.min_f1_conditional
    high_refs = sorted(
        (a for a in refs if not is_missing(a.f1) and a.f1 >= cond), key=lambda a: _rank_key(a, rows[a.representation])
    )
    ref_text = ", ".join(f"{a.representation} F1={fmt_f1(a.f1)}" for a in high_refs[:3])

    if best is None:
        return "no_backbone", (
            "No backbone representation was evaluated (enable sources.backbone or name backbone layers); "
            "references never decide." + (f" References that separate accents: {ref_text}." if ref_text else "")
        )

    best_f1 = best.f1
    if dataset_too_small:
        return "dataset_too_small", (
            "The dataset is below the design minima (see the dataset warnings): "
            "this NOGO is not evidence against the backbone; record more speakers and rerun."
        )
    if not is_missing(best_f1) and best_f1 >= cond:
        fails = sorted({c.metric for a in backbone if a.f1 >= cond for c in a.failed("conditional")} - {"accent_f1"})
        what = " and ".join({"leakage": "speaker leakage", "text_drop": "text drop"}.get(m, m) for m in fails)
        return "accent_entangled", (
            f"Backbone layers separate accents (best F1={fmt_f1(best_f1)} at {best.representation}) but fail on {what}: "
            "the accent direction is tied to speaker identity or to the sentences, not a clean accent code."
        )
    if high_refs:
        return "backbone_inadequate", (
            f"References separate accents ({ref_text}) while the best backbone layer reaches F1={fmt_f1(best_f1)} "
            f"< {fmt_f1(cond)}: the accent is in the audio but not linearly in this backbone's layers."
        )
    if not refs:
        return "accents_not_separable", (
            f"The best backbone layer reaches F1={fmt_f1(best_f1)} < {fmt_f1(cond)} and no reference "
            "(ssl, ecapa, acoustic) was evaluated to tell a weak backbone from inseparable data; enable a reference source."
        )
    best_ref = min(refs, key=lambda a: _rank_key(a, rows[a.representation]))
    return "accents_not_separable", (
        f"No representation separates accents (best backbone F1={fmt_f1(best_f1)}, best reference "
        f"{best_ref.representation} F1={fmt_f1(best_ref.f1)}, both < {fmt_f1(cond)}): "
        "the accents are not separable in this data with linear probes; check the labels and the recordings."
    )


def scientific_caveats(sources: Any, *, meets_minima: bool) -> List[str]:
    """Why a run is not a scientific result (random weights, dataset under the minima); [] when it is.

    `sources` is the config's `SourcesConfig`. The pipeline passes `scientific=not caveats`.
    """
    out: List[str] = []
    if sources.backbone.enabled and sources.backbone.checkpoint == TINY_RANDOM:
        out.append(RANDOM_BACKBONE_CAVEAT)
    refs = [
        name
        for name, cfg, attr in (("ssl", sources.ssl, "model"), ("ecapa", sources.ecapa, "model"))
        if cfg.enabled and getattr(cfg, attr) == TINY_RANDOM
    ]
    if refs:
        out.append(f"reference source(s) {', '.join(refs)} have randomly initialised weights (model 'tiny-random')")
    if not meets_minima:
        out.append(DATASET_CAVEAT)
    return out
