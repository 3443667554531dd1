"""Backbone extraction throughput: batched, all layers in one pass vs the naive way.

Naive = one utterance at a time and one full teacher-forced pass per layer (what a per-layer
script or `generate(output_hidden_states)` loop costs). Both run on the same randomly initialised
Qwen3-TTS in one process, over the same wav files (decoded, resampled, tokenised each time).

    .venv/bin/python benchmarks/bench_extract.py                      # CPU, talker 8 x 256
    .venv/bin/python benchmarks/bench_extract.py --real-shape 1.7B    # GPU: real 1.7B talker, bf16

Prints audio-seconds/s for each way, the ratio, and peak memory (process RSS on CPU, CUDA peak
allocated on GPU); with --real-shape also the achieved talker TFLOP/s against the FLOP floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.qwen3_tts import layer_aliases
from stage1_5.backbone.runtime import resolve_backbone_runtime
from stage1_5.backbone.synthetic import build_tiny_qwen3_tts
from stage1_5.config import BackboneConfig
from stage1_5.features.testing import write_tone_utterances

SHAPES = {
    # talker sizes; the speech tokenizer, speaker encoder and code predictor stay tiny (not the cost)
    "bench": dict(hidden_size=256, num_layers=8, intermediate_size=768, num_heads=4, head_dim=64),
    "0.6B": dict(hidden_size=1024, num_layers=28, intermediate_size=3072, num_heads=16, head_dim=128),
    "1.7B": dict(hidden_size=2048, num_layers=28, intermediate_size=6144, num_heads=16, head_dim=128),
}


@dataclass
class Run:
    seconds: float
    audio_seconds: float
    peak_bytes: int

    @property
    def throughput(self) -> float:
        return self.audio_seconds / self.seconds


def talker_flops_per_position(tts) -> float:
    """2 x multiply-accumulates of the talker's weight matrices per position (attention scores excluded:
    small at these lengths). 1.7B: 2.8 GFLOP."""
    layers = tts.model.talker.model.layers
    macs = sum(p.numel() for layer in layers for n, p in layer.named_parameters() if p.dim() == 2)
    macs += tts.model.talker.codec_head.weight.numel()
    return 2.0 * macs


def _peak(device: torch.device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def timed(device: torch.device, fn) -> Run:
    _reset_peak(device)
    start = time.perf_counter()
    audio_seconds = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Run(time.perf_counter() - start, audio_seconds, _peak(device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real-shape", choices=["0.6B", "1.7B"], help="real talker size with random weights (bf16 on GPU)")
    parser.add_argument("--utterances", type=int, default=None, help="default: 24 (CPU) or 256 (GPU)")
    parser.add_argument("--naive-utterances", type=int, default=None, help="utterances for the naive way (default: 12)")
    parser.add_argument(
        "--batch-size", type=int, default=None,
        help="default: 4 (CPU: compute is linear in positions, so small length-bucketed batches waste least on padding) or 64 (GPU)",
    )
    parser.add_argument("--min-s", type=float, default=1.5)
    parser.add_argument("--max-s", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--num-workers", type=int, default=None, help="audio decoding workers (default: 0 on CPU, 4 on GPU)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    runtime = resolve_backbone_runtime(BackboneConfig(device=args.device, dtype="auto"))
    device = torch.device(runtime.device)
    gpu = device.type == "cuda"
    if args.real_shape and not gpu:
        print(f"note: --real-shape {args.real_shape} on CPU is very slow; meant for a GPU", file=sys.stderr)
    n_utts = args.utterances or (256 if gpu else 24)
    n_naive = args.naive_utterances or 12
    batch_size = args.batch_size or (64 if gpu else 4)
    workers = args.num_workers if args.num_workers is not None else (4 if gpu else 0)
    dtype = getattr(torch, runtime.dtype)

    shape = SHAPES[args.real_shape or "bench"]
    tts = build_tiny_qwen3_tts(seed=0, **shape)
    tts.model.to(dtype=dtype)  # the adapter keeps the speech tokenizer in float32
    layers = tuple(layer_aliases(tts))
    cfg = BackboneConfig(checkpoint="in-memory", layers=list(layers), device=str(device), batch_size=batch_size, num_workers=workers)
    adapter = HuggingFaceBackboneAdapter(cfg, tts=tts)
    n_params = sum(p.numel() for p in tts.model.talker.model.parameters())

    with tempfile.TemporaryDirectory() as tmp:
        utts = list(write_tone_utterances(tmp, n_utts, min_s=args.min_s, max_s=args.max_s))
        utts = [u.copy_with(text=f"Sentence number {i} read with some regional accent.") for i, u in enumerate(utts)]
        list(adapter.extract_batches(utts[:2], batch_size=2))  # warm-up (allocator, kernels)

        def batched() -> float:
            total = 0.0
            for batch in adapter.extract_batches(utts, batch_size):
                total += batch.n_audio_seconds
            return total

        def naive() -> float:
            total = 0.0
            for u in utts[:n_naive]:
                for layer in layers:
                    for batch in adapter.extract_batches([u], 1, layers=[layer]):
                        total += batch.n_audio_seconds / len(layers)
            return total

        run_naive = timed(device, naive)  # first: on CPU the RSS peak can only grow, so naive's is its own
        run_batched = timed(device, batched)
        positions = _talker_positions(adapter, utts)

    print(f"device: {device} ({torch.cuda.get_device_name(device) if gpu else f'{args.threads} threads'}), dtype {dtype}, attention sdpa")
    print(f"talker: {shape['num_layers']} layers x hidden {shape['hidden_size']} ({n_params / 1e6:.1f} M params); {len(layers)} layers captured")
    print(f"data: {n_utts} utterances, {run_batched.audio_seconds:.1f} audio-s; naive on {n_naive} of them")
    unit = "CUDA peak allocated" if gpu else "process peak RSS so far"
    for name, run in (("batched, all layers in one pass", run_batched), ("naive, 1 utt x 1 layer per pass", run_naive)):
        print(f"{name:<34} {run.throughput:8.2f} audio-s/s  ({run.seconds:6.2f} s)  {unit} {run.peak_bytes / 2**20:8.1f} MiB")
    print(f"speed-up batched / naive: {run_batched.throughput / run_naive.throughput:.1f}x")
    flops = talker_flops_per_position(tts)
    per_second = positions / run_batched.audio_seconds
    achieved = flops * positions / run_batched.seconds
    print(
        f"talker: {flops / 1e9:.2f} GFLOP/position, {per_second:.1f} positions per audio-second "
        f"-> floor {flops * per_second / 1e9:.1f} GFLOP per audio-second; achieved {achieved / 1e12:.3f} TFLOP/s (batched, end to end)"
    )
    return 0


def _talker_positions(adapter, utts) -> int:
    """Valid talker positions over the set: the work the FLOP floor counts."""
    from stage1_5.backbone.qwen3_tts import build_teacher_forced_inputs, encode_utterances

    total = 0
    with torch.inference_mode():
        for i in range(0, len(utts), 32):
            chunk = utts[i : i + 32]
            wavs = [u.load_audio(24000) for u in chunk]
            enc = encode_utterances(adapter.tts, wavs, [u.text for u in chunk], speaker_slot="zero")
            total += int(build_teacher_forced_inputs(adapter.model, enc).position_masks["all"].sum())
    return total


if __name__ == "__main__":
    raise SystemExit(main())
