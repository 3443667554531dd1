"""benchmarks/gpu_check.sh, the prepared device check, runs end to end on a CPU at its reduced size and
writes every figure the device run reports (the CUDA-only ones say why they are absent)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def reduced_run(gpu_check, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    threads = torch.get_num_threads()
    try:
        status = gpu_check.main(["--reduced", "--variant", "0.6B-Base", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    return status, json.loads((out / "gpu_check.json").read_text())


def test_the_reduced_run_passes_every_step(reduced_run):
    status, result = reduced_run
    assert status == 0 and {name: s["status"] for name, s in result["steps"].items()} == dict.fromkeys(
        ["runtime", "matmul", "model", "extraction", "oom_backoff", "probes"], "ok"
    )


def test_it_reports_throughput_and_the_fraction_of_the_compute_floor(reduced_run):
    extraction = reduced_run[1]["extraction"]
    assert extraction["utterances"] == 4 and extraction["audio_seconds_per_s"] > 0 and extraction["finite"]
    assert extraction["layers"] == ["text_encoder_out", "decoder_block_00", "decoder_block_01", "pre_vocoder"]
    assert 0 < extraction["fraction_of_matmul_rate"] and extraction["floor_gflop_per_audio_s"] > 0


def test_the_oom_back_off_halves_at_least_once_and_keeps_the_features(reduced_run):
    oom = reduced_run[1]["oom_backoff"]
    assert oom["halvings"] >= 1 and oom["final_batch_size"] == oom["batch_size"] // 2
    assert oom["all_utterances_returned"] and oom["equal_to_uncapped"]


def test_it_times_the_probe_engine_and_projects_the_full_permutation_count(reduced_run):
    # structure only: each figure is timed separately, so no comparison between them can be trusted on a busy
    # machine (they are rounded, so a fast machine may print 0.0)
    probes = reduced_run[1]["probes"]
    timings = [probes["cpu_zero_s"], probes["cpu_same_s"], probes["cpu_full_projected_s"]]
    assert all(isinstance(t, float) and math.isfinite(t) and t >= 0 for t in timings)
    assert probes["cuda"] == "skipped: no CUDA device"


def test_it_records_the_chosen_dtype_and_why(reduced_run):
    runtime = reduced_run[1]["runtime"]
    assert (runtime["dtype"], runtime["dtype_reason"]) == ("float32", "auto: float32 on CPU")


def test_the_shell_wrapper_runs_the_script_and_keeps_its_log(tmp_path):
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable},
    )
    assert result.returncode == 0, result.stderr
    assert "--reduced" in result.stdout and "--reduced" in (tmp_path / "gpu_check.log").read_text()


def test_the_device_wheel_list_pins_every_package():
    lines = [line.split("#")[0].strip() for line in (REPO / "benchmarks" / "gpu_check_wheels.txt").read_text().splitlines()]
    specs = [line for line in lines if line]
    assert specs and all("==" in spec for spec in specs)
    assert "transformers==4.57.3" in specs and any(spec.startswith("qwen-tts==") for spec in specs)
