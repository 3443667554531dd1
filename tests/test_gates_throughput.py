"""The throughput benchmarks of the gate suite on a tiny audio dataset (acoustic features only)."""

import json
from pathlib import Path

import pytest
import yaml

from stage1_5.data.testing import dataset_rows, write_dataset

BENCH = Path(__file__).resolve().parents[1] / "gates" / "test_throughput.py"


@pytest.fixture(scope="module")
def acoustic_config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    write_dataset(root / "dataset", dataset_rows(accents=("a", "b", "c"), speakers_per_accent=3, texts=2))
    cfg = {
        "name": "bench",
        "dataset": {"path": str(root / "dataset"), "min_speakers_per_accent": 3, "min_texts_per_speaker": 2},
        "sources": {"backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False}},
        "probes": {"seeds": 1, "inner_folds": 2, "c_grid": [1.0], "permutations": 0, "bootstrap": 0, "device": "cpu"},
        "output": {"dir": str(root / "run"), "cache_dir": str(root / "cache")},
    }
    path = root / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(pytester, monkeypatch, config, *args):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return pytester.runpytest_subprocess(str(BENCH), "--stage1-5-config", str(config), "-p", "no:cacheprovider", *args)


def test_benchmark_json_carries_throughput_and_peak_memory(pytester, monkeypatch, acoustic_config, tmp_path):
    out = tmp_path / "benchmark.json"
    result = _run(pytester, monkeypatch, acoustic_config, f"--benchmark-json={out}")
    assert result.ret == 0
    benches = {b["name"]: b for b in json.loads(out.read_text())["benchmarks"]}
    extraction = benches["test_extraction_throughput[acoustic]"]["extra_info"]
    assert extraction["n_utterances"] == 16  # BENCH_UTTERANCES of the 18
    assert extraction["utterances_per_s"] > 0 and extraction["audio_seconds_per_s"] > 0
    assert extraction["peak_memory_kind"] == "rss" and extraction["peak_memory_bytes"] > 0
    probes = benches["test_probe_throughput"]["extra_info"]
    assert probes["representation"] == "acoustic:mfcc_stats" and probes["utterances_per_s"] > 0  # no backbone here


def test_benchmarks_run_once_under_benchmark_disable(pytester, monkeypatch, acoustic_config):
    result = _run(pytester, monkeypatch, acoustic_config, "--benchmark-disable")
    result.assert_outcomes(passed=2)
