"""`stage1_5 preflight CONFIG`: a minute of checks before hours of GPU time, and the plan they measure.

In order, stopping at the first problem with one line that names the option and the fix
(`Stage15Error`, exit status 2):

1. the dataset is loaded and validated (every check of `stage1_5 dataset validate`);
2. the backbone options are checked against the checkpoint's config.json before any weight loads
   (speaker slot vs Base / CustomVoice / VoiceDesign, language tag, layer aliases, device, dtype
   supported natively, attention implementation available; `backbone.checkpoint.check_backbone`);
3. every enabled model is loaded and warmed up on its longest batch, then a sample of real
   utterances spread over the dataset's lengths runs through every source, timed.

The plan then gives the device and dtype and why, per-source throughput, the projected extraction
time for the whole dataset (model loads included), the projected probe time (stand-in features of every
source and width probed on this dataset's own folds, `project_probe_seconds`), peak memory and the disk
the feature store will take. Nothing is written to the run folder or the feature cache. On the demo the
projections land within 2x of the run that follows (`tests/test_preflight_projection.py`).
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Optional

import numpy as np

from stage1_5.config import DEFAULT_BACKBONE_NAME, Stage15Config
from stage1_5.errors import ProbeError

if TYPE_CHECKING:
    from stage1_5.backbone.checkpoint import BackboneCheck
    from stage1_5.data.manifest import UtteranceSet

TIMED_BATCHES = 2
"""Batches timed per source after the warm-up batch: a few seconds of work, spread over the lengths."""


SAMPLE_NOISE = 0.5
"""Stand-in features for the probe timing: the sample's rows drawn with replacement plus Gaussian noise
of this fraction of each column's SD. Their scale and conditioning are the real ones, which set the
solver's iterations (on the demo they cost 1.05-1.1x the real features' fits; standard-normal
features cost half)."""


@dataclass(frozen=True)
class ProbeProjection:
    """Projected wall time of the probe stage: stand-in features of each (source, width) probed on this
    dataset's folds with the run's probe settings, on this machine, once without permutations and once
    with the sequential stop's first look."""

    settled_s: float  # every family stops at the first look (no signal: the usual NOGO reference)
    full_s: float  # every family runs all its permutations (a family with signal)
    permutations: int
    first_look: int  # permutations run before the sequential stop's first look

    def text(self, n_repr: int, device: str) -> str:
        head = f"~{_duration(self.settled_s)} projected for {n_repr} representations on {device}"
        if self.full_s <= self.settled_s * 1.05:
            return head
        return (
            f"{head} if every family stops after {self.first_look} permutations (no signal), "
            f"~{_duration(self.full_s)} if every family runs all {self.permutations}"
        )


def project_probe_seconds(meta, samples: Mapping[str, np.ndarray], cfg: Stage15Config, seed: int = 0) -> ProbeProjection:
    """Time the probe stage on stand-in features (`SAMPLE_NOISE`) for one representation of each
    (source, width) among `samples` (representation -> sample vectors), with `meta`'s rows and folds
    and the run's probe settings, without permutations and with the first look's; the others of the
    group are assumed to cost the same. Measured, so the machine, the device and the dataset's design
    are in it."""
    from stage1_5.probes import evaluate_representations
    from stage1_5.probes.protocol import FIRST_STAGE
    from stage1_5.probes.stats import settled_count
    from stage1_5.sources import source_of

    probes, alpha = cfg.probes, cfg.experiment.alpha
    B = probes.permutations
    first = min(B, FIRST_STAGE * settled_count(alpha, B)) if B else 0
    stops = probes.sequential and first < B
    groups = Counter((source_of(name), np.shape(vectors)[1]) for name, vectors in samples.items())
    first_of = {(source_of(name), np.shape(vectors)[1]): name for name, vectors in reversed(list(samples.items()))}
    rng = np.random.default_rng(seed)
    settled = full = 0.0
    for group, count in groups.items():
        sample = np.asarray(samples[first_of[group]], dtype=np.float32)
        noise = rng.standard_normal((len(meta), sample.shape[1])).astype(np.float32) * SAMPLE_NOISE * sample.std(0)
        X = sample[rng.integers(len(sample), size=len(meta))] + noise
        times = []
        for n_perm in dict.fromkeys((0, first)):
            config = probes.model_copy(update={"permutations": n_perm, "sequential": False})
            t0 = time.perf_counter()
            evaluate_representations({first_of[group]: X}, meta, config, progress=False)
            times.append(time.perf_counter() - t0)
        per_permutation = max(0.0, times[-1] - times[0]) / first if first else 0.0
        settled += count * (times[0] + (first if stops else B) * per_permutation)
        full += count * (times[0] + B * per_permutation)
    return ProbeProjection(settled_s=settled, full_s=full, permutations=B, first_look=first if stops else B)


