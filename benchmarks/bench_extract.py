"""Backbone extraction at the released Qwen3-TTS shapes: before / after the extraction changes, one run.

    .venv/bin/python benchmarks/bench_extract.py                         # CPU: 0.6B, 6 utterances
    .venv/bin/python benchmarks/bench_extract.py --variant 1.7B-Base     # GPU: the real 1.7B, bf16, 256 utterances

The model is a released configuration with random weights (`stage1_5.backbone.released`, built
offline from `qwen3_tts_configs/`); the layers are those of `config/stage1_5.yaml`. Every way runs
in this one process over the same wav files (decoded, resampled, tokenised and encoded each time):

- before: every talker block, x-vectors one utterance at a time, batches in input order, audio
  decoded in the main process — the extraction as it was;
- after: the talker stops after the deepest requested block, one padded speaker-encoder batch,
  length-bucketed batches, audio decoded ahead (a background thread; DataLoader workers on a GPU);
- one change at a time on top of "before", so each ratio is its own;
- naive (optional): one utterance and one layer per pass.

Prints audio-seconds/s per way and every ratio against "before", peak memory (process RSS on CPU,
CUDA peak allocated on a GPU), and on a GPU the fraction of the compute floor: the FLOP a full
teacher-forced pass needs per audio-second (talker weight matrices x positions per audio-second,
plus the speech-tokenizer encoder and the speaker encoder) at the GPU's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.released import build_released_tts
from stage1_5.backbone.runtime import resolve_backbone_runtime
from stage1_5.config import BackboneConfig, load_config
from stage1_5.features.testing import write_tone_utterances

CONFIG = os.path.join(os.path.dirname(__file__), "..", "config", "stage1_5.yaml")

ENCODER_GFLOP_PER_AUDIO_S = 5.3 + 1.0
"""Speech-tokenizer encoder (5.3) + speaker encoder (1.0) GFLOP per audio-second, FLOP counter at
the released shapes (`../shared/notes/qwen3_tts.md`); the talker's share is counted from the model."""

PEAK_BF16_TFLOPS = {"L4": 121.0, "A10": 125.0, "A100": 312.0, "H100": 989.0, "H200": 989.0, "T4": 65.0}
"""Dense bf16/fp16 tensor-core peaks (vendor data sheets), matched against the device name."""


@dataclass
class Run:
    seconds: float
    audio_seconds: float
    peak_bytes: int

    @property
    def throughput(self) -> float:
        return self.audio_seconds / self.seconds


@dataclass(frozen=True)
class Way:
    """One way to extract: the adapter switches and how batches are formed."""

    name: str
    early_exit: bool
    batch_speaker: bool
    length_sorted: bool
    prefetch: bool


BEFORE = Way("before (as it was)", early_exit=False, batch_speaker=False, length_sorted=False, prefetch=False)
AFTER = Way("after (all changes)", early_exit=True, batch_speaker=True, length_sorted=True, prefetch=True)
SINGLE_CHANGES = [
    Way("+ early exit only", True, False, False, False),
    Way("+ batched x-vectors only", False, True, False, False),
    Way("+ length buckets only", False, False, True, False),
    Way("+ decoding ahead only", False, False, False, True),
]


