"""Ctrl-C and SIGTERM during `stage1_5 run`: one line saying the run can be resumed, exit 130 / 143, the
run folder's lock released, and the rerun completes the run as if nothing had happened."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from stage1_5.cli import STOPPED
from stage1_5.pipeline import RUN_LOCK
from stage1_5.runtime import torch_threads

from test_pipeline_faults import run_files
from test_pipeline_run import planted, quiet_run  # noqa: F401  (the planted GO case, built once per module)

SIGNALLED_RUN = """
import os, signal, sys
import stage1_5.pipeline as pipeline
def signal_at(stage):  # the signal arrives while the probes stage runs
    if stage == "probes":
        os.kill(os.getpid(), signal.{signal})
pipeline._fault_point = signal_at
from stage1_5.cli import main
sys.argv = ["stage1_5", "run", {config!r}, "-o", {out!r}, "--no-progress"]
main()
"""


def signalled_run(config: Path, out: Path, name: str) -> subprocess.CompletedProcess:
    script = SIGNALLED_RUN.format(signal=name, config=str(config), out=str(out))
    env = {**os.environ, "STAGE1_5_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize(("name", "status", "said"), [("SIGTERM", 143, "SIGTERM"), ("SIGINT", 130, "Ctrl-C (SIGINT)")])
def test_a_signal_during_run_is_one_line_saying_it_can_be_resumed(planted, tmp_path, name, status, said):  # noqa: F811
    config_path, _ = planted
    result = signalled_run(config_path, tmp_path / "run", name)
    assert result.returncode == status, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("error")] == [STOPPED.format(signal=said)]
    assert "Traceback" not in result.stderr and "Aborted!" not in result.stderr
    assert not (tmp_path / "run" / RUN_LOCK).exists()  # released on the way out


def test_a_run_stopped_by_sigterm_then_rerun_equals_a_clean_run(planted, tmp_path, monkeypatch):  # noqa: F811
    config_path, _ = planted
    monkeypatch.setenv("STAGE1_5_THREADS", "1")
    assert signalled_run(config_path, tmp_path / "run", "SIGTERM").returncode == 128 + signal.SIGTERM
    with torch_threads(1):
        quiet_run(config_path, out_dir=tmp_path / "run")
        quiet_run(config_path, out_dir=tmp_path / "clean")
    assert run_files(tmp_path / "run") == run_files(tmp_path / "clean")
