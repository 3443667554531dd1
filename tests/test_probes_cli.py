"""`stage1_5 probes` on precomputed features: metadata.csv alone is enough; bad input is one line, exit 2."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.probes import METRIC_COLUMNS
from stage1_5.probes.planted import planted_dataset


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dataset cache lands under the working directory
    data = planted_dataset(accent=1.0, speakers_per_accent=3, n_texts=6, dim=16, name="mine:layer_01")
    meta = data.meta.assign(rel_path=[f"wav/{s}/{u}.wav" for s, u in zip(data.meta.speaker, data.meta.utt_id)])
    (tmp_path / "ds").mkdir()
    meta.to_csv(tmp_path / "ds" / "metadata.csv", index=False)
    ids = meta.utt_id.to_numpy().astype(str)
    np.savez(tmp_path / "f.npz", utt_id=ids, **{"mine:layer_01": data.features["mine:layer_01"]})
    return tmp_path, ids, data.features["mine:layer_01"]


def _run(*args):
    return CliRunner().invoke(cli, ["probes", *map(str, args)])


def test_probes_writes_metrics_predictions_and_confusions(workspace):
    root, _, _ = workspace
    res = _run("--features", root / "f.npz", "--dataset", root / "ds", "-o", root / "out", "--seeds", 1, "--permutations", 4, "--bootstrap", 20, "--device", "cpu", "--no-progress")
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(root / "out" / "metrics.csv")
    assert list(metrics.columns) == METRIC_COLUMNS and metrics.representation.tolist() == ["mine:layer_01"]
    assert metrics.accent_f1[0] > 0.9 and metrics.p_value[0] == pytest.approx(0.2)
    preds = pd.read_csv(root / "out" / "predictions.csv")
    assert {"utt_id", "fold", "seed", "split", "y_true", "y_pred"} <= set(preds.columns)
    assert (root / "out" / "confusion" / "mine__layer_01.csv").is_file()


def test_unknown_utt_id_exits_2_with_one_line(workspace):
    root, ids, X = workspace
    ids = ids.copy()
    ids[3] = "ghost"
    np.savez(root / "bad.npz", utt_id=ids, **{"mine:layer_01": X})
    res = _run("--features", root / "bad.npz", "--dataset", root / "ds", "-o", root / "out", "--no-progress")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "ghost" in lines[0] and "bad.npz" in lines[0]


def test_bad_option_value_exits_2_naming_the_option(workspace):
    root, _, _ = workspace
    res = _run("--features", root / "f.npz", "--dataset", root / "ds", "-o", root / "out", "--permutations", -1)
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith("error: --permutations -1")


def _files(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_array_names_with_path_characters_or_300_characters_write_inside_the_output_folder(workspace):
    root, ids, X = workspace
    names = [str(root / "escaped" / "x"), "../../y:z", "m:" + "q" * 300]
    np.savez(root / "hostile.npz", utt_id=ids, **{name: X for name in names})
    before = set(_files(root)) - {root / "hostile.npz"}
    res = _run("--features", root / "hostile.npz", "--dataset", root / "ds", "-o", root / "out", "--seeds", 1, "--permutations", 0, "--bootstrap", 0, "--device", "cpu", "--no-progress")
    assert res.exit_code == 0, res.output
    written = set(_files(root)) - before - {root / "hostile.npz"}
    assert written and all((root / "out") in p.parents for p in written)
    assert len(list((root / "out" / "confusion").glob("*.csv"))) == 3
    assert pd.read_csv(root / "out" / "metrics.csv").representation.tolist() == names


def test_an_array_name_that_cannot_name_a_file_exits_2_before_any_work(workspace):
    root, ids, X = workspace
    np.savez(root / "bad.npz", utt_id=ids, **{"mine:layer\n01": X})
    res = _run("--features", root / "bad.npz", "--dataset", root / "ds", "-o", root / "out", "--no-progress")
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: {root / 'bad.npz'}: array 'mine:layer\\n01' cannot be used as a representation name: the name holds the control character '\\n'"]
    assert not (root / "out").exists()


def _hold(folder, seconds):
    """Another process holding the output folder's lock, as a `probes` or `run` writing it would."""
    import subprocess
    import sys

    from stage1_5.pipeline import RUN_LOCK

    script = (
        "import time\nfrom stage1_5.locks import exclusive\n"
        f"with exclusive({str(folder / RUN_LOCK)!r}, what='run folder'):\n    print('held', flush=True)\n    time.sleep({seconds})\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_probes_on_an_output_folder_in_use_names_the_pid_and_exits_2(workspace):
    root, _, _ = workspace
    holder = _hold(root / "out", 60)
    try:
        res = _run("--features", root / "f.npz", "--dataset", root / "ds", "-o", root / "out", "--permutations", 0, "--bootstrap", 0, "--device", "cpu", "--no-progress")
    finally:
        holder.kill()
        holder.wait()
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [f"error: run folder {root / 'out'} is in use by pid {holder.pid}; wait for it to finish, or pass --wait"]
    assert not (root / "out" / "metrics.csv").exists()


def test_probes_wait_writes_once_the_output_folder_is_free(workspace):
    root, _, _ = workspace
    holder = _hold(root / "out", 2)
    res = _run("--features", root / "f.npz", "--dataset", root / "ds", "-o", root / "out", "--seeds", 1, "--permutations", 0, "--bootstrap", 0, "--device", "cpu", "--no-progress", "--wait")
    finished_first = holder.poll() is not None
    holder.wait()
    assert res.exit_code == 0, res.output
    assert finished_first and (root / "out" / "metrics.csv").is_file()


def test_a_second_probes_into_the_same_folder_leaves_only_its_own_confusions(workspace):
    root, ids, X = workspace
    np.savez(root / "g.npz", utt_id=ids, **{"other:layer_02": X})
    common = ["--dataset", root / "ds", "-o", root / "out", "--seeds", 1, "--permutations", 0, "--bootstrap", 0, "--device", "cpu", "--no-progress"]
    assert _run("--features", root / "f.npz", *common).exit_code == 0
    assert _run("--features", root / "g.npz", *common).exit_code == 0
    assert sorted(p.name for p in (root / "out" / "confusion").iterdir()) == ["other__layer_02.csv"]


def test_accent_names_a_spreadsheet_would_run_are_written_as_text_and_read_back(workspace):
    from stage1_5.pipeline import load_probe_results

    root, _, _ = workspace
    meta = pd.read_csv(root / "ds" / "metadata.csv", dtype=str)
    meta["accent"] = "=" + meta["accent"]  # e.g. =HYPERLINK(...) in a spreadsheet
    meta.to_csv(root / "ds" / "metadata.csv", index=False)
    res = _run("--features", root / "f.npz", "--dataset", root / "ds", "-o", root / "out", "--seeds", 1, "--permutations", 0, "--bootstrap", 0, "--device", "cpu", "--no-progress")
    assert res.exit_code == 0, res.output
    raw = pd.read_csv(root / "out" / "predictions.csv", dtype=str)
    assert raw.y_true.str.startswith("'=").all()
    results = load_probe_results(root / "out")
    assert set(results.predictions.y_true) == set(meta.accent)
    assert all(label.startswith("=") for label in results.confusion["mine:layer_01"][0])
