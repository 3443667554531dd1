"""benchmarks/bench_probe_stage.py measures what the full experiment really probes."""

import importlib.util
from pathlib import Path

from stage1_5.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_probe_stage", REPO / "benchmarks" / "bench_probe_stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_full_experiment_benchmark_probes_the_configured_representations_at_their_widths():
    bench = _bench()
    cfg = load_config(REPO / "config" / "stage1_5.yaml")
    names = list(bench.FULL_EXPERIMENT)
    assert [n.split(":", 1)[1] for n in names if n.startswith("backbone:")] == cfg.sources.backbone.layers
    assert sum(n.startswith("ssl:") for n in names) == 13  # WavLM-base+: 12 blocks + the CNN features, layers: all
    assert {bench.FULL_EXPERIMENT[n][0] for n in names if n.startswith("backbone:")} == {2048}  # the 1.7B's hidden size
    assert {n.split(":")[0] for n in names} == {"backbone", "ssl", "ecapa", "acoustic"}
    assert len(names) == 23
