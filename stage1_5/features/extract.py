"""`extract_features`: every enabled source, through the store, into one `FeatureSet`.

The sources and their extractors come from the registry (`stage1_5.sources`). For each source the driver builds an extractor for just the requested representations, looks for a
complete store entry that covers them (a full entry serves a subset request), and otherwise computes
the missing chunks of the entry for exactly that set, so a killed run resumes at its last chunk.
External feature files are read and aligned instead of extracted. Under torchrun
(`stage1_5.distributed`) the ranks share an entry's missing chunks in length-balanced shards and
write them into the same entry; rank 0 consolidates (`_extract_distributed`).
"""

from __future__ import annotations

import contextlib
import gc
import pkgutil
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np
from tqdm.auto import tqdm

from stage1_5 import __version__, distributed
from stage1_5.errors import FeatureError
from stage1_5.features.base import FeatureExtractor
from stage1_5.features.store import FeatureStore, StoreEntry, StoreKey, ids_digest
from stage1_5.paths import cache_paths
from stage1_5.sources import SourceSpec, all_sources, enabled_sources, source_of, source_spec

if TYPE_CHECKING:
    from stage1_5.config import Stage15Config
    from stage1_5.data.manifest import UtteranceSet

EXTERNAL = "external"
"""`sources=["external"]` names the files of `sources.external`; their columns carry their own source prefixes."""


class DatasetLike(Protocol):
    """What extraction reads from `stage1_5.data.dataset.Dataset`."""

    utterances: "UtteranceSet"
    content_hash: str
    has_audio: bool


@dataclass(frozen=True)
class ExtractionStats:
    """Throughput and memory of one source. Counts cover the work done in this call (a resumed run
    counts only the chunks it computed). `from_cache`: nothing was computed, and the numbers are
    those recorded when the store entry was computed."""

    source: str
    n_utterances: int
    audio_seconds: float
    wall_s: float
    peak_memory_bytes: int
    peak_memory_kind: str  # "cuda" (max allocated on the GPU) or "rss" (process peak resident set)
    from_cache: bool = False

    @property
    def utterances_per_s(self) -> float:
        return self.n_utterances / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def audio_seconds_per_s(self) -> float:
        return self.audio_seconds / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "utterances_per_s": self.utterances_per_s, "audio_seconds_per_s": self.audio_seconds_per_s}



@dataclass
class FeatureSet:
    """One `(N, dim)` array per representation, rows in `utt_ids` order, memory-mapped (copy-on-write)
    from the store: float32, or float16 when stored so."""

    utt_ids: list[str]
    vectors: dict[str, np.ndarray]
    stats: dict[str, ExtractionStats]

    @property
    def representations(self) -> list[str]:
        return list(self.vectors)


# ----------------------------------------------------------------------------- extractors


def _registered(source: str) -> SourceSpec:
    spec = source_spec(source)
    if spec is None:
        names = [spec.name for spec in all_sources()] + [EXTERNAL]
        raise FeatureError(f"unknown feature source {source!r}; expected one of {', '.join(names)}")
    return spec


def build_extractor(source: str, cfg: "Stage15Config", representations: Sequence[str] | None = None) -> FeatureExtractor:
    """The extractor of a registered `source` restricted to `representations` (None = all configured)."""
    spec = _registered(source)
    factory = spec.extractor if callable(spec.extractor) else pkgutil.resolve_name(spec.extractor)
    kwargs = {"savedir": cache_paths(cfg.output).models(spec.name)} if spec.model_dir else {}
    extractor = factory(spec.settings(cfg), representations, **kwargs)
    if extractor.source != spec.name:
        raise FeatureError(f"source {spec.name!r}: its extractor says it computes source {extractor.source!r}")
    return extractor


# ----------------------------------------------------------------------------- memory / progress


class _PeakMemory:
    """CUDA peak allocation when the extractor runs on a GPU, else the process's peak RSS."""

    def __init__(self, extractor: Any):
        device = getattr(extractor, "device", None)
        self.cuda = getattr(device, "type", None) == "cuda"
        if self.cuda:
            import torch

            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.device = device

    @property
    def kind(self) -> str:
        return "cuda" if self.cuda else "rss"

    def peak(self) -> int:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            return int(torch.cuda.max_memory_allocated(self.device))
        import resource  # Unix only; imported here so that the module loads everywhere

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


