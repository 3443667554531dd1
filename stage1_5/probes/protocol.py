"""The probing protocol (DESIGN §4): accent F1 on held-out speakers, permutation p-values (own and
family-wise), refit speaker-bootstrap intervals, text drop, accent→speaker leakage and speaker-ID,
for every representation. The splits and resamplings come from `design.build_design`.

Everything is built as FitJobs (one training set + the problems solved on it) and handed to a backend
in two phases: phase A fits the inner CVs that choose C, phase B the final probes. The torch backend
solves each phase as a few batched tensor programs; `SklearnBackend` is the one-fit-per-problem
reference with identical bookkeeping.

Choices worth knowing when reading the numbers:
- One statistic is reported, tested and gated: the accent F1 averaged over the `probes.seeds` fold
  seeds. Every permuted labelling goes through the same fold seeds (inner C selection rerun each
  time) and its F1 is averaged the same way. The upper-tail p-values test F1 raised to chance
  (`stats.at_least_chance`), so a row at or below chance is never significant. The family-wise p
  compares a representation with the null of its family's maximum (max-T over the same
  permutations); the family is the representation's source (the backbone's layers, the SSL
  layers...). `p_below_chance` is the family-wise lower tail (min-T) of the same null. With the
  sequential stop (`probes.sequential` and an alpha), a family settled at family-wise p ≥ alpha
  after the first looks runs no more permutations (`_finish_unsettled`). The permuted labellings are
  fitted apart from the real labels' probes, in fixed blocks of `PERM_BLOCK` (`_null_f1`), so the
  null is the same whichever process (torchrun rank) computes a block.
- The F1 interval refits the outer CVs with C fixed at the value each fold chose on the real labels,
  so it carries the training-set variability that resampling fixed predictions leaves out. By
  default (`interval_method: jackknife`) every fold seed's CV is rerun once per speaker with that
  speaker deleted (per group of speakers in a large accent: `design.jackknife_units`), and the
  stratified jackknife of the mean over seeds gives the interval of the reported F1 itself;
  `normal` / `percentile` refit seed 0's CV on every speaker-bootstrap draw (row weights =
  multiplicities) and shrink the draws to the spread of a mean over seeds (`stats.seed_mean_draws`).
  Seeds that disagree more than one seed's standard error over the speakers allows set
  `accent_f1_seed_unstable`. Text drop and leakage excess intervals resample speakers' out-of-fold
  counts (no refit): both are differences of two quantities from the same fitted probes, where the
  training variability largely cancels.
- Text drop reuses the C chosen by the accent CV's inner CV for the same speaker fold. Leakage and
  speaker-ID choose C by their own inner CVs, grouped by speaker and by text respectively.
- When an inner CV is impossible (a training set with < 2 speakers in some accent) the middle of the
  sorted c_grid is used and a note is recorded.
- Leakage projects every utterance onto the accent probe's K logits, centred over classes, then
  identifies the speaker within each accent by the nearest speaker centroid of the training texts.
- A representation whose probe fails (non-finite features, a solver error) is dropped with status
  "failed: ..." and a note; the others are still evaluated.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from stage1_5 import distributed
from stage1_5.config import ProbeConfig
from stage1_5.errors import ProbeError
from stage1_5.features.base import check_feature_matrix
from stage1_5.columns import METRIC_COLUMNS, PREDICTION_COLUMNS
from stage1_5.probes.design import Design, Inner, Stream, build_design, fallback_c, stream_rng
from stage1_5.probes.engine import FitJob, TorchBackend
from stage1_5.probes.metrics import (
    batched_macro_f1,
    confusion_counts,
    macro_f1_from_confusion,
    majority_f1,
)
from stage1_5.probes.stats import (
    at_least_chance,
    bootstrap_interval,
    family_below_p_values,
    family_p_values,
    jackknife_interval,
    jackknife_se,
    permutation_p_values,
    seed_mean_draws,
    seeds_unstable,
    shuffled_within,
    settled_count,
)


@dataclass(frozen=True)
class DesignFacts:
    """What the design allows, said before any result: the smallest reachable p and its causes."""

    permutations: int
    distinct_labellings: int
    smallest_reachable_p: float  # NaN without permutations
    bootstrap: int
    grouped_folds: bool  # outer folds hold out whole metadata groups
    fold_design: str = ""  # design.FoldDesign.describe() ("" in results saved before it was recorded)
    speaker_id: str = ""  # design.SpeakerIdPlan.describe()

    def to_json(self) -> dict:
        out = asdict(self)
        if not np.isfinite(out["smallest_reachable_p"]):
            out["smallest_reachable_p"] = None
        return out

    @classmethod
    def from_json(cls, data: Mapping) -> "DesignFacts":
        data = dict(data)
        if data.get("smallest_reachable_p") is None:
            data["smallest_reachable_p"] = float("nan")
        return cls(**data)

    def design_line(self) -> str:
        """The outer folds and the speaker-ID probe as they ran, in one line (run log and report)."""
        return "; ".join(part for part in (self.fold_design, self.speaker_id) if part)

    def reachable(self, alpha: float) -> bool:
        return bool(np.isfinite(self.smallest_reachable_p) and self.smallest_reachable_p < alpha)

    def limit_text(self, alpha: float) -> Optional[str]:
        """One sentence when p can never reach alpha (with the fix), else None."""
        if self.reachable(alpha):
            return None
        if not self.permutations:
            return "probes.permutations is 0: no p-value, so neither GO nor conditional GO can be reached; set probes.permutations ≥ 199"
        by_perm = 1.0 / (1 + self.permutations)
        if by_perm >= alpha:
            need = int(np.ceil(1 / alpha))
            return (
                f"the smallest reachable p is {by_perm:.3g} = 1/(1+{self.permutations} permutations) ≥ alpha {alpha:g}: "
                f"neither GO nor conditional GO can be reached; set probes.permutations ≥ {max(need, 199)}"
            )
        return (
            f"the smallest reachable p is {self.smallest_reachable_p:.3g}: the design allows only "
            f"{self.distinct_labellings} distinct speaker labellings (≥ 1/alpha = {1 / alpha:g} needed), so neither GO nor "
            "conditional GO can be reached; record more speakers per accent"
        )


def design_facts(design: Design, config: ProbeConfig) -> DesignFacts:
    return DesignFacts(
        permutations=config.permutations,
        distinct_labellings=design.distinct_labellings,
        smallest_reachable_p=design.smallest_reachable_p,
        bootstrap=config.bootstrap,
        grouped_folds=design.nuisance is not None,
        fold_design=design.folds.describe(),
        speaker_id=design.speaker_id.describe(),
    )


@dataclass
class ProbeResults:
    """metrics: one row per representation (METRIC_COLUMNS); predictions: out-of-fold predictions
    (PREDICTION_COLUMNS; split is speaker_cv, text_seen or text_unseen); confusion: representation →
    (accent labels, counts summed over seeds, rows = truth); label_map: accent → class index;
    notes: protocol fallbacks and dropped representations; facts: what the design allows."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    confusion: dict[str, tuple[list[str], np.ndarray]]
    label_map: dict[str, int]
    facts: DesignFacts
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- C selection


