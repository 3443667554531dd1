"""Confound checks: accents that read different texts, accents recorded differently (the recording
probe is the project's own speaker-disjoint accent probe), and `dataset.confounds: error`."""

from __future__ import annotations

import pytest

from stage1_5.config import DEMO_DATASET, DatasetConfig
from stage1_5.data.confounds import ConfoundError, text_sharing
from stage1_5.data.dataset import load_dataset
from stage1_5.data.testing import dataset_rows, write_dataset
from stage1_5.errors import ConfigError
from stage1_5.probes import confounds as probe_module
from stage1_5.probes.confounds import check_confounds, probe_sample


def load(path, tmp_path, **config):
    return load_dataset(path, DatasetConfig(**config), work_dir=tmp_path / "work", progress=False)


def checked(path, tmp_path, alpha=0.05, **config):
    cfg = DatasetConfig(**config)
    ds = load_dataset(path, cfg, work_dir=tmp_path / "work", progress=False)
    return check_confounds(ds, cfg, alpha=alpha, work_dir=tmp_path / "work")


def disjoint_text_rows():
    rows = dataset_rows(("NE", "SE"), 2, 4)
    return [r for r in rows if (r["accent"] == "NE") == (r["text_id"] in ("t01", "t02"))]


def khz_48_vs_16(tmp_path, speakers=6):
    rows = dataset_rows(("NE", "SE"), speakers, 3)
    return write_dataset(tmp_path / "ds", rows, sample_rate={"NE": 48000, "SE": 16000}, duration_s=0.3)


@pytest.fixture(scope="module")
def recorded_apart(tmp_path_factory):
    """(folder, checked dataset) of accent NE recorded at 48 kHz and SE at 16 kHz, 6 speakers each;
    its probe verdict is cached in the folder's work dir for the tests that reuse it."""
    folder = tmp_path_factory.mktemp("recorded_apart")
    return folder, checked(khz_48_vs_16(folder), folder)


# ----------------------------------------------------------------------------- texts


def test_accents_reading_disjoint_texts_are_a_text_confound_with_the_numbers(tmp_path):
    ds = load(write_dataset(tmp_path / "ds", disjoint_text_rows()), tmp_path)
    t = ds.confounds.texts
    assert (t.n_texts, t.shared, dict(t.texts_per_accent), dict(t.own_texts)) == (4, 0, {"NE": 2, "SE": 2}, {"NE": 2, "SE": 2})
    (warning,) = [w for w in ds.warnings if w.startswith("TEXT CONFOUND")]
    assert warning == (
        "TEXT CONFOUND: the accents share 0 of 4 texts (< dataset.min_shared_texts=30): NE reads 2 (2 only in NE), "
        "SE reads 2 (2 only in SE); when texts differ by accent, text drop and accent F1 cannot be separated"
    )


def test_few_texts_all_shared_are_no_text_confound(tmp_path):
    ds = load(write_dataset(tmp_path / "ds"), tmp_path)
    assert ds.confounds.texts.shared == 2 and not ds.confounds.texts.confounded
    assert not any("TEXT CONFOUND" in w for w in ds.warnings)


def test_enough_shared_texts_beside_accent_specific_ones_are_no_text_confound(tmp_path):
    rows = dataset_rows(("NE", "SE"), 2, 4) + [{**r, "text_id": "extra", "utt_id": r["utt_id"] + "x"} for r in dataset_rows(("NE",), 2, 1)]
    sharing = text_sharing(load(write_dataset(tmp_path / "ds", rows), tmp_path).utterances, min_shared=4)
    assert (sharing.shared, sharing.n_texts, sharing.own_texts["NE"], sharing.confounded) == (4, 5, 1, False)


def test_partly_shared_texts_under_the_minimum_are_a_text_confound(tmp_path):
    rows = [r for r in dataset_rows(("NE", "SE"), 2, 3) if not (r["accent"] == "SE" and r["text_id"] == "t03")]
    sharing = text_sharing(load(write_dataset(tmp_path / "ds", rows), tmp_path).utterances, min_shared=30)
    assert (sharing.shared, sharing.n_texts, sharing.confounded) == (2, 3, True)


# ----------------------------------------------------------------------------- recording conditions


def test_accents_recorded_at_48_and_16_khz_are_a_recording_confound_with_the_numbers(recorded_apart):
    _, ds = recorded_apart
    rec = ds.confounds.recording
    assert rec.probe.significant and rec.probe.accent_f1 > 0.9 and rec.probe.p_value < 0.05
    assert rec.leading[0] == "sample_rate" and rec.separation["sample_rate"] == pytest.approx(1.0)
    (warning,) = [w for w in ds.warnings if w.startswith("RECORDING CONFOUND")]
    assert warning.startswith(f"RECORDING CONFOUND: accent is predictable from recording conditions alone: F1 {rec.probe.accent_f1:.2f} "
                              f"(p = {rec.probe.p_value:.3g} < 0.05, speaker-level permutation test) from sample rate")
    assert "accent NE was recorded at 48 kHz, SE at 16 kHz" in warning


