"""Concept erasure per backbone layer with LEACE (EleutherAI's `concept-erasure`), speaker-disjoint.

Two questions, each answered on speakers the eraser never saw:

- **Erase accent → within-accent speaker-ID loss.** Is speaker identity carried on the accent axis?
  Speakers are split into `stage2.erasure_folds` folds that hold out 1/k of every accent's speakers
  (at least 2 per accent). LEACE is fit on the training speakers with the accent as concept; the
  held-out speakers are then identified *within their accent* (a standardised L2 logistic regression
  over the held-out speakers, its choice restricted to the true accent's speakers) from their
  utterances of one text fold, tested on the other texts, before and after erasure. Chance is
  1 / held-out speakers of the accent. `loss` = drop / (accuracy before − chance): the share of the
  above-chance identification that lived on the accent axis.
- **Erase within-accent speaker contrasts → accent F1 that survives.** Can accent be controlled without
  dragging speaker along? The concept is each training speaker's indicator minus its share of its
  accent (`speaker_contrasts`): it has zero mean within every accent, so it carries no accent label,
  and erasing it makes every training speaker's mean equal its accent's mean. (Erasing all speaker
  identities would erase accent too: accent is a function of speaker.) Folds hold out one speaker per
  accent, as the protocol's outer CV does; the accent probe (the layer's chosen C) is trained on the
  training speakers and tested on the held-out ones, with and without erasure.

Both are repeated over `stage2.fold_seeds` speaker assignments and pooled per speaker; intervals are
a percentile cluster bootstrap over held-out speakers (resampled within accent) of these fixed
out-of-fold results, so they leave out the eraser's and probes' training variability.
LEACE runs with `constrain_cov_trace=False`: when the eraser would grow the variance, that option
blends in an orthogonal projection (for erased states fed back into a model), and the blend no
longer guarantees zero covariance with the concept; here nothing is fed back and the erasure must
be exact. (On the planted sets of the tests it never triggers: both settings give the same eraser.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from concept_erasure import LeaceEraser, LeaceFitter
from tqdm.auto import tqdm

from stage1_5.config import Stage2Config
from stage1_5.probes.metrics import macro_f1_from_confusion
from stage1_5.probes.splits import SpeakerPerAccentFold, TextFold, speakers_by_accent
from stage1_5.probes.stats import speaker_resamples
from stage1_5.stage2.directions import fit_probe

ERASURE_COLUMNS = [
    "erase_accent_speaker_acc",
    "erase_accent_speaker_acc_erased",
    "erase_accent_speaker_chance",
    "erase_accent_speaker_drop",
    "erase_accent_speaker_drop_ci_low",
    "erase_accent_speaker_drop_ci_high",
    "erase_accent_speaker_loss",
    "erase_accent_speaker_loss_ci_low",
    "erase_accent_speaker_loss_ci_high",
    "erase_accent_residual_f1",
    "erase_speaker_accent_f1_base",
    "erase_speaker_accent_f1",
    "erase_speaker_accent_f1_ci_low",
    "erase_speaker_accent_f1_ci_high",
    "erase_speaker_accent_f1_drop",
    "erase_speaker_accent_f1_drop_ci_low",
    "erase_speaker_accent_f1_drop_ci_high",
]
"""The columns `erasure_metrics` adds to metrics.csv (one row per backbone layer)."""

MIN_HELD_OUT_PER_ACCENT = 2
"""Within-accent speaker ID needs at least two held-out speakers in every accent."""


def seed_for(seed: int, *tags: int) -> int:
    """A reproducible sub-seed for one purpose (fold seed, text split, bootstrap) of `stage2.seed`."""
    return int(np.random.SeedSequence([seed, *tags]).generate_state(1)[0])


# ----------------------------------------------------------------------------- concepts and erasers


def accent_concept(accents: np.ndarray) -> np.ndarray:
    """One-hot accent indicators [n, K]."""
    _, codes = np.unique(accents, return_inverse=True)
    return np.eye(codes.max() + 1)[codes]


def speaker_contrasts(speakers: np.ndarray, accents: np.ndarray) -> np.ndarray:
    """Within-accent speaker contrasts [n, S]: column j is 1[speaker = j] − (j's share of its accent's
    rows)·1[accent = accent(j)]. Each column has mean zero within every accent (no accent label in it),
    and its covariance with x is p_j·(μ_j − μ_accent(j)): exactly the speaker's offset from its accent."""
    speakers, accents = np.asarray(speakers), np.asarray(accents)
    names = np.unique(speakers)
    Z = np.zeros((len(speakers), len(names)))
    for j, name in enumerate(names):
        mine = speakers == name
        same_accent = accents == accents[mine][0]
        Z[:, j] = mine - (mine.sum() / same_accent.sum()) * same_accent
    return Z


