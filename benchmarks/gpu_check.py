"""Device check: the released 1.7B Base with random bf16 weights on a CUDA GPU, in one call of <= 8 min.

    bash benchmarks/gpu_check.sh                         # on the GPU machine (wheels carried in .whl/)
    bash benchmarks/gpu_check.sh --reduced               # anywhere, CPU included: the same steps at toy size

Steps (each timed; one that fails or would pass the deadline is recorded and the rest still run):

1. runtime: device, compute capability, the dtype and attention `auto` chooses, and why;
2. matmul: the bf16 (CPU: fp32) matrix-product rate measured here, the ceiling for step 4;
3. model: the released config (`stage1_5.backbone.released`) built with random weights on the device;
4. extraction: teacher-forced passes over >= 720 synthetic 4-second utterances with the 8 configured
   layers (`BackboneConfig().layers`): audio-seconds/s, the effective rate at the ~55 GFLOP per
   audio-second floor (shared notes) and its fraction of step 2's rate, peak CUDA memory;
5. OOM back-off: a memory cap between the peaks of a batch and of half a batch forces at least one
   halving (CPU: a simulated cap); the features must equal the uncapped run's;
6. probes: the probe engine at the full experiment's size (720 utterances, d=2048, the probe settings
   of config/stage1_5.yaml) on CUDA, and the same work at fewer permutations on CUDA and on all CPU
   cores (speed-up, |ΔF1|, the CPU time projected to the full permutation count).

Writes `gpu_check.json` (rewritten after every step) under --out ($OUT by default); the shell wrapper
tees the log beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the device machine runs from the working tree, not an installed package
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

log = logging.getLogger("gpu_check")

FLOOR_GFLOP_PER_AUDIO_S = 55.0
"""Probing floor at the real 1.7B shape: talker ~48 + speech tokenizer ~5.3 + speaker encoder ~1 (shared notes)."""


@dataclass(frozen=True)
class Size:
    variant: str
    reduced: bool
    utterances: int
    seconds: float
    batch_size: int
    oom_batch: int
    probe_speakers_per_accent: int
    probe_texts: int
    probe_dim: int
    same_work_permutations: int


def sizes(args: argparse.Namespace) -> Size:
    if args.reduced:
        base = Size(args.variant, True, 4, 0.5, 2, 2, 4, 6, 64, 3)
    else:
        base = Size(args.variant, False, 720, 4.0, 16, 64, 8, 30, 2048, 50)
    overrides = {k: v for k, v in {"utterances": args.utterances, "batch_size": args.batch_size}.items() if v is not None}
    return Size(**{**base.__dict__, **overrides})


class Report:
    """The JSON result, rewritten atomically after each step so that a timeout keeps what ran."""

    def __init__(self, out: Path, deadline_s: float):
        self.path = out / "gpu_check.json"
        self.started = time.perf_counter()
        self.deadline_s = deadline_s
        self.data: dict[str, Any] = {"steps": {}}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def step(self, name: str, fn: Callable[[], dict[str, Any]], *, needs_s: float = 0.0) -> dict[str, Any] | None:
        if self.elapsed() + needs_s > self.deadline_s:
            self.data["steps"][name] = {"status": "skipped", "reason": f"deadline: {self.elapsed():.0f} s of {self.deadline_s:.0f} s used"}
            log.warning("%s: skipped (deadline)", name)
            self.save()
            return None
        log.info("%s ...", name)
        t0 = time.perf_counter()
        try:
            result = fn()
            status = {"status": "ok"}
        except Exception as err:  # a failed step is a finding; the next steps still run
            result = None
            status = {"status": "failed", "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc(limit=6)}
            log.error("%s failed: %s", name, status["error"])
        status["seconds"] = round(time.perf_counter() - t0, 2)
        self.data["steps"][name] = status
        if result is not None:
            self.data[name] = result
            log.info("%s: %s", name, json.dumps(result, default=str))
        self.save()
        return result

    def save(self) -> None:
        from stage1_5.io import atomic_write_json

        self.data["total_s"] = round(self.elapsed(), 1)
        atomic_write_json(self.path, self.data)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul(device: torch.device) -> dict[str, Any]:
    """Dense matrix-product rate: bf16 8192^3 on a GPU, fp32 1024^3 on a CPU (mean of 10 after 3 warm-ups)."""
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - t0) / 10
    return {"n": n, "dtype": str(dtype).replace("torch.", ""), "tflops": round(2 * n**3 / seconds / 1e12, 2)}


def write_utterances(folder: Path, size: Size):
    """Synthetic speech-like utterances of exactly `size.seconds`, 24 kHz 16-bit wav, with a transcript."""
    import soundfile as sf

    from stage1_5.backbone.families.qwen3_tts import SAMPLE_RATE
    from stage1_5.data.manifest import Utterance, UtteranceSet
    from stage1_5.data.testing import tone

    rng = np.random.default_rng(0)
    words = "the quick brown fox reads a long sentence with some regional accent in every single word".split()
    utts = []
    for i in range(size.utterances):
        wav = tone(size.seconds, SAMPLE_RATE, float(rng.uniform(90, 300)), seed=i)
        path = folder / f"u{i:04d}.wav"
        sf.write(path, wav, SAMPLE_RATE, subtype="PCM_16")
        text = " ".join(rng.choice(words, size=12)).capitalize() + "."
        utts.append(Utterance(f"u{i:04d}", f"s{i % 24:02d}", f"a{i % 3}", f"t{i % 30:02d}", str(path), text, size.seconds, SAMPLE_RATE))
    return UtteranceSet(utts)


def talker_flops_per_position(tts) -> float:
    """2 x the multiply-accumulates of the talker's weight matrices per position (1.7B: ~2.8 GFLOP)."""
    layers = tts.model.talker.model.layers
    macs = sum(p.numel() for layer in layers for p in layer.parameters() if p.dim() == 2)
    return 2.0 * (macs + tts.model.talker.codec_head.weight.numel())


