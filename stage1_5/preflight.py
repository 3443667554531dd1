"""`stage1_5 preflight CONFIG`: a minute of checks before hours of GPU time, and the plan they measure.

In order, stopping at the first problem with one line that names the option and the fix
(`Stage15Error`, exit status 2):

1. the dataset is loaded and validated (every check of `stage1_5 dataset validate`);
2. the backbone options are checked against the checkpoint's config.json before any weight loads
   (speaker slot vs Base / CustomVoice / VoiceDesign, language tag, layer aliases, device, dtype
   supported natively, attention implementation available; `backbone.checkpoint.check_backbone`);
3. every enabled model is loaded, every layer resolved, and one batch of real utterances (the
   longest of the dataset) runs through every source, timed after a one-utterance warm-up.

The plan then gives the device and dtype and why, per-source throughput, the projected extraction
time for the whole dataset, a projected probe time (`estimate_probe_seconds`), peak memory and the
disk the feature store will take. Nothing is written to the run folder or the feature cache.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from stage1_5.config import ProbeConfig, Stage15Config
from stage1_5.errors import ProbeError

if TYPE_CHECKING:
    from stage1_5.backbone.checkpoint import BackboneCheck
    from stage1_5.data.manifest import UtteranceSet

WARMUP_UTTERANCES = 1

# Single-core CPU seconds of one representation at 720 utterances, 5 seeds, 5 C values
# (shared/notes/probe_perf.md): the work without permutations, and the cost of one permutation.
_PROBE_DIMS = (120, 256, 768, 1024, 2048)
_PROBE_BASE_S = (3.4, 8.8, 14.0, 20.0, 43.0)
_PROBE_PER_PERMUTATION_S = (0.30, 0.27, 0.78, 0.80, 0.63)
_PROBE_REFERENCE_N = 720
_PROBE_N_EXPONENT = 1.3  # 720 -> 10,008 utterances costs 30x at B=0 (N^1.29); below 720, per-fold overheads
# dominate (the 96-utterance demo costs about as much per representation as 720 utterances)
_PROBE_GPU_SPEEDUP = 10.0  # not measured: the notes' estimates are 13x (L4) to 80x (H100) at B=1000


def estimate_probe_seconds(n_utterances: int, dims: Sequence[int], probes: ProbeConfig, device_type: str) -> float:
    """Rough wall time of the probe stage for representations of `dims` (a first model from the
    measured CPU figures: interpolated in d, linear in permutations, seeds and C values, N^1.3 in
    utterances above 720 and flat below; a CUDA device is assumed 10x faster, which is not measured yet)."""
    size = max(1.0, n_utterances / _PROBE_REFERENCE_N) ** _PROBE_N_EXPONENT
    work = (probes.seeds / 5) * (len(probes.c_grid) / 5)
    total = 0.0
    for d in dims:
        base = float(np.interp(d, _PROBE_DIMS, _PROBE_BASE_S))
        per_permutation = float(np.interp(d, _PROBE_DIMS, _PROBE_PER_PERMUTATION_S))
        total += (base + probes.permutations * per_permutation) * work * size
    return total / (_PROBE_GPU_SPEEDUP if device_type == "cuda" else 1.0)


@dataclass(frozen=True)
class SourcePlan:
    """One source measured on the sample batch."""

    source: str
    dims: dict[str, int]  # representation -> width
    sample_utterances: int
    sample_audio_seconds: float
    wall_s: float  # the timed batch (after the warm-up)
    load_s: float  # model load + warm-up
    peak_memory_bytes: int
    peak_memory_kind: str  # "cuda" or "rss"

    @property
    def audio_seconds_per_s(self) -> float:
        return self.sample_audio_seconds / self.wall_s if self.wall_s > 0 else float("inf")


@dataclass(frozen=True)
class PreflightPlan:
    config_name: str
    n_utterances: int
    n_speakers: int
    n_accents: int
    audio_hours: float
    dataset_warnings: list[str]
    backbone: Optional["BackboneCheck"]
    sources: list[SourcePlan]
    external_dims: dict[str, int]
    probe_device: str
    probe_seconds: float
    feature_dtype: str
    cache_dir: str
    probe_design: str = ""  # outer folds and speaker-ID probe (`probes.design.design_line`)
    probe_rank_shares: tuple[int, ...] = ()  # representations each torchrun rank probes (empty or one entry: a single process)
    notes: list[str] = field(default_factory=list)

    @property
    def extraction_seconds(self) -> float:
        """Projected extraction time of the whole dataset, every source one after the other."""
        return sum(self.audio_hours * 3600 / s.audio_seconds_per_s for s in self.sources)

    @property
    def representation_dims(self) -> dict[str, int]:
        dims = {name: d for s in self.sources for name, d in s.dims.items()}
        return {**dims, **self.external_dims}

    @property
    def feature_store_bytes(self) -> int:
        """The store's vectors for every representation (the external files are not copied)."""
        itemsize = np.dtype(self.feature_dtype).itemsize
        return self.n_utterances * sum(d for s in self.sources for d in s.dims.values()) * itemsize

    def lines(self) -> list[str]:
        out = [f"stage1_5 preflight: {self.config_name}: no problem found", ""]
        out.append(
            f"dataset     {self.n_utterances} utterances, {self.n_speakers} speakers, {self.n_accents} accents, "
            f"{self.audio_hours:.2f} h of audio"
        )
        out += [f"            warning: {w}" for w in self.dataset_warnings]
        if self.backbone is not None:
            rt = self.backbone.runtime
            cc = f", compute capability {rt.compute_capability}" if rt.compute_capability else ""
            out.append(f"backbone    {self.backbone.checkpoint.summary()}")
            out.append(f"device      {rt.device} ({rt.device_name}{cc})")
            out.append(f"dtype       {rt.dtype} ({rt.dtype_reason}); speech tokenizer {rt.speech_tokenizer_dtype}")
            out.append(f"attention   {rt.attn_implementation} ({rt.attn_reason})")
        for s in self.sources:
            out.append(
                f"throughput  {s.source:<9} {len(s.dims):>3} repr  {s.sample_utterances} utt / {s.sample_audio_seconds:.1f} audio-s "
                f"in {s.wall_s:.2f} s = {s.audio_seconds_per_s:.1f} audio-s/s; load {s.load_s:.1f} s; "
                f"peak {_size(s.peak_memory_bytes)} ({'CUDA allocated' if s.peak_memory_kind == 'cuda' else 'process RSS so far'})"
            )
        if self.sources:
            out.append(f"extraction  ~{_duration(self.extraction_seconds)} projected for all {self.n_utterances} utterances")
        n_repr = len(self.representation_dims)
        out.append(
            f"probes      ~{_duration(self.probe_seconds)} projected for {n_repr} representations on {self.probe_device} "
            "(a rough model from measured CPU figures)"
        )
        if len(self.probe_rank_shares) > 1:
            shares = ", ".join(f"rank {r}: {n}" for r, n in enumerate(self.probe_rank_shares))
            out.append(f"            under torchrun, {len(self.probe_rank_shares)} ranks share the representations ({shares})")
        if self.probe_design:
            out.append(f"            {self.probe_design}")
        out.append(f"store       {_size(self.feature_store_bytes)} of {self.feature_dtype} vectors under {self.cache_dir}/features")
        out += [f"note        {n}" for n in self.notes]
        return out


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


