"""Decision stage: per-layer levels, the run's GO / conditional GO / NOGO and its diagnosis (pure)."""

from stage1_5.decision.levels import Decision, Diagnosis, GateCheck, Level, LevelAssessment, RunFacts
from stage1_5.decision.rules import decide, layer_level
from stage1_5.decision.thresholds import AppliedThresholds, applied_thresholds

__all__ = [
    "AppliedThresholds",
    "Decision",
    "Diagnosis",
    "GateCheck",
    "Level",
    "LevelAssessment",
    "RunFacts",
    "applied_thresholds",
    "decide",
    "layer_level",
]
