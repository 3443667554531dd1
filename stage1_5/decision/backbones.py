"""Several backbones in one run: each decides on its own, the recommended one leads decision.json.

Every configured backbone is a deciding source (its layers are one family for the family-wise p,
`stage1_5.probes.protocol.default_family`), so `decide_backbones` runs the ordinary rules
(`rules.decide`) once per backbone on its own layers plus the references, never on another
backbone's layers. The recommended backbone has the highest level, then the higher F1 lower bound of
its best layer (then the higher point F1, then config order). For the top two, `paired_f1_difference`
gives the speaker-bootstrap interval of their best layers' F1 difference on the same folds: the same
resampled speakers weight both representations' held-out predictions (every seed's speaker CV), so
"A beats B" is a claim with an interval (the draws reuse the fitted predictions; the per-layer F1
intervals refit the probe on every draw, which this difference does not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from stage1_5.config import ExperimentConfig
from stage1_5.decision.levels import Decision, RunFacts
from stage1_5.decision.rules import decide
from stage1_5.sources import decides, deciding_only, source_of

DIFFERENCE_DRAWS = 1000
"""Speaker-bootstrap draws of the top two backbones' F1 difference."""


@dataclass(frozen=True)
class F1Difference:
    """Best-layer F1 of backbone `first` minus that of `second`, with its paired bootstrap interval."""

    first: str
    second: str
    first_representation: str
    second_representation: str
    difference: float
    ci_low: float
    ci_high: float
    level: float
    draws: int

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class BackboneComparison:
    """Per-backbone decisions (config order), the recommended backbone and the top two's difference."""

    decisions: Mapping[str, Decision]
    ranking: tuple[str, ...]  # recommended first
    recommended: Optional[str]
    difference: Optional[F1Difference]

    @property
    def decision(self) -> Decision:
        """The run's headline: the recommended backbone's verdict, best layer, rationale and diagnosis,
        with every backbone's layer assessments (each from its own decision) so that tables and figures
        show all of them. With one backbone, exactly its decision."""
        head = self.decisions[self.recommended] if self.recommended is not None else next(iter(self.decisions.values()))
        if len(self.decisions) == 1:
            return head
        assessments, roles, applied = {}, {}, {}
        for d in [head, *self.decisions.values()]:
            assessments = {**d.assessments, **assessments}
            roles = {**d.roles, **roles}
            applied = {**(d.thresholds.get("applied") or {}), **applied}
        return replace(head, assessments=assessments, roles=roles, thresholds={**head.thresholds, "applied": applied})

    def to_json(self) -> dict[str, Any]:
        """decision.json's `backbones` object: each backbone's verdict, the recommendation, the difference."""
        return {
            "recommended": self.recommended,
            "ranking": list(self.ranking),
            "decisions": {
                name: {
                    "decision": d.decision.value,
                    "decision_label": d.decision.label,
                    "best_representation": d.best_representation,
                    "rationale": d.rationale,
                    "diagnosis": d.diagnosis.value if d.diagnosis else None,
                    "diagnosis_text": d.diagnosis_text,
                }
                for name, d in self.decisions.items()
            },
            "difference": self.difference.to_json() if self.difference else None,
        }


def _finite(value: Any) -> float:
    value = float(value) if value is not None else math.nan
    return -math.inf if math.isnan(value) else value


def decide_backbones(
    metrics: pd.DataFrame,
    thresholds: ExperimentConfig,
    backbones: Sequence[str],
    *,
    facts: RunFacts = RunFacts(),
    predictions: Optional[pd.DataFrame] = None,
    speakers: Optional[Mapping[str, str]] = None,
    interval_level: float = 0.95,
    seed: int = 0,
) -> BackboneComparison:
    """One decision per backbone (its layers + the references); `predictions` (probes'
    predictions.csv) and `speakers` (utt_id -> speaker) give the top two's paired difference."""
    sources = metrics["representation"].map(lambda rep: source_of(str(rep)))
    references = ~sources.map(lambda src: decides(str(src)))
    decisions = {}
    for name in backbones:
        with deciding_only(name):  # its rationale and diagnosis name this backbone alone
            decisions[name] = decide(metrics[(sources == name) | references].reset_index(drop=True), thresholds, facts=facts)
    rows = metrics.set_index("representation")

    def rank(name: str) -> tuple:
        d, best = decisions[name], decisions[name].best_representation
        low = _finite(rows.at[best, "accent_f1_ci_low"]) if best is not None else -math.inf
        point = _finite(rows.at[best, "accent_f1"]) if best is not None else -math.inf
        return (-d.decision.rank, -low, -point, list(backbones).index(name))

    ranked = sorted(backbones, key=rank)
    recommended = ranked[0] if any(d.best_representation for d in decisions.values()) else None
    difference = None
    if len(ranked) >= 2 and predictions is not None and speakers is not None:
        a, b = (decisions[name].best_representation for name in ranked[:2])
        if a is not None and b is not None:
            difference = paired_f1_difference(predictions, speakers, (ranked[0], a), (ranked[1], b), level=interval_level, seed=seed)
    return BackboneComparison(decisions=decisions, ranking=tuple(ranked), recommended=recommended, difference=difference)


