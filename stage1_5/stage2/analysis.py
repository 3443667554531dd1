"""The Stage 2 handoff of one run: directions, erasure and layer similarity, computed, then saved.

`compute_stage2` is the computation (no files, no decision: the pipeline caches it by features,
probe and stage2 settings); `save_stage2` writes a folder, `load_stage2` reads it back, and
`stage2_summary` adds what depends on the decision (the recommended layer). A run's
`artifacts/stage2/` holds:

    directions.safetensors + directions.json   accent directions per backbone layer (`directions.py`)
    erasure.csv                                the erasure columns per backbone layer (merged into metrics.csv)
    cka.csv                                    linear CKA, every representation × every representation
    design.json                                how the erasure and CKA were run (folds, rows, notes)
    stage2.json                                the summary the report reads (`stage2_summary`)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from stage1_5.config import Stage15Config
from stage1_5.decision import Decision, Level
from stage1_5.errors import Stage2Error
from stage1_5.io import atomic_write_json, read_csv, write_csv
from stage1_5.runtime import torch_threads
from stage1_5.sources import decides, source_of, source_spec
from stage1_5.stage2.directions import (
    SIDECAR_FILE,
    TENSORS_FILE,
    LayerDirections,
    alias_site,
    choose_c,
    fit_layer_directions,
    load_directions,
    save_directions,
)
from stage1_5.stage2.erasure import MIN_HELD_OUT_PER_ACCENT, erasure_metrics, seed_for
from stage1_5.stage2.similarity import cka_matrix, cka_rows

ERASURE_FILE = "erasure.csv"
CKA_FILE = "cka.csv"
DESIGN_FILE = "design.json"
SUMMARY_FILE = "stage2.json"
INTERVALS = (
    "95% percentile cluster bootstrap over held-out speakers (resampled within accent) of fixed "
    "out-of-fold results: it leaves out the eraser's and probes' training variability"
)


@dataclass
class Stage2Result:
    """Everything Stage 2 computes; none of it depends on the decision."""

    directions: list[LayerDirections]
    directions_meta: dict[str, Any]
    erasure: pd.DataFrame  # representation + erasure.ERASURE_COLUMNS
    cka: pd.DataFrame  # representation × representation
    design: dict[str, Any]  # erasure folds, CKA rows
    notes: list[str] = field(default_factory=list)


NOT_EXTRACTED = {"origin": "external", "checkpoint": None, "pooling": None, "positions": None, "speaker_slot": None, "language": None, "dtype": None}
"""What the sidecar can say of vectors read from an external feature file: nothing about their extraction."""


def _origin(cfg: Stage15Config, representation: str) -> dict[str, Any]:
    """Where a deciding representation's vectors came from: the configured extractor (its settings
    name the checkpoint, pooling, positions) or an external feature file."""
    spec = source_spec(source_of(representation))
    layer = representation.partition(":")[2]
    if spec is not None and spec.enabled(cfg) and layer in (spec.configured_layers(cfg) or ()):
        settings = spec.settings(cfg)
        return {
            "origin": "extracted",
            "checkpoint": getattr(settings, spec.weights) if spec.weights else None,
            **{key: getattr(settings, key, None) for key in ("pooling", "positions", "speaker_slot", "language", "dtype")},
        }
    return dict(NOT_EXTRACTED)


def _directions_meta(cfg: Stage15Config, deciding: list[str], meta: pd.DataFrame, dataset_hash: Optional[str]) -> dict[str, Any]:
    """The sidecar's run-wide facts; checkpoint, pooling and positions are the extractor's (every
    extracted layer shares them), and `origins` says per layer whether they apply."""
    origins = {rep: _origin(cfg, rep) for rep in deciding}
    common = next((o for o in origins.values() if o["origin"] == "extracted"), NOT_EXTRACTED)
    accents = sorted(meta["accent"].astype(str).unique())
    return {
        **{k: v for k, v in common.items() if k != "origin"},
        "origins": {rep: o["origin"] for rep, o in origins.items()},
        "dataset_hash": dataset_hash,
        "accents": accents,
        "label_map": {a: i for i, a in enumerate(accents)},
        "n_utterances": int(len(meta)),
        "n_speakers": int(meta["speaker"].nunique()),
        "c_grid": sorted(float(c) for c in cfg.probes.c_grid),
        "c_inner_folds": cfg.probes.inner_folds,
        "c_fold_seeds": cfg.probes.seeds,
    }


def _deciding(vectors: Mapping[str, np.ndarray]) -> list[str]:
    return [name for name in vectors if decides(source_of(name))]


def _design(cfg: Stage15Config, rows: np.ndarray, meta: pd.DataFrame) -> dict[str, Any]:
    held = meta.iloc[rows]
    per_accent = held.groupby("accent")["speaker"].nunique()
    return {
        "erasure": {
            "accent_folds": cfg.stage2.erasure_folds,
            "min_held_out_per_accent": MIN_HELD_OUT_PER_ACCENT,
            "speaker_folds": "one speaker per accent held out",
            "fold_seeds": cfg.stage2.fold_seeds,
            "bootstrap": cfg.stage2.bootstrap,
            "intervals": INTERVALS,
            "speaker_c": cfg.stage2.speaker_c,
            "text_folds": cfg.probes.text_folds,
        },
        "cka": {
            "rows": int(len(rows)),
            "speakers": int(held["speaker"].nunique()),
            "speakers_per_accent": {str(a): int(n) for a, n in per_accent.items()},
            "max_rows": cfg.stage2.cka_rows,
        },
    }


def stage2_summary(result: Stage2Result, decision: Decision) -> dict[str, Any]:
    """What the report's Stage 2 section reads (stage2.json). `strongest`: the decision's best backbone
    layer; `recommended`: the same, only when the decision is GO or conditional GO (a NOGO recommends nothing)."""
    by_rep = {d.representation: d for d in result.directions}
    best = decision.best_representation
    strongest = None
    if best is not None and best in by_rep:
        d = by_rep[best]
        strongest = {"representation": best, "layer": d.layer, "module_path": d.module_path, "axis": d.axis, "level": decision.levels[best].value}
    return {
        "decision": decision.decision.value,
        "strongest": strongest,
        "recommended": strongest if decision.decision != Level.NOGO else None,
        "layers": {d.representation: {"layer": d.layer, "module_path": d.module_path, "axis": d.axis, "C": d.C} for d in result.directions},
        "files": {"directions": TENSORS_FILE, "sidecar": SIDECAR_FILE, "erasure": ERASURE_FILE, "cka": CKA_FILE},
        **result.design,
        "notes": list(result.notes),
    }


def compute_stage2(
    vectors: Mapping[str, np.ndarray],
    meta: pd.DataFrame,
    cfg: Stage15Config,
    *,
    dataset_hash: Optional[str] = None,
    progress: bool = True,
) -> Stage2Result:
    """Directions and erasure for every deciding (backbone) representation in `vectors`, CKA over all
    of them; `meta` rows (utt_id, speaker, accent, text_id) aligned with the vectors' rows. Runs on one
    CPU thread: every solve and eraser here is small, and threads stall them (`runtime.torch_threads`)."""
    if not len(vectors):
        raise Stage2Error("stage2: no representations to analyse")
    with torch_threads(1):
        return _compute(vectors, meta, cfg, dataset_hash=dataset_hash, progress=progress)


def _compute(vectors, meta, cfg, *, dataset_hash, progress) -> Stage2Result:
    meta = meta.reset_index(drop=True)
    accents, speakers = (meta[c].to_numpy().astype(str) for c in ("accent", "speaker"))
    deciding = _deciding(vectors)
    notes: list[str] = []
    device = cfg.probes.device
    fold_seeds = [seed_for(cfg.probes.seed, 5, s) for s in range(cfg.probes.seeds)]
    directions: list[LayerDirections] = []
    chosen: dict[str, float] = {}
    for rep in tqdm(deciding, desc="stage2 directions", unit="layer", disable=not progress):
        X = np.asarray(vectors[rep], dtype=np.float64)
        choice = choose_c(X, accents, speakers, c_grid=cfg.probes.c_grid, inner_folds=cfg.probes.inner_folds, seeds=fold_seeds, device=device)
        if choice.note and choice.note not in notes:
            notes.append(choice.note)
        layer = rep.partition(":")[2]
        module_path, axis = alias_site(layer) if source_of(rep) == "backbone" else (None, None)
        directions.append(fit_layer_directions(X, accents, choice, layer=layer, representation=rep, device=device, module_path=module_path, axis=axis))
        chosen[rep] = choice.C
    erasure, erasure_notes = erasure_metrics(
        {rep: vectors[rep] for rep in deciding}, meta, cfg.stage2, chosen, text_folds=cfg.probes.text_folds, device=device, progress=progress
    )
    notes += [n for n in erasure_notes if n not in notes]
    rows = cka_rows(meta, cfg.stage2)
    return Stage2Result(
        directions=directions,
        directions_meta=_directions_meta(cfg, deciding, meta, dataset_hash),
        erasure=erasure,
        cka=cka_matrix(vectors, rows),
        design=_design(cfg, rows, meta),
        notes=notes,
    )


def save_stage2(result: Stage2Result, folder: str | Path, summary: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the Stage 2 files under `folder`, each atomically; the last one written (the summary, or
    design.json without one) marks a complete folder, so it is removed first. Returns the folder."""
    folder = Path(folder)
    last = folder / (SUMMARY_FILE if summary is not None else DESIGN_FILE)
    last.unlink(missing_ok=True)
    save_directions(result.directions, folder, result.directions_meta)
    write_csv(folder / ERASURE_FILE, result.erasure)
    write_csv(folder / CKA_FILE, result.cka.rename_axis("representation"), index=True)
    atomic_write_json(folder / DESIGN_FILE, {**result.design, "notes": list(result.notes)})
    if summary is not None:
        atomic_write_json(folder / SUMMARY_FILE, dict(summary))
    return folder


def load_stage2(folder: str | Path) -> Stage2Result:
    """A `Stage2Result` from a folder `save_stage2` wrote."""
    folder = Path(folder)
    directions = load_directions(folder)
    design = json.loads((folder / DESIGN_FILE).read_text(encoding="utf-8"))
    return Stage2Result(
        directions=list(directions.layers.values()),
        directions_meta=dict(directions.meta),
        erasure=read_csv(folder / ERASURE_FILE),
        cka=read_csv(folder / CKA_FILE, index_col=0),
        design={k: v for k, v in design.items() if k != "notes"},
        notes=list(design.get("notes", [])),
    )
