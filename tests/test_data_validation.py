"""Dataset validation: one test per rule; every problem names metadata.csv's row and the file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset, read_metadata, write_metadata
from stage1_5.data.testing import dataset_rows, tone, write_dataset
from stage1_5.data.validation import (
    DatasetValidationError,
    DatasetView,
    validate_speaker_accents,
    validate_unique_ids,
)
from stage1_5.errors import DatasetError


def load(root, tmp_path, **config):
    return load_dataset(root, DatasetConfig(**config), work_dir=tmp_path / "work", progress=False)


def problems_of(root, tmp_path, **config) -> list[str]:
    with pytest.raises(DatasetValidationError) as info:
        load(root, tmp_path, **config)
    return info.value.problems


def test_valid_dataset_loads_in_metadata_order_with_absolute_audio_paths(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    ds = load(root, tmp_path)
    assert ds.utterances.ids == [r["utt_id"] for r in rows]
    first = ds.utterances[0]
    assert os.path.isabs(first.audio_path) and first.audio_path.endswith(rows[0]["rel_path"])
    assert first.text == "This is sentence t01."
    assert first.duration == pytest.approx(0.5) and first.sample_rate == 16000
    assert ds.has_audio and ds.summary.n_accents == 2 and ds.summary.sample_rates == {16000: 8}


def test_missing_column_names_the_column(tmp_path):
    root = write_dataset(tmp_path / "ds")
    lines = (root / "metadata.csv").read_text().splitlines()
    (root / "metadata.csv").write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    problems = problems_of(root, tmp_path)
    assert problems == [problems[0]] and "missing column rel_path" in problems[0]
    assert problems[0].startswith("metadata.csv row 1 (header)")


def test_missing_audio_names_row_and_file(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    (root / rows[2]["rel_path"]).unlink()
    assert problems_of(root, tmp_path) == [
        f"metadata.csv row 4 (utt_id={rows[2]['utt_id']}): audio file {rows[2]['rel_path']} not found"
    ]


def test_unreadable_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    (root / rows[0]["rel_path"]).write_bytes(b"RIFF but not really audio")
    (problem,) = problems_of(root, tmp_path)
    assert problem.startswith(f"metadata.csv row 2 (utt_id={rows[0]['utt_id']}): audio file {rows[0]['rel_path']} is unreadable")


def test_duplicate_utt_id_names_both_rows(tmp_path):
    rows = dataset_rows()
    rows[3]["utt_id"] = rows[1]["utt_id"]
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == f"metadata.csv row 5 (utt_id={rows[1]['utt_id']}): duplicate utt_id {rows[1]['utt_id']} (first in row 3)"


def test_speaker_listed_under_two_accents(tmp_path):
    rows = dataset_rows()
    rows[5]["accent"] = "north"  # a south speaker's second utterance
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem.startswith("metadata.csv row 7 ")
    assert f"speaker {rows[5]['speaker']} is listed under accent north here but under south in row 6" in problem


def test_text_id_absent_from_texts_json(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows, texts={"t01": "One."})
    problems = problems_of(root, tmp_path)
    assert len(problems) == 4 and all("text_id t02 not found in texts.json" in p for p in problems)


def test_text_ids_are_free_without_texts_json(tmp_path):
    ds = load(write_dataset(tmp_path / "ds", texts=False), tmp_path)
    assert ds.texts == {} and ds.utterances[0].text is None


@pytest.mark.parametrize(
    "rel_path, reason",
    [("../outside.wav", "'..'"), ("/etc/passwd", "absolute path"), ("C:\\audio\\x.wav", "absolute path"),
     ("wav/../../x.wav", "'..'")],
)
def test_rel_path_escaping_the_root_is_an_error(tmp_path, rel_path, reason):
    rows = dataset_rows()
    rows[0]["rel_path"] = rel_path
    root = write_dataset(tmp_path / "ds", rows[1:])
    write_metadata(root / "metadata.csv", rows)  # the escaping row has no audio to write
    (problem,) = problems_of(root, tmp_path)
    assert problem.startswith(f"metadata.csv row 2 (utt_id={rows[0]['utt_id']}): rel_path {rel_path} escapes the dataset root")
    assert reason in problem


def test_symlink_leading_out_of_the_root_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    outside = tmp_path / "outside.wav"
    sf.write(outside, tone(), 16000)
    (root / rows[0]["rel_path"]).unlink()
    (root / rows[0]["rel_path"]).symlink_to(outside)
    (problem,) = problems_of(root, tmp_path)
    assert "escapes the dataset root" in problem and "symbolic link" in problem


def _replace_audio(root, rel_path, wav, sr=16000):
    sf.write(root / rel_path, wav, sr)


def test_empty_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[0]["rel_path"], tone(duration_s=0.02))
    (problem,) = problems_of(root, tmp_path)
    assert "is empty (0.020 s < dataset.min_duration_s=0.1 s)" in problem and "row 2" in problem


def test_silent_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[1]["rel_path"], tone(amplitude=1e-4))
    (problem,) = problems_of(root, tmp_path)
    assert f"row 3 (utt_id={rows[1]['utt_id']}): audio file {rows[1]['rel_path']} is silent" in problem


def test_clipped_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[2]["rel_path"], np.clip(tone(amplitude=3.0), -1, 1))
    (problem,) = problems_of(root, tmp_path)
    assert "row 4" in problem and "is clipped" in problem


def test_mixed_sample_rates_are_allowed_with_a_resampling_note(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[0]["rel_path"], tone(sample_rate=22050), sr=22050)
    ds = load(root, tmp_path)
    assert ds.summary.sample_rates == {16000: 7, 22050: 1}
    assert any("mixed sample rates" in w and "resampled" in w for w in ds.warnings)


def test_design_minima_warn_loudly_but_never_crash(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path)
    assert not ds.meets_minima
    assert any("NOT A SCIENTIFIC RESULT" in w and "min_accents=3" in w for w in ds.warnings)


def test_a_set_at_the_minima_meets_them(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path, min_accents=2, min_speakers_per_accent=2, min_texts_per_speaker=2)
    assert ds.meets_minima and ds.warnings == []


def test_single_accent_with_one_speaker_is_not_an_error_here(tmp_path):
    ds = load(write_dataset(tmp_path / "ds", dataset_rows(accents=("only",), speakers_per_accent=1)), tmp_path)
    assert ds.summary.n_accents == 1 and not ds.meets_minima


def test_all_problems_are_collected_and_the_first_line_counts_the_rest(tmp_path):
    rows = dataset_rows()
    rows[1]["utt_id"] = rows[0]["utt_id"]
    rows[4]["text_id"] = "t99"
    root = write_dataset(tmp_path / "ds", rows, texts={"t01": "a", "t02": "b"})
    (root / rows[6]["rel_path"]).unlink()
    with pytest.raises(DatasetValidationError) as info:
        load(root, tmp_path)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("metadata.csv row 3") and lines[0].endswith("(and 2 more problems)")
    assert "row 6" in lines[1] and "row 8" in lines[2] and len(lines) == 3


def test_row_with_the_wrong_number_of_fields(tmp_path):
    root = write_dataset(tmp_path / "ds")
    with open(root / "metadata.csv", "a") as fh:
        fh.write("x,y,z\n")
    (problem,) = problems_of(root, tmp_path)
    assert problem == "metadata.csv row 10: 3 fields, the header has 5"


def test_blank_required_field(tmp_path):
    rows = dataset_rows()
    rows[0]["speaker"] = " "
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == f"metadata.csv row 2 (utt_id={rows[0]['utt_id']}): empty speaker"


def test_invalid_texts_json(tmp_path):
    root = write_dataset(tmp_path / "ds")
    (root / "texts.json").write_text(json.dumps(["not", "a", "mapping"]))
    (problem,) = problems_of(root, tmp_path)
    assert problem.startswith("texts.json: must be an object")


def test_features_only_dataset_without_audio_is_valid(tmp_path):
    root = write_dataset(tmp_path / "ds", audio=False)
    ds = load(root, tmp_path, audio_required=False)
    assert not ds.has_audio and all(u.audio_path is None and u.duration is None for u in ds.utterances)
    assert ds.summary.total_hours == 0 and ds.summary.sample_rates == {}


def test_audio_required_by_default(tmp_path):
    problems = problems_of(write_dataset(tmp_path / "ds", audio=False), tmp_path)
    assert len(problems) == 8 and all("not found" in p for p in problems)


def test_validators_run_alone_on_a_view(tmp_path):
    rows, _ = read_metadata(write_dataset(tmp_path / "ds", dataset_rows()) / "metadata.csv")
    view = DatasetView(root=tmp_path / "ds", rows=rows, config=DatasetConfig())
    assert validate_unique_ids(view) == [] and validate_speaker_accents(view) == []


def test_dataset_error_is_a_stage15_error_for_the_cli(tmp_path):
    rows = dataset_rows()
    rows[1]["utt_id"] = rows[0]["utt_id"]
    with pytest.raises(DatasetError):
        load(write_dataset(tmp_path / "ds", rows), tmp_path)