def test_the_recording_probe_reads_a_few_utterances_per_speaker(tmp_path):
    ds = checked(khz_48_vs_16(tmp_path), tmp_path, recording_probe={"utterances_per_speaker": 2})
    assert (ds.confounds.recording.probe.n_utterances, ds.confounds.recording.probe.n_speakers) == (24, 12)
    picked = [ds.utterances[int(i)] for i in probe_sample(ds.utterances, 2)]
    assert {u.text_id for u in picked} == {"t01", "t02"}


def test_a_sample_rate_of_its_own_is_a_confound_even_when_too_few_speakers_for_significance(tmp_path):
    ds = checked(khz_48_vs_16(tmp_path, speakers=2), tmp_path)
    rec = ds.confounds.recording
    assert not rec.probe.significant and rec.isolated == {"sample_rate": ("NE", "SE")}
    (warning,) = [w for w in ds.warnings if w.startswith("RECORDING CONFOUND")]
    assert warning.startswith("RECORDING CONFOUND: sample rate alone tells the accents apart (the probe on all statistics: F1 ")


def test_the_demo_set_has_no_recording_confound(tmp_path):
    ds = checked(DEMO_DATASET, tmp_path)
    rec = ds.confounds.recording
    assert not rec.confounded and not rec.probe.significant and rec.isolated == {}
    assert not any("CONFOUND" in w for w in ds.warnings)


def test_the_probe_verdict_is_cached_by_dataset_and_settings(recorded_apart, monkeypatch):
    folder, first = recorded_apart

    def fail(*_args, **_kwargs):
        raise AssertionError("the recording probe ran again on an unchanged dataset")

    monkeypatch.setattr(probe_module, "evaluate_representations", fail)
    again = checked(folder / "ds", folder)
    assert again.confounds.recording.probe == first.confounds.recording.probe
    with pytest.raises(AssertionError, match="ran again"):
        checked(folder / "ds", folder, recording_probe={"seeds": 2})


def test_permutations_that_cannot_reach_alpha_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.recording_probe.permutations=10 cannot give p < experiment.alpha=0.05 .*at least 20"):
        checked(write_dataset(tmp_path / "ds"), tmp_path, recording_probe={"permutations": 10})


def test_a_probe_that_cannot_run_says_why_and_raises_nothing(tmp_path):
    ds = checked(write_dataset(tmp_path / "ds", dataset_rows(texts=1)), tmp_path)
    rec = ds.confounds.recording
    assert rec.probe is None and rec.probe_note.startswith("the recording probe could not run: probes.text_folds=2")


def test_features_only_datasets_check_texts_but_not_recordings(tmp_path):
    ds = checked(write_dataset(tmp_path / "ds", disjoint_text_rows(), audio=False), tmp_path, audio_required=False)
    assert ds.confounds.recording is None and ds.confounds.texts.confounded


# ----------------------------------------------------------------------------- dataset.confounds: error


def test_confounds_error_refuses_a_recording_confound(recorded_apart):
    folder, _ = recorded_apart
    with pytest.raises(ConfoundError, match=r"^RECORDING CONFOUND: .*accent NE was recorded at 48 kHz.*\(dataset.confounds=error\)"):
        checked(folder / "ds", folder, confounds="error")


def test_confounds_error_lists_every_confound(tmp_path):
    rows = disjoint_text_rows()
    root = write_dataset(tmp_path / "ds", rows, sample_rate={"NE": 48000, "SE": 16000})
    with pytest.raises(ConfoundError) as info:
        checked(root, tmp_path, confounds="error")
    first, second = str(info.value).splitlines()
    assert first.startswith("TEXT CONFOUND") and second.startswith("  RECORDING CONFOUND")


def test_confounds_error_passes_a_clean_dataset(tmp_path):
    assert checked(write_dataset(tmp_path / "ds"), tmp_path, confounds="error").confounds.warnings == []


def test_confound_caveats_are_short_and_name_the_numbers(recorded_apart):
    _, ds = recorded_apart
    (caveat,) = ds.confounds.caveats
    p = ds.confounds.recording.probe
    assert caveat == f"accent is predictable from recording conditions (F1 {p.accent_f1:.2f}, p = {p.p_value:.3g}): sample rate and bandwidth"
