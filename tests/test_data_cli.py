"""`stage1_5 dataset validate|manifest|synth|demo` through click's CliRunner on the real root group."""

from __future__ import annotations

import re
import zipfile

import pytest
import yaml
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.data.layout import DEMO_DATA
from stage1_5.data.manifest import UtteranceSet
from stage1_5.data.testing import audio_file, dataset_rows, write_dataset, zip_folder


def run(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def validate(path, tmp_path, *options):
    return run("dataset", "validate", path, "--work-dir", tmp_path / "work", *options)


def test_validate_bad_set_exits_2_with_one_line_naming_the_row(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    audio_file(root, rows[4]).unlink()
    result = validate(root, tmp_path)
    rel = rows[4]["rel_path"]
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: metadata.csv row 6 (utt_id={rows[4]['utt_id']}): audio file {rel} not found (looked for wav/{rel} and {rel})"
    ]


def test_validate_lists_every_problem_exactly_once(tmp_path):
    rows = dataset_rows(speakers_per_accent=8)
    for r in rows[:14]:
        r["text_id"] = "t99"  # 14 rows with an unknown text: more than the 10 a run lists
    root = write_dataset(tmp_path / "ds", rows, texts={"t01": "a", "t02": "b"})
    result = validate(root, tmp_path)
    assert result.exit_code == 2 and "(and 13 more problems)" in result.stderr
    lines = (result.stdout + result.stderr).splitlines()
    for r in rows[:14]:
        assert sum(f"(utt_id={r['utt_id']})" in line for line in lines) == 1
    assert "more not shown" not in result.stderr


def test_validate_good_set_prints_summary_confound_checks_warnings_and_hash(tmp_path):
    root = write_dataset(tmp_path / "ds")
    result = validate(root, tmp_path)
    assert result.exit_code == 0, result.output
    assert "content hash  " in result.stdout and "north" in result.stdout
    assert "texts shared by every accent: 2 of 2" in result.stdout
    assert "recording probe: accent F1" in result.stdout
    assert "warning: DATASET BELOW DESIGN MINIMA" in result.stdout
    assert "meets design minima: NO" in result.stdout


def test_validate_warns_about_accents_recorded_at_48_and_16_khz(tmp_path):
    root = write_dataset(tmp_path / "ds", dataset_rows(("NE", "SE"), 6, 3), sample_rate={"NE": 48000, "SE": 16000})
    result = validate(root, tmp_path)
    assert result.exit_code == 0, result.output
    (line,) = [l for l in result.stdout.splitlines() if l.startswith("warning: RECORDING CONFOUND")]
    f1 = float(re.search(r"accent is predictable from recording conditions alone: F1 (\d\.\d\d)", line).group(1))
    assert f1 > 0.9
    assert "from sample rate" in line and "accent NE was recorded at 48 kHz, SE at 16 kHz" in line


def test_validate_warns_about_accents_reading_disjoint_texts(tmp_path):
    rows = dataset_rows(("NE", "SE"), 2, 4)
    rows = [r for r in rows if (r["accent"] == "NE") == (r["text_id"] in ("t01", "t02"))]
    result = validate(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert result.exit_code == 0, result.output
    assert ("warning: TEXT CONFOUND: the accents share 0 of 4 texts (< dataset.min_shared_texts=30): "
            "NE reads 2 (2 only in NE), SE reads 2 (2 only in SE)") in result.stdout


def test_confounds_error_exits_2_naming_the_confound(tmp_path):
    rows = dataset_rows(("NE", "SE"), 2, 4)
    rows = [r for r in rows if (r["accent"] == "NE") == (r["text_id"] in ("t01", "t02"))]
    result = validate(write_dataset(tmp_path / "ds", rows), tmp_path, "--confounds", "error")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: TEXT CONFOUND: the accents share 0 of 4 texts")
    assert "(dataset.confounds=error)" in result.stderr


def test_validate_reads_the_dataset_section_of_a_config(tmp_path):
    rows = dataset_rows(("NE", "SE"), 2, 4)
    rows = [r for r in rows if (r["accent"] == "NE") == (r["text_id"] in ("t01", "t02"))]
    root = write_dataset(tmp_path / "ds", rows)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"confounds": "error"}, "output": {"cache_dir": str(tmp_path / "cache")}}))
    result = run("dataset", "validate", root, "--config", config)
    assert result.exit_code == 2 and "TEXT CONFOUND" in result.stderr
    assert (tmp_path / "cache" / "datasets" / "file_index.json").is_file()


def test_bad_dataset_option_names_the_option(tmp_path):
    result = validate(write_dataset(tmp_path / "ds"), tmp_path, "--max-zip-ratio", 0.5)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: --max-zip-ratio 0.5: Input should be greater than 1"]


