"""Dataset validation: one test per rule; every problem names metadata.csv's row and the file."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.layout import read_metadata, write_metadata
from stage1_5.data.testing import audio_file, dataset_rows, tone, write_dataset
from stage1_5.data.validation import (
    DatasetValidationError,
    DatasetView,
    validate_speaker_accents,
    validate_unique_ids,
)
from stage1_5.errors import ConfigError, DatasetError


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
    assert os.path.isabs(first.audio_path) and first.audio_path.endswith("wav/" + rows[0]["rel_path"])
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


def test_missing_audio_names_row_file_and_both_places_looked_in(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    audio_file(root, rows[2]).unlink()
    rel = rows[2]["rel_path"]
    assert problems_of(root, tmp_path) == [
        f"metadata.csv row 4 (utt_id={rows[2]['utt_id']}): audio file {rel} not found (looked for wav/{rel} and {rel})"
    ]


def test_no_audio_found_at_all_says_how_rel_path_is_read(tmp_path):
    problems = problems_of(write_dataset(tmp_path / "ds", audio=False), tmp_path)
    assert problems[0].startswith("none of the 8 audio files was found under")
    assert "relative to wav/ (spkNE01/t01.wav) or to the dataset folder (wav/spkNE01/t01.wav)" in problems[0]
    assert len(problems) == 9 and all("not found (looked for" in p for p in problems[1:])


def test_unreadable_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    audio_file(root, rows[0]).write_bytes(b"RIFF but not really audio")
    (problem,) = problems_of(root, tmp_path)
    assert problem.startswith(f"metadata.csv row 2 (utt_id={rows[0]['utt_id']}): audio file {rows[0]['rel_path']} is unreadable")


def test_duplicate_utt_id_names_both_rows(tmp_path):
    rows = dataset_rows()
    rows[3]["utt_id"] = rows[1]["utt_id"]
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == f"metadata.csv row 5 (utt_id={rows[1]['utt_id']}): duplicate utt_id {rows[1]['utt_id']} (first in row 3)"


def test_speaker_listed_under_two_accents(tmp_path):
    rows = dataset_rows(speakers_per_accent=3)
    rows[7]["accent"] = "north"  # a south speaker's second utterance
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem.startswith("metadata.csv row 9 ")
    assert f"speaker {rows[7]['speaker']} is listed under accent north here but under south in row 8" in problem


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


def _link_out(tmp_path, root, row):
    outside = tmp_path / "other_disk" / "audio.wav"
    outside.parent.mkdir()
    sf.write(outside, tone(), 16000)
    audio_file(root, row).unlink()
    audio_file(root, row).symlink_to(outside)
    return outside


def test_symlink_leading_out_of_the_root_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _link_out(tmp_path, root, rows[0])
    (problem,) = problems_of(root, tmp_path)
    assert "escapes the dataset root" in problem and "symbolic link" in problem
    assert "dataset.allow_symlinks_into" in problem


def test_symlink_into_an_allowed_folder_is_read(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    outside = _link_out(tmp_path, root, rows[0])
    ds = load(root, tmp_path, allow_symlinks_into=[str(tmp_path / "other_disk")])
    assert ds.utterances[0].audio_path == str(outside.resolve())


def test_linked_wav_folder_on_another_disk_is_allowed_when_named(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    disk = tmp_path / "disk2"
    (root / "wav").rename(disk)
    (root / "wav").symlink_to(disk, target_is_directory=True)
    assert all("symbolic link" in p for p in problems_of(root, tmp_path))
    assert load(root, tmp_path, allow_symlinks_into=[str(disk)]).has_audio


def test_allowed_symlink_folder_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="dataset.allow_symlinks_into: .*nowhere is not a folder"):
        load(write_dataset(tmp_path / "ds"), tmp_path, allow_symlinks_into=[str(tmp_path / "nowhere")])


def test_rel_path_under_wav_and_at_the_root_that_differ_is_an_error_naming_the_row(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    twin = root / rows[1]["rel_path"]  # the same rel_path read from the dataset folder
    twin.parent.mkdir(parents=True)
    sf.write(twin, tone(freq=500.0), 16000)
    (problem,) = problems_of(root, tmp_path)
    rel = rows[1]["rel_path"]
    assert problem.startswith(f"metadata.csv row 3 (utt_id={rows[1]['utt_id']}): rel_path {rel} is ambiguous")
    assert f"wav/{rel} and {rel} both exist and differ" in problem


def test_rel_path_under_wav_and_at_the_root_with_equal_content_is_fine(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    twin = root / rows[1]["rel_path"]
    twin.parent.mkdir(parents=True)
    twin.write_bytes(audio_file(root, rows[1]).read_bytes())
    assert load(root, tmp_path).utterances[1].audio_path == str(audio_file(root, rows[1]).resolve())


def _replace_audio(root, row, wav, sr=16000, **kwargs):
    sf.write(audio_file(root, row), wav, sr, **kwargs)


def test_empty_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[0], tone(duration_s=0.02))
    (problem,) = problems_of(root, tmp_path)
    assert "is empty (0.020 s < dataset.min_duration_s=0.1 s)" in problem and "row 2" in problem


def test_silent_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[1], tone(amplitude=1e-4))
    (problem,) = problems_of(root, tmp_path)
    assert f"row 3 (utt_id={rows[1]['utt_id']}): audio file {rows[1]['rel_path']} is silent" in problem


def test_nan_audio_is_reported_as_nan_once_not_as_silent(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    wav = tone()
    wav[100:150] = np.nan
    _replace_audio(root, rows[1], wav, subtype="FLOAT")
    (problem,) = problems_of(root, tmp_path)
    assert problem == (f"metadata.csv row 3 (utt_id={rows[1]['utt_id']}): audio file {rows[1]['rel_path']} "
                       f"contains NaN or infinite samples (50 of {len(wav)})")


def test_clipped_audio_is_an_error(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[2], np.clip(tone(amplitude=3.0), -1, 1))
    (problem,) = problems_of(root, tmp_path)
    assert "row 4" in problem and "is clipped" in problem


def test_mixed_sample_rates_are_allowed_with_a_resampling_note(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows)
    _replace_audio(root, rows[0], tone(sample_rate=22050), sr=22050)
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


def test_an_accent_with_one_speaker_is_an_error_naming_accent_and_row(tmp_path):
    rows = dataset_rows(accents=("north", "south"), speakers_per_accent=2)
    rows = [r for r in rows if r["speaker"] != "south_s02"]
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == ("metadata.csv row 6: accent south has only 1 speaker (south_s01); "
                       "speaker-disjoint probes need at least 2 speakers per accent")


def test_a_single_accent_is_an_error(tmp_path):
    problems = problems_of(write_dataset(tmp_path / "ds", dataset_rows(accents=("only",))), tmp_path)
    assert problems == ["metadata.csv: only one accent (only); the accent probe needs at least 2"]


def test_unbalanced_speakers_per_accent_are_reported(tmp_path):
    rows = dataset_rows(accents=("north",), speakers_per_accent=4) + dataset_rows(accents=("south",), speakers_per_accent=2)
    ds = load(write_dataset(tmp_path / "ds", rows), tmp_path)
    (speakers, utterances) = [w for w in ds.warnings if w.startswith("UNBALANCED DESIGN")]
    assert "speakers per accent north: 4, south: 2 (largest / smallest = 2.00 > dataset.max_imbalance=1.5)" in speakers
    assert "utterances per accent north: 8, south: 4" in utterances


def test_balanced_accents_get_no_balance_warning(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path)
    assert not any("UNBALANCED" in w for w in ds.warnings)


def test_all_problems_are_collected_and_the_first_line_counts_the_rest(tmp_path):
    rows = dataset_rows()
    rows[1]["utt_id"] = rows[0]["utt_id"]
    rows[4]["text_id"] = "t99"
    root = write_dataset(tmp_path / "ds", rows, texts={"t01": "a", "t02": "b"})
    audio_file(root, rows[6]).unlink()
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


def _with_groups(rows):
    return [{**r, "group": "donorA" if r["speaker"].endswith("1") else "donorB"} for r in rows]


def test_group_column_is_kept_on_every_utterance_and_counted_per_speaker(tmp_path):
    rows = _with_groups(dataset_rows())
    ds = load(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert [u.group for u in ds.utterances] == [r["group"] for r in rows]
    assert ds.summary.speakers_per_group == {"donorA": 2, "donorB": 2}
    assert list(ds.utterances.to_frame()["group"]) == [r["group"] for r in rows]


def test_without_a_group_column_utterances_have_no_group(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path)
    assert all(u.group is None for u in ds.utterances) and ds.summary.speakers_per_group == {}
    assert ds.utterances.to_frame()["group"].isna().all()


def test_blank_group_is_an_error_when_the_column_exists(tmp_path):
    rows = _with_groups(dataset_rows())
    rows[2]["group"] = ""
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == f"metadata.csv row 4 (utt_id={rows[2]['utt_id']}): empty group (with a group column every row needs one)"


def test_speaker_in_two_groups_is_an_error_naming_the_row(tmp_path):
    rows = _with_groups(dataset_rows())
    rows[1]["group"] = "donorB"  # north_s01's second utterance
    (problem,) = problems_of(write_dataset(tmp_path / "ds", rows), tmp_path)
    assert problem == (f"metadata.csv row 3 (utt_id={rows[1]['utt_id']}): speaker north_s01 is listed under "
                       "group donorB here but under donorA in row 2")


def test_invalid_texts_json(tmp_path):
    root = write_dataset(tmp_path / "ds")
    (root / "texts.json").write_text(json.dumps(["not", "a", "mapping"]))
    (problem,) = problems_of(root, tmp_path)
    assert problem.startswith("texts.json: must be an object")


def test_features_only_dataset_without_audio_is_valid(tmp_path):
    root = write_dataset(tmp_path / "ds", audio=False)
    ds = load(root, tmp_path, audio_required=False)
    assert not ds.has_audio and all(u.audio_path is None and u.duration is None for u in ds.utterances)
    assert ds.summary.total_hours == 0 and ds.summary.sample_rates == {} and ds.recordings == {}


def test_validators_run_alone_on_a_view(tmp_path):
    rows, _ = read_metadata(write_dataset(tmp_path / "ds", dataset_rows()) / "metadata.csv")
    view = DatasetView(root=tmp_path / "ds", rows=rows, config=DatasetConfig())
    assert validate_unique_ids(view) == [] and validate_speaker_accents(view) == []


def test_dataset_error_is_a_stage15_error_for_the_cli(tmp_path):
    rows = dataset_rows()
    rows[1]["utt_id"] = rows[0]["utt_id"]
    with pytest.raises(DatasetError):
        load(write_dataset(tmp_path / "ds", rows), tmp_path)


@pytest.mark.parametrize("name", ["metadata.csv", "texts.json"])
def test_metadata_or_texts_linked_outside_the_dataset_is_refused_without_reading_it(tmp_path, name):
    root = write_dataset(tmp_path / "ds")
    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    (root / name).unlink()
    (root / name).symlink_to(secret)  # a real symbolic link
    problems = problems_of(root, tmp_path)
    assert problems == [
        f"{name}: a symbolic link leads outside the dataset folder, to {secret.resolve()}; "
        "name that folder in dataset.allow_symlinks_into to allow it"
    ]
    assert "root:x" not in "".join(problems)


def test_metadata_linked_into_an_allowed_folder_is_read(tmp_path):
    root = write_dataset(tmp_path / "ds")
    kept = tmp_path / "elsewhere" / "metadata.csv"
    kept.parent.mkdir()
    (root / "metadata.csv").rename(kept)
    (root / "metadata.csv").symlink_to(kept)
    assert load(root, tmp_path, allow_symlinks_into=[str(kept.parent)]).summary.n_utterances == 8


def _with_empty_transcript(tmp_path):
    rows = dataset_rows()
    texts = {r["text_id"]: f"Sentence {r['text_id']}." for r in rows} | {"t02": "  \t"}
    return write_dataset(tmp_path / "ds", rows, texts=texts), rows


def test_an_empty_transcript_is_an_error_when_a_source_reads_the_text(tmp_path):
    root, rows = _with_empty_transcript(tmp_path)
    with pytest.raises(DatasetValidationError) as info:
        load_dataset(root, DatasetConfig(), work_dir=tmp_path / "work", progress=False, text_required=True)
    first = next(r for r in rows if r["text_id"] == "t02")
    assert info.value.problems == [f"metadata.csv row 3 (utt_id={first['utt_id']}): text_id t02 has an empty transcript in texts.json"]


def test_an_empty_transcript_is_a_warning_when_no_source_reads_the_text(tmp_path):
    root, _ = _with_empty_transcript(tmp_path)
    assert any("text_id t02 has an empty transcript" in w for w in load(root, tmp_path).warnings)


@pytest.mark.parametrize("column", ["utt_id", "speaker", "accent", "text_id", "group"])
def test_a_control_character_in_an_id_or_label_names_row_and_column(tmp_path, column):
    rows = [dict(r, group=r["speaker"]) for r in dataset_rows()]
    rows[1] = dict(rows[1], **{column: rows[1][column] + "\x00x"})
    root = write_dataset(tmp_path / "ds", rows)
    problems = problems_of(root, tmp_path)
    assert any(p.startswith(f"metadata.csv row 3: {column} ") and "holds the control character '\\x00'" in p for p in problems)


def test_a_recording_longer_than_max_duration_warns_at_validation_and_is_an_error_at_run(tmp_path):
    rows = dataset_rows()
    root = write_dataset(tmp_path / "ds", rows, duration_s=1.5)
    ds = load(root, tmp_path, max_duration_s=1.0)
    assert sum("is 1.5 s long (> dataset.max_duration_s=1 s" in w for w in ds.warnings) == 8
    with pytest.raises(DatasetValidationError) as info:
        load_dataset(root, DatasetConfig(max_duration_s=1.0), work_dir=tmp_path / "work", progress=False, long_audio_is_error=True)
    assert info.value.problems[0] == (
        f"metadata.csv row 2 (utt_id={rows[0]['utt_id']}): audio file {rows[0]['rel_path']} is 1.5 s long "
        "(> dataset.max_duration_s=1 s; cut it into utterances, or raise the option)"
    )
