"""Calibration of the decision on planted worlds (issue 9): false-GO rate, power, CI coverage,
balanced nuisance, and the cost of the refit interval. `make calibrate` runs every study.

    python benchmarks/calibrate.py false-go --replicates 100
    python benchmarks/calibrate.py coverage --replicates 100
    python benchmarks/calibrate.py power | nuisance | cost

Each study prints one table and a JSON line (for the closing notes).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

from stage1_5.config import ExperimentConfig, ProbeConfig
from stage1_5.decision import Level, decide
from stage1_5.probes import evaluate_representations
from stage1_5.probes.calibration import World

FAST = dict(seeds=1, permutations=99, bootstrap=0, c_grid=[1.0], device="cpu")
"""Replicate studies: one fold seed and one C (no inner CV) keep a replicate to seconds; the
permutation test is exact for any fixed protocol, so this measures the same guarantee."""


def _decision(world: World, rng, layers: int, probe: ProbeConfig):
    meta, features = world.draw(rng, layers)
    res = evaluate_representations(features, meta, probe, progress=False)
    return res, decide(res.metrics, ExperimentConfig())


def false_go(replicates: int, seed: int = 0, accents=(2, 3, 5)) -> dict:
    probe = ProbeConfig(**FAST)
    out = {}
    for k in accents:
        for layers in (1, 12):
            rng = np.random.default_rng([seed, k, layers])
            world = World(n_accents=k, speakers_per_accent=8, n_texts=6, accent=0.0)
            levels = [_decision(world, rng, layers, probe)[1].decision for _ in range(replicates)]
            out[f"K={k} layers={layers}"] = {
                "replicates": replicates,
                "go": sum(lv == Level.GO for lv in levels),
                "conditional": sum(lv == Level.CONDITIONAL for lv in levels),
            }
            print(f"K={k} layers={layers}: {out[f'K={k} layers={layers}']}", flush=True)
    return out


def power(replicates: int, seed: int = 0) -> dict:
    probe = ProbeConfig(**FAST)
    rng = np.random.default_rng([seed, 99])
    world = World(n_accents=3, speakers_per_accent=8, n_texts=6, accent=0.6)
    runs = [_decision(world, rng, 8, probe) for _ in range(replicates)]
    levels = [d.decision for _, d in runs]
    best = [float(r.metrics.accent_f1.max()) for r, _ in runs]
    return {"replicates": replicates, "go": sum(lv == Level.GO for lv in levels), "mean_best_f1": float(np.mean(best))}


def coverage(replicates: int, seed: int = 0, bootstrap: int = 200, seeds: int = 3) -> dict:
    """Coverage of the F1 interval (both methods) for the expected CV F1 of the design, estimated as
    the mean point estimate over the replicates (the interval's target: F1 on new speakers of a
    probe trained on this many)."""
    world = World(n_accents=3, speakers_per_accent=8, n_texts=10, accent=0.45)
    rng = np.random.default_rng([seed, 7])
    rows = []
    for r in range(replicates):
        meta, features = world.draw(rng, 1)
        row = {}
        for method in ("normal", "percentile"):
            cfg = ProbeConfig(seeds=seeds, permutations=0, bootstrap=bootstrap, interval_method=method, c_grid=[0.1, 1.0], device="cpu")
            m = evaluate_representations(features, meta, cfg, progress=False).metrics.iloc[0]
            row.update(f1=m.accent_f1, **{f"{method}_low": m.accent_f1_ci_low, f"{method}_high": m.accent_f1_ci_high})
        rows.append(row)
        print(f"replicate {r}: F1 {row['f1']:.3f} normal [{row['normal_low']:.3f}, {row['normal_high']:.3f}]", flush=True)
    frame = pd.DataFrame(rows)
    truth = float(frame.f1.mean())
    out = {"replicates": replicates, "truth_f1": truth}
    for method in ("normal", "percentile"):
        lo, hi = frame[f"{method}_low"], frame[f"{method}_high"]
        out[f"coverage_{method}"] = float(((lo <= truth) & (truth <= hi)).mean())
        out[f"mean_width_{method}"] = float((hi - lo).mean())
    return out


def nuisance(replicates: int, seed: int = 0) -> dict:
    probe = ProbeConfig(**FAST)
    out = {}
    for accent in (0.0, 0.6):
        for with_group in (False, True):
            rng = np.random.default_rng([seed, int(accent * 10), with_group])
            world = World(n_accents=2, speakers_per_accent=8, n_texts=6, accent=accent, speaker=0.3, donor=2.0)
            f1s, levels, diags = [], [], []
            for _ in range(replicates):
                meta, features = world.draw(rng, 1)
                if not with_group:
                    meta = meta.drop(columns="group")
                res = evaluate_representations(features, meta, probe, progress=False)
                d = decide(res.metrics, ExperimentConfig())
                f1s.append(float(res.metrics.accent_f1.iloc[0]))
                levels.append(d.decision.value)
                diags.append(d.diagnosis.value if d.diagnosis else "")
            key = f"accent={accent} group={'yes' if with_group else 'no'}"
            out[key] = {"mean_f1": float(np.mean(f1s)), "go": levels.count("GO"), "balanced_nuisance": diags.count("balanced_nuisance"), "replicates": replicates}
            print(key, out[key], flush=True)
    return out


def cost(bootstrap: int = 200) -> dict:
    """Seconds the refit interval adds on the guide's design (3 × 8 × 30), one layer at d = 1024."""
    world = World(n_accents=3, speakers_per_accent=8, n_texts=30, dim=1024, accent=0.5)
    meta, features = world.draw(np.random.default_rng(0), 1)
    times = {}
    for b in (0, bootstrap):
        t0 = time.perf_counter()
        evaluate_representations(features, meta, ProbeConfig(seeds=5, permutations=0, bootstrap=b, device="cpu"), progress=False)
        times[b] = time.perf_counter() - t0
    return {"design": "3x8x30, d=1024, 1 layer, seeds 5, c_grid 4", "seconds_without": times[0], f"seconds_with_{bootstrap}": times[bootstrap], "interval_seconds_per_layer": times[bootstrap] - times[0]}


STUDIES = {"false-go": false_go, "power": power, "coverage": coverage, "nuisance": nuisance}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=[*STUDIES, "cost", "all"])
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--accents", type=int, nargs="+", default=[2, 3, 5], help="false-go: the numbers of accents to study")
    args = parser.parse_args()
    names = list(STUDIES) + ["cost"] if args.study == "all" else [args.study]
    for name in names:
        t0 = time.perf_counter()
        if name == "cost":
            result = cost()
        elif name == "false-go":
            result = false_go(args.replicates, accents=tuple(args.accents))
        else:
            result = STUDIES[name](args.replicates)
        print(json.dumps({"study": name, **result, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