def _weighted_macro_f1(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Macro F1 under each row of `weights` [R, N] (a draw's multiplicity of every row)."""
    scores = np.zeros((weights.shape[0], n_classes))
    for k in range(n_classes):
        tp = weights @ ((pred == k) & (truth == k))
        fp = weights @ ((pred == k) & (truth != k))
        fn = weights @ ((pred != k) & (truth == k))
        denom = 2 * tp + fp + fn
        scores[:, k] = np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=float), where=denom > 0)
    return scores.mean(axis=1)


def paired_f1_difference(
    predictions: pd.DataFrame,
    speakers: Mapping[str, str],
    first: tuple[str, str],
    second: tuple[str, str],
    *,
    level: float = 0.95,
    draws: int = DIFFERENCE_DRAWS,
    seed: int = 0,
) -> F1Difference:
    """F1(first) − F1(second) over the held-out speaker-CV predictions of every seed, and its percentile
    interval over speaker-bootstrap draws (speakers resampled within their accent), the SAME draws
    weighting both representations (`first`/`second`: (backbone, representation))."""
    rows = predictions[(predictions["split"] == "speaker_cv") & predictions["representation"].isin([first[1], second[1]])]
    accents = sorted(rows["y_true"].astype(str).unique())
    code = {a: i for i, a in enumerate(accents)}
    utt_speaker = rows["utt_id"].astype(str).map(dict(speakers))
    spk_accent = dict(zip(utt_speaker, rows["y_true"].astype(str)))
    by_accent: dict[str, list[str]] = {}
    for spk, acc in sorted(spk_accent.items()):
        by_accent.setdefault(acc, []).append(spk)
    rng = np.random.default_rng(seed)
    counts = np.zeros((draws, len(spk_accent)))
    index = {spk: i for i, spk in enumerate(sorted(spk_accent))}
    for members in by_accent.values():
        picks = rng.integers(0, len(members), size=(draws, len(members)))
        for j, spk in enumerate(members):
            counts[:, index[spk]] = (picks == j).sum(axis=1)

    def f1_draws(rep: str) -> tuple[float, np.ndarray]:
        mine = rows[rows["representation"] == rep]
        per_seed_point, per_seed_draws = [], []
        for _, frame in mine.groupby("seed"):
            truth = frame["y_true"].astype(str).map(code).to_numpy()
            pred = frame["y_pred"].astype(str).map(lambda a: code.get(a, -1)).to_numpy()
            spk_idx = frame["utt_id"].astype(str).map(dict(speakers)).map(index).to_numpy()
            weights = counts[:, spk_idx]
            per_seed_point.append(_weighted_macro_f1(truth, pred, np.ones((1, len(truth))), len(accents))[0])
            per_seed_draws.append(_weighted_macro_f1(truth, pred, weights, len(accents)))
        return float(np.mean(per_seed_point)), np.mean(per_seed_draws, axis=0)

    point_a, draws_a = f1_draws(first[1])
    point_b, draws_b = f1_draws(second[1])
    diff = draws_a - draws_b
    tail = (1 - level) / 2
    return F1Difference(
        first=first[0], second=second[0], first_representation=first[1], second_representation=second[1],
        difference=point_a - point_b, ci_low=float(np.quantile(diff, tail)), ci_high=float(np.quantile(diff, 1 - tail)),
        level=level, draws=draws,
    )  # fmt: skip