def talker_flops_per_position(tts, n_blocks: int | None = None) -> float:
    """2 x multiply-accumulates of the talker's weight matrices per position, over its first
    `n_blocks` blocks (None: all) plus the codec head (attention scores excluded: small here)."""
    layers = list(tts.model.talker.model.layers)[:n_blocks]
    macs = sum(p.numel() for layer in layers for _, p in layer.named_parameters() if p.dim() == 2)
    macs += tts.model.talker.codec_head.weight.numel()
    return 2.0 * macs


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def timed(device: torch.device, fn: Callable[[], float]) -> Run:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    audio_seconds = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Run(time.perf_counter() - start, audio_seconds, _peak(device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default=None, choices=["0.6B-Base", "1.7B-Base"], help="default: 0.6B-Base on CPU, 1.7B-Base on GPU")
    parser.add_argument("--utterances", type=int, default=None, help="default: 6 (CPU) or 256 (GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 3 (CPU) or 32 (GPU)")
    parser.add_argument("--min-s", type=float, default=1.5)
    parser.add_argument("--max-s", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--num-workers", type=int, default=None, help="audio-decoding workers of 'after' (default: 0 on CPU, 4 on GPU)")
    parser.add_argument("--single-changes", action="store_true", help="also time each change alone (default on a GPU)")
    parser.add_argument("--naive", type=int, default=0, help="also time the naive way on this many utterances")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, when its name is not known here")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    runtime = resolve_backbone_runtime(BackboneConfig(device=args.device, dtype="auto"))
    device = torch.device(runtime.device)
    gpu = device.type == "cuda"
    variant = args.variant or ("1.7B-Base" if gpu else "0.6B-Base")
    n_utts = args.utterances or (256 if gpu else 6)
    batch_size = args.batch_size or (32 if gpu else 3)
    workers = args.num_workers if args.num_workers is not None else (4 if gpu else 0)
    dtype = getattr(torch, runtime.dtype)
    layers = list(load_config(CONFIG).sources.backbone.layers)

    t0 = time.perf_counter()
    tts = build_released_tts(variant, dtype=dtype, device=device)
    build_s = time.perf_counter() - t0

    def adapter_for(way: Way) -> HuggingFaceBackboneAdapter:
        cfg = BackboneConfig(
            checkpoint="in-memory", layers=layers, device=str(device), batch_size=batch_size, num_workers=workers if way.prefetch else 0
        )
        return HuggingFaceBackboneAdapter(cfg, tts=tts, early_exit=way.early_exit, batch_speaker=way.batch_speaker, prefetch=way.prefetch)

    ways = [BEFORE, AFTER] + (SINGLE_CHANGES if args.single_changes or gpu else [])
    with tempfile.TemporaryDirectory() as tmp:
        utts = list(write_tone_utterances(tmp, n_utts, min_s=args.min_s, max_s=args.max_s))
        utts = [u.copy_with(text=f"Sentence number {i} read with some regional accent.") for i, u in enumerate(utts)]
        list(adapter_for(AFTER).extract_batches(utts[:2], batch_size=2))  # warm-up (allocator, kernels)

        def run(way: Way) -> float:
            adapter = adapter_for(way)
            if way.length_sorted:
                return sum(b.n_audio_seconds for b in adapter.extract_batches(utts, batch_size))
            total = 0.0  # input order: hand the adapter one batch at a time, so it cannot re-bucket
            for start in range(0, len(utts), batch_size):
                total += sum(b.n_audio_seconds for b in adapter.extract_batches(utts[start : start + batch_size], batch_size))
            return total

        runs = {way.name: timed(device, lambda way=way: run(way)) for way in ways}
        if args.naive:
            naive_adapter = adapter_for(BEFORE)

            def naive() -> float:
                total = 0.0
                for u in utts[: args.naive]:
                    for layer in layers:
                        for batch in naive_adapter.extract_batches([u], 1, layers=[layer]):
                            total += batch.n_audio_seconds / len(layers)
                return total

            runs["naive (1 utt x 1 layer per pass)"] = timed(device, naive)
        positions = _talker_positions(tts, utts)

    audio = runs[AFTER.name].audio_seconds
    n_params = sum(p.numel() for p in tts.model.talker.model.parameters())
    where = torch.cuda.get_device_name(device) if gpu else f"CPU, {args.threads} threads ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})"
    print(f"device: {where}; dtype {dtype}; model {variant} (random weights, released config), built in {build_s:.0f} s")
    print(f"talker: {len(tts.model.talker.model.layers)} blocks, {n_params / 1e6:.0f} M params; layers: {', '.join(layers)}")
    print(f"data: {n_utts} utterances, {audio:.1f} audio-s, batch size {batch_size}")
    unit = "CUDA peak allocated" if gpu else "process peak RSS so far"
    base = runs[BEFORE.name].throughput
    for name, r in runs.items():
        ratio = f"{r.throughput / base:5.2f}x before"
        print(f"{name:<34} {r.throughput:8.2f} audio-s/s ({r.seconds:7.2f} s)  {ratio}  {unit} {r.peak_bytes / 2**20:8.0f} MiB")
    print(f"ratio after / before: {runs[AFTER.name].throughput / base:.2f}x")

    per_audio_s = positions / audio
    full = talker_flops_per_position(tts) * per_audio_s / 1e9 + ENCODER_GFLOP_PER_AUDIO_S
    print(f"compute floor: {full:.1f} GFLOP per audio-second (talker {talker_flops_per_position(tts) / 1e9:.2f} GFLOP/position x {per_audio_s:.1f} positions/audio-s + encoders {ENCODER_GFLOP_PER_AUDIO_S})")
    peak = peak_tflops(device, args.peak_tflops)
    if peak:
        after = runs[AFTER.name]
        floor_s = audio * full * 1e9 / (peak * 1e12)
        print(f"fraction of the compute floor ({peak:.0f} TFLOP/s peak): after {floor_s / after.seconds:.3f}, before {floor_s / runs[BEFORE.name].seconds:.3f}")
    elif gpu:
        print("fraction of the compute floor: unknown GPU peak; pass --peak-tflops", file=sys.stderr)
    return 0


def _talker_positions(tts, utts) -> int:
    """Valid talker positions over the set: the work the FLOP floor counts."""
    from stage1_5.backbone.families.qwen3_tts import build_teacher_forced_inputs, encode_utterances

    total = 0
    with torch.inference_mode():
        for i in range(0, len(utts), 32):
            chunk = utts[i : i + 32]
            wavs = [u.load_audio(24000) for u in chunk]
            enc = encode_utterances(tts, wavs, [u.text for u in chunk], speaker_slot="zero")
            total += int(build_teacher_forced_inputs(tts.model, enc).position_masks["all"].sum())
    return total


if __name__ == "__main__":
    raise SystemExit(main())
