"""The decision's vocabulary: levels, diagnoses, gate checks, per-layer assessments and the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional


class Level(str, Enum):
    """Decision level; the value is what decision.json prints, `label` what people read."""

    GO = "GO"
    CONDITIONAL = "GO_CONDITIONAL"
    NOGO = "NOGO"

    @property
    def rank(self) -> int:
        return {Level.NOGO: 0, Level.CONDITIONAL: 1, Level.GO: 2}[self]

    @property
    def label(self) -> str:
        """Human wording: 'GO', 'conditional GO', 'NOGO'."""
        return {Level.GO: "GO", Level.CONDITIONAL: "conditional GO", Level.NOGO: "NOGO"}[self]


class Diagnosis(str, Enum):
    """Why a run is NOGO (decision.json `diagnosis`); `gloss` is the one-line meaning."""

    NO_BACKBONE = "no_backbone"
    RANDOM_WEIGHTS = "random_weights"
    SIGNIFICANCE_UNREACHABLE = "significance_unreachable"
    DATASET_TOO_SMALL = "dataset_too_small"
    BALANCED_NUISANCE = "balanced_nuisance"
    ACCENT_ENTANGLED = "accent_entangled"
    BACKBONE_INADEQUATE = "backbone_inadequate"
    ACCENTS_NOT_SEPARABLE = "accents_not_separable"

    @property
    def gloss(self) -> str:
        return {
            Diagnosis.NO_BACKBONE: "no backbone representation was evaluated",
            Diagnosis.RANDOM_WEIGHTS: "the deciding backbone has randomly initialised weights",
            Diagnosis.SIGNIFICANCE_UNREACHABLE: "the design cannot produce p < alpha (too few permutations or speaker labellings)",
            Diagnosis.DATASET_TOO_SMALL: "the dataset is below the design minima",
            Diagnosis.BALANCED_NUISANCE: "F1 significantly below chance: a nuisance balanced across accents tilts the folds",
            Diagnosis.ACCENT_ENTANGLED: "the backbone separates accents but fails the speaker-leakage or text-drop gates",
            Diagnosis.BACKBONE_INADEQUATE: "references separate accents significantly, the backbone does not",
            Diagnosis.ACCENTS_NOT_SEPARABLE: "no representation separates accents significantly in this data",
        }[self]


DATASET_CAVEAT = "the dataset is below the design minima (accents, speakers per accent or texts per speaker)"


def is_missing(x: Any) -> bool:
    """None or NaN: a metric that was not measured."""
    return x is None or (isinstance(x, float) and math.isnan(x))


def json_float(x: Any) -> Optional[float]:
    return None if is_missing(x) else float(x)


@dataclass(frozen=True)
class GateCheck:
    """One threshold test: ``value <op> threshold`` at one level ("go" or "conditional").

    threshold is the value actually applied (chance-adjusted by default); guide is the number the
    config states (the guide's threshold), so messages and reports can show both."""

    metric: str  # accent_f1 | leakage | text_drop | p_value
    level: str  # go | conditional
    value: float  # NaN when not measured
    threshold: float
    op: str  # ">=", "<=", "<"
    passed: bool
    message: str  # the sentence used in reasons, e.g. "F1 0.41 < 0.59 (GO; guide 0.55)"
    guide: Optional[float] = None

    def to_json(self) -> Dict[str, Any]:
        return {
            "metric": self.metric,
            "level": self.level,
            "value": json_float(self.value),
            "threshold": self.threshold,
            "guide": self.guide,
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
    borderline: bool = False  # NOGO, significant, with nogo_f1 <= F1 < conditional threshold

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
            "f1_tested": json_float(self.f1),
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True)
class RunFacts:
    """What the decision must know about the run besides the metrics table, each fact once.

    caveats: why the result is not scientific (random weights, dataset under the minima,
    confounds); random_weights: the deciding backbone itself has random weights;
    significance_limit: the sentence saying p can never reach alpha in this design (None when it can).
    """

    caveats: tuple[str, ...] = ()
    dataset_too_small: bool = False
    random_weights: bool = False
    significance_limit: Optional[str] = None
    smallest_reachable_p: Optional[float] = None

    @property
    def scientific(self) -> bool:
        return not self.caveats and not self.dataset_too_small


@dataclass(frozen=True)
class Decision:
    """The run's verdict: best backbone level, the layer behind it, and the numbers that justify it."""

    decision: Level
    best_representation: Optional[str]
    rationale: str
    diagnosis: Optional[Diagnosis]  # only for NOGO
    diagnosis_text: Optional[str]
    roles: Dict[str, str]  # representation -> "backbone" | "reference" (references never decide)
    assessments: Dict[str, LevelAssessment]
    thresholds: Dict[str, Any]
    facts: RunFacts = field(default_factory=RunFacts)

    @property
    def levels(self) -> Dict[str, Level]:
        """Every representation's level, references included."""
        return {r: a.level for r, a in self.assessments.items()}

    @property
    def scientific(self) -> bool:
        return self.facts.scientific

    @property
    def dataset_too_small(self) -> bool:
        return self.facts.dataset_too_small

    @property
    def caveats(self) -> List[str]:
        out = list(self.facts.caveats)
        if self.facts.dataset_too_small and DATASET_CAVEAT not in out:
            out.append(DATASET_CAVEAT)
        if self.facts.significance_limit:
            out.append(self.facts.significance_limit)
        return out

    @property
    def references(self) -> List[str]:
        return [r for r, role in self.roles.items() if role == "reference"]

    @property
    def borderline(self) -> List[str]:
        return [r for r, a in self.assessments.items() if a.borderline and self.roles[r] != "reference"]

    def to_json(self) -> Dict[str, Any]:
        """What the pipeline writes as decision.json (NaN becomes null)."""
        return {
            "decision": self.decision.value,
            "decision_label": self.decision.label,
            "best_representation": self.best_representation,
            "rationale": self.rationale,
            "diagnosis": self.diagnosis.value if self.diagnosis else None,
            "diagnosis_text": self.diagnosis_text,
            "levels": {r: lv.value for r, lv in self.levels.items()},
            "roles": dict(self.roles),
            "references": self.references,
            "borderline": self.borderline,
            "layers": {r: a.to_json() for r, a in self.assessments.items()},
            "thresholds": dict(self.thresholds),
            "scientific": self.scientific,
            "dataset_too_small": self.dataset_too_small,
            "random_weights": self.facts.random_weights,
            "smallest_reachable_p": self.facts.smallest_reachable_p,
            "caveats": self.caveats,
        }