def _inner_jobs(X, inner: Inner, labelsets: np.ndarray, grid: np.ndarray, n_classes: int) -> list[FitJob]:
    """labelsets [L, N] → one job per inner fold solving every labelset over the whole grid."""
    C = np.tile(grid, (len(labelsets), 1))
    return [
        FitJob(X=X, fit_rows=inner.rows[tr], eval_rows=inner.rows[te], y=labelsets[:, inner.rows[tr]], C=C, n_classes=n_classes)
        for tr, te in inner.splits
    ]


def _choose_c(inner: Inner, values: list[np.ndarray], labelsets: np.ndarray, grid: np.ndarray, n_classes: int) -> np.ndarray:
    """Best C per labelset by macro-F1 pooled over the inner folds (ties → smaller C)."""
    L, G = len(labelsets), len(grid)
    pred = np.zeros((L, G, len(inner.rows)), dtype=np.int64)
    for (_, te), z in zip(inner.splits, values):
        pred[..., te] = z.argmax(-1)
    truth = torch.as_tensor(labelsets[:, inner.rows]).unsqueeze(1)
    f1 = batched_macro_f1(truth, torch.as_tensor(pred), n_classes).numpy()
    return grid[f1.argmax(1)]


class _CSelector:
    """Collects phase-A jobs for many fit sets, runs them in one backend call, returns C per labelset."""

    def __init__(self, config: ProbeConfig):
        self.grid = np.asarray(sorted(config.c_grid), dtype=float)
        self.fallback = fallback_c(config)
        self.entries: list[tuple[Inner, np.ndarray, int, slice]] = []
        self.jobs: list[FitJob] = []

    def add(self, X, inner: Inner, labelsets: np.ndarray, n_classes: int) -> int:
        new = _inner_jobs(X, inner, labelsets, self.grid, n_classes) if len(self.grid) > 1 else []
        self.entries.append((inner, labelsets, n_classes, slice(len(self.jobs), len(self.jobs) + len(new))))
        self.jobs.extend(new)
        return len(self.entries) - 1

    def run(self, backend) -> list[np.ndarray]:
        values = backend.decision_function(self.jobs) if self.jobs else []
        out = []
        for inner, labelsets, n_classes, sl in self.entries:
            if len(self.grid) == 1:
                out.append(np.full(len(labelsets), self.grid[0]))
            elif not inner.splits:
                out.append(np.full(len(labelsets), self.fallback))
            else:
                out.append(_choose_c(inner, values[sl], labelsets, self.grid, n_classes))
        return out




