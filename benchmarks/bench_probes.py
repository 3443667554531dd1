"""Probing engine vs a scikit-learn loop: the same protocol, two fit backends, one process.

    python benchmarks/bench_probes.py [--quick] [--threads 2]

Both runs call `evaluate_representations` on the same planted features with the same config; the
only difference is the backend that fits the probes: `TorchBackend` (batched tensor programs) or
`SklearnBackend` (one `LogisticRegression` fit per representation × fold × seed × C × permutation,
StandardScaler on each training set). Prints both wall times, the ratio, the number of sklearn fits
and the largest |ΔF1| over every F1 column of metrics.csv.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from stage1_5.config import ProbeConfig
from stage1_5.probes import evaluate_representations
from stage1_5.probes.engine import SklearnBackend, TorchBackend
from stage1_5.probes.planted import planted_dataset

F1_COLUMNS = ["accent_f1", "text_f1_seen", "text_f1_unseen"]
SIZES = {
    # speakers per accent (3 accents), texts, representations, dims, seeds, permutations.
    # "default" keeps the sklearn loop to minutes on 2 cores; --reps/--seeds/--permutations scale it up
    # (the loop grows linearly in all three: 20 reps × 5 seeds × 20 permutations is ~60k fits, hours).
    "default": dict(speakers_per_accent=8, n_texts=30, reps=4, dim=1024, seeds=3, permutations=10),
    "quick": dict(speakers_per_accent=4, n_texts=12, reps=4, dim=256, seeds=2, permutations=5),
}


def planted_features(size: dict) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Representations of varying accent / speaker / leak strength over one speakers × texts design."""
    rng = np.random.default_rng(0)
    features, meta = {}, None
    for i in range(size["reps"]):
        data = planted_dataset(
            speakers_per_accent=size["speakers_per_accent"],
            n_texts=size["n_texts"],
            dim=size["dim"],
            accent=float(rng.uniform(0.0, 0.3)),
            speaker=float(rng.uniform(0.0, 0.5)),
            leak=float(rng.uniform(0.0, 0.2)),
            accent_x_text=float(rng.uniform(0.0, 0.2)),
            name=f"bench:layer_{i:02d}",
            random_state=i,
        )
        features.update(data.features)
        meta = data.meta
    return features, meta


class CountingSklearn(SklearnBackend):
    """The reference loop, counting its LogisticRegression fits."""

    fits = 0

    def decision_function(self, jobs, progress=None):
        self.fits += sum(job.C.size for job in jobs)
        return super().decision_function(jobs, progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small size (seconds, not minutes)")
    parser.add_argument("--threads", type=int, default=2, help="torch / BLAS threads")
    parser.add_argument("--reps", type=int, default=None, help="number of representations")
    parser.add_argument("--seeds", type=int, default=None, help="outer-CV seeds")
    parser.add_argument("--permutations", type=int, default=None, help="speaker-level permutations")
    parser.add_argument("--skip-sklearn", action="store_true", help="time the engine only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = dict(SIZES["quick" if args.quick else "default"])
    size.update({k: getattr(args, k) for k in ("reps", "seeds", "permutations") if getattr(args, k) is not None})
    features, meta = planted_features(size)
    cfg = ProbeConfig(seeds=size["seeds"], permutations=size["permutations"], bootstrap=200, device="cpu")
    print(
        f"size: {meta.speaker.nunique()} speakers × {meta.text_id.nunique()} texts = {len(meta)} utterances, "
        f"{len(features)} representations × {size['dim']} dims, seeds={cfg.seeds}, permutations={cfg.permutations}, "
        f"c_grid={cfg.c_grid}, threads={args.threads}"
    )
    t0 = time.perf_counter()
    fast = evaluate_representations(features, meta, cfg, progress=False, backend=TorchBackend("cpu"))
    t_engine = time.perf_counter() - t0
    print(f"engine (torch, batched): {t_engine:8.1f} s")
    if args.skip_sklearn:
        return
    ref_backend = CountingSklearn(tol=1e-4, max_iter=1000)
    t0 = time.perf_counter()
    ref = evaluate_representations(features, meta, cfg, progress=False, backend=ref_backend)
    t_loop = time.perf_counter() - t0
    delta = (fast.metrics[F1_COLUMNS] - ref.metrics[F1_COLUMNS]).abs().to_numpy().max()
    agree = (fast.predictions.y_pred == ref.predictions.y_pred).mean()
    print(f"sklearn loop ({ref_backend.fits} fits): {t_loop:8.1f} s")
    print(f"speed-up: {t_loop / t_engine:.1f}x   max |ΔF1| = {delta:.4f}   prediction agreement = {agree:.4f}")


if __name__ == "__main__":
    main()
