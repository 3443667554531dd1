"""Decision stage: per-layer levels, the run's GO / conditional GO / NOGO and its diagnosis (pure)."""

from stage1_5.decision.rules import (
    DIAGNOSES,
    Decision,
    GateCheck,
    Level,
    LevelAssessment,
    decide,
    layer_level,
    scientific_caveats,
)

__all__ = [
    "DIAGNOSES",
    "Decision",
    "GateCheck",
    "Level",
    "LevelAssessment",
    "decide",
    "layer_level",
    "scientific_caveats",
]