# ----------------------------------------------------------------------------- one source


def _fill_chunk(
    entry: StoreEntry,
    index: int,
    chunk_utts: "UtteranceSet",
    extractor: FeatureExtractor,
    batch_size: int,
    on_batch: Callable[[int, float], None],
) -> None:
    """Extract one chunk, check every batch (ids, names, shapes, finite values) and write it."""
    names = entry.representations
    ids = chunk_utts.ids
    row = {uid: i for i, uid in enumerate(ids)}
    blocks: dict[str, np.ndarray] = {}
    filled = np.zeros(len(ids), dtype=bool)
    for batch in extractor.extract_batches(chunk_utts, batch_size):
        rows = []
        for uid in batch.utt_ids:
            if uid not in row or filled[row[uid]]:
                raise FeatureError(f"{extractor.source}: extractor returned unexpected or repeated utterance {uid!r}")
            rows.append(row[uid])
        for name in names:
            if name not in batch.vectors:
                raise FeatureError(f"{extractor.source}: extractor returned no {name!r}")
            arr = np.asarray(batch.vectors[name], dtype=np.float32)
            if arr.ndim != 2 or arr.shape[0] != len(rows):
                raise FeatureError(f"{name}: batch of shape {arr.shape}, expected ({len(rows)}, dim)")
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                raise FeatureError(f"{name}: non-finite values (NaN/inf) for utterance {batch.utt_ids[int(np.argmax(bad))]!r}")
            if name not in blocks:
                blocks[name] = np.zeros((len(ids), arr.shape[1]), dtype=np.float32)
            if arr.shape[1] != blocks[name].shape[1]:
                raise FeatureError(f"{name}: dimension changed from {blocks[name].shape[1]} to {arr.shape[1]}")
            blocks[name][rows] = arr
        filled[rows] = True
        on_batch(len(rows), float(batch.n_audio_seconds))
    if not filled.all():
        raise FeatureError(f"{extractor.source}: no features for utterance {ids[int(np.argmin(filled))]!r}")
    entry.write_chunk(index, blocks)


def _recorded_stats(entry: StoreEntry, source: str) -> ExtractionStats:
    """The stats saved when `entry` was computed, marked as read from the cache."""
    recorded = entry.meta.get("stats") or {}
    fields = {k: recorded[k] for k in ("n_utterances", "audio_seconds", "wall_s", "peak_memory_bytes", "peak_memory_kind") if k in recorded}
    defaults = {"n_utterances": len(entry.utt_ids), "audio_seconds": 0.0, "wall_s": 0.0, "peak_memory_bytes": 0, "peak_memory_kind": "rss"}
    return ExtractionStats(source=source, from_cache=True, **{**defaults, **fields})


def _compute_chunks(
    entry: StoreEntry,
    chunks: Sequence[int],
    utts: "UtteranceSet",
    extractor: FeatureExtractor,
    *,
    batch_size: int,
    progress: bool,
    desc: str,
    total: int | None = None,
) -> ExtractionStats:
    """Compute and write `chunks` of `entry`; the stats of this process's work. The progress bar
    counts to `total` utterances (default: those of `chunks`), the others shown as done."""
    t0 = time.perf_counter()
    todo = sum(entry.chunk_range(i)[1] - entry.chunk_range(i)[0] for i in chunks)
    total = todo if total is None else total
    memory = _PeakMemory(extractor)
    done = {"utts": 0, "audio": 0.0}
    with tqdm(total=total, initial=total - todo, unit="utt", desc=desc, disable=not progress, dynamic_ncols=True) as bar:

        def on_batch(n: int, audio: float) -> None:
            done["utts"] += n
            done["audio"] += audio
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.update(n)
            bar.set_postfix({"utt/s": f"{done['utts'] / elapsed:.1f}", "audio-s/s": f"{done['audio'] / elapsed:.1f}"}, refresh=False)

        for index in chunks:
            start, stop = entry.chunk_range(index)
            _fill_chunk(entry, index, utts[start:stop], extractor, batch_size, on_batch)
    return ExtractionStats(
        source=extractor.source,
        n_utterances=done["utts"],
        audio_seconds=done["audio"],
        wall_s=time.perf_counter() - t0,
        peak_memory_bytes=memory.peak(),
        peak_memory_kind=memory.kind,
    )