@dataclass(frozen=True)
class _Sample:
    """The `DatasetLike` that extraction reads, for a few utterances."""

    utterances: "UtteranceSet"
    content_hash: str
    has_audio: bool = True


def _sample_batch(utterances: "UtteranceSet", size: int) -> tuple["UtteranceSet", "UtteranceSet"]:
    """(warm-up, timed): the shortest utterance, and the `size` longest (the peak-memory batch)."""
    from stage1_5.data.manifest import UtteranceSet

    by_length = sorted(utterances, key=lambda u: (u.duration or 0.0, u.id))
    return UtteranceSet(by_length[:WARMUP_UTTERANCES]), UtteranceSet(by_length[-size:])


def _batch_size(cfg: Stage15Config, source: str) -> Optional[int]:
    return getattr(getattr(cfg.sources, source), "batch_size", None)


def _measure(source: str, cfg: Stage15Config, dataset, store_root: str, sample_size: int) -> SourcePlan:
    """Load the source's model on one utterance, then time the `sample_size` longest utterances in
    batches of the source's own size (the sample's size where the source has none)."""
    from stage1_5.features.extract import build_extractor, extract_source
    from stage1_5.features.store import FeatureStore

    store = FeatureStore(store_root)
    warmup, timed = _sample_batch(dataset.utterances, sample_size)
    batch = _batch_size(cfg, source) or sample_size
    extractor = build_extractor(source, cfg)
    kwargs = dict(batch_size=batch, store_dtype=cfg.output.feature_dtype, chunk_size=cfg.output.feature_chunk_size, progress=False)
    t0 = time.perf_counter()
    extract_source(extractor, _Sample(warmup, "preflight-warmup"), store, **kwargs)
    load_s = time.perf_counter() - t0
    vectors, stats = extract_source(extractor, _Sample(timed, "preflight"), store, **kwargs)
    return SourcePlan(
        source=source,
        dims={name: int(arr.shape[1]) for name, arr in vectors.items()},
        sample_utterances=stats.n_utterances,
        sample_audio_seconds=stats.audio_seconds,
        wall_s=stats.wall_s,
        load_s=load_s,
        peak_memory_bytes=stats.peak_memory_bytes,
        peak_memory_kind=stats.peak_memory_kind,
    )


