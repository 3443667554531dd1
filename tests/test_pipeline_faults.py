"""Faults during `stage1_5 run`: each one is one line on stderr and exit 2, and nothing is lost.

A run killed with SIGKILL in any stage, then rerun, leaves exactly the files of a clean run (the
stage that is rewritten removes its own and every later stage's outputs first, so no two files of a
run ever disagree); a full disk or a read-only folder names the path; a second run on a run folder
in use names the pid that holds it, or waits with `--wait`; the lock of a killed run is cleared.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.pipeline import KILL_AT_ENV, RUN_LOCK, STAGES, RunPaths
from stage1_5.runtime import torch_threads

from test_pipeline_run import planted, quiet_run  # noqa: F401  (the planted GO case, built once per module)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """The CLI sets torch's threads, which the report records: runs in and out of process agree on one
    (in process too, whatever thread count earlier tests of the session left behind)."""
    monkeypatch.setenv("STAGE1_5_THREADS", "1")
    with torch_threads(1):
        yield


def cli_run(config: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`stage1_5 run` in its own process, as a user (or a kill -9) would see it."""
    command = [sys.executable, "-m", "stage1_5", "run", str(config), "-o", str(out), "--no-progress", *extra]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def run_files(root: Path) -> dict[str, bytes]:
    """Every file of a run folder, by relative path (the run folder's lock excluded: it is not an output)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and p.name != RUN_LOCK}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clean_run(planted, tmp_path_factory):  # noqa: F811
    config_path, _ = planted
    out = tmp_path_factory.mktemp("clean") / "run"
    with torch_threads(1):
        quiet_run(config_path, out_dir=out)
    return config_path, run_files(out)


def with_alpha(config_path: Path, alpha: float, folder: Path) -> Path:
    """A copy of the config with another significance level (the decision and what follows rerun)."""
    text = yaml.safe_load(config_path.read_text())
    text.setdefault("experiment", {})["alpha"] = alpha
    path = folder / "config_alpha.yaml"
    path.write_text(yaml.safe_dump(text))
    return path


@pytest.mark.parametrize("stage", STAGES)
def test_a_run_killed_in_any_stage_then_rerun_equals_a_clean_run(clean_run, tmp_path, stage):
    config_path, reference = clean_run
    killed = cli_run(config_path, tmp_path / "run", env={KILL_AT_ENV: stage})
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "run" / RUN_LOCK).exists()  # the killed run's lock is left behind...
    quiet_run(config_path, out_dir=tmp_path / "run")  # ...and the rerun clears it instead of refusing
    assert run_files(tmp_path / "run") == reference
    assert not (tmp_path / "run" / RUN_LOCK).exists()


def test_a_kill_after_a_threshold_change_leaves_no_report_that_disagrees_with_the_decision(clean_run, tmp_path):
    config_path, _ = clean_run
    out = tmp_path / "run"
    quiet_run(config_path, out_dir=out)
    changed = with_alpha(config_path, 0.001, tmp_path)  # GO becomes NOGO: p can never reach 0.001 here
    killed = cli_run(changed, out, env={KILL_AT_ENV: "report"})
    assert killed.returncode == -9, killed.stderr
    paths = RunPaths(out)
    assert '"decision": "NOGO"' in paths.decision_json.read_text()
    assert not paths.report_md.exists() and not paths.bundle.exists()  # the old GO-era report is gone, not stale
    quiet_run(changed, out_dir=out)
    reference = tmp_path / "reference"
    quiet_run(changed, out_dir=reference)
    assert run_files(out) == run_files(reference)


def test_a_full_disk_is_one_line_naming_the_file_and_exit_2_with_no_temporary_left(clean_run, tmp_path, monkeypatch):
    config_path, reference = clean_run
    out = tmp_path / "run"
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:  # the disk fills up while the report is written
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(out / "report")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr("stage1_5.io.os.fsync", full_disk)
    result = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(out), "--no-progress"])
    assert result.exit_code == 2
    assert error_lines(result.stderr)[-1] == f"error: {RunPaths(out).report_md}: No space left on device"
    assert "Traceback" not in result.output
    assert not [p for p in out.rglob("*.tmp")]
    assert not RunPaths(out).report_md.exists() and not RunPaths(out).bundle.exists()
    monkeypatch.setattr("stage1_5.io.os.fsync", real_fsync)  # space freed: the rerun completes the run
    quiet_run(config_path, out_dir=out)
    assert run_files(out) == reference


def test_a_read_only_run_folder_is_one_line_naming_it_and_exit_2(clean_run, tmp_path, monkeypatch):
    config_path, _ = clean_run
    out = tmp_path / "run"

    def read_only(*args, dir=None, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))

    monkeypatch.setattr("stage1_5.io.tempfile.mkstemp", read_only)
    result = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(out), "--no-progress"])
    assert result.exit_code == 2
    line = error_lines(result.stderr)[-1]
    assert line.startswith(f"error: {out}/") and line.endswith(": Read-only file system")
    assert "Traceback" not in result.output


def hold_run_folder(folder: Path, seconds: float) -> subprocess.Popen:
    """Another process that holds the run folder's lock for `seconds`, as a run in progress would."""
    script = (
        "import sys, time\n"
        "from stage1_5.locks import exclusive\n"
        f"with exclusive({str(folder / RUN_LOCK)!r}, what='run folder'):\n"
        "    print('held', flush=True)\n"
        f"    time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_on_a_folder_in_use_names_the_pid_and_exits_2(clean_run, tmp_path):
    config_path, _ = clean_run
    out = tmp_path / "run"
    holder = hold_run_folder(out, 60)
    try:
        result = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(out), "--no-progress"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2
    assert error_lines(result.stderr) == [f"error: run folder {out} is in use by pid {holder.pid}; wait for it to finish, or pass --wait"]
    assert not RunPaths(out).analysis_dir.exists()  # it wrote nothing


def test_wait_runs_once_the_folder_is_free(clean_run, tmp_path):
    config_path, reference = clean_run
    out = tmp_path / "run"
    holder = hold_run_folder(out, 2)
    result = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(out), "--no-progress", "--wait"])
    finished_first = holder.poll() is not None  # the holder released the folder only by exiting
    holder.wait()
    assert result.exit_code == 0, result.output
    assert finished_first  # so the run waited for it
    assert run_files(out) == reference


def test_the_lock_of_a_killed_run_is_cleared_by_the_next_run(clean_run, tmp_path):
    config_path, reference = clean_run
    out = tmp_path / "run"
    holder = hold_run_folder(out, 60)
    holder.kill()  # SIGKILL: no release, the lock file stays with a dead pid in it
    holder.wait()
    assert (out / RUN_LOCK).exists()
    result = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert run_files(out) == reference
