"""The probing protocol (DESIGN §4): accent F1 on held-out speakers, permutation p-values, text drop,
accent→speaker leakage and speaker-ID, for every representation.

Everything is built as FitJobs (one training set + the problems solved on it) and handed to a backend
in two phases: phase A fits the inner CVs that choose C, phase B the final probes. The torch backend
solves each phase as a few batched tensor programs; `SklearnBackend` is the one-fit-per-problem
reference with identical bookkeeping.

Choices worth knowing when reading the numbers:
- The permutation test uses seed 0's outer folds and their inner folds, reruns the inner C selection
  on every permuted labelling, and compares against seed 0's observed F1 (same folds). Labels are
  permuted among the speakers held out in the same fold (`stats.within_fold_permutations`).
- Text drop reuses the C chosen by the accent CV's inner CV for the same speaker fold (its training
  set is a text subset of that fold's). Leakage and speaker-ID choose C by their own inner CVs,
  grouped by speaker and by text respectively.
- When an inner CV is impossible (a training set with < 2 speakers in some accent) the middle of the
  sorted c_grid is used and a note is recorded.
- Leakage projects every utterance onto the accent probe's K logits, centred over classes (the
  multinomial solution's rows sum to zero, so this is its (K−1)-dimensional decision space), then
  identifies the speaker within each accent by the nearest speaker centroid of the training texts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from stage1_5.config import ProbeConfig
from stage1_5.errors import ProbeError
from stage1_5.features.base import check_feature_matrix
from stage1_5.probes.engine import FitJob, TorchBackend
from stage1_5.probes.metrics import (
    batched_macro_f1,
    confusion_counts,
    macro_f1_from_confusion,
    majority_f1,
)
from stage1_5.probes.splits import SpeakerPerAccentFold, TextFold, crossed_splits, outer_splitter, speakers_by_accent
from stage1_5.probes.stats import cluster_bootstrap_ci, permutation_p_values, within_fold_permutations

METRIC_COLUMNS = [
    "representation",
    "source",
    "layer",
    "n_speakers",
    "n_utterances",
    "accent_f1",
    "accent_f1_sd",
    "accent_f1_ci_low",
    "accent_f1_ci_high",
    "p_value",
    "p_value_fwer",
    "majority_f1",
    "text_f1_seen",
    "text_f1_unseen",
    "text_drop",
    "leak_acc",
    "leak_chance",
    "leak_excess_pp",
    "speaker_acc",
]
PREDICTION_COLUMNS = ["utt_id", "representation", "seed", "fold", "text_fold", "split", "y_true", "y_pred"]
META_COLUMNS = ("utt_id", "speaker", "accent", "text_id")
LEAK_CHANCE_PERMUTATIONS = 20


@dataclass
class ProbeResults:
    """metrics: one row per representation (METRIC_COLUMNS); predictions: out-of-fold predictions
    (PREDICTION_COLUMNS; split is speaker_cv, text_seen or text_unseen); confusion: representation →
    (accent labels, counts summed over seeds, rows = truth); label_map: accent → class index;
    notes: protocol fallbacks worth reporting."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    confusion: dict[str, tuple[list[str], np.ndarray]]
    label_map: dict[str, int]
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- design (no features)


@dataclass(frozen=True)
class _Inner:
    """A fit set whose C is chosen by an inner CV: rows + inner splits (indices into rows)."""

    rows: np.ndarray
    splits: tuple  # ((train, test), ...) relative to rows; empty → no inner CV possible


@dataclass
class _Design:
    utt_ids: np.ndarray
    accents: list[str]
    speakers: list[str]
    y: np.ndarray  # [N] accent codes
    spk: np.ndarray  # [N] speaker codes
    text: np.ndarray  # [N] text codes
    speaker_accent: np.ndarray  # [S]
    outer: list[list[tuple[np.ndarray, np.ndarray]]]  # [seed][fold] (train, test)
    outer_inner: list[list[_Inner]]
    crossed: list[list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]]
    text_folds: list[list[tuple[np.ndarray, np.ndarray]]]  # [seed][g]
    leak_inner: list[list[_Inner]]  # [seed][g], speaker-grouped on training texts
    spk_inner: list[list[_Inner]]  # [seed][g], text-grouped on training texts
    perm_labels: np.ndarray  # [B, N] permuted accent codes (seed-0 folds)
    notes: list[str]