def _store_key(extractor: FeatureExtractor, dataset: DatasetLike, store_dtype: str) -> StoreKey:
    return StoreKey(
        source=extractor.source,
        dataset_hash=dataset.content_hash,
        utt_ids_hash=ids_digest(dataset.utterances.ids),
        config=extractor.config_key(),
        code_version=f"{__version__}/{extractor.version}",
        dtype=store_dtype,
    )


def extract_source(
    extractor: FeatureExtractor,
    dataset: DatasetLike,
    store: FeatureStore,
    *,
    batch_size: int,
    store_dtype: str,
    chunk_size: int,
    force: bool = False,
    progress: bool = True,
) -> tuple[dict[str, np.ndarray], ExtractionStats]:
    """Vectors of one extractor's representations for the whole dataset, through the store
    (`store_dtype`, `chunk_size`: `output.feature_dtype`, `output.feature_chunk_size`).
    Under torchrun (`stage1_5.distributed.current().active`) the ranks share the work: see
    `_extract_distributed`."""
    names = extractor.representation_names()
    key = _store_key(extractor, dataset, store_dtype)
    ctx = distributed.current()
    if ctx.active:
        return _extract_distributed(ctx, extractor, dataset, store, key, batch_size=batch_size, chunk_size=chunk_size, force=force, progress=progress)
    if not force:
        cached = store.find_complete(key, names)
        if cached is not None:
            return cached.load(names), _recorded_stats(cached, extractor.source)
    entry = store.open(key, names, dataset.utterances.ids, chunk_size)
    with entry.lock():
        if force:
            entry.reset()
        elif entry.complete:  # another process finished it while we waited for the lock
            return entry.load(names), _recorded_stats(entry, extractor.source)
        stats = _compute_chunks(
            entry, entry.missing_chunks(), dataset.utterances, extractor,
            batch_size=batch_size, progress=progress, desc=extractor.source, total=len(dataset.utterances),
        )
        entry.consolidate({"stats": stats.to_dict()})
    return entry.load(names), stats


SHARD_CHUNKS_PER_RANK = 8
"""Under torchrun a new entry is cut into at least this many chunks per rank (smaller chunks than
`output.feature_chunk_size` when needed), so that the chunk-level shards balance audio length."""


