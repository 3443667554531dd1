"""The probe stage at the full experiment's size, and the engine against the first landing's.

    .venv/bin/python benchmarks/bench_probe_stage.py            # both parts
    .venv/bin/python benchmarks/bench_probe_stage.py full       # 23 representations, config/stage1_5.yaml's probes
    .venv/bin/python benchmarks/bench_probe_stage.py ratio      # identical work, two engines, one process

full: the guide's design (3 accents × 8 speakers × 30 texts = 720 utterances) with the full
experiment's 23 representations at their real widths — 8 backbone layers at d = 2048 (the 1.7B's
hidden size), 13 WavLM-base+ layers at 768, ECAPA 192, MFCC statistics 120 — probed with
config/stage1_5.yaml's `probes` and `experiment.alpha` (5 fold seeds, 5 C values, 199
permutations, 200 refit bootstrap draws, sequential stop) through the public
`evaluate_representations`. The planted features carry a real accent in some layers and none in
others (the backbone's first layers, the speaker embedding), as a real run would.

ratio: one representation (d = 1024) on identical work — the same folds, permutations and C grid,
the config's seeds and permutations, no bootstrap refits (the first landing's engine has no row
weights) and no sequential stop — through the current `TorchBackend` and through the first
landing's, read from git (`git show FIRST_LANDING:stage1_5/probes/engine.py`). Prints both times, the
ratio, max |ΔF1| and both p-values.

Threads: `--threads` (default: the CLI's, one per core up to 8).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stage1_5.config import load_config
from stage1_5.probes import evaluate_representations
from stage1_5.probes.engine import TorchBackend
from stage1_5.probes.planted import planted_dataset
from stage1_5.runtime import configure_torch_threads

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "stage1_5.yaml"
FIRST_LANDING = "a7de8bd"
"""The commit whose probe engine the issue measures against (benchmarks in shared/notes/probe_perf.md)."""
DESIGN = dict(n_accents=3, speakers_per_accent=8, n_texts=30)
F1_COLUMNS = ["accent_f1", "text_f1_seen", "text_f1_unseen"]

# representation → (width, planted accent strength): what the full experiment probes
FULL_EXPERIMENT = {
    **{f"backbone:{layer}": (2048, accent) for layer, accent in [
        ("text_encoder_out", 0.0), ("decoder_block_02", 0.0), ("decoder_block_04", 0.1), ("decoder_block_08", 0.25),
        ("decoder_block_12", 0.3), ("decoder_block_16", 0.25), ("decoder_block_20", 0.2), ("pre_vocoder", 0.1),
    ]},
    **{f"ssl:layer_{i:02d}": (768, 0.05 + 0.25 * np.sin(np.pi * i / 12)) for i in range(13)},
    "ecapa:embedding": (192, 0.0),
    "acoustic:mfcc_stats": (120, 0.1),
}


def probe_settings():
    cfg = load_config(CONFIG)
    return cfg.probes.model_copy(update={"device": "cpu"}), cfg.experiment.alpha


def full_experiment(args) -> None:
    probes, alpha = probe_settings()
    features, meta = {}, None
    for i, (name, (dim, accent)) in enumerate(FULL_EXPERIMENT.items()):
        data = planted_dataset(**DESIGN, dim=dim, accent=accent, speaker=0.4, leak=0.05, accent_x_text=0.05, name=name, random_state=i)
        features.update({name: data.features[name].astype(np.float32)})
        meta = data.meta
    print(
        f"full experiment: {len(features)} representations, {len(meta)} utterances, seeds={probes.seeds}, "
        f"c_grid={probes.c_grid}, permutations={probes.permutations}, bootstrap={probes.bootstrap}, "
        f"sequential={probes.sequential} (alpha {alpha}), threads={torch.get_num_threads()}",
        flush=True,
    )
    t0 = time.perf_counter()
    results = evaluate_representations(features, meta, probes, alpha=alpha, progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    m = results.metrics.set_index("representation")
    for family, rows in m.groupby("family"):
        print(
            f"  {family:9s} {len(rows):2d} representations, best F1 {rows.accent_f1.max():.3f}, "
            f"family-wise p {rows.p_value_fwer.min():.3f}, permutations run {int(rows.n_permutations.iloc[0])}"
        )
    print(f"probe stage, full experiment: {seconds:.0f} s ({seconds / 60:.1f} min, {seconds / len(features):.1f} s per representation)")


def first_landing_engine():
    """The first landing's engine module, from git; None (with the reason) when git or the commit is missing."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{FIRST_LANDING}:stage1_5/probes/engine.py"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        return None, f"the first landing's engine is not in this clone's history ({FIRST_LANDING}): {err}"
    folder = Path(tempfile.mkdtemp(prefix="stage1_5_first_engine_"))
    path = folder / "engine_first_landing.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("engine_first_landing", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module, None


def ratio(args) -> None:
    probes, _ = probe_settings()
    probes = probes.model_copy(update={"bootstrap": 0, "sequential": False})
    first, why = first_landing_engine()
    if first is None:
        print(f"ratio: skipped, {why}")
        return
    data = planted_dataset(**DESIGN, dim=1024, accent=0.2, speaker=0.4, leak=0.1, accent_x_text=0.1, name="bench:layer", random_state=0)
    print(
        f"identical work: 1 representation × d=1024, {len(data.meta)} utterances, seeds={probes.seeds}, c_grid={probes.c_grid}, "
        f"permutations={probes.permutations}, no refits, threads={torch.get_num_threads()}",
        flush=True,
    )
    runs = {}
    for label, backend in [("engine (now)", TorchBackend("cpu")), (f"engine ({FIRST_LANDING}, first landing)", first.TorchBackend("cpu"))]:
        t0 = time.perf_counter()
        metrics = evaluate_representations(data.features, data.meta, probes, progress=False, backend=backend).metrics
        runs[label] = (time.perf_counter() - t0, metrics)
        print(f"  {label:32s} {runs[label][0]:7.1f} s   F1 {metrics.accent_f1.iloc[0]:.4f}   p {metrics.p_value.iloc[0]:.3f}", flush=True)
    (t_now, now), (t_first, then) = runs.values()
    delta = float((now[F1_COLUMNS] - then[F1_COLUMNS]).abs().to_numpy().max())
    print(f"speed-up over the first landing's engine: {t_first / t_now:.1f}x   max |ΔF1| = {delta:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["full", "ratio", "all"], default="all")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        configure_torch_threads()
    if args.part in ("ratio", "all"):
        ratio(args)
    if args.part in ("full", "all"):
        full_experiment(args)


if __name__ == "__main__":
    main()
