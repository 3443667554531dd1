"""Calibration of the decision on planted worlds (issues 9 and 22): false-GO and balanced_nuisance
rates on nulls, power, CI coverage and width, balanced nuisance designs, leakage excess on clean and
leaky codes, and the cost of the refit interval. `make calibrate` runs every study.

    python benchmarks/calibrate.py false-go --replicates 40 --accents 2 3
    python benchmarks/calibrate.py nuisance --replicates 40
    python benchmarks/calibrate.py leakage --replicates 40 [--texts 30]
    python benchmarks/calibrate.py coverage --replicates 80 --methods jackknife normal --design 3x8x30
    python benchmarks/calibrate.py power | cost

Each study prints one table and a JSON line (for the closing notes). Every run goes through the
decision's own path: the sequential permutation stop at the decision's alpha, then `decide`.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd
import torch

from stage1_5.config import ExperimentConfig, ProbeConfig
from stage1_5.decision import Decision, Level, decide
from stage1_5.probes import ProbeResults, evaluate_representations
from stage1_5.probes.calibration import World, balanced_share
from stage1_5.probes.design import build_design
from stage1_5.probes.planted import planted_dataset

FAST = dict(seeds=1, permutations=199, bootstrap=0, c_grid=[1.0], device="cpu")
"""Replicate studies: one C (no inner CV) keeps a replicate to seconds; the permutation test is exact
for any fixed protocol, so this measures the same guarantee. 199 permutations as the default, so the
sequential stop settles nulls after 40 (as in a real run) and the below-null p can reach 1/41.
--seeds sets the fold seeds (the reported F1 and every p average over them)."""
ALPHA = ExperimentConfig().alpha


def _decide_on(meta: pd.DataFrame, features: dict, probe: ProbeConfig) -> tuple[ProbeResults, Decision]:
    res = evaluate_representations(features, meta, probe, alpha=ALPHA, progress=False)
    return res, decide(res.metrics, ExperimentConfig())


def _decision(world: World, rng, layers: int, probe: ProbeConfig, drop_group: bool = False) -> tuple[ProbeResults, Decision]:
    meta, features = world.draw(rng, layers)
    if drop_group and "group" in meta.columns:
        meta = meta.drop(columns="group")
    return _decide_on(meta, features, probe)


def _nuisance_run(world: World, rng, probe: ProbeConfig, drop_group: bool) -> tuple[ProbeResults, Decision, float]:
    """`_decision` on one layer, and the most often any exact test of label exchangeability on the run's
    permutations can fire on this draw: min(1, alpha / share of the permuted labellings as balanced in the
    donor factor as the real one) (`calibration.balanced_share`)."""
    meta, features = world.draw(rng, 1)
    factor = meta["group"].to_numpy()
    if drop_group:
        meta = meta.drop(columns="group")
    design = build_design(meta, probe)
    return *_decide_on(meta, features, probe), min(1.0, ALPHA / balanced_share(design.perm_labels, design.y, factor))


def _upper95(count: int, n: int) -> float:
    """One-sided 95 % upper bound of a rate seen count times in n (Clopper-Pearson)."""
    from scipy.stats import beta

    return 1.0 if count >= n else float(beta.ppf(0.95, count + 1, n - count))


def false_go(replicates: int, seed: int = 0, accents=(2, 3, 5), seeds: int = 1) -> dict:
    """Nulls without any nuisance: false GO / conditional GO, and how often balanced_nuisance fires."""
    probe = ProbeConfig(**{**FAST, "seeds": seeds})
    out = {}
    for k in accents:
        for layers in (1, 12):
            rng = np.random.default_rng([seed, k, layers])
            world = World(n_accents=k, speakers_per_accent=8, n_texts=6, accent=0.0)
            runs = [_decision(world, rng, layers, probe) for _ in range(replicates)]
            levels = [d.decision for _, d in runs]
            nuisance = sum(d.diagnosis == "balanced_nuisance" for _, d in runs)
            below = sum(bool(((r.metrics.accent_f1 <= 1 / k) & (r.metrics[["p_value", "p_value_fwer"]].min(axis=1) < ALPHA)).any()) for r, _ in runs)
            key = f"K={k} layers={layers}"
            out[key] = {
                "replicates": replicates,
                "seeds": seeds,
                "go": sum(lv == Level.GO for lv in levels),
                "conditional": sum(lv == Level.CONDITIONAL for lv in levels),
                "false_go_upper95": _upper95(sum(lv != Level.NOGO for lv in levels), replicates),
                "balanced_nuisance": nuisance,
                "balanced_nuisance_upper95": _upper95(nuisance, replicates),
                "significant_at_or_below_chance": below,
            }
            print(f"{key}: {out[key]}", flush=True)
    return out


def power(replicates: int, seed: int = 0, seeds: int = 1) -> dict:
    probe = ProbeConfig(**{**FAST, "seeds": seeds})
    rng = np.random.default_rng([seed, 99])
    world = World(n_accents=3, speakers_per_accent=8, n_texts=6, accent=0.6)
    runs = [_decision(world, rng, 8, probe) for _ in range(replicates)]
    levels = [d.decision for _, d in runs]
    best = [float(r.metrics.accent_f1.max()) for r, _ in runs]
    return {"replicates": replicates, "seeds": seeds, "go": sum(lv == Level.GO for lv in levels), "mean_best_f1": float(np.mean(best))}


def coverage(replicates: int, seed: int = 0, bootstrap: int = 200, seeds: int = 3, design: str = "3x8x30", accent: float = 0.45, methods=("jackknife", "normal")) -> dict:
    """Coverage and width of the F1 interval (each of `methods`, on the same replicates) at a design
    (accents × speakers per accent × texts; the guide's is 3 × 8 × 30) for the expected CV F1 of the
    design, estimated as the mean point estimate over the replicates (the interval's target: F1 on new
    speakers of a probe trained on this many). The SD of the point estimates over replicates is the
    width a well-sized normal interval implies (2·1.96·SD)."""
    K, P, T = (int(v) for v in design.split("x"))
    world = World(n_accents=K, speakers_per_accent=P, n_texts=T, accent=accent)
    rng = np.random.default_rng([seed, 7])
    rows, seconds = [], dict.fromkeys(methods, 0.0)
    for r in range(replicates):
        meta, features = world.draw(rng, 1)
        row = {}
        for method in methods:
            cfg = ProbeConfig(seeds=seeds, permutations=0, bootstrap=bootstrap, interval_method=method, c_grid=[0.1, 1.0], device="cpu")
            t0 = time.perf_counter()
            m = evaluate_representations(features, meta, cfg, progress=False).metrics.iloc[0]
            seconds[method] += time.perf_counter() - t0
            row.update(f1=m.accent_f1, **{f"{method}_unstable": bool(m.accent_f1_seed_unstable), f"{method}_low": m.accent_f1_ci_low, f"{method}_high": m.accent_f1_ci_high})
        rows.append(row)
        print(f"replicate {r}: F1 {row['f1']:.3f} " + " ".join(f"{m} [{row[f'{m}_low']:.3f}, {row[f'{m}_high']:.3f}]" for m in methods), flush=True)
    frame = pd.DataFrame(rows)
    truth = float(frame.f1.mean())
    out = {"replicates": replicates, "design": f"{design}, accent {accent}, seeds {seeds}, bootstrap {bootstrap}", "truth_f1": truth,
           "sd_f1_over_replicates": float(frame.f1.std(ddof=1)), "implied_width": float(2 * 1.96 * frame.f1.std(ddof=1))}
    for method in methods:
        lo, hi = frame[f"{method}_low"], frame[f"{method}_high"]
        out[f"coverage_{method}"] = float(((lo <= truth) & (truth <= hi)).mean())
        out[f"mean_width_{method}"] = float((hi - lo).mean())
        out[f"seed_unstable_{method}"] = int(frame[f"{method}_unstable"].sum())
        out[f"seconds_{method}"] = round(seconds[method], 1)
    return out


def nuisance(replicates: int, seed: int = 0, seeds: int = 1) -> dict:
    """A voice donor shared by one speaker of every accent (2 accents × 8 donors), with and without
    the group column, with no accent and with a weak one: balanced_nuisance should fire without groups.
    Then a gender-like factor (2 voices, 4 speakers of each in every accent), no accent, no group column.
    `ceiling`: the sum over replicates of the most often any exact test could fire (`_nuisance_run`): where
    it is low, no statistic of the permutation test can make balanced_nuisance fire in most runs."""
    probe = ProbeConfig(**{**FAST, "seeds": seeds})
    out = {}
    for accent, with_group, donors in ((0.0, False, 0), (0.0, True, 0), (0.6, False, 0), (0.6, True, 0), (0.0, False, 2)):
        rng = np.random.default_rng([seed, int(accent * 10), with_group] + ([donors] if donors else []))
        world = World(n_accents=2, speakers_per_accent=8, n_texts=6, accent=accent, speaker=0.3, donor=2.0, donors=donors)
        runs = [_nuisance_run(world, rng, probe, drop_group=not with_group) for _ in range(replicates)]
        levels = [d.decision.value for _, d, _ in runs]
        fired = sum(d.diagnosis == "balanced_nuisance" for _, d, _ in runs)
        key = f"accent={accent} group={'yes' if with_group else 'no'}" + (f" donors={donors}" if donors else "")
        out[key] = {"seeds": seeds, "mean_f1": float(np.mean([r.metrics.accent_f1.iloc[0] for r, _, _ in runs])), "go": levels.count("GO"),
                    "balanced_nuisance": fired, "ceiling": round(sum(c for _, _, c in runs), 1), "replicates": replicates}
        print(key, out[key], flush=True)
    return out


def leakage(replicates: int, seed: int = 0, texts: int = 10) -> dict:
    """Leakage excess (pp) on planted codes (3 accents × 8 speakers × `texts` texts, strong accent): a clean
    code (speakers orthogonal to the accent span) and a leaky one (speakers spread along their accent
    axis), each also seen through a random linear map (`mixed`: correlated coordinates, the code as clean
    or as leaky as before); how often each crosses the GO / conditional margins (7 / 15 pp as written)."""
    cfg, exp = ProbeConfig(seeds=1, permutations=0, bootstrap=0, device="cpu"), ExperimentConfig()
    codes = {
        "clean": dict(speaker=2.0),
        "leaky": dict(speaker=2.0, leak=2.0),
        "clean, mixed coordinates": dict(speaker=2.0, mixed=True),
        "leaky, mixed coordinates": dict(speaker=2.0, leak=2.0, mixed=True),
    }
    out = {}
    for name, kw in codes.items():
        excess = []
        for r in range(replicates):
            data = planted_dataset(n_accents=3, speakers_per_accent=8, n_texts=texts, accent=1.0, random_state=seed * 10_000 + r, **kw)
            excess.append(float(evaluate_representations(data.features, data.meta, cfg, progress=False).metrics.leak_excess_pp.iloc[0]))
        e = np.array(excess)
        out[name] = {"replicates": replicates, "texts": texts, "mean_pp": float(e.mean()), "sd_pp": float(e.std(ddof=1)), "se_mean_pp": float(e.std(ddof=1) / np.sqrt(len(e))),
                     "q05_q50_q95": [float(q) for q in np.quantile(e, [0.05, 0.5, 0.95])],
                     "above_go_margin": int((e > exp.leakage_margin_pp).sum()), "above_conditional_margin": int((e > exp.leakage_margin_conditional_pp).sum())}
        print(name, out[name], flush=True)
    return out


def cost(bootstrap: int = 200) -> dict:
    """Seconds each F1 interval method adds on the guide's design (3 × 8 × 30), one layer at d = 1024."""
    world = World(n_accents=3, speakers_per_accent=8, n_texts=30, dim=1024, accent=0.5)
    meta, features = world.draw(np.random.default_rng(0), 1)
    times = {}
    for b, method in ((0, "jackknife"), (bootstrap, "jackknife"), (bootstrap, "normal")):
        t0 = time.perf_counter()
        evaluate_representations(features, meta, ProbeConfig(seeds=5, permutations=0, bootstrap=b, interval_method=method, device="cpu"), progress=False)
        times[b, method] = time.perf_counter() - t0
    return {"design": "3x8x30, d=1024, 1 layer, seeds 5, c_grid 4", "seconds_without": times[0, "jackknife"],
            **{f"interval_seconds_per_layer_{m}": times[bootstrap, m] - times[0, "jackknife"] for m in ("jackknife", "normal")}}


STUDIES = {"false-go": false_go, "power": power, "coverage": coverage, "nuisance": nuisance, "leakage": leakage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=[*STUDIES, "cost", "all"])
    parser.add_argument("--replicates", type=int, default=40)
    parser.add_argument("--accents", type=int, nargs="+", default=[2, 3, 5], help="false-go: the numbers of accents to study")
    parser.add_argument("--seeds", type=int, default=1, help="false-go, power, nuisance: fold seeds per run")
    parser.add_argument("--seed", type=int, default=0, help="the study's random seed (replicates drawn from it)")
    parser.add_argument("--texts", type=int, default=10, help="leakage: texts per speaker (30 is the guide's design)")
    parser.add_argument("--methods", nargs="+", default=["jackknife", "normal"], choices=["jackknife", "normal", "percentile"], help="coverage: the F1 interval methods to compare")
    parser.add_argument("--design", default="3x8x30", help="coverage: accents x speakers per accent x texts")
    parser.add_argument("--strength", type=float, default=0.45, help="coverage: the planted accent's strength (0: a null)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # replicate loops on a shared machine: one core each
    names = list(STUDIES) + ["cost"] if args.study == "all" else [args.study]
    for name in names:
        t0 = time.perf_counter()
        if name == "cost":
            result = cost()
        elif name == "false-go":
            result = false_go(args.replicates, args.seed, accents=tuple(args.accents), seeds=args.seeds)
        elif name == "coverage":
            result = coverage(args.replicates, args.seed, design=args.design, accent=args.strength, methods=tuple(args.methods))
        elif name in ("power", "nuisance"):
            result = STUDIES[name](args.replicates, args.seed, seeds=args.seeds)
        else:
            result = leakage(args.replicates, args.seed, texts=args.texts)
        print(json.dumps({"study": name, **result, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