def _extract_distributed(
    ctx: "distributed.DistContext",
    extractor: FeatureExtractor,
    dataset: DatasetLike,
    store: FeatureStore,
    key: StoreKey,
    *,
    batch_size: int,
    chunk_size: int,
    force: bool,
    progress: bool,
) -> tuple[dict[str, np.ndarray], ExtractionStats]:
    """Every rank computes a length-balanced shard of the entry's missing chunks into the same store
    entry; rank 0 holds the entry's lock throughout (no other job writes it meanwhile), chooses the
    chunks, and consolidates once every rank has written its own. A killed job resumes from the
    chunks on disk, whichever rank wrote them. A failure on any rank stops every rank with its message."""
    names = extractor.representation_names()
    utts = dataset.utterances
    n = len(utts)
    with contextlib.ExitStack() as stack:
        plan: dict[str, Any] = {}
        if ctx.is_main:
            entry = None if force else store.find_complete(key, names)
            if entry is not None:
                plan = {"path": str(entry.path), "cached": True}
            else:
                per_rank = -(-n // (ctx.world_size * SHARD_CHUNKS_PER_RANK))
                entry = stack.enter_context(store.open(key, names, utts.ids, min(chunk_size, max(1, per_rank))).lock())
                if force:
                    entry.reset()
                plan = {"path": str(entry.path), "cached": entry.complete, "missing": entry.missing_chunks()}
        plan = ctx.broadcast(plan)
        entry = store.open_existing(Path(plan["path"]))
        if plan["cached"]:
            return entry.load(names), _recorded_stats(entry, extractor.source)
        missing: list[int] = plan["missing"]
        weights = []
        for index in missing:
            start, stop = entry.chunk_range(index)
            weights.append(sum(u.duration or 1.0 for u in utts[start:stop]))
        mine = [missing[i] for i in distributed.length_balanced_shards(weights, ctx.world_size)[ctx.rank]]
        n_mine = sum(entry.chunk_range(i)[1] - entry.chunk_range(i)[0] for i in mine)
        tqdm.write(f"{extractor.source}: {ctx.describe()}: {n_mine} utterances ({len(mine)} of {len(missing)} chunks to compute)", file=sys.stderr)
        error = None
        stats = None
        try:
            stats = _compute_chunks(entry, mine, utts, extractor, batch_size=batch_size, progress=progress, desc=f"{extractor.source} {ctx.describe()}")
        except Exception as err:  # every rank must learn of it, or the others wait at the next collective
            error = f"{ctx.describe()}: {err}"
        reports = ctx.gather((error, stats.to_dict() if stats else None))
        failed = [e for e, _ in reports if e]
        if failed:
            raise FeatureError(f"{extractor.source}: {failed[0]}")
        per_rank_stats = [s for _, s in reports]
        total = ExtractionStats(
            source=extractor.source,
            n_utterances=sum(s["n_utterances"] for s in per_rank_stats),
            audio_seconds=sum(s["audio_seconds"] for s in per_rank_stats),
            wall_s=max(s["wall_s"] for s in per_rank_stats),
            peak_memory_bytes=max(s["peak_memory_bytes"] for s in per_rank_stats),
            peak_memory_kind=per_rank_stats[0]["peak_memory_kind"],
        )
        error = None
        if ctx.is_main:
            try:
                entry.consolidate({"stats": total.to_dict(), "world_size": ctx.world_size})
            except Exception as err:
                error = f"{ctx.describe()}: {err}"
        error = ctx.broadcast(error)
        if error:
            raise FeatureError(f"{extractor.source}: {error}")
    entry = store.open_existing(entry.path)
    return entry.load(names), total


# ----------------------------------------------------------------------------- external files


def _load_external(paths: Iterable[str], ids: list[str]) -> dict[str, np.ndarray]:
    from stage1_5.features.external import align_features, load_external_features

    vectors: dict[str, np.ndarray] = {}
    for path in paths:
        file_ids, arrays = load_external_features(path)
        for name, arr in align_features(file_ids, arrays, ids, source=str(path)).items():
            if name in vectors:
                raise FeatureError(f"sources.external: representation {name!r} appears in more than one file ({path})")
            vectors[name] = arr
    return vectors


# ----------------------------------------------------------------------------- driver


def _plan(
    cfg: "Stage15Config",
    sources: Sequence[str] | None,
    representations: set[str] | None,
    external_names: Sequence[str],
) -> dict[str, list[str] | None]:
    """source → representations to compute (None = all configured), checking every name."""
    if sources is None:
        chosen = [spec.name for spec in enabled_sources(cfg)] + ([EXTERNAL] if cfg.sources.external else [])
    else:
        chosen = list(dict.fromkeys(sources))
        for source in chosen:
            if source != EXTERNAL:
                _registered(source)
    if representations is None:
        return {source: None for source in chosen}
    plan: dict[str, list[str]] = {}
    for name in sorted(representations):
        if name in external_names and EXTERNAL in chosen:
            plan.setdefault(EXTERNAL, []).append(name)
            continue
        source = source_of(name)
        spec = source_spec(source)
        if ":" not in name or spec is None:
            names = ", ".join(spec.name for spec in all_sources())
            raise FeatureError(f"representation {name!r}: expected 'source:name' with source one of {names}, or a column of sources.external")
        if source not in chosen:
            why = f"disabled in the config ({spec.key}.enabled)" if sources is None else "not among the requested sources"
            raise FeatureError(f"representation {name!r}: source {source!r} is {why}")
        plan.setdefault(source, []).append(name)
    return {source: plan[source] for source in chosen if source in plan}


def extract_features(
    cfg: "Stage15Config",
    dataset: DatasetLike,
    *,
    sources: Sequence[str] | None = None,
    representations: set[str] | None = None,
    progress: bool = True,
    force: bool = False,
) -> FeatureSet:
    """Vectors for every enabled source (or `sources`), restricted to `representations` when given.

    Results live in the feature store under `output.cache_dir`, as `output.feature_dtype`, written in
    chunks of `output.feature_chunk_size` utterances; `force=True` recomputes instead of reading the
    store. An audio source on a dataset without audio is an error when asked for by name, and is
    skipped with a warning when it is only enabled in the config.
    """
    ids = dataset.utterances.ids
    if not ids:
        raise FeatureError("the dataset has no utterances to extract features from")
    external_paths = list(cfg.sources.external)
    if sources is not None and EXTERNAL in sources and not external_paths:
        raise FeatureError("source 'external' requested, but sources.external lists no feature files")
    external: dict[str, np.ndarray] = {}
    external_wall = 0.0
    if external_paths and (sources is None or EXTERNAL in sources):
        t0 = time.perf_counter()
        external = _load_external(external_paths, ids)
        external_wall = time.perf_counter() - t0
    plan = _plan(cfg, sources, representations, list(external))
    store = FeatureStore(cache_paths(cfg.output).features)
    vectors: dict[str, np.ndarray] = {}
    stats: dict[str, ExtractionStats] = {}

    def add(got: Mapping[str, np.ndarray]) -> None:
        clash = set(got) & set(vectors)
        if clash:
            raise FeatureError(f"representation {sorted(clash)[0]!r} comes from two sources; rename the external column")
        vectors.update(got)

    for source, names in plan.items():
        if source == EXTERNAL:
            add({name: external[name] for name in (list(external) if names is None else names)})
            stats[EXTERNAL] = ExtractionStats(EXTERNAL, len(ids), 0.0, external_wall, 0, "rss", from_cache=True)
            continue
        if not dataset.has_audio:
            if sources is not None or representations is not None:
                raise FeatureError(f"source {source!r} needs audio, but the dataset has none (features-only dataset)")
            warnings.warn(f"skipping feature source {source!r}: the dataset has no audio", stacklevel=2)
            continue
        extractor = build_extractor(source, cfg, names)
        got, stats[source] = extract_source(
            extractor,
            dataset,
            store,
            batch_size=_registered(source).settings(cfg).batch_size,
            store_dtype=cfg.output.feature_dtype,
            chunk_size=cfg.output.feature_chunk_size,
            force=force,
            progress=progress,
        )
        add(got)
        del extractor  # its model goes before the next source's loads (one backbone at a time)
        _release_accelerator_memory()
    return FeatureSet(utt_ids=list(ids), vectors=vectors, stats=stats)


def _release_accelerator_memory() -> None:
    """Collect the freed extractor and, when this process uses CUDA, hand its cached blocks back to
    the GPU (`torch.cuda.empty_cache`), so that the next model loads into the whole memory."""
    gc.collect()
    torch = sys.modules.get("torch")  # a run without torch (acoustic, external) never imports it here
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def export_features(features: FeatureSet, path: str | Path) -> Path:
    """Write the vectors as a file that `sources.external` reads back, atomically: `.npz` (a string
    array `utt_id` + one float32 `(N, dim)` array per representation) or `.parquet` (a `utt_id`
    column + one fixed-size-list column per representation)."""
    from stage1_5.io import atomic_open

    path = Path(path)
    arrays = {name: np.asarray(arr, dtype=np.float32) for name, arr in features.vectors.items()}
    if path.suffix == ".npz":
        with atomic_open(path, "wb") as fh:
            np.savez(fh, utt_id=np.array(features.utt_ids, dtype=str), **arrays)
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = {"utt_id": pa.array(features.utt_ids, type=pa.string())}
        for name, arr in arrays.items():
            columns[name] = pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
        with atomic_open(path, "wb") as fh:
            pq.write_table(pa.table(columns), fh)
    else:
        raise FeatureError(f"{path}: export writes .npz or .parquet files")
    return path