@dataclass(frozen=True)
class SourcePlan:
    """One source measured on the sample batch."""

    source: str
    dims: dict[str, int]  # representation -> width
    sample_utterances: int
    sample_audio_seconds: float
    wall_s: float  # the timed batch (after the warm-up)
    load_s: float  # model load + the warm-up batch
    peak_memory_bytes: int
    peak_memory_kind: str  # "cuda" or "rss"
    warmup_audio_seconds: float = 0.0  # the warm-up batch's audio
    warmup_utterances: int = 0

    @property
    def audio_seconds_per_s(self) -> float:
        return self.sample_audio_seconds / self.wall_s if self.wall_s > 0 else float("inf")

    @property
    def rate_text(self) -> str:
        if self.sample_audio_seconds > 0:
            return f"{self.audio_seconds_per_s:.1f} audio-s/s"
        return f"{self.sample_utterances / self.wall_s:.0f} utt/s (no audio read)" if self.wall_s > 0 else "no measurable time (no audio read)"

    def seconds_for(self, n_utterances: int, audio_seconds: float) -> float:
        """That much work at the measured rate: by audio seconds, or by utterances for a source that
        reads no audio (the planted vectors)."""
        if self.sample_audio_seconds > 0:
            return audio_seconds * self.wall_s / self.sample_audio_seconds
        return n_utterances * self.wall_s / max(self.sample_utterances, 1)

    @property
    def model_load_s(self) -> float:
        """The warm-up's one-off cost: its time less what its batch takes at the measured rate."""
        return max(0.0, self.load_s - self.seconds_for(self.warmup_utterances, self.warmup_audio_seconds))


@dataclass(frozen=True)
class PreflightPlan:
    config_name: str
    n_utterances: int
    n_speakers: int
    n_accents: int
    audio_hours: float
    dataset_warnings: list[str]
    backbones: dict[str, "BackboneCheck"]  # every listed backbone's check, in config order
    sources: list[SourcePlan]
    external_dims: dict[str, int]
    probe_device: str
    probes: ProbeProjection
    feature_dtype: str
    cache_dir: str
    probe_design: str = ""  # outer folds and speaker-ID probe (`probes.design.design_line`)
    probe_rank_shares: tuple[int, ...] = ()  # representations each torchrun rank probes (empty or one entry: a single process)
    notes: list[str] = field(default_factory=list)

    @property
    def extraction_seconds(self) -> float:
        """Projected extraction time of the whole dataset, every source one after the other, each
        loading its model (`SourcePlan.model_load_s`) and then running at its measured rate."""
        return sum(s.model_load_s + s.seconds_for(self.n_utterances, self.audio_seconds) for s in self.sources)

    @property
    def audio_seconds(self) -> float:
        return self.audio_hours * 3600

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
        for name, check in self.backbones.items():
            rt = check.runtime
            cc = f", compute capability {rt.compute_capability}" if rt.compute_capability else ""
            whose = "" if name == DEFAULT_BACKBONE_NAME else f"{name}: "  # a single `sources.backbone` reads as before
            out.append(f"backbone    {whose}{check.checkpoint.summary()}")
            out.append(f"device      {whose}{rt.device} ({rt.device_name}{cc})")
            out.append(f"dtype       {whose}{rt.dtype} ({rt.dtype_reason}); speech tokenizer {rt.speech_tokenizer_dtype}")
            out.append(f"attention   {whose}{rt.attn_implementation} ({rt.attn_reason})")
        for s in self.sources:
            out.append(
                f"throughput  {s.source:<9} {len(s.dims):>3} repr  {s.sample_utterances} utt / {s.sample_audio_seconds:.1f} audio-s "
                f"in {s.wall_s:.2f} s = {s.rate_text}; load and warm-up {s.load_s:.1f} s; "
                f"peak {_size(s.peak_memory_bytes)} ({'CUDA allocated' if s.peak_memory_kind == 'cuda' else 'process RSS so far'})"
            )
        if self.sources:
            out.append(
                f"extraction  ~{_duration(self.extraction_seconds)} projected for all {self.n_utterances} utterances "
                f"({self.audio_seconds:.0f} audio-s), model loads included"
            )
        out.append(f"probes      {self.probes.text(len(self.representation_dims), self.probe_device)}")
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