def test_validate_features_only_accepts_absent_audio(tmp_path):
    root = write_dataset(tmp_path / "ds", audio=False)
    assert validate(root, tmp_path).exit_code == 2
    result = validate(root, tmp_path, "--features-only")
    assert result.exit_code == 0 and "no audio (features only)" in result.stdout
    assert "recording conditions: not checked (no audio)" in result.stdout


def test_zip_attack_exits_2_with_one_line(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    with zipfile.ZipFile(z, "a") as zf:
        zf.writestr("/etc/evil", "x")
    result = validate(z, tmp_path)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "'/etc/evil'" in result.stderr


def test_max_zip_bytes_option_is_applied(tmp_path):
    z = zip_folder(write_dataset(tmp_path / "ds"), tmp_path / "ds.zip")
    result = validate(z, tmp_path, "--max-zip-bytes", 100)
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
    check = validate(tmp_path / "syn.zip", tmp_path)
    assert check.exit_code == 0 and "acc02" in check.stdout


def test_synth_rejects_strength_for_espeak_in_one_line(tmp_path):
    result = run("dataset", "synth", tmp_path / "x", "--engine", "espeak", "--strength", 1)
    assert result.exit_code == 2 and not (tmp_path / "x").exists()
    assert result.stderr.splitlines() == ["error: --strength applies to the procedural engine only (espeak accents are real)"]


def test_synth_bad_count_names_the_option(tmp_path):
    result = run("dataset", "synth", tmp_path / "x", "--speakers-per-accent", 0)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == ["error: --speakers-per-accent 0: Input should be greater than or equal to 1"]


def test_demo_prints_where_the_embedded_set_lives():
    result = run("dataset", "demo")
    assert result.exit_code == 0 and result.stdout.strip() == str(DEMO_DATA)


def test_demo_regenerates_byte_for_byte(tmp_path):
    result = run("dataset", "demo", "--regenerate", "--out", tmp_path / "demo")
    assert result.exit_code == 0, result.output
    fresh = {p.relative_to(tmp_path / "demo"): p.read_bytes() for p in (tmp_path / "demo").rglob("*") if p.is_file()}
    shipped = {p.relative_to(DEMO_DATA): p.read_bytes() for p in DEMO_DATA.rglob("*") if p.is_file()}
    assert fresh.keys() == shipped.keys() and all(fresh[k] == shipped[k] for k in fresh)


def test_run_refuses_a_recording_longer_than_max_duration_naming_row_and_option(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows, duration_s=1.5)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": str(root), "max_duration_s": 1.0}, "output": {"cache_dir": str(tmp_path / "cache")}}))
    result = run("run", config, "-o", tmp_path / "out", "--no-progress")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        f"error: metadata.csv row 2 (utt_id={rows[0]['utt_id']}): audio file {rows[0]['rel_path']} is 1.5 s long "
        "(> dataset.max_duration_s=1 s; cut it into utterances, or raise the option) (and 7 more problems)"
    )
    assert "Traceback" not in result.output


def test_validate_warns_about_a_recording_longer_than_max_duration(tmp_path):
    root = write_dataset(tmp_path / "ds", duration_s=1.5)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"max_duration_s": 1.0}}))
    result = validate(root, tmp_path, "--config", config)
    assert result.exit_code == 0, result.output
    assert result.output.count("(> dataset.max_duration_s=1 s") == 8


def test_validate_refuses_an_empty_transcript_while_the_backbone_is_enabled(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows, texts={r["text_id"]: "" for r in rows})
    result = validate(root, tmp_path)
    assert result.exit_code == 2 and "text_id t01 has an empty transcript in texts.json" in result.stderr.splitlines()[0]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"sources": {"backbone": {"enabled": False}, "acoustic": {"enabled": True}}}))
    result = validate(root, tmp_path, "--config", config)
    assert result.exit_code == 0 and "warning: metadata.csv row 2" in result.output


@pytest.mark.parametrize("fault", ["missing dataset", "refused zip"])
def test_a_run_that_fails_early_leaves_no_run_folder_behind(tmp_path, fault):
    if fault == "missing dataset":
        dataset = tmp_path / "nowhere"
    else:
        dataset = tmp_path / "attack.zip"
        with zipfile.ZipFile(dataset, "w") as zf:
            zf.writestr("../escape.txt", "x")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": {"path": str(dataset)}, "output": {"cache_dir": str(tmp_path / "cache")}}))
    result = run("run", config, "-o", tmp_path / "runs" / "x", "--no-progress")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs" / "x").exists()