def fit_eraser(X: np.ndarray, Z: np.ndarray) -> LeaceEraser:
    """LEACE eraser of concept Z [n, k] from X [n, d], exact (see the module docstring), in float64."""
    fitter = LeaceFitter.fit(torch.as_tensor(X, dtype=torch.float64), torch.as_tensor(Z, dtype=torch.float64), constrain_cov_trace=False)
    return fitter.eraser


def erase(eraser: LeaceEraser, X: np.ndarray) -> np.ndarray:
    return eraser(torch.as_tensor(X, dtype=torch.float64)).numpy()


# ----------------------------------------------------------------------------- folds


def accent_erasure_folds(accents: np.ndarray, speakers: np.ndarray, cfg: Stage2Config, seed_index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Speaker folds of the accent erasure for one fold seed: each holds out 1/k of every accent's
    speakers, k = min(erasure_folds, speakers in the smallest accent // 2); [] when no accent has the
    2 + 2 speakers it needs (2 held out, 2 to fit the eraser on)."""
    smallest = min(len(s) for s in speakers_by_accent(accents, speakers).values())
    k = min(cfg.erasure_folds, smallest // MIN_HELD_OUT_PER_ACCENT)
    if k < 2:
        return []
    splitter = SpeakerPerAccentFold(k, random_state=seed_for(cfg.seed, 1, seed_index))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros((len(accents), 1)), accents, speakers)]


def speaker_erasure_folds(accents: np.ndarray, speakers: np.ndarray, cfg: Stage2Config, seed_index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """One speaker per accent held out per fold (the protocol's outer folds), for one fold seed."""
    splitter = SpeakerPerAccentFold(random_state=seed_for(cfg.seed, 2, seed_index))
    return [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(np.zeros((len(accents), 1)), accents, speakers)]


# ----------------------------------------------------------------------------- per-speaker tallies


@dataclass
class SpeakerTally:
    """Per-speaker sums over every fold seed in which the speaker was held out."""

    speakers: np.ndarray  # [S] names
    speaker_accent: np.ndarray  # [S]
    tested: np.ndarray = field(init=False)  # [S] test utterances
    hits_before: np.ndarray = field(init=False)
    hits_after: np.ndarray = field(init=False)
    chance: np.ndarray = field(init=False)  # Σ 1/(held-out speakers of the accent) over test utterances

    def __post_init__(self) -> None:
        S = len(self.speakers)
        self.tested, self.hits_before, self.hits_after, self.chance = (np.zeros(S) for _ in range(4))

    def add(self, index: np.ndarray, before: np.ndarray, after: np.ndarray, chance: np.ndarray) -> None:
        np.add.at(self.tested, index, 1.0)
        np.add.at(self.hits_before, index, before)
        np.add.at(self.hits_after, index, after)
        np.add.at(self.chance, index, chance)


def within_accent_speaker_hits(
    X: np.ndarray, speakers: np.ndarray, accents: np.ndarray, train: np.ndarray, test: np.ndarray, C: float, device: str
) -> np.ndarray:
    """Whether each `test` row's speaker is identified among the speakers of its own accent by a
    standardised balanced L2 logistic regression trained on the `train` rows (speakers seen there)."""
    scaler, probe = fit_probe(X[train], speakers[train], C, device)
    z = probe.decision_function(scaler.transform(X[test]))
    classes = probe.classes_
    if z.ndim == 1:  # two speakers: binomial logit for classes_[1]
        z = np.stack([np.zeros_like(z), z], 1)
    accent_of = dict(zip(speakers[train], accents[train]))
    allowed = np.array([[accent_of[c] == a for c in classes] for a in accents[test]])
    z = np.where(allowed, z, -np.inf)
    return classes[z.argmax(1)] == speakers[test]


def speaker_id_before_after(
    X: np.ndarray, meta: pd.DataFrame, cfg: Stage2Config, C: float, *, text_folds: int, device: str
) -> tuple[SpeakerTally, np.ndarray]:
    """The accent-erasure tallies per held-out speaker, and the residual accent F1's confusion counts
    [K, K] (the accent probe at the layer's C on erased training speakers, tested on erased held-out
    speakers). Held-out sets with a single text cannot be split by text and are skipped."""
    accents, speakers, texts = (meta[c].to_numpy().astype(str) for c in ("accent", "speaker", "text_id"))
    names, spk_index = np.unique(speakers, return_inverse=True)
    accent_names, accent_codes = np.unique(accents, return_inverse=True)
    speaker_accent = np.empty(len(names), dtype=object)
    speaker_accent[spk_index] = accents
    tally = SpeakerTally(names, speaker_accent)
    residual = np.zeros((len(accent_names), len(accent_names)))
    for r in range(cfg.fold_seeds):
        for f, (train, held) in enumerate(accent_erasure_folds(accents, speakers, cfg, r)):
            eraser = fit_eraser(X[train], accent_concept(accents[train]))
            Xh, Xh_erased = X[held], erase(eraser, X[held])
            scaler, probe = fit_probe(erase(eraser, X[train]), accents[train], C, device)
            predicted = np.searchsorted(accent_names, probe.predict(scaler.transform(Xh_erased)).astype(str))
            np.add.at(residual, (accent_codes[held], predicted), 1.0)
            n_texts = len(np.unique(texts[held]))
            if n_texts < 2:
                continue
            n_held = {a: len(s) for a, s in speakers_by_accent(accents[held], speakers[held]).items()}
            splitter = TextFold(min(text_folds, n_texts), random_state=seed_for(cfg.seed, 3, r, f))
            for tr, te in splitter.split(Xh, None, texts[held]):
                args = (speakers[held], accents[held], tr, te, cfg.speaker_c, device)
                before = within_accent_speaker_hits(Xh, *args)
                after = within_accent_speaker_hits(Xh_erased, *args)
                chance = np.array([1.0 / n_held[a] for a in accents[held][te]])
                tally.add(spk_index[held][te], before, after, chance)
    return tally, residual


def accent_f1_with_speakers_erased(
    X: np.ndarray, meta: pd.DataFrame, cfg: Stage2Config, C: float, *, device: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-speaker accent confusion counts [S, K, K] on held-out speakers, without and with the
    within-accent speaker contrasts erased, and each speaker's accent code [S]."""
    accents, speakers = (meta[c].to_numpy().astype(str) for c in ("accent", "speaker"))
    names, spk_index = np.unique(speakers, return_inverse=True)
    accent_names, accent_codes = np.unique(accents, return_inverse=True)
    K, S = len(accent_names), len(names)
    base, erased = np.zeros((S, K, K)), np.zeros((S, K, K))
    for r in range(cfg.fold_seeds):
        for train, held in speaker_erasure_folds(accents, speakers, cfg, r):
            eraser = fit_eraser(X[train], speaker_contrasts(speakers[train], accents[train]))
            for counts, (Xtr, Xte) in ((base, (X[train], X[held])), (erased, (erase(eraser, X[train]), erase(eraser, X[held])))):
                scaler, probe = fit_probe(Xtr, accents[train], C, device)
                predicted = np.searchsorted(accent_names, probe.predict(scaler.transform(Xte)).astype(str))
                np.add.at(counts, (spk_index[held], accent_codes[held], predicted), 1.0)
    speaker_code = np.empty(S, dtype=np.int64)
    speaker_code[spk_index] = accent_codes
    return base, erased, speaker_code


# ----------------------------------------------------------------------------- bootstrap and summary


def _percentiles(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return float("nan"), float("nan")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _speaker_id_stats(tally: SpeakerTally, w: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy before / after, chance, excess (before − chance), drop and loss for speaker weights w [B, S]."""
    n = w @ tally.tested
    with np.errstate(invalid="ignore", divide="ignore"):
        before, after, chance = (w @ tally.hits_before) / n, (w @ tally.hits_after) / n, (w @ tally.chance) / n
        excess = before - chance
        loss = np.where(excess > 0, (before - after) / excess, np.nan)
    return {"before": before, "after": after, "chance": chance, "excess": excess, "drop": before - after, "loss": loss}


def _f1(confusion: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Macro-F1 [B] of per-speaker confusion counts [S, K, K] weighted by w [B, S]."""
    return macro_f1_from_confusion(torch.as_tensor(np.einsum("bs,skl->bkl", w, confusion))).numpy()


def _accent_erasure_columns(tally: SpeakerTally, residual: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """The erase-accent columns. `loss` (a share of the excess over chance) is given only when the
    identification before erasure is above chance: its bootstrap interval's lower end above zero
    (without a bootstrap: the point estimate); a share of nothing is NaN, not a large number."""
    tested = tally.tested > 0
    point = {k: float(v[0]) for k, v in _speaker_id_stats(tally, tested[None, :].astype(float)).items()}
    row = {
        "erase_accent_speaker_acc": point["before"],
        "erase_accent_speaker_acc_erased": point["after"],
        "erase_accent_speaker_chance": point["chance"],
        "erase_accent_speaker_drop": point["drop"],
        "erase_accent_speaker_loss": point["loss"],
        "erase_accent_residual_f1": float(macro_f1_from_confusion(torch.as_tensor(residual))),
    }
    above_chance = point["excess"] > 0
    if n_boot:
        w = np.zeros((n_boot, len(tested)))
        w[:, tested] = speaker_resamples(tally.speaker_accent[tested], n_boot, rng)
        boot = _speaker_id_stats(tally, w)
        above_chance = _percentiles(boot["excess"])[0] > 0
        for name in ("drop", "loss"):
            row[f"erase_accent_speaker_{name}_ci_low"], row[f"erase_accent_speaker_{name}_ci_high"] = _percentiles(boot[name])
    if not above_chance:
        row.update(erase_accent_speaker_loss=float("nan"), erase_accent_speaker_loss_ci_low=float("nan"), erase_accent_speaker_loss_ci_high=float("nan"))
    return row


def _speaker_erasure_columns(base: np.ndarray, erased: np.ndarray, speaker_code: np.ndarray, n_boot: int, rng: np.random.Generator) -> dict[str, float]:
    """The erase-speaker-contrasts columns from per-speaker confusion counts without / with erasure."""
    ones = np.ones((1, len(speaker_code)))
    f1_base, f1_erased = float(_f1(base, ones)[0]), float(_f1(erased, ones)[0])
    row = {"erase_speaker_accent_f1_base": f1_base, "erase_speaker_accent_f1": f1_erased, "erase_speaker_accent_f1_drop": f1_base - f1_erased}
    if n_boot:
        w = speaker_resamples(speaker_code, n_boot, rng)
        boot_base, boot_erased = _f1(base, w), _f1(erased, w)
        row["erase_speaker_accent_f1_ci_low"], row["erase_speaker_accent_f1_ci_high"] = _percentiles(boot_erased)
        row["erase_speaker_accent_f1_drop_ci_low"], row["erase_speaker_accent_f1_drop_ci_high"] = _percentiles(boot_base - boot_erased)
    return row


def layer_erasure_row(
    X: np.ndarray, meta: pd.DataFrame, cfg: Stage2Config, C: float, *, text_folds: int, device: str, rng: np.random.Generator
) -> tuple[dict[str, float], list[str]]:
    """One backbone layer's erasure columns (ERASURE_COLUMNS) and notes on what could not be measured."""
    X = np.asarray(X, dtype=np.float64)
    row = {c: float("nan") for c in ERASURE_COLUMNS}
    notes: list[str] = []
    tally, residual = speaker_id_before_after(X, meta, cfg, C, text_folds=text_folds, device=device)
    if tally.tested.sum() == 0:
        notes.append(
            f"accent erasure needs ≥ {2 * MIN_HELD_OUT_PER_ACCENT} speakers in every accent "
            f"({MIN_HELD_OUT_PER_ACCENT} held out, {MIN_HELD_OUT_PER_ACCENT} to fit the eraser) and ≥ 2 texts: not measured"
        )
    else:
        row.update(_accent_erasure_columns(tally, residual, cfg.bootstrap, rng))
    base, erased, speaker_code = accent_f1_with_speakers_erased(X, meta, cfg, C, device=device)
    row.update(_speaker_erasure_columns(base, erased, speaker_code, cfg.bootstrap, rng))
    return row, notes


def erasure_metrics(
    vectors: Mapping[str, np.ndarray],
    meta: pd.DataFrame,
    cfg: Stage2Config,
    chosen_c: Mapping[str, float],
    *,
    text_folds: int = 2,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """The erasure columns for every representation in `vectors` (rows aligned with `meta`), as a
    DataFrame with a `representation` column first, and the analysis' notes (deduplicated)."""
    rows, notes = [], []
    items = tqdm(vectors.items(), desc="stage2 erasure", unit="layer", disable=not progress)
    for i, (name, X) in enumerate(items):
        rng = np.random.default_rng(seed_for(cfg.seed, 4, i))
        row, why = layer_erasure_row(X, meta, cfg, chosen_c[name], text_folds=text_folds, device=device, rng=rng)
        rows.append({"representation": name, **row})
        notes += [n for n in why if n not in notes]
    return pd.DataFrame(rows, columns=["representation", *ERASURE_COLUMNS]), notes