def _sample_batch(utterances: "UtteranceSet", batch: int) -> tuple["UtteranceSet", "UtteranceSet"]:
    """(warm-up, timed): the `batch` longest utterances (the peak-memory batch; every model's first
    batch pays one-off costs), and TIMED_BATCHES batches of utterances evenly spaced over the length
    order, so that the timed audio has the dataset's mix of lengths (the whole set when it is smaller)."""
    from stage1_5.data.manifest import UtteranceSet

    by_length = sorted(utterances, key=lambda u: (u.duration or 0.0, u.id))
    n = min(len(by_length), TIMED_BATCHES * batch)
    spread = np.unique(np.linspace(0, len(by_length) - 1, n).round().astype(int))
    return UtteranceSet(by_length[-batch:]), UtteranceSet([by_length[i] for i in spread])


def _batch_size(cfg: Stage15Config, source: str) -> Optional[int]:
    from stage1_5.sources import source_spec

    return getattr(source_spec(source).settings(cfg), "batch_size", None)


def _loading(source: str, cfg: Stage15Config) -> str:
    """What the warm-up does for this source, in words: a model to load, or none (acoustic statistics)."""
    from stage1_5.sources import source_spec

    spec = source_spec(source)
    if spec is None or not spec.has_model:
        return "no model to load; warming up on the longest batch"
    if spec.weights is None:
        return "loading its model and running the longest batch"
    return f"loading {getattr(spec.settings(cfg), spec.weights)!r} and running the longest batch"


def _measure(source: str, cfg: Stage15Config, dataset, store_root: str, batch: int) -> tuple[SourcePlan, dict[str, np.ndarray]]:
    """Load the source's model and run its longest batch, then time a spread sample of utterances in
    batches of `batch` (the source's own size, or the largest of the sources' where it has none);
    returns the plan and the sample's vectors."""
    from stage1_5.features.extract import build_extractor, extract_source
    from stage1_5.features.store import FeatureStore

    store = FeatureStore(store_root)
    warmup, timed = _sample_batch(dataset.utterances, batch)
    extractor = build_extractor(source, cfg)
    kwargs = dict(batch_size=batch, store_dtype=cfg.output.feature_dtype, chunk_size=cfg.output.feature_chunk_size, progress=False)
    t0 = time.perf_counter()
    _, warm = extract_source(extractor, _Sample(warmup, "preflight-warmup"), store, **kwargs)
    load_s = time.perf_counter() - t0
    vectors, stats = extract_source(extractor, _Sample(timed, "preflight"), store, **kwargs)
    peak = max(warm.peak_memory_bytes, stats.peak_memory_bytes)
    plan = SourcePlan(
        source=source,
        dims={name: int(arr.shape[1]) for name, arr in vectors.items()},
        sample_utterances=stats.n_utterances,
        sample_audio_seconds=stats.audio_seconds,
        wall_s=stats.wall_s,
        load_s=load_s,
        peak_memory_bytes=peak,
        peak_memory_kind=stats.peak_memory_kind,
        warmup_audio_seconds=warm.audio_seconds,
        warmup_utterances=warm.n_utterances,
    )
    return plan, vectors


