"""The Colab notebook (`notebooks/stage1_5_colab_L4.ipynb`) and its install path (`bootstrap.sh --colab`).

The notebook is executed here with nbclient on the embedded demo: every cell except the Colab-only
ones (tag `colab`: GPU check, Drive, clone + install, download) runs, with the parameters cell set to
the test's values; any failing step must stop it. The demo's backbone features come from a planted
feature file (`sources.external`) so that the notebook's steps, not model extraction, set the run time
(extraction and preflight on models are tested in test_preflight*.py and test_backbone_*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "stage1_5_colab_L4.ipynb"
COLAB_ONLY = "colab"


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _cell(nb, cell_id: str):
    return next(c for c in nb.cells if c.id == cell_id)


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def test_the_notebook_validates_and_every_cell_has_an_id(notebook):
    nbformat.validate(notebook)
    ids = [c.get("id") for c in notebook.cells]
    assert all(ids) and len(set(ids)) == len(ids)


def test_colab_only_cells_are_exactly_the_gpu_drive_install_and_download_steps(notebook):
    tagged = [c.id for c in notebook.cells if COLAB_ONLY in _tags(c)]
    assert tagged == ["gpu", "drive", "install", "download"]
    for cell in notebook.cells:
        if cell.cell_type == "code" and COLAB_ONLY not in _tags(cell):
            assert "google.colab" not in cell.source and "nvidia-smi" not in cell.source, cell.id
        assert "|| true" not in cell.source and "2>/dev/null" not in cell.source, cell.id  # nothing hides a failure


def test_an_unset_repository_url_fails_loudly(notebook):
    namespace = {"REPO_URL": "", "REPO_REF": "main"}
    exec(_cell(notebook, "helpers").source, namespace)
    with pytest.raises(RuntimeError, match="REPO_URL is not set"):
        exec(_cell(notebook, "install").source, namespace)


def _planted_features(path: Path) -> Path:
    """A backbone representation of the demo set with a planted accent code (one vector per utterance)."""
    from stage1_5.data.dataset import load_dataset

    frame = load_dataset("demo", work_dir=path.parent / "demo_work", progress=False).utterances.to_frame()
    rng = np.random.default_rng(0)
    accents = {a: rng.normal(size=16) for a in sorted(frame.accent.unique())}
    vectors = np.stack([3 * accents[a] + rng.normal(size=16) for a in frame.accent]).astype(np.float32)
    np.savez(path, utt_id=frame.utt_id.to_numpy(str), **{"backbone:decoder_block_08": vectors})
    return path


def _run(notebook, tmp_path: Path, config: dict, timeout: int = 300, dataset: str = ""):
    """Execute every non-Colab cell with the parameters cell set for this test; returns the notebook."""
    from nbclient import NotebookClient

    config_path = tmp_path / "notebook_config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    nb = nbformat.from_dict(notebook)
    _cell(nb, "parameters").source = "\n".join([
        'REPO_URL = ""', 'REPO_REF = "main"', f"CONFIG = {str(config_path)!r}", f"DATASET = {dataset!r}",
        f"WORK_DIR = {str(tmp_path / 'work')!r}", f"LOCAL_DIR = {str(tmp_path / 'local')!r}", "HUB_CACHE_ON_DRIVE = True",
        "RUN_GATES = True", "ALLURE_HTML = False", 'GATE_ACCEPT = "go"', 'GATE_ARGS = ["--benchmark-skip"]',
    ])
    nb.cells = [c for c in nb.cells if COLAB_ONLY not in _tags(c)]
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    return nb, client


def _demo_config(tmp_path: Path) -> dict:
    return {
        "name": "notebook_demo",
        "dataset": {"path": "demo"},
        "sources": {
            "backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False},
            "acoustic": {"features": ["mfcc_stats"]},
            "external": [str(_planted_features(tmp_path / "planted.npz"))],
        },
        "probes": {"seeds": 1, "permutations": 0, "bootstrap": 0, "device": "cpu"},
    }


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def test_the_notebook_runs_end_to_end_on_the_demo(notebook, tmp_path):
    nb, client = _run(notebook, tmp_path, _demo_config(tmp_path))
    client.execute()
    run_dir = tmp_path / "work" / "runs" / "notebook_demo"
    assert f"hub cache {tmp_path / 'work' / 'huggingface'}" in _text(_cell(nb, "config"))
    assert "backbone" in _text(_cell(nb, "gpu-memory"))  # the GPU and its memory, or that there is none
    assert "no problem found" in _text(_cell(nb, "preflight"))
    assert "Decision:" in _text(_cell(nb, "run")) and (run_dir / "report" / "stage1_5_report.md").is_file()
    assert "[notebook] done in" in _text(_cell(nb, "run")) and (run_dir / "run.log").is_file()
    assert (run_dir / "report" / "stage1_5_report.html").is_file()
    shown = "".join(o.get("data", {}).get("text/html", "") for o in _cell(nb, "report").outputs)
    assert "data:image/png;base64," in shown  # the self-contained HTML report, figures embedded, inline
    assert "gates exit status" in _text(_cell(nb, "gates")) and (tmp_path / "work" / "reports" / "allure-results").is_dir()
    assert (run_dir / "stage1_5_results.zip").is_file() and "stage1_5_results.zip" in _text(_cell(nb, "results"))


def test_the_notebook_stops_at_the_first_failing_step(notebook, tmp_path):
    from nbclient.exceptions import CellExecutionError

    config = {**_demo_config(tmp_path), "dataset": {"path": str(tmp_path / "missing.zip")}}
    nb, client = _run(notebook, tmp_path, config)
    with pytest.raises(CellExecutionError, match="step failed with exit status 2"):
        client.execute()
    assert "missing.zip" in _text(_cell(nb, "preflight"))
    assert not _cell(nb, "run").outputs and not _cell(nb, "gates").outputs


def test_colab_install_keeps_the_runtimes_torch_and_makes_no_venv():
    result = subprocess.run(
        ["bash", "scripts/bootstrap.sh", "--colab", "--dry-run"], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "PYTHON": sys.executable}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    import torch

    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands == [next(c for c in commands if "pip install" in c)]  # one pip call, nothing else (no venv)
    assert " -c " in commands[0] and sys.executable in commands[0]
    assert f"torch=={torch.__version__}" in result.stdout.splitlines()  # the constraint that keeps it


def _cells(notebook, *ids: str, **parameters) -> dict:
    """Run the given cells' code in one namespace (no kernel), with `parameters` as the first cell's values."""
    namespace = dict(parameters)
    for cell_id in ids:
        exec(_cell(notebook, cell_id).source, namespace)
    return namespace


def test_a_zipped_dataset_is_unpacked_on_the_local_disk_and_the_caches_stay_on_drive(notebook, tmp_path, monkeypatch):
    import shutil

    from stage1_5.data.layout import DEMO_DATA

    monkeypatch.setenv("HF_HOME", "restored-after-the-test")
    archive = shutil.make_archive(str(tmp_path / "dataset"), "zip", DEMO_DATA)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"name": "zipped"}))
    ns = _cells(
        notebook, "helpers", "config", CONFIG=str(config), DATASET=archive, WORK_DIR=str(tmp_path / "drive"),
        LOCAL_DIR=str(tmp_path / "local"), HUB_CACHE_ON_DRIVE=True,
    )
    written = yaml.safe_load(ns["RUN_CONFIG"].read_text())
    assert Path(written["dataset"]["path"]).is_relative_to(tmp_path / "local")
    assert (Path(written["dataset"]["path"]) / "metadata.csv").is_file()
    assert not any(p.suffix == ".flac" for p in (tmp_path / "drive").rglob("*"))  # no audio file on "Drive"
    assert written["output"]["cache_dir"] == str(tmp_path / "drive" / "cache")
    assert os.environ["HF_HOME"] == str(tmp_path / "drive" / "huggingface")


def test_a_long_step_prints_a_still_running_line(notebook, capsys):
    ns = _cells(notebook, "helpers")
    ns["HEARTBEAT_S"] = 1
    ns["step"](sys.executable, "-c", "import time; time.sleep(2.5)")
    out = capsys.readouterr().out
    assert "[notebook] still running after" in out and "[notebook] done in" in out
