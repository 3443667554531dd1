"""`stage1_5 dataset validate|manifest|synth` through click's CliRunner on the real root group."""

from __future__ import annotations

import zipfile

from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.data.manifest import UtteranceSet
from stage1_5.data.testing import dataset_rows, write_dataset, zip_folder


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def test_validate_bad_set_exits_2_with_one_line_naming_the_row(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    (root / rows[4]["rel_path"]).unlink()
    result = run("dataset", "validate", root, "--work-dir", tmp_path / "work")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: metadata.csv row 6 (utt_id={rows[4]['utt_id']}): audio file {rows[4]['rel_path']} not found"
    ]


def test_validate_lists_every_problem_on_stdout(tmp_path):
    rows = dataset_rows()
    rows[1]["utt_id"] = rows[0]["utt_id"]
    root = write_dataset(tmp_path / "ds", rows)
    (root / rows[4]["rel_path"]).unlink()
    result = run("dataset", "validate", root, "--work-dir", tmp_path / "work")
    assert result.exit_code == 2 and "(and 1 more problem)" in result.stderr
    assert "2 problem(s)" in result.stdout and "row 3" in result.stdout and "row 6" in result.stdout


def test_validate_good_set_prints_summary_warnings_and_hash(tmp_path):
    root = write_dataset(tmp_path / "ds")
    result = run("dataset", "validate", root, "--work-dir", tmp_path / "work")
    assert result.exit_code == 0, result.output
    assert "content hash  " in result.stdout and "north" in result.stdout
    assert "warning: DATASET BELOW DESIGN MINIMA" in result.stdout
    assert "meets design minima: NO" in result.stdout


def test_validate_features_only_accepts_absent_audio(tmp_path):
    root = write_dataset(tmp_path / "ds", audio=False)
    assert run("dataset", "validate", root, "--work-dir", tmp_path / "work").exit_code == 2
    result = run("dataset", "validate", root, "--features-only", "--work-dir", tmp_path / "work")
    assert result.exit_code == 0 and "no audio (features only)" in result.stdout


def test_zip_attack_exits_2_with_one_line(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("/etc/evil", "x")
    result = run("dataset", "validate", z, "--work-dir", tmp_path / "work")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "'/etc/evil'" in result.stderr


def test_max_zip_bytes_option_is_applied(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    result = run("dataset", "validate", z, "--max-zip-bytes", 100, "--work-dir", tmp_path / "work")
    assert result.exit_code == 2 and "more than 100 bytes" in result.stderr


def test_manifest_writes_one_utterance_a_line(tmp_path):
    root = write_dataset(tmp_path / "ds")
    out = tmp_path / "manifest.jsonl"
    result = run("dataset", "manifest", root, "-o", out, "--work-dir", tmp_path / "work")
    assert result.exit_code == 0, result.output
    utterances = UtteranceSet.from_file(out)
    assert len(utterances) == 8 and all(u.duration and u.sample_rate == 16000 for u in utterances)


def test_synth_writes_a_valid_zip(tmp_path):
    result = run("dataset", "synth", tmp_path / "syn", "--accents", 2, "--speakers-per-accent", 2, "--texts", 2,
                 "--strength", 0.5, "--seed", 4, "--zip")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "syn.zip").is_file()
    check = run("dataset", "validate", tmp_path / "syn.zip", "--work-dir", tmp_path / "work")
    assert check.exit_code == 0 and "acc02" in check.stdout


def test_synth_rejects_strength_for_espeak_in_one_line(tmp_path):
    result = run("dataset", "synth", tmp_path / "x", "--engine", "espeak", "--strength", 1)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and not (tmp_path / "x").exists()
