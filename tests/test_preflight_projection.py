"""`stage1_5 preflight` predicts the run that follows it on the same machine: the work it projects
(utterances, audio seconds, store bytes) is the work the run does, and its extraction and probe times
land within 2x of the run's measured stage times.

Both sides are read on this process's CPU clock (`time.process_time` stands in for `perf_counter` in
the modules that time things) with one torch thread and audio decoded in the main process: other jobs
on a busy CI machine then slow neither side, so the 2x band tests the projection model (measured rate
x work + model load), not the machine's load. The fast test runs the demo's dataset, reference
models and probe settings; the slow one the whole `config/demo.yaml`, tiny backbone included
(a minute on a quiet 2-core machine)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import time
import types
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from stage1_5.config import config_from_dict
from stage1_5.pipeline import run_experiment
from stage1_5.preflight import run_preflight

REPO = Path(__file__).resolve().parents[1]
CPU_CLOCK = types.SimpleNamespace(perf_counter=time.process_time)


@pytest.fixture
def cpu_clock(monkeypatch):
    torch.set_num_threads(1)
    for module in ("stage1_5.pipeline", "stage1_5.preflight", "stage1_5.features.extract"):
        monkeypatch.setattr(f"{module}.time", CPU_CLOCK)


def _demo(tmp_path, **sources) -> dict:
    raw = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
    raw["dataset"]["path"] = "demo"
    raw["sources"]["backbone"]["num_workers"] = 0
    for name, section in sources.items():
        raw["sources"][name] = {**raw["sources"].get(name, {}), **section}
    raw["output"] = {"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}
    return raw


def _store(cache: Path) -> tuple[int, dict[str, dict]]:
    """Bytes of the store's vectors, and each source's recorded extraction stats."""
    size = sum(p.stat().st_size for p in (cache / "features").rglob("*.npy"))
    stats = {m.parent.parent.name: json.loads(m.read_text())["stats"] for m in (cache / "features").glob("*/*/meta.json")}
    return size, stats


def _check_projection(tmp_path, raw: dict) -> None:
    cfg = config_from_dict(raw)
    plan = run_preflight(cfg, echo=lambda _m: None)
    result = run_experiment(cfg, progress=False, echo=lambda _m: None)

    # the work: what preflight projects is what the run did
    size, stats = _store(tmp_path / "cache")
    assert set(stats) == {s.source for s in plan.sources}
    for done in stats.values():
        assert done["n_utterances"] == plan.n_utterances == 192
        assert done["audio_seconds"] == pytest.approx(plan.audio_seconds, rel=1e-4)  # each source counts at its own sample rate
    assert 0.9 <= plan.feature_store_bytes / size <= 1.0  # the run's files add their .npy headers
    metrics = pd.read_csv(result.paths.analysis_dir / "metrics.csv")
    assert set(metrics["representation"]) == set(plan.representation_dims)

    # the time, as a ratio of projection to measurement on the same clock
    extraction = plan.extraction_seconds / result.stage_times["features"]
    assert 0.5 <= extraction <= 2, (plan.extraction_seconds, result.stage_times)
    notes = " ".join(json.loads((result.paths.analysis_dir / "probe_notes.json").read_text()))
    settled = all(f"{family}: family-wise p ≥ alpha settled" in notes for family in set(metrics["family"]))
    projected = plan.probes.settled_s if settled else plan.probes.full_s
    assert 0.5 <= projected / result.stage_times["probes"] <= 2, (plan.probes, result.stage_times, settled)


def test_preflight_projects_the_demo_references_within_2x(tmp_path, cpu_clock):
    _check_projection(tmp_path, _demo(tmp_path, backbone={"enabled": False}))


@pytest.mark.slow
def test_preflight_projects_the_whole_demo_within_2x(tmp_path, cpu_clock):
    _check_projection(tmp_path, _demo(tmp_path))
