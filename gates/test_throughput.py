"""Throughput benchmarks (pytest-benchmark): feature extraction per source and the probe engine.

Extraction runs one source's extractor (built once: model loading is not timed) over the first
`BENCH_UTTERANCES` utterances into a private store with `force=True`, so every round computes and
the shared cache is never touched. `benchmark.extra_info` carries utterances/s, audio-seconds/s and
peak memory (CUDA max-allocated during the extraction on a GPU; on a CPU the process's peak RSS,
which covers the whole session so far). The probe benchmark fits one representation's accent probe
without permutations or bootstrap. Under `--benchmark-disable` each target runs once and the
timing-based figures are left out.
"""

from dataclasses import dataclass

import pytest

BENCH_UTTERANCES = 16
ROUNDS = 2  # the minimum of two rounds leaves out one-off costs (CUDA kernel selection, caches)


@dataclass(frozen=True)
class _Subset:
    """The first utterances of the dataset, keyed apart from the full set in the store."""

    utterances: object
    content_hash: str
    has_audio: bool


@pytest.mark.stage1_5_sources
def test_extraction_throughput(benchmark, source, stage1_5_config, stage1_5_dataset, tmp_path):
    """One source's extraction speed and peak memory on the first utterances of the dataset."""
    from stage1_5.features.extract import build_extractor, extract_source
    from stage1_5.features.store import FeatureStore
    from stage1_5.sources import source_spec

    if not stage1_5_dataset.has_audio:
        pytest.skip(f"{source} extracts from audio; this dataset has none (features only)")
    utts = stage1_5_dataset.utterances[:BENCH_UTTERANCES]
    subset = _Subset(utts, f"{stage1_5_dataset.content_hash}/first{len(utts)}", True)
    extractor = build_extractor(source, stage1_5_config)
    store_settings = {
        "batch_size": source_spec(source).settings(stage1_5_config).batch_size,
        "store_dtype": stage1_5_config.output.feature_dtype,
        "chunk_size": stage1_5_config.output.feature_chunk_size,
    }
    store = FeatureStore(tmp_path)

    vectors, stats = benchmark.pedantic(
        extract_source,
        args=(extractor, subset, store),
        kwargs={**store_settings, "force": True, "progress": False},
        rounds=ROUNDS,
        iterations=1,
    )
    assert stats.n_utterances == len(utts)
    assert all(v.shape[0] == len(utts) for v in vectors.values())
    benchmark.extra_info.update(
        {
            "source": source,
            "representations": len(vectors),
            "n_utterances": stats.n_utterances,
            "audio_seconds": round(stats.audio_seconds, 3),
            "utterances_per_s": round(stats.utterances_per_s, 2),
            "audio_seconds_per_s": round(stats.audio_seconds_per_s, 2),
            "peak_memory_bytes": stats.peak_memory_bytes,
            "peak_memory_kind": stats.peak_memory_kind,
            # CUDA peaks are reset per extraction; RSS is the process's peak so far (the whole session)
            "peak_memory_scope": "extraction" if stats.peak_memory_kind == "cuda" else "process",
        }
    )


def test_probe_throughput(benchmark, stage1_5_config, stage1_5_dataset, stage1_5_features):
    """The probe engine's speed on one representation: outer CV with inner C selection, one seed."""
    from stage1_5.probes import evaluate_representations
    from stage1_5.sources import decides, source_of

    names = sorted(stage1_5_features.vectors)
    name = next((n for n in names if decides(source_of(n))), names[0])  # what the decision rests on
    vectors = {name: stage1_5_features.vectors[name]}
    frame = stage1_5_dataset.utterances.to_frame()
    probes = stage1_5_config.probes.model_copy(update={"seeds": 1, "permutations": 0, "bootstrap": 0})

    results = benchmark.pedantic(
        evaluate_representations,
        args=(vectors, frame, probes),
        kwargs={"progress": False},
        rounds=ROUNDS,
        iterations=1,
    )
    assert list(results.metrics["representation"]) == [name]
    n = len(frame)
    benchmark.extra_info.update({"representation": name, "n_utterances": n, "dim": int(vectors[name].shape[1])})
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["utterances_per_s"] = round(n / benchmark.stats.stats.min, 2)  # best round
