"""The thresholds a row is actually tested on: the config's (guide's) numbers made chance-relative.

F1: the guide's thresholds (0.55 / 0.45 / 0.40) read as written at `reference_accents` (3) accents.
With f1_scale chance_adjusted they are kept fixed on the normalised scale (F1 − 1/K)/(1 − 1/K), so the
same number means the same distance above chance at any K: at 2 accents 0.55 becomes 0.66, at 5 0.46.

Leakage: the margins are in percentage points of within-accent speaker-ID accuracy above its chance
level. At `reference_speakers_per_accent` (8, chance 12.5 %) they read as written; with leakage_scale
chance_adjusted they are scaled by the room above chance, (1 − chance)/(1 − 1/8), so a margin is the
same fraction of the possible excess at any speakers-per-accent.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from stage1_5.config import ExperimentConfig


def normalised_f1(f1: float, n_accents: int) -> float:
    """(F1 − 1/K)/(1 − 1/K): 0 at chance, 1 at perfect."""
    chance = 1.0 / n_accents
    return (f1 - chance) / (1.0 - chance)


def f1_threshold(guide: float, cfg: ExperimentConfig, n_accents: int) -> float:
    """The F1 a row with K accents must reach for the config's `guide` threshold."""
    if cfg.f1_scale == "absolute":
        return guide
    chance = 1.0 / n_accents
    return chance + normalised_f1(guide, cfg.reference_accents) * (1.0 - chance)


def leakage_margin(guide_pp: float, cfg: ExperimentConfig, leak_chance: float) -> float:
    """The leakage-excess margin (pp) for a row whose within-accent speaker-ID chance is leak_chance."""
    if cfg.leakage_scale == "absolute" or not math.isfinite(leak_chance):
        return guide_pp
    return guide_pp * (1.0 - leak_chance) / (1.0 - 1.0 / cfg.reference_speakers_per_accent)


@dataclass(frozen=True)
class AppliedThresholds:
    n_accents: int
    chance_f1: float
    f1_go: float
    f1_conditional: float
    nogo_f1: float
    leak_go_pp: float
    leak_conditional_pp: float
    max_text_drop: float
    alpha: float

    def to_json(self) -> dict:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}


def applied_thresholds(cfg: ExperimentConfig, *, n_accents: int, leak_chance: float) -> AppliedThresholds:
    return AppliedThresholds(
        n_accents=n_accents,
        chance_f1=1.0 / n_accents,
        f1_go=f1_threshold(cfg.min_f1_go, cfg, n_accents),
        f1_conditional=f1_threshold(cfg.min_f1_conditional, cfg, n_accents),
        nogo_f1=f1_threshold(cfg.nogo_f1, cfg, n_accents),
        leak_go_pp=leakage_margin(cfg.leakage_margin_pp, cfg, leak_chance),
        leak_conditional_pp=leakage_margin(cfg.leakage_margin_conditional_pp, cfg, leak_chance),
        max_text_drop=cfg.max_text_drop,
        alpha=cfg.alpha,
    )