def _measurement_config(cfg: Stage15Config) -> Stage15Config:
    """Audio decoding in the main process: worker start-up would dominate a few batches' time."""
    backbone = cfg.sources.backbone.model_copy(update={"num_workers": 0})
    listed = [b.model_copy(update={"num_workers": 0}) for b in cfg.sources.backbones] if cfg.sources.backbones else None
    return cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"backbone": backbone, "backbones": listed})})


def _probe_rank_shares(dims: dict[str, int]) -> tuple[int, ...]:
    """How many representations each rank of this torchrun job probes (`probes.protocol.rank_share`)."""
    from stage1_5 import distributed
    from stage1_5.probes.protocol import rank_share

    world = distributed.from_env().world_size
    return tuple(len(rank_share(distributed.DistContext(rank=r, world_size=world), dims)) for r in range(world))


def run_preflight(cfg: Stage15Config, *, config_name: str = "config", echo: Callable[[str], None] = print, progress: bool = False) -> PreflightPlan:
    """Check `cfg` end to end on a few batches and return the plan; the first problem raises. Every
    listed backbone is checked and timed on its own batch (the plan's `backbones` holds every check)."""
    from stage1_5.sources import configured_backbones

    with configured_backbones(cfg):
        return _run_preflight(cfg, config_name=config_name, echo=echo, progress=progress)


def _run_preflight(cfg: Stage15Config, *, config_name: str, echo: Callable[[str], None], progress: bool) -> PreflightPlan:
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
    backbones = {}
    for listed in cfg.sources.backbone_list():
        if listed.name in sources:
            echo(f"[preflight] {listed.name}: checking {listed.checkpoint!r} against the options (no weights yet)")
            backbones[listed.name] = check_backbone(listed)
    measured = _measurement_config(cfg)
    largest = max([_batch_size(cfg, s) or 1 for s in sources], default=1)
    plans, samples = [], {}
    with tempfile.TemporaryDirectory(prefix="stage1_5_preflight_") as store_root:
        for source in sources:
            batch = min(len(dataset.utterances), _batch_size(cfg, source) or largest)
            echo(f"[preflight] {source}: {_loading(source, cfg)}, then timing {TIMED_BATCHES} batches of {batch} utterances")
            plan, vectors = _measure(source, measured, dataset, store_root, batch)
            plans.append(plan)
            samples.update(vectors)
    external_dims = {}
    for path in cfg.sources.external:
        _, arrays = load_external_features(path)
        external_dims.update({name: int(arr.shape[1]) for name, arr in arrays.items()})
        samples.update(arrays)
    probe_device = resolve_device(cfg.probes.device, option="probes.device", error=ProbeError)
    echo("[preflight] probes: timing stand-in features of each source and width on this dataset's folds")
    probes = project_probe_seconds(dataset.utterances.to_frame(), samples, cfg, seed=cfg.probes.seed)
    plan_dims = {name: d for p in plans for name, d in p.dims.items()}
    summary = dataset.summary
    return PreflightPlan(
        config_name=config_name,
        n_utterances=summary.n_utterances,
        n_speakers=summary.n_speakers,
        n_accents=summary.n_accents,
        audio_hours=summary.total_hours,
        dataset_warnings=list(dataset.warnings),
        backbones=backbones,
        sources=plans,
        external_dims=external_dims,
        probe_device=probe_device.type,
        probes=probes,
        feature_dtype=cfg.output.feature_dtype,
        cache_dir=cfg.output.cache_dir,
        probe_design=design_line(dataset.utterances.to_frame(), cfg.probes),
        probe_rank_shares=_probe_rank_shares({**plan_dims, **external_dims}),
        notes=notes,
    )