def _seed(config: ProbeConfig, *tags: int) -> int:
    return int(np.random.SeedSequence([config.seed, *tags]).generate_state(1)[0])


def _check_meta(meta: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing:
        raise ProbeError(f"metadata is missing column(s) {missing}; need {list(META_COLUMNS)}")
    meta = meta.reset_index(drop=True)
    for col in META_COLUMNS:
        bad = meta[col].isna() | (meta[col].astype(str).str.strip() == "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ProbeError(f"metadata row {row} (utt_id {meta['utt_id'].iloc[row]!r}): empty {col}")
    dup = meta["utt_id"].astype(str).duplicated()
    if dup.any():
        raise ProbeError(f"metadata: duplicate utt_id {meta['utt_id'].astype(str)[dup].iloc[0]!r}")
    return meta.astype({c: str for c in META_COLUMNS})


def _inner_by_speaker(rows: np.ndarray, y: np.ndarray, spk: np.ndarray, inner_folds: int, random_state) -> _Inner:
    per_accent = speakers_by_accent(y[rows], spk[rows])
    k = min(inner_folds, min(len(s) for s in per_accent.values()))
    if k < 2 or len(per_accent) < len(np.unique(y)):
        return _Inner(rows, ())
    splitter = SpeakerPerAccentFold(k, random_state=random_state)
    return _Inner(rows, tuple(splitter.split(np.zeros((len(rows), 1)), y[rows], spk[rows])))


def _inner_by_text(rows: np.ndarray, text: np.ndarray, inner_folds: int, random_state) -> _Inner:
    k = min(inner_folds, len(np.unique(text[rows])))
    if k < 2:
        return _Inner(rows, ())
    splitter = TextFold(k, random_state=random_state)
    return _Inner(rows, tuple(splitter.split(np.zeros((len(rows), 1)), None, text[rows])))


def build_design(meta: pd.DataFrame, config: ProbeConfig) -> _Design:
    """Every split and permutation of the protocol, from the metadata alone."""
    meta = _check_meta(meta)
    accents, y = np.unique(meta["accent"].to_numpy(), return_inverse=True)
    speakers, spk = np.unique(meta["speaker"].to_numpy(), return_inverse=True)
    _, text = np.unique(meta["text_id"].to_numpy(), return_inverse=True)
    if len(accents) < 2:
        raise ProbeError(f"probing needs at least 2 accents; the metadata has only {list(accents)}")
    per_accent = speakers_by_accent(meta["accent"].to_numpy(), meta["speaker"].to_numpy())
    small = {a: len(s) for a, s in per_accent.items() if len(s) < 2}
    if small:
        raise ProbeError(f"every accent needs at least 2 speakers for speaker-disjoint folds; too few in {small}")
    speaker_accent = np.empty(len(speakers), dtype=np.int64)
    speaker_accent[spk] = y
    if len(np.unique(text)) < config.text_folds:
        raise ProbeError(
            f"probes.text_folds={config.text_folds} needs at least that many distinct text_id values, "
            f"got {len(np.unique(text))}"
        )
    notes: list[str] = []
    X0 = np.zeros((len(meta), 1))
    outer, outer_inner, crossed, text_folds, leak_inner, spk_inner = [], [], [], [], [], []
    for s in range(config.seeds):
        splitter = outer_splitter(config.outer_folds, _seed(config, s, 1))
        folds = [(np.sort(tr), np.sort(te)) for tr, te in splitter.split(X0, y, spk)]
        for f, (tr, _) in enumerate(folds):
            if len(np.unique(y[tr])) < len(accents):
                raise ProbeError(
                    f"probes.outer_folds={config.outer_folds}: fold {f} of seed {s} leaves an accent without "
                    "training speakers; use fewer folds or 'speaker_per_accent'"
                )
        outer.append(folds)
        outer_inner.append([_inner_by_speaker(tr, y, spk, config.inner_folds, _seed(config, s, 2, f)) for tr, _ in folds])
        tfolds = [(np.sort(tr), np.sort(te)) for tr, te in TextFold(config.text_folds, random_state=_seed(config, s, 3)).split(X0, None, text)]
        text_folds.append(tfolds)
        crossed.append(list(crossed_splits(folds, tfolds)))
        leak_inner.append([_inner_by_speaker(tr, y, spk, config.inner_folds, _seed(config, s, 4, g)) for g, (tr, _) in enumerate(tfolds)])
        spk_inner.append([_inner_by_text(tr, text, config.inner_folds, _seed(config, s, 5, g)) for g, (tr, _) in enumerate(tfolds)])
    if len(config.c_grid) > 1 and any(not inner.splits for inner in outer_inner[0]):
        notes.append(
            f"inner CV impossible (a training fold has < 2 speakers in some accent): C = {_fallback_c(config)} is used there"
        )
    speaker_fold = np.empty(len(speakers), dtype=np.int64)
    for f, (_, te) in enumerate(outer[0]):
        speaker_fold[spk[te]] = f
    rng = np.random.default_rng(_seed(config, 6))
    perm_speaker = within_fold_permutations(speaker_accent, speaker_fold, config.permutations, rng)
    return _Design(
        utt_ids=meta["utt_id"].to_numpy(),
        accents=[str(a) for a in accents],
        speakers=[str(s) for s in speakers],
        y=y,
        spk=spk,
        text=text,
        speaker_accent=speaker_accent,
        outer=outer,
        outer_inner=outer_inner,
        crossed=crossed,
        text_folds=text_folds,
        leak_inner=leak_inner,
        spk_inner=spk_inner,
        perm_labels=perm_speaker[:, spk] if config.permutations else np.empty((0, len(meta)), dtype=np.int64),
        notes=notes,
    )


def _fallback_c(config: ProbeConfig) -> float:
    grid = sorted(config.c_grid)
    return float(grid[len(grid) // 2])


# --------------------------------------------------------------------------- C selection


def _inner_jobs(X, inner: _Inner, labelsets: np.ndarray, grid: np.ndarray, n_classes: int) -> list[FitJob]:
    """labelsets [L, N] → one job per inner fold solving every labelset over the whole grid."""
    C = np.tile(grid, (len(labelsets), 1))
    return [
        FitJob(X=X, fit_rows=inner.rows[tr], eval_rows=inner.rows[te], y=labelsets[:, inner.rows[tr]], C=C, n_classes=n_classes)
        for tr, te in inner.splits
    ]


def _choose_c(inner: _Inner, values: list[np.ndarray], labelsets: np.ndarray, grid: np.ndarray, n_classes: int) -> np.ndarray:
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
        self.fallback = _fallback_c(config)
        self.entries: list[tuple[_Inner, np.ndarray, int, slice]] = []
        self.jobs: list[FitJob] = []

    def add(self, X, inner: _Inner, labelsets: np.ndarray, n_classes: int) -> int:
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


# --------------------------------------------------------------------------- one representation


@dataclass
class _RepOutcome:
    row: dict
    null: np.ndarray  # [B]
    observed: float  # seed-0 F1 (the permutation test's statistic)
    predictions: pd.DataFrame
    confusion: np.ndarray


def _nearest_centroid_acc(proj: np.ndarray, labels: np.ndarray, accent: np.ndarray, train: np.ndarray, test: np.ndarray, n_labels: int) -> tuple[int, int]:
    """Within-accent speaker ID by nearest training centroid: (#correct, #tested)."""
    sums = np.zeros((n_labels, proj.shape[1]))
    np.add.at(sums, labels[train], proj[train])
    counts = np.bincount(labels[train], minlength=n_labels)
    cent = sums / np.maximum(counts, 1)[:, None]
    label_accent = np.full(n_labels, -1)
    label_accent[labels[train]] = accent[train]
    d = ((proj[test][:, None, :] - cent[None]) ** 2).sum(-1)
    d[(label_accent[None, :] != accent[test][:, None]) | (counts[None, :] == 0)] = np.inf
    return int((d.argmin(1) == labels[test]).sum()), len(test)


def _evaluate_one(name: str, X: np.ndarray, design: _Design, config: ProbeConfig, backend) -> _RepOutcome:
    K, S = len(design.accents), len(design.speakers)
    y, spk, N = design.y, design.spk, len(design.y)
    real = y[None, :]
    labelsets0 = np.concatenate([real, design.perm_labels]) if len(design.perm_labels) else real
    spk_labels = spk[None, :]

    # phase A: inner CVs choose C
    sel = _CSelector(config)
    main_keys = [[sel.add(X, inner, labelsets0 if s == 0 else real, K) for inner in design.outer_inner[s]] for s in range(config.seeds)]
    leak_keys = [[sel.add(X, inner, real, K) for inner in design.leak_inner[s]] for s in range(config.seeds)]
    spk_keys = [[sel.add(X, inner, spk_labels, S) for inner in design.spk_inner[s]] for s in range(config.seeds)]
    chosen = sel.run(backend)

    # phase B: final probes
    jobs: list[FitJob] = []
    main_idx, text_idx, leak_idx, spk_idx = {}, {}, {}, {}
    for s in range(config.seeds):
        labelsets = labelsets0 if s == 0 else real
        for f, (tr, te) in enumerate(design.outer[s]):
            main_idx[s, f] = len(jobs)
            jobs.append(FitJob(X, tr, te, labelsets[:, tr], chosen[main_keys[s][f]][:, None], K))
        for f, g, tr, seen, unseen in design.crossed[s]:
            text_idx[s, f, g] = len(jobs)
            ev = np.concatenate([seen, unseen])
            jobs.append(FitJob(X, tr, ev, real[:, tr], chosen[main_keys[s][f]][:1, None], K))
        for g, (tr, te) in enumerate(design.text_folds[s]):
            leak_idx[s, g] = len(jobs)
            jobs.append(FitJob(X, tr, np.arange(N), real[:, tr], chosen[leak_keys[s][g]][:, None], K))
            spk_idx[s, g] = len(jobs)
            jobs.append(FitJob(X, tr, te, spk_labels[:, tr], chosen[spk_keys[s][g]][:, None], S))
    values = [v[:, 0] for v in backend.decision_function(jobs)]  # [L, m, K]

    # accent F1 on held-out speakers (+ permutation null on seed 0)
    f1_seed = np.zeros(config.seeds)
    spk_conf = torch.zeros(config.seeds, S, K, K, dtype=torch.float64)
    null = np.zeros(len(design.perm_labels))
    pred_frames = []
    for s in range(config.seeds):
        pred = np.zeros((len(labelsets0) if s == 0 else 1, N), dtype=np.int64)
        fold_of = np.zeros(N, dtype=np.int64)
        for f, (_, te) in enumerate(design.outer[s]):
            pred[:, te] = values[main_idx[s, f]].argmax(-1)
            fold_of[te] = f
        truth = labelsets0 if s == 0 else real
        f1s = batched_macro_f1(torch.as_tensor(truth), torch.as_tensor(pred), K).numpy()
        f1_seed[s] = f1s[0]
        if s == 0:
            null = f1s[1:]
        onehot_spk = torch.nn.functional.one_hot(torch.as_tensor(spk), S).T.to(torch.float64)  # [S, N]
        spk_conf[s] = confusion_counts(torch.as_tensor(y).expand(S, N), torch.as_tensor(pred[0]).expand(S, N), K, onehot_spk)
        pred_frames.append(_pred_frame(design, name, s, fold_of, -1, "speaker_cv", np.arange(N), pred[0]))

    # text drop
    seen_conf = torch.zeros(config.seeds, K, K, dtype=torch.float64)
    unseen_conf = torch.zeros_like(seen_conf)
    for s in range(config.seeds):
        for f, g, _, seen, unseen in design.crossed[s]:
            p = values[text_idx[s, f, g]][0].argmax(-1)
            ps, pu = p[: len(seen)], p[len(seen) :]
            seen_conf[s] += confusion_counts(torch.as_tensor(y[seen]), torch.as_tensor(ps), K)
            unseen_conf[s] += confusion_counts(torch.as_tensor(y[unseen]), torch.as_tensor(pu), K)
            fold = np.full(N, f)
            pred_frames.append(_pred_frame(design, name, s, fold, g, "text_seen", seen, ps))
            pred_frames.append(_pred_frame(design, name, s, fold, g, "text_unseen", unseen, pu))
    f1_seen = macro_f1_from_confusion(seen_conf).numpy()
    f1_unseen = macro_f1_from_confusion(unseen_conf).numpy()

    # leakage A→S and speaker ID, on held-out texts
    rng = np.random.default_rng(_seed(config, 7))
    leak_acc, leak_chance, spk_acc = np.zeros(config.seeds), np.zeros(config.seeds), np.zeros(config.seeds)
    for s in range(config.seeds):
        hit = tot = 0
        chance_hits = np.zeros(LEAK_CHANCE_PERMUTATIONS)
        spk_hit = spk_tot = 0
        for g, (tr, te) in enumerate(design.text_folds[s]):
            z = values[leak_idx[s, g]][0]
            z = np.where(np.isfinite(z), z, 0.0)  # an accent absent from training: a constant logit
            proj = z - z.mean(-1, keepdims=True)
            h, t = _nearest_centroid_acc(proj, spk, y, tr, te, S)
            hit, tot = hit + h, tot + t
            for b in range(LEAK_CHANCE_PERMUTATIONS):
                shuffled = spk.copy()
                for a in range(K):
                    members = np.flatnonzero(y == a)
                    shuffled[members] = spk[rng.permutation(members)]
                chance_hits[b] += _nearest_centroid_acc(proj, shuffled, y, tr, te, S)[0]
            spk_pred = values[spk_idx[s, g]][0].argmax(-1)
            spk_hit += int((spk_pred == spk[te]).sum())
            spk_tot += len(te)
        leak_acc[s] = hit / tot
        leak_chance[s] = chance_hits.mean() / tot
        spk_acc[s] = spk_hit / spk_tot

    rng_boot = np.random.default_rng(_seed(config, 8))
    ci = cluster_bootstrap_ci(spk_conf, design.speaker_accent, config.bootstrap, rng_boot)
    source, _, layer = name.partition(":")
    row = {
        "representation": name,
        "source": source,
        "layer": layer,
        "n_speakers": S,
        "n_utterances": N,
        "accent_f1": float(f1_seed.mean()),
        "accent_f1_sd": float(f1_seed.std(ddof=1)) if config.seeds > 1 else float("nan"),
        "accent_f1_ci_low": ci[0],
        "accent_f1_ci_high": ci[1],
        "p_value": float("nan"),
        "p_value_fwer": float("nan"),
        "majority_f1": majority_f1(y),
        "text_f1_seen": float(f1_seen.mean()),
        "text_f1_unseen": float(f1_unseen.mean()),
        "text_drop": float(f1_seen.mean() - f1_unseen.mean()),
        "leak_acc": float(leak_acc.mean()),
        "leak_chance": float(leak_chance.mean()),
        "leak_excess_pp": float(100 * (leak_acc.mean() - leak_chance.mean())),
        "speaker_acc": float(spk_acc.mean()),
    }
    return _RepOutcome(
        row=row,
        null=null,
        observed=float(f1_seed[0]),
        predictions=pd.concat(pred_frames, ignore_index=True),
        confusion=spk_conf.sum((0, 1)).numpy().round().astype(np.int64),
    )


def _pred_frame(design: _Design, name: str, seed: int, fold_of: np.ndarray, text_fold: int, split: str, rows: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
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


def _check_features(features: Mapping[str, np.ndarray], design: _Design) -> dict[str, np.ndarray]:
    if not features:
        raise ProbeError("no representations to probe (the feature set is empty)")
    out = {}
    N = len(design.utt_ids)
    for name, X in features.items():
        X = check_feature_matrix(name, X, design.utt_ids, error=ProbeError, where="features")
        out[name] = X
    return out


def evaluate_representations(
    features: Mapping[str, np.ndarray],
    meta: pd.DataFrame,
    config: ProbeConfig,
    *,
    progress: bool = True,
    backend=None,
) -> ProbeResults:
    """Probe every representation (rows of each array aligned with `meta` rows).

    meta needs utt_id, speaker, accent, text_id (`UtteranceSet.to_frame()`). `backend` defaults to the
    batched torch engine on `config.device`; pass `SklearnBackend()` for the reference loop.
    """
    design = build_design(meta, config)
    features = _check_features(features, design)
    backend = backend if backend is not None else TorchBackend(config.device)
    outcomes = []
    for name, X in tqdm(features.items(), desc="probes", unit="repr", disable=not progress):
        outcomes.append(_evaluate_one(name, X, design, config, backend))
    metrics = pd.DataFrame([o.row for o in outcomes], columns=METRIC_COLUMNS)
    if config.permutations:
        p, p_fwer = permutation_p_values(np.array([o.observed for o in outcomes]), np.stack([o.null for o in outcomes]))
        metrics["p_value"], metrics["p_value_fwer"] = p, p_fwer
    return ProbeResults(
        metrics=metrics,
        predictions=pd.concat([o.predictions for o in outcomes], ignore_index=True),
        confusion={o.row["representation"]: (list(design.accents), o.confusion) for o in outcomes},
        label_map={a: i for i, a in enumerate(design.accents)},
        notes=list(design.notes),
    )
