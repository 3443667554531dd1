"""Probing engine vs a scikit-learn loop: the same protocol, two fit backends, one process; and the
engine on a busy machine.

    python benchmarks/bench_probes.py [--quick] [--threads 2]
    python benchmarks/bench_probes.py --contended [--quick]

--contended times the engine (the same call, each time in a fresh subprocess) quiet and beside
BUSY_PROCESSES processes that spin on the CPU, for each thread setting of `CONTENDED_SETTINGS`
(torch intra-op threads × OpenMP wait policy), and prints wall time, CPU time and the loaded/quiet
ratio of each: on 2 cores a fair share beside two spinners is a third of the CPU, a ratio of 3.
"quiet" means no spinner of ours: other jobs on the machine count too, so the load average is printed.

Both runs call `evaluate_representations` on the same planted features with the same config; the
only difference is the backend that fits the probes: `TorchBackend` (batched tensor programs) or
`SklearnBackend` (one `LogisticRegression` fit per representation × fold × seed × C × permutation,
StandardScaler on each training set). Prints both wall times, the ratio, the number of sklearn fits
and the largest |ΔF1| over every F1 column of metrics.csv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
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


BUSY_PROCESSES = 2
CONTENDED_SETTINGS = [(2, ""), (2, "PASSIVE"), (1, "")]
"""(torch threads, OMP_WAIT_POLICY) of each contended measurement; "": libgomp's default (spin, then sleep),
"PASSIVE": the package's default (`stage1_5.runtime.OPENMP_DEFAULTS`)."""


def contended_child(size: dict, threads: int) -> None:
    """One timed engine call in this (fresh) process: prints {"wall_s", "cpu_s", "threads"} as JSON."""
    from stage1_5.runtime import configure_torch_threads

    if threads:
        torch.set_num_threads(threads)
    else:
        configure_torch_threads()
    features, meta = planted_features(size)
    cfg = ProbeConfig(seeds=size["seeds"], permutations=size["permutations"], bootstrap=200, device="cpu")
    start, cpu0 = time.perf_counter(), time.process_time()
    evaluate_representations(features, meta, cfg, progress=False, backend=TorchBackend("cpu"))
    print(json.dumps({"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0, "threads": torch.get_num_threads()}))


def _timed_child(args: argparse.Namespace, threads: int, policy: str) -> dict:
    cmd = [sys.executable, __file__, "--contended-child", str(threads)] + (["--quick"] if args.quick else [])
    env = {**os.environ, "OMP_WAIT_POLICY": policy}  # "": set but empty, so the package's default does not apply
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def contended(args: argparse.Namespace) -> None:
    """Quiet, then beside BUSY_PROCESSES spinning processes, for every CONTENDED_SETTINGS entry."""
    print(f"engine quiet vs beside {BUSY_PROCESSES} spinning processes ({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start)")
    print(f"{'threads':>8} {'OMP_WAIT_POLICY':>16} {'quiet s':>8} {'cpu s':>7} {'loaded s':>9} {'cpu s':>7} {'ratio':>6} {'load':>5}")
    for threads, policy in CONTENDED_SETTINGS:
        quiet = _timed_child(args, threads, policy)
        spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY_PROCESSES)]
        try:
            loaded = _timed_child(args, threads, policy)
            load = os.getloadavg()[0]
        finally:
            for proc in spinners:
                proc.kill()
                proc.wait()
        print(
            f"{quiet['threads']:>8} {policy or 'libgomp default':>16} {quiet['wall_s']:8.1f} {quiet['cpu_s']:7.1f} {loaded['wall_s']:9.1f} "
            f"{loaded['cpu_s']:7.1f} {loaded['wall_s'] / quiet['wall_s']:6.2f} {load:5.1f}",
            flush=True,
        )


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
    parser.add_argument("--contended", action="store_true", help="the engine quiet vs beside busy processes, per thread setting")
    parser.add_argument("--contended-child", type=int, metavar="THREADS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = dict(SIZES["quick" if args.quick else "default"])
    size.update({k: getattr(args, k) for k in ("reps", "seeds", "permutations") if getattr(args, k) is not None})
    if args.contended_child is not None:
        contended_child(size, args.contended_child)
        return
    if args.contended:
        contended(args)
        return
    torch.set_num_threads(args.threads)
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