@dataclass
class _RepOutcome:
    row: dict
    null: np.ndarray  # [B]
    observed: float  # the reported F1, the mean over fold seeds (the permutation test's statistic)
    predictions: pd.DataFrame
    confusion: Optional[np.ndarray]


def _nearest_centroid_hits(proj: np.ndarray, labels: np.ndarray, accent: np.ndarray, train: np.ndarray, test: np.ndarray, n_labels: int) -> np.ndarray:
    """Within-accent speaker ID by nearest training centroid: a hit (bool) per test row."""
    sums = np.zeros((n_labels, proj.shape[1]))
    np.add.at(sums, labels[train], proj[train])
    counts = np.bincount(labels[train], minlength=n_labels)
    cent = sums / np.maximum(counts, 1)[:, None]
    label_accent = np.full(n_labels, -1)
    label_accent[labels[train]] = accent[train]
    d = ((proj[test][:, None, :] - cent[None]) ** 2).sum(-1)
    d[(label_accent[None, :] != accent[test][:, None]) | (counts[None, :] == 0)] = np.inf
    return d.argmin(1) == labels[test]


@dataclass
class _Jobs:
    """Phase-B jobs and where each metric's job lives in the list."""

    jobs: list[FitJob] = field(default_factory=list)
    main: dict = field(default_factory=dict)  # (seed, fold)
    text: dict = field(default_factory=dict)  # (seed, fold, text fold)
    leak: dict = field(default_factory=dict)  # (seed, text fold)
    speaker: dict = field(default_factory=dict)  # (seed, text fold)
    refit: dict = field(default_factory=dict)  # (seed, fold): the F1 interval's refits (`_refit_weights`)

    def add(self, where: dict, key, job: FitJob) -> None:
        where[key] = len(self.jobs)
        self.jobs.append(job)


def _phase_b(X, design: Design, config: ProbeConfig, backend) -> tuple[_Jobs, list[np.ndarray]]:
    K, N = len(design.accents), len(design.y)
    real = design.y[None, :]
    spk_labels, spk_rows, S = design.speaker_id.labels[None, :], design.speaker_id.rows, design.speaker_id.n_classes

    # phase A: inner CVs choose C
    sel = _CSelector(config)
    main_keys = [[sel.add(X, inner, real, K) for inner in design.outer_inner[s]] for s in range(config.seeds)]
    leak_keys = [[sel.add(X, inner, real, K) for inner in design.leak_inner[s]] for s in range(config.seeds)]
    spk_keys = [[sel.add(X, inner, spk_labels, S) for inner in design.spk_inner[s]] for s in range(config.seeds)]
    chosen = sel.run(backend)

    b = _Jobs()
    refit_w = _refit_weights(design, config)
    R = len(refit_w)
    for s in range(config.seeds):
        for f, (tr, te) in enumerate(design.outer[s]):
            c = chosen[main_keys[s][f]]
            b.add(b.main, (s, f), FitJob(X, tr, te, real[:, tr], c[:, None], K))
            if s < _refit_seeds(config) and R:
                b.add(b.refit, (s, f), FitJob(X, tr, te, np.repeat(real[:, tr], R, 0), np.full((R, 1), c[0]), K, weight=refit_w[:, tr]))
        for f, g, tr, seen, unseen in design.crossed[s]:
            ev = np.concatenate([seen, unseen])
            b.add(b.text, (s, f, g), FitJob(X, tr, ev, real[:, tr], chosen[main_keys[s][f]][:1, None], K))
        for g, (tr, te) in enumerate(design.text_folds[s]):
            b.add(b.leak, (s, g), FitJob(X, tr, np.arange(N), real[:, tr], chosen[leak_keys[s][g]][:, None], K))
            tr_id, te_id = np.intersect1d(tr, spk_rows), np.intersect1d(te, spk_rows)
            b.add(b.speaker, (s, g), FitJob(X, tr_id, te_id, spk_labels[:, tr_id], chosen[spk_keys[s][g]][:, None], S))
    values = [v[:, 0] for v in backend.decision_function(b.jobs)]  # [L, m, K]
    return b, values


def _per_speaker_confusion(design: Design, rows: np.ndarray, pred: np.ndarray) -> torch.Tensor:
    """[S, K, K] confusion counts of rows' predictions, one matrix per speaker."""
    K, S = len(design.accents), len(design.speakers)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(design.spk[rows]), S).T.to(torch.float64)
    n = len(rows)
    return confusion_counts(torch.as_tensor(design.y[rows]).expand(S, n), torch.as_tensor(pred).expand(S, n), K, onehot)


def _resample(per_speaker: torch.Tensor, weights: np.ndarray) -> torch.Tensor:
    """Bootstrap draws of speaker-level counts: [R, S] multiplicities × [S, ...] → [R, ...]."""
    w = torch.as_tensor(weights, dtype=per_speaker.dtype)
    return torch.tensordot(w, per_speaker, dims=1)


