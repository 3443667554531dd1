"""The probe stage at corpus scale: N = 720, 10k, 30k, 100k utterances, one representation, d = 1024.

    .venv/bin/python benchmarks/bench_scale.py                       # 720, 10000, 30000, 100000; B = 0
    .venv/bin/python benchmarks/bench_scale.py --sizes 720 10000 --timeout 600
    .venv/bin/python benchmarks/bench_scale.py --configured          # config/stage1_5.yaml's probes, then B = 0

Prints, per size, wall and CPU seconds (user + system of the child: on a shared machine the CPU
seconds are the steadier figure), peak RSS and F1, then the growth exponent between consecutive
sizes, log(t₂/t₁) / log(N₂/N₁), of both wall and CPU time (1 = linear in the corpus).

Each size runs in its own subprocess, so its peak RSS (`resource.getrusage`, the child's
`ru_maxrss`) is its own. The parent writes the synthetic features straight into an `.npy` file,
block by block (planted accent and speaker directions plus noise, float32), and the child opens it
with `np.load(mmap_mode="r")` exactly as the feature store hands arrays to the probes, then calls the
public `stage1_5.probes.evaluate_representations` with a light `ProbeConfig` (seeds 1, bootstrap 0,
permutations 0; `--permutations` adds more B values), or with `--configured` first the configuration
file's probes as written (fold seeds, C grid, permutations, refit bootstrap) and then the same with B = 0
and no bootstrap. A child that runs past `--timeout` is killed and reported as such,
with its peak RSS up to then (VmHWM);
`--memory-limit-gb` caps its address space (RLIMIT_AS) so that a size that does not fit fails with a
MemoryError instead of swapping the machine.

Designs (accents x speakers per accent x texts, every speaker reads every text):
720 = 3 x 8 x 30 (the guide's minimum), 10k = 3 x 40 x 84, 30k = 3 x 70 x 143, 100k = 3 x 100 x 334.
Beyond `probes.speaker_fold_limit` (20) speakers per accent the outer CV is `probes.large_design_folds`
grouped folds, and the speaker-ID probe runs on `probes.speaker_id_max_speakers` speakers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DESIGNS = {720: (3, 8, 30), 10_000: (3, 40, 84), 30_000: (3, 70, 143), 100_000: (3, 100, 334)}
CONFIG = Path(__file__).resolve().parents[1] / "config" / "stage1_5.yaml"
DIM = 1024
BLOCK = 8192
"""Rows written per block: the parent never holds more than BLOCK x DIM floats."""


def design(n: int) -> tuple[int, int, int]:
    if n in DESIGNS:
        return DESIGNS[n]
    speakers = max(2, round((n / 3 / 30) ** 0.5 * 2))  # grows like the named designs
    return 3, speakers, max(2, n // (3 * speakers))


def write_corpus(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """features.npy (memory-mapped writes, BLOCK rows at a time) and meta.csv for about `n` utterances."""
    import pandas as pd

    accents, speakers, texts = design(n)
    rng = np.random.default_rng(seed)
    accent_dirs = rng.standard_normal((accents, DIM)).astype(np.float32) * 0.05
    speaker_dirs = rng.standard_normal((accents * speakers, DIM)).astype(np.float32) * 0.1
    text_dirs = rng.standard_normal((texts, DIM)).astype(np.float32) * 0.2
    spk = np.repeat(np.arange(accents * speakers), texts)
    txt = np.tile(np.arange(texts), accents * speakers)
    acc = spk // speakers
    total = len(spk)
    features = folder / "features.npy"
    out = np.lib.format.open_memmap(features, mode="w+", dtype=np.float32, shape=(total, DIM))
    for start in range(0, total, BLOCK):
        stop = min(start + BLOCK, total)
        block = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        block += accent_dirs[acc[start:stop]] + speaker_dirs[spk[start:stop]] + text_dirs[txt[start:stop]]
        out[start:stop] = block
    out.flush()
    del out
    meta = pd.DataFrame(
        {
            "utt_id": [f"u{i:06d}" for i in range(total)],
            "speaker": [f"a{a}s{s:03d}" for a, s in zip(acc, spk)],
            "accent": [f"acc{a}" for a in acc],
            "text_id": [f"t{t:03d}" for t in txt],
        }
    )
    meta_path = folder / "meta.csv"
    meta.to_csv(meta_path, index=False)
    return features, meta_path


def probe_config(permutations: int, configured: bool):
    """B = `permutations` on the light settings, or (configured) the configuration file's probes with
    B = `permutations` (-1: as written; 0 also drops the refit bootstrap)."""
    from stage1_5.config import ProbeConfig, load_config

    if not configured:
        return ProbeConfig(seeds=1, permutations=permutations, bootstrap=0, device="cpu")
    probes = load_config(CONFIG).probes.model_copy(update={"device": "cpu"})
    if permutations >= 0:
        probes = probes.model_copy(update={"permutations": permutations, "bootstrap": probes.bootstrap if permutations else 0})
    return probes


def child(features: str, meta_path: str, permutations: int, threads: int, configured: bool) -> None:
    """One measurement: memory-map the features, probe them, print one JSON line."""
    import pandas as pd

    from stage1_5.probes import evaluate_representations  # first: the package sets OpenMP's defaults before torch loads

    import torch

    torch.set_num_threads(threads)
    meta = pd.read_csv(meta_path, dtype=str)
    X = np.load(features, mmap_mode="r")
    cfg = probe_config(permutations, configured)
    start, cpu0 = time.perf_counter(), time.process_time()
    results = evaluate_representations({"bench:layer": X}, meta, cfg, alpha=0.05, progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    row = results.metrics.iloc[0]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_bytes": rss, "accent_f1": float(row["accent_f1"]), "design": results.facts.design_line()}))


def _peak_rss_so_far(pid: int) -> int | None:
    """VmHWM of a running process (Linux), in bytes; None where /proc does not say."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def measure(features: Path, meta: Path, permutations: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(features), str(meta), str(permutations), "--threads", str(args.threads)]
    cmd += ["--configured"] if args.configured else []
    limit = int(args.memory_limit_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=cap)
    try:
        stdout, stderr = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        peak = _peak_rss_so_far(proc.pid)  # read before the kill: the time ran out, the memory figure need not
        proc.kill()
        proc.communicate()
        return {"status": f"timed out after {args.timeout:.0f} s", **({"peak_rss_bytes": peak} if peak else {})}
    if proc.returncode != 0:
        last = (stderr.strip().splitlines() or ["?"])[-1]
        return {"status": f"failed ({last[:160]})", "wall_s": time.perf_counter() - start}
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    return {"status": "ok", **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(DESIGNS))
    parser.add_argument("--permutations", type=int, nargs="+", default=[0], help="B values on the light settings")
    parser.add_argument("--configured", action="store_true", help=f"{CONFIG.name}'s probes as written, then with B = 0")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    parser.add_argument("--memory-limit-gb", type=float, default=12.0, help="address-space cap per measurement")
    parser.add_argument("--child", nargs=3, metavar=("FEATURES", "META", "PERMUTATIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.threads, args.configured)
        return 0
    settings = f"{CONFIG.name}'s probes, then B = 0" if args.configured else "seeds 1, bootstrap 0"
    print(f"probe stage at scale: d = {DIM}, one representation, {settings}, CPU {args.threads} threads, "
          f"timeout {args.timeout:.0f} s, address space <= {args.memory_limit_gb:g} GiB, load average {os.getloadavg()[0]:.1f}")
    print(f"{'N':>8} {'design':>12} {'B':>4} {'status':<10} {'wall s':>9} {'CPU s':>9} {'peak RSS MiB':>13} {'F1':>6} {'load':>5}")
    measured: dict[int, list] = {}
    shown: set[int] = set()
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
            features, meta = write_corpus(Path(tmp), n)
            rows = np.load(features, mmap_mode="r").shape[0]
            accents, speakers, texts = design(n)
            for permutations in ([-1, 0] if args.configured else args.permutations):
                r = measure(features, meta, permutations, args)
                wall = f"{r['wall_s']:9.1f}" if "wall_s" in r else f"{'-':>9}"
                cpu = f"{r['cpu_s']:9.1f}" if "cpu_s" in r else f"{'-':>9}"
                rss = f"{r['peak_rss_bytes'] / 2**20:13.0f}" if "peak_rss_bytes" in r else f"{'-':>13}"
                f1 = f"{r['accent_f1']:6.3f}" if "accent_f1" in r else f"{'-':>6}"
                status = r["status"] if r["status"] == "ok" else "timeout" if "timed out" in r["status"] else "failed"
                b = "cfg" if permutations < 0 else str(permutations)
                print(f"{rows:>8} {f'{accents}x{speakers}x{texts}':>12} {b:>4} {status:<10} {wall} {cpu} {rss} {f1} {os.getloadavg()[0]:5.1f}", flush=True)
                if r["status"] != "ok":
                    print(f"{'':>8}   {r['status']}", flush=True)
                    continue
                if rows not in shown:
                    shown.add(rows)
                    print(f"{'':>8}   {r['design']}", flush=True)
                measured.setdefault(permutations, []).append((rows, r["wall_s"], r["cpu_s"]))
    for permutations, points in measured.items():
        for (n1, w1, c1), (n2, w2, c2) in zip(points, points[1:]):
            b = "as configured" if permutations < 0 else f"B = {permutations}"
            print(f"growth exponent {n1} -> {n2} ({b}): wall {growth_exponent(n1, w1, n2, w2):.2f}, CPU {growth_exponent(n1, c1, n2, c2):.2f}")
        if len(points) > 2:
            (n1, w1, c1), (n2, w2, c2) = points[0], points[-1]
            print(f"growth exponent {n1} -> {n2} ({'as configured' if permutations < 0 else f'B = {permutations}'}): "
                  f"wall {growth_exponent(n1, w1, n2, w2):.2f}, CPU {growth_exponent(n1, c1, n2, c2):.2f}")
    return 0


def growth_exponent(n1: int, t1: float, n2: int, t2: float) -> float:
    """The exponent e of t ∝ N^e between two sizes."""
    return float(np.log(t2 / t1) / np.log(n2 / n1))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    raise SystemExit(main())