def extract_all(adapter, utterances, batch_size: int) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for batch in adapter.extract_batches(utterances, batch_size):
        for layer, matrix in batch.vectors.items():
            out.setdefault(layer, {}).update(zip(batch.utt_ids, matrix))
    return out


def max_relative_difference(a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]) -> float:
    """max over layers of max |a - b| / max |b| (every utterance of every layer compared)."""
    worst = 0.0
    for layer, rows in b.items():
        ref = np.stack([rows[u] for u in sorted(rows)])
        got = np.stack([a[layer][u] for u in sorted(rows)])
        worst = max(worst, float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-12)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "reports/gpu_check")))
    parser.add_argument("--reduced", action="store_true", help="toy size (released config reduced in depth; seconds on a CPU)")
    parser.add_argument("--variant", default="1.7B-Base", help="released config to build (default 1.7B-Base)")
    parser.add_argument("--utterances", type=int, default=None, help="default 720 (reduced: 4)")
    parser.add_argument("--batch-size", type=int, default=None, help="extraction batch (default 16; reduced 2)")
    parser.add_argument("--deadline-s", type=float, default=400.0, help="skip steps that would start after this")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: every core)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)

    from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
    from stage1_5.backbone.families.qwen3_tts import layer_aliases
    from stage1_5.backbone.released import FULL, QUICK, build_released_tts
    from stage1_5.backbone.runtime import resolve_backbone_runtime
    from stage1_5.config import BackboneConfig, load_config

    size = sizes(args)
    report = Report(args.out, args.deadline_s)
    report.data["size"] = size.__dict__
    base_cfg = BackboneConfig(device=args.device, dtype="auto", attn_implementation="auto")
    runtime = report.step("runtime", lambda: resolve_backbone_runtime(base_cfg).to_dict())
    if runtime is None:
        return 1
    device = torch.device(runtime["device"])
    dtype = getattr(torch, runtime["dtype"])
    if device.type == "cuda":
        report.data["runtime"]["total_memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
    matmul = report.step("matmul", lambda: measure_matmul(device))
    state: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        t0 = time.perf_counter()
        tts = build_released_tts(size.variant, reduction=QUICK if size.reduced else FULL, dtype=dtype, device=device, attn_implementation=runtime["attn_implementation"])
        _sync(device)
        state["tts"] = tts
        talker = sum(p.numel() for p in tts.model.talker.parameters())
        return {
            "variant": size.variant, "reduction": (QUICK if size.reduced else FULL).__dict__, "build_s": round(time.perf_counter() - t0, 1),
            "talker_params_m": round(talker / 1e6, 1), "dtype": runtime["dtype"], "attention": runtime["attn_implementation"],
        }

    report.step("model", build)
    tmp = tempfile.TemporaryDirectory(prefix="gpu_check_")
    utterances = write_utterances(Path(tmp.name), size)
    default_layers = BackboneConfig().layers
    if "tts" in state:
        available = layer_aliases(state["tts"])
        layers = [name for name in default_layers if name in available] if not size.reduced else list(available)
        state["cfg"] = BackboneConfig(device=str(device), layers=layers, batch_size=size.batch_size)

    def extraction() -> dict[str, Any]:
        tts, cfg = state["tts"], state["cfg"]
        adapter = HuggingFaceBackboneAdapter(cfg, tts=tts)
        positions = {"n": 0}
        hook = tts.model.talker.register_forward_pre_hook(
            lambda module, args, kwargs: positions.__setitem__("n", positions["n"] + int(kwargs["attention_mask"].sum())), with_kwargs=True
        )
        try:
            extract_all(adapter, utterances[: 2 * size.batch_size], size.batch_size)  # warm-up
            positions["n"] = 0
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t0 = time.perf_counter()
            vectors = extract_all(adapter, utterances, size.batch_size)
            _sync(device)
            wall = time.perf_counter() - t0
        finally:
            hook.remove()
        audio = size.utterances * size.seconds
        rate = audio / wall
        talker_floor = talker_flops_per_position(tts) * positions["n"] / audio / 1e9
        floor = FLOOR_GFLOP_PER_AUDIO_S if size.variant == "1.7B-Base" and not size.reduced else talker_floor
        effective = rate * floor / 1e3  # TFLOP/s
        result = {
            "layers": cfg.layers, "batch_size": size.batch_size, "utterances": size.utterances, "audio_seconds": audio,
            "wall_s": round(wall, 2), "audio_seconds_per_s": round(rate, 1), "utterances_per_s": round(size.utterances / wall, 1),
            "talker_positions_per_audio_s": round(positions["n"] / audio, 2), "talker_floor_gflop_per_audio_s": round(talker_floor, 2),
            "floor_gflop_per_audio_s": round(floor, 2), "floor_basis": "shared notes (55)" if floor == FLOOR_GFLOP_PER_AUDIO_S else "talker weights x positions",
            "effective_tflops_at_floor": round(effective, 3),
            "fraction_of_matmul_rate": round(effective / matmul["tflops"], 4) if matmul else None,
            "dims": {layer: int(next(iter(rows.values())).shape[0]) for layer, rows in vectors.items()},
            "finite": bool(all(np.isfinite(v).all() for rows in vectors.values() for v in rows.values())),
        }
        if device.type == "cuda":
            result["peak_cuda_allocated_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            result["peak_cuda_reserved_gib"] = round(torch.cuda.max_memory_reserved(device) / 2**30, 2)
        return result

    if "cfg" in state:
        report.step("extraction", extraction, needs_s=30)

    def oom_backoff() -> dict[str, Any]:
        tts, cfg = state["tts"], state["cfg"]
        big = cfg.model_copy(update={"batch_size": size.oom_batch})
        subset = utterances[: 2 * size.oom_batch] if len(utterances) >= 2 * size.oom_batch else utterances
        peaks = {}
        reference = None
        for batch in (size.oom_batch // 2, size.oom_batch):
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            got = extract_all(HuggingFaceBackboneAdapter(big, tts=tts), subset, batch)
            if device.type == "cuda":
                peaks[batch] = torch.cuda.max_memory_reserved(device)
            reference = got  # the last one: uncapped at the full batch
        capped = HuggingFaceBackboneAdapter(big, tts=tts)
        if device.type == "cuda":
            total = torch.cuda.get_device_properties(device).total_memory
            cap = (peaks[size.oom_batch // 2] + peaks[size.oom_batch]) / 2
            torch.cuda.empty_cache()
            torch.cuda.set_per_process_memory_fraction(cap / total, device)
            mode = {"mode": "cuda memory fraction", "cap_gib": round(cap / 2**30, 2), "peak_half_gib": round(peaks[size.oom_batch // 2] / 2**30, 2), "peak_full_gib": round(peaks[size.oom_batch] / 2**30, 2)}
        else:
            real_forward = capped._forward

            def forward(chunk, sites):
                if len(chunk) > size.oom_batch // 2:
                    raise torch.OutOfMemoryError("simulated cap: more than half a batch")
                return real_forward(chunk, sites)

            capped._forward = forward
            mode = {"mode": "simulated (no CUDA): chunks above half a batch raise OutOfMemoryError"}
        try:
            got = extract_all(capped, subset, size.oom_batch)
        finally:
            if device.type == "cuda":
                torch.cuda.set_per_process_memory_fraction(1.0, device)
                torch.cuda.empty_cache()
        diff = max_relative_difference(got, reference)
        tolerance = 2e-2 if dtype != torch.float32 else 1e-5
        return {
            **mode, "batch_size": size.oom_batch, "utterances": len(subset), "halvings": capped.oom_halvings,
            "final_batch_size": capped.batch_size, "all_utterances_returned": sorted(next(iter(got.values()))) == sorted(u.id for u in subset),
            "max_relative_difference_vs_uncapped": diff, "tolerance": tolerance,
            "equal_to_uncapped": bool(diff <= tolerance and capped.oom_halvings >= 1),
        }

    if "cfg" in state:
        report.step("oom_backoff", oom_backoff, needs_s=20)
    state.pop("tts", None)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    tmp.cleanup()

    def probes() -> dict[str, Any]:
        from stage1_5.probes import evaluate_representations
        from stage1_5.probes.engine import TorchBackend
        from stage1_5.probes.planted import planted_dataset

        full = load_config(REPO / "config" / "stage1_5.yaml").probes
        if size.reduced:
            full = full.model_copy(update={"seeds": 1, "permutations": 9, "bootstrap": 50})
        data = planted_dataset(
            speakers_per_accent=size.probe_speakers_per_accent, n_texts=size.probe_texts, dim=size.probe_dim,
            accent=0.3, speaker=0.5, leak=0.1, random_state=0, name="backbone:decoder_block_08",
        )

        def timed(cfg, device_name: str):
            t0 = time.perf_counter()
            result = evaluate_representations(data.features, data.meta, cfg, progress=False, backend=TorchBackend(device_name))
            _sync(torch.device(device_name))
            return time.perf_counter() - t0, result.metrics

        same = full.model_copy(update={"permutations": size.same_work_permutations})
        zero = full.model_copy(update={"permutations": 0})
        out: dict[str, Any] = {
            "utterances": len(data.meta), "dim": size.probe_dim, "seeds": full.seeds, "c_grid": list(full.c_grid),
            "bootstrap": full.bootstrap, "full_permutations": full.permutations, "same_work_permutations": same.permutations,
            "cpu_threads": torch.get_num_threads(),
        }
        cpu_zero, _ = timed(zero, "cpu")
        cpu_same, cpu_metrics = timed(same, "cpu")
        per_permutation = (cpu_same - cpu_zero) / max(same.permutations, 1)
        out.update(cpu_zero_s=round(cpu_zero, 2), cpu_same_s=round(cpu_same, 2),
                   cpu_full_projected_s=round(cpu_zero + per_permutation * full.permutations, 1))
        if device.type == "cuda":
            cuda_same, cuda_metrics = timed(same, "cuda")
            cuda_full, _ = timed(full, "cuda")
            f1 = ["accent_f1", "text_f1_seen", "text_f1_unseen"]
            out.update(cuda_same_s=round(cuda_same, 2), cuda_full_s=round(cuda_full, 2), speedup_same_work=round(cpu_same / cuda_same, 1),
                       max_abs_f1_difference_cpu_vs_cuda=float((cpu_metrics[f1] - cuda_metrics[f1]).abs().to_numpy().max()))
        else:
            out["cuda"] = "skipped: no CUDA device"
        return out

    report.step("probes", probes, needs_s=30)
    failed = [name for name, s in report.data["steps"].items() if s["status"] == "failed"]
    log.info("done in %.0f s; json: %s; failed steps: %s", report.elapsed(), report.path, failed or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