def _cv_predictions(design: Design, seed: int, fold_values: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions [L, N] and every row's fold [N] from one seed's per-fold logits [L, m, K]."""
    N = len(design.y)
    pred = np.zeros((len(fold_values[0]), N), dtype=np.int64)
    fold_of = np.zeros(N, dtype=np.int64)
    for f, ((_, te), z) in enumerate(zip(design.outer[seed], fold_values)):
        pred[:, te] = z.argmax(-1)
        fold_of[te] = f
    return pred, fold_of


def _accent_f1(name: str, design: Design, config: ProbeConfig, b: _Jobs, values) -> tuple[np.ndarray, torch.Tensor, list]:
    """Per-seed F1 on held-out speakers, per-speaker confusion, predictions (the permutation null is
    `_null_f1`'s, block by block)."""
    K, S, N = len(design.accents), len(design.speakers), len(design.y)
    truth = torch.as_tensor(design.y[None, :])
    f1s = np.zeros((config.seeds, 1))
    spk_conf = torch.zeros(config.seeds, S, K, K, dtype=torch.float64)
    frames = []
    for s in range(config.seeds):
        pred, fold_of = _cv_predictions(design, s, [values[b.main[s, f]] for f in range(len(design.outer[s]))])
        f1s[s] = batched_macro_f1(truth, torch.as_tensor(pred), K).numpy()
        spk_conf[s] = _per_speaker_confusion(design, np.arange(N), pred[0])
        frames.append(_pred_frame(design, name, s, fold_of, -1, "speaker_cv", np.arange(N), pred[0]))
    return f1s[:, 0], spk_conf, frames


def _null_f1(X, design: Design, config: ProbeConfig, backend, perm: np.ndarray) -> np.ndarray:
    """The permuted labellings' F1 of `perm` [L, N], averaged over the fold seeds (inner C selection
    included): more of the permutation null, for a family whose sequential test is not settled yet."""
    K = len(design.accents)
    sel = _CSelector(config)
    keys = [[sel.add(X, inner, perm, K) for inner in design.outer_inner[s]] for s in range(config.seeds)]
    chosen = sel.run(backend)
    jobs = [FitJob(X, tr, te, perm[:, tr], chosen[k][:, None], K) for s in range(config.seeds) for k, (tr, te) in zip(keys[s], design.outer[s])]
    values = [v[:, 0] for v in backend.decision_function(jobs)]
    f1 = np.zeros(len(perm))
    start = 0
    for s in range(config.seeds):
        n_folds = len(design.outer[s])
        pred, _ = _cv_predictions(design, s, values[start : start + n_folds])
        f1 += batched_macro_f1(torch.as_tensor(perm), torch.as_tensor(pred), K).numpy() / config.seeds
        start += n_folds
    return f1


def _refit_weights(design: Design, config: ProbeConfig) -> np.ndarray:
    """[R, N] row weights of the F1 interval's refits: the jackknife's deletions (`interval_method:
    jackknife`) or the bootstrap's multiplicities; none without intervals (`probes.bootstrap` 0)."""
    if not config.bootstrap:
        return np.empty((0, len(design.y)))
    return design.jackknife_row_weights if config.interval_method == "jackknife" else design.boot_row_weights


def _refit_seeds(config: ProbeConfig) -> int:
    """Fold seeds whose CV the interval refits: every seed for the jackknife (its replicates are the
    reported statistic, the mean over seeds, recomputed), seed 0 for the bootstrap (`seed_mean_draws`)."""
    return config.seeds if config.interval_method == "jackknife" else 1


def _refit_f1(design: Design, config: ProbeConfig, b: _Jobs, values) -> np.ndarray:
    """[refit seeds, R] F1 of every refit replicate of each refitted seed's CV (held-out rows weighted
    as in training: multiplicity, or 0 for the deleted speaker); [.., 0] without intervals."""
    W = _refit_weights(design, config)  # [R, N]
    out = np.zeros((_refit_seeds(config), len(W)))
    if not len(W):
        return out
    truth = torch.as_tensor(design.y[None, :]).expand(W.shape)
    for s in range(len(out)):
        pred = np.zeros(W.shape, dtype=np.int64)
        for f, (_, te) in enumerate(design.outer[s]):
            pred[:, te] = values[b.refit[s, f]].argmax(-1)
        out[s] = batched_macro_f1(truth, torch.as_tensor(pred), len(design.accents), torch.as_tensor(W)).numpy()
    return out


def _f1_interval(design: Design, config: ProbeConfig, f1_seed: np.ndarray, refits: np.ndarray) -> tuple[tuple[float, float], float]:
    """The reported F1's (mean over seeds) interval, and one seed's standard error over the speakers
    (the unstable-seeds flag's yardstick). jackknife: the jackknife of the mean over seeds; normal /
    percentile: seed 0's bootstrap draws shrunk to the spread of a mean over seeds."""
    f1 = float(f1_seed.mean())
    if config.interval_method == "jackknife":
        strata = design.jackknife_strata
        return jackknife_interval(f1, refits.mean(0), strata, level=config.interval_level), jackknife_se(refits[0], strata)
    draws = refits[0]
    one_seed_sd = float(draws.std(ddof=1)) if len(draws) >= 2 else float("nan")
    return bootstrap_interval(f1, seed_mean_draws(draws, f1_seed), level=config.interval_level, method=config.interval_method), one_seed_sd


def _text_drop(name: str, design: Design, config: ProbeConfig, b: _Jobs, values) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
    """Per-seed F1 on seen and unseen texts, the bootstrap draws of the drop, predictions."""
    K, S, N = len(design.accents), len(design.speakers), len(design.y)
    seen_conf = torch.zeros(config.seeds, S, K, K, dtype=torch.float64)
    unseen_conf = torch.zeros_like(seen_conf)
    frames = []
    for s in range(config.seeds):
        for f, g, _, seen, unseen in design.crossed[s]:
            p = values[b.text[s, f, g]][0].argmax(-1)
            ps, pu = p[: len(seen)], p[len(seen) :]
            seen_conf[s] += _per_speaker_confusion(design, seen, ps)
            unseen_conf[s] += _per_speaker_confusion(design, unseen, pu)
            fold = np.full(N, f)
            frames.append(_pred_frame(design, name, s, fold, g, "text_seen", seen, ps))
            frames.append(_pred_frame(design, name, s, fold, g, "text_unseen", unseen, pu))
    f1_seen = macro_f1_from_confusion(seen_conf.sum(1)).numpy()
    f1_unseen = macro_f1_from_confusion(unseen_conf.sum(1)).numpy()
    W = design.boot_speaker_weights
    draws = np.array([])
    if len(W):
        draws = (macro_f1_from_confusion(_resample(seen_conf.sum(0), W)) - macro_f1_from_confusion(_resample(unseen_conf.sum(0), W))).numpy()
    return f1_seen, f1_unseen, draws, frames


@dataclass
class _Leakage:
    acc: float
    chance: float
    excess_draws: np.ndarray  # [R] pp
    speaker_acc: float

    @property
    def excess_pp(self) -> float:
        return 100 * (self.acc - self.chance)


def _leakage(design: Design, config: ProbeConfig, b: _Jobs, values) -> _Leakage:
    """Accent→speaker leakage (nearest speaker centroid in the accent probe's logit space, within accent,
    on held-out texts) against its within-accent shuffle chance, and text-grouped speaker-ID."""
    S = len(design.speakers)
    y, spk = design.y, design.spk
    rng = stream_rng(config, Stream.LEAK_CHANCE)
    B_leak = config.leak_chance_permutations
    hits, chance_hits, tested = np.zeros((config.seeds, S)), np.zeros((config.seeds, S)), np.zeros((config.seeds, S))
    spk_acc = np.zeros(config.seeds)
    for s in range(config.seeds):
        spk_hit = spk_tot = 0
        for g, (tr, te) in enumerate(design.text_folds[s]):
            z = values[b.leak[s, g]][0]
            z = np.where(np.isfinite(z), z, 0.0)  # an accent absent from training: a constant logit
            proj = z - z.mean(-1, keepdims=True)
            hits[s] += np.bincount(spk[te], weights=_nearest_centroid_hits(proj, spk, y, tr, te, S), minlength=S)
            tested[s] += np.bincount(spk[te], minlength=S)
            for _ in range(B_leak):
                shuffled = shuffled_within(spk, y, rng)
                chance_hits[s] += np.bincount(spk[te], weights=_nearest_centroid_hits(proj, shuffled, y, tr, te, S), minlength=S) / B_leak
            spk_pred = values[b.speaker[s, g]][0].argmax(-1)  # on the speaker-ID probe's speakers (design.speaker_id)
            spk_hit += int((spk_pred == design.speaker_id.labels[np.intersect1d(te, design.speaker_id.rows)]).sum())
            spk_tot += len(spk_pred)
        spk_acc[s] = spk_hit / spk_tot
    W = design.boot_speaker_weights
    draws = np.array([])
    if len(W):
        h, c, t = (W @ a.sum(0) for a in (hits, chance_hits, tested))
        draws = 100 * (h - c) / np.maximum(t, 1)
    return _Leakage(
        acc=float((hits.sum(1) / tested.sum(1)).mean()),
        chance=float((chance_hits.sum(1) / tested.sum(1)).mean()),
        excess_draws=draws,
        speaker_acc=float(spk_acc.mean()),
    )


def _evaluate_one(name: str, X: np.ndarray, design: Design, config: ProbeConfig, backend) -> _RepOutcome:
    """Every number of one representation but its permutation null, which `_null_f1` adds block by block."""
    b, values = _phase_b(X, design, config, backend)
    f1_seed, spk_conf, frames = _accent_f1(name, design, config, b, values)
    null = np.empty(0)
    f1_seen, f1_unseen, drop_draws, text_frames = _text_drop(name, design, config, b, values)
    leak = _leakage(design, config, b, values)
    f1, drop = float(f1_seed.mean()), float(f1_seen.mean() - f1_unseen.mean())
    f1_ci, one_seed_sd = _f1_interval(design, config, f1_seed, _refit_f1(design, config, b, values))
    ci = dict(level=config.interval_level, method="normal" if config.interval_method == "jackknife" else config.interval_method)
    drop_ci = bootstrap_interval(drop, drop_draws, bounds=(-1.0, 1.0), **ci)
    excess_ci = bootstrap_interval(leak.excess_pp, leak.excess_draws, bounds=(-100.0, 100.0), **ci)
    row = {
        **_identity(name, design),
        "status": "ok",
        "accent_f1": f1,
        "accent_f1_sd": float(f1_seed.std(ddof=1)) if config.seeds > 1 else float("nan"),
        "accent_f1_seed_unstable": seeds_unstable(f1_seed, one_seed_sd),
        "accent_f1_ci_low": f1_ci[0],
        "accent_f1_ci_high": f1_ci[1],
        **_null_summary(null),
        "text_f1_seen": float(f1_seen.mean()),
        "text_f1_unseen": float(f1_unseen.mean()),
        "text_drop": drop,
        "text_drop_ci_low": drop_ci[0],
        "text_drop_ci_high": drop_ci[1],
        "leak_acc": leak.acc,
        "leak_chance": leak.chance,
        "leak_excess_pp": leak.excess_pp,
        "leak_excess_ci_low": excess_ci[0],
        "leak_excess_ci_high": excess_ci[1],
        "speaker_acc": leak.speaker_acc,
    }
    return _RepOutcome(
        row=row,
        null=null,
        observed=f1,
        predictions=pd.concat(frames + text_frames, ignore_index=True),
        confusion=spk_conf.sum((0, 1)).numpy().round().astype(np.int64),
    )


def _null_summary(null: np.ndarray) -> dict:
    return {
        "n_permutations": len(null),
        "null_f1_mean": float(null.mean()) if len(null) else float("nan"),
        "null_f1_q95": float(np.quantile(null, 0.95)) if len(null) else float("nan"),
    }


def _identity(name: str, design: Design) -> dict:
    source, _, layer = name.partition(":")
    K = len(design.accents)
    return {
        "representation": name,
        "source": source,
        "layer": layer,
        "n_speakers": len(design.speakers),
        "n_utterances": len(design.y),
        "n_accents": K,
        "chance_f1": 1.0 / K,
        "majority_f1": majority_f1(design.y),
    }


def _failed(name: str, design: Design, reason: str, n_perm: int) -> _RepOutcome:
    row = {c: float("nan") for c in METRIC_COLUMNS}
    row.update(_identity(name, design), status=f"failed: {reason}")
    return _RepOutcome(row=row, null=np.full(n_perm, np.nan), observed=float("nan"), predictions=pd.DataFrame(columns=PREDICTION_COLUMNS), confusion=None)


def _pred_frame(design: Design, name: str, seed: int, fold_of: np.ndarray, text_fold: int, split: str, rows: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    acc = np.asarray(design.accents, dtype=object)
    return pd.DataFrame(
        {
            "utt_id": design.utt_ids[rows],
            "representation": name,
            "seed": seed,
            "fold": fold_of[rows],
            "text_fold": text_fold,
            "split": split,
            "y_true": acc[design.y[rows]],
            "y_pred": acc[pred],
        },
        columns=PREDICTION_COLUMNS,
    )


# --------------------------------------------------------------------------- public entry point


def default_family(name: str) -> str:
    """A representation's family for the family-wise p: its source (the part before ':')."""
    return name.partition(":")[0]


def evaluate_representations(
    features: Mapping[str, np.ndarray],
    meta: pd.DataFrame,
    config: ProbeConfig,
    *,
    alpha: Optional[float] = None,
    families: Optional[Mapping[str, str]] = None,
    progress: bool = True,
    backend=None,
    ranks: Optional["distributed.DistContext"] = None,
) -> ProbeResults:
    """Probe every representation (rows of each array aligned with `meta` rows).

    meta needs utt_id, speaker, accent, text_id (`UtteranceSet.to_frame()`), optionally group.
    `alpha` (the decision's level) turns on the sequential permutation stop when
    `config.sequential` is set (`_finish_unsettled`); without it every permutation runs.
    `families` maps representation → family name (default: its source) for the family-wise p.
    `backend` defaults to the batched torch engine on `config.device`; pass `SklearnBackend()` for
    the reference loop. A representation that fails is dropped (status "failed: ...") with a note.
    `ranks` (the torchrun job's `distributed.current()`; default a single process): every rank calls
    this with the same arguments, probes its share of the representations (`rank_share`) and of
    their permutation blocks (`block_share`), and returns every result, the same as a single process's.
    """
    design = build_design(meta, config)
    if not features:
        raise ProbeError("no representations to probe (the feature set is empty)")
    backend = backend if backend is not None else TorchBackend(config.device)
    for name, X in features.items():  # a mis-shaped matrix is a wiring error: stop before any work
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != len(design.utt_ids):
            check_feature_matrix(name, X, design.utt_ids, error=ProbeError, where="features")
    B = len(design.perm_labels)
    h = settled_count(alpha, B) if (config.sequential and alpha is not None and B) else None
    first = B if h is None else min(B, FIRST_STAGE * h)
    ctx = ranks or distributed.SINGLE
    widths = {name: np.shape(X)[-1] for name, X in features.items()}
    mine = rank_share(ctx, widths)
    my_blocks = block_share(ctx, widths, 0, first, probed=True)
    if ctx.active:
        tqdm.write(f"probes: {ctx.describe()}: {len(mine)} representations, {len(my_blocks)} permutation blocks", file=sys.stderr)
    done: dict[str, tuple[_RepOutcome, Optional[str]]] = {}
    for name in tqdm(mine, desc="probes", unit="repr", disable=not progress):
        try:
            X = check_feature_matrix(name, features[name], design.utt_ids, error=ProbeError, where="features")
            done[name] = (_evaluate_one(name, X, design, config, backend), None)
        except _PROBE_FAILURES as exc:
            done[name] = (_failed(name, design, _reason(exc), first), f"{name} dropped: {_reason(exc)}")
    blocks: dict[tuple[str, int], np.ndarray | str] = {}
    for name, a, b in tqdm(my_blocks, desc="permutations", unit="block", disable=not progress):
        try:
            X = check_feature_matrix(name, features[name], design.utt_ids, error=ProbeError, where="features")
            blocks[name, a] = _null_f1(X, design, config, backend, design.perm_labels[a:b])
        except _PROBE_FAILURES as exc:
            blocks[name, a] = _reason(exc)
    gathered = {name: pair for part in ctx.gather(done) for name, pair in part.items()}  # every rank's, on every rank
    nulls = {key: null for part in ctx.gather(blocks) for key, null in part.items()}
    for name in features:
        failure = next((nulls[name, a] for a, _ in perm_blocks(0, first) if isinstance(nulls[name, a], str)), None)
        if gathered[name][1] is None and failure is not None:
            gathered[name] = (_failed(name, design, failure, first), f"{name} dropped: {failure}")
        elif gathered[name][1] is None:
            _extend_null(gathered[name][0], [nulls[name, a] for a, _ in perm_blocks(0, first)])
    outcomes = [gathered[name][0] for name in features]
    notes = list(design.notes) + [gathered[name][1] for name in features if gathered[name][1]]
    if all(o.confusion is None for o in outcomes):
        raise ProbeError(f"every representation failed; first: {notes[len(design.notes)]}")
    family = np.array([(families or {}).get(o.row["representation"], default_family(o.row["representation"])) for o in outcomes])
    if first < B:
        notes += _finish_unsettled(features, design, config, backend, outcomes, family, h, first, progress, ctx)
    metrics = pd.DataFrame([o.row for o in outcomes], columns=METRIC_COLUMNS)
    observed = np.array([o.observed for o in outcomes])
    null = np.full((len(outcomes), B), np.nan)
    for i, o in enumerate(outcomes):
        null[i, : len(o.null)] = o.null
    ok = metrics["status"].eq("ok").to_numpy()
    metrics["family"] = family
    metrics["family_size"] = [int(((family == f) & ok).sum()) for f in family]
    chance = 1.0 / len(design.accents)
    metrics["p_value"] = permutation_p_values(at_least_chance(observed, chance), at_least_chance(null, chance), h)
    metrics["p_value_fwer"] = family_p_values(at_least_chance(observed, chance), at_least_chance(null, chance), family, h)
    metrics["p_below_chance"] = family_below_p_values(observed, null, family)
    frames = [o.predictions for o in outcomes if len(o.predictions)]
    return ProbeResults(
        metrics=metrics,
        predictions=pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PREDICTION_COLUMNS),
        confusion={o.row["representation"]: (list(design.accents), o.confusion) for o in outcomes if o.confusion is not None},
        label_map={a: i for i, a in enumerate(design.accents)},
        facts=design_facts(design, config),
        notes=notes,
    )


FIRST_STAGE = 4
"""The sequential stop's first look comes after FIRST_STAGE·h permutations (h = `settled_count`)."""

PERM_BLOCK = 50
"""Permutations per block: the unit of the permutation null that one backend call computes (and that
torchrun ranks share). Fixed, not derived from the world size, so a single process computes the very
same blocks and every rank's null equals a single process's."""

_PROBE_FAILURES = (ProbeError, ValueError, RuntimeError, FloatingPointError, np.linalg.LinAlgError)
"""The errors that drop one representation (status "failed: ...") rather than the run."""


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def perm_blocks(start: int, stop: int) -> list[tuple[int, int]]:
    """Permutations [start, stop) as consecutive blocks [a, b) of at most PERM_BLOCK."""
    return [(a, min(a + PERM_BLOCK, stop)) for a in range(start, stop, PERM_BLOCK)]


def block_share(ctx: "distributed.DistContext", widths: Mapping[str, int], start: int, stop: int, *, probed: bool = False) -> list[tuple[str, int, int]]:
    """The permutation blocks (representation, a, b) of permutations [start, stop) that this rank
    computes: width × block-length balanced shards of every representation's blocks (the same on
    every rank), in the given order; all of them in a single process. `probed`: the ranks also probe
    their `rank_share` of the representations in the same pass (each counted as one full block), so
    a job with fewer representations than ranks still uses every rank. A block's permuted labellings
    come from the design alone (`design.perm_labels[a:b]`) and its F1 from one `_null_f1` call, so
    the null assembled by index is a single process's whatever the world size."""
    units = [(name, a, b) for name in widths for a, b in perm_blocks(start, stop)]
    loads = [sum(float(widths[n] * PERM_BLOCK) for n in rank_share(distributed.DistContext(r, ctx.world_size), widths)) for r in range(ctx.world_size)] if probed else ()
    shard = distributed.length_balanced_shards([float(widths[n] * (b - a)) for n, a, b in units], ctx.world_size, loads)[ctx.rank]
    return [units[i] for i in shard]


def _extend_null(outcome: "_RepOutcome", parts: list[np.ndarray]) -> None:
    """Append permutation blocks' F1 (in permutation order) to an outcome's null and summary."""
    outcome.null = np.concatenate([outcome.null, *parts])
    outcome.row.update(_null_summary(outcome.null))


def rank_share(ctx: "distributed.DistContext", widths: Mapping[str, int]) -> list[str]:
    """The representations this rank probes, in their given order: width-balanced shards of the
    representations (`distributed.length_balanced_shards`, the same on every rank); all of them in a
    single process. Every representation's outcome (its permutation null apart: `block_share`) is
    computed by exactly one rank and is the same as a single process's, so gathering them gives every
    p-value and decision a single process gives."""
    names = list(widths)
    shard = distributed.length_balanced_shards([float(widths[n]) for n in names], ctx.world_size)[ctx.rank]
    return [names[i] for i in shard]


def _finish_unsettled(
    features, design: Design, config: ProbeConfig, backend, outcomes: list, family: np.ndarray, h: int, first: int, progress: bool, ctx: "distributed.DistContext"
) -> list[str]:
    """Besag–Clifford's sequential stop, per family (two looks). After the first `first`
    permutations a family whose best member already has h permuted family maxima at or above its
    F1 is settled (family-wise p ≥ alpha for every member: `stats.settled_count`); the others run
    the remaining permutations, every member on the same ones, so the max-T null stays that of the
    whole family. Extends outcomes' nulls in place; returns notes. Under torchrun the unsettled
    members' permutation blocks are shared among the ranks (`block_share`) and gathered on every rank."""
    notes, unsettled = [], []
    for name in np.unique(family):
        members = [i for i in np.flatnonzero(family == name) if np.isfinite(outcomes[i].observed)]
        if not members:
            continue
        chance = 1.0 / len(design.accents)
        best = at_least_chance(max(outcomes[i].observed for i in members), chance)
        exceed = int((at_least_chance(np.max([outcomes[i].null for i in members], axis=0), chance) >= best - 1e-12).sum())
        if exceed >= h:
            notes.append(f"{name}: family-wise p ≥ alpha settled after {first} of {len(design.perm_labels)} permutations (sequential stop)")
            continue
        unsettled += members
    names = {outcomes[i].row["representation"]: i for i in unsettled}
    B = len(design.perm_labels)
    mine = block_share(ctx, {n: np.shape(features[n])[-1] for n in names}, first, B)
    if ctx.active:
        tqdm.write(f"probes: {ctx.describe()}: {len(mine)} more permutation blocks (sequential stop)", file=sys.stderr)
    extra = {}
    for name, a, b in tqdm(mine, desc="permutations", unit="block", disable=not progress):
        X = check_feature_matrix(name, features[name], design.utt_ids, error=ProbeError, where="features")
        extra[name, a] = _null_f1(X, design, config, backend, design.perm_labels[a:b])
    gathered = {key: null for part in ctx.gather(extra) for key, null in part.items()}
    for name, i in names.items():
        _extend_null(outcomes[i], [gathered[name, a] for a, _ in perm_blocks(first, B)])
    return notes