def _measurement_config(cfg: Stage15Config) -> Stage15Config:
    """Audio decoding in the main process: worker start-up would dominate one batch's time."""
    backbone = cfg.sources.backbone.model_copy(update={"num_workers": 0})
    return cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"backbone": backbone})})


def _probe_rank_shares(dims: dict[str, int]) -> tuple[int, ...]:
    """How many representations each rank of this torchrun job probes (`probes.protocol.rank_share`)."""
    from stage1_5 import distributed
    from stage1_5.probes.protocol import rank_share

    world = distributed.from_env().world_size
    return tuple(len(rank_share(distributed.DistContext(rank=r, world_size=world), dims)) for r in range(world))


def run_preflight(cfg: Stage15Config, *, config_name: str = "config", echo: Callable[[str], None] = print, progress: bool = False) -> PreflightPlan:
    """Check `cfg` end to end on one batch and return the plan; the first problem raises."""
    from stage1_5.backbone.checkpoint import check_backbone
    from stage1_5.sources import enabled_sources
    from stage1_5.features.external import load_external_features
    from stage1_5.pipeline import dataset_stage
    from stage1_5.probes.design import design_line
    from stage1_5.runtime import resolve_device

    echo("[preflight] dataset: loading and validating")
    dataset = dataset_stage(cfg, progress=progress)
    sources = [spec.name for spec in enabled_sources(cfg)]
    notes = []
    if not dataset.has_audio and sources:
        notes.append(f"the dataset has no audio: {', '.join(sources)} skipped")
        sources = []
    backbone = None
    if "backbone" in sources:
        echo(f"[preflight] backbone: checking {cfg.sources.backbone.checkpoint!r} against the options (no weights yet)")
        backbone = check_backbone(cfg.sources.backbone)
    measured = _measurement_config(cfg)
    sample_size = min(len(dataset.utterances), max([_batch_size(cfg, s) or 1 for s in sources], default=1))
    plans = []
    with tempfile.TemporaryDirectory(prefix="stage1_5_preflight_") as store_root:
        for source in sources:
            echo(f"[preflight] {source}: loading the model, then timing the {sample_size} longest utterances")
            plans.append(_measure(source, measured, dataset, store_root, sample_size))
    external_dims = {}
    for path in cfg.sources.external:
        _, arrays = load_external_features(path)
        external_dims.update({name: int(arr.shape[1]) for name, arr in arrays.items()})
    probe_device = resolve_device(cfg.probes.device, option="probes.device", error=ProbeError)
    plan_dims = {name: d for p in plans for name, d in p.dims.items()}
    dims = [*plan_dims.values(), *external_dims.values()]
    summary = dataset.summary
    return PreflightPlan(
        config_name=config_name,
        n_utterances=summary.n_utterances,
        n_speakers=summary.n_speakers,
        n_accents=summary.n_accents,
        audio_hours=summary.total_hours,
        dataset_warnings=list(dataset.warnings),
        backbone=backbone,
        sources=plans,
        external_dims=external_dims,
        probe_device=probe_device.type,
        probe_seconds=estimate_probe_seconds(summary.n_utterances, dims, cfg.probes, probe_device.type),
        feature_dtype=cfg.output.feature_dtype,
        cache_dir=cfg.output.cache_dir,
        probe_design=design_line(dataset.utterances.to_frame(), cfg.probes),
        probe_rank_shares=_probe_rank_shares({**plan_dims, **external_dims}),
        notes=notes,
    )
