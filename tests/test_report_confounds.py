"""The report's dataset section shows the confound checks: shared texts, recording conditions per
accent, and the recording probe's F1 and p (pure rendering of a typed `ConfoundReport`)."""

from __future__ import annotations

from types import SimpleNamespace

from stage1_5.data.confounds import AccentRecording, ConfoundReport, RecordingConfound, RecordingProbe, TextSharing
from stage1_5.data.recording import STATISTICS
from stage1_5.report.markdown import DatasetFacts, confound_section

TEXTS = TextSharing(n_texts=4, shared=0, texts_per_accent={"NE": 2, "SE": 2}, own_texts={"NE": 2, "SE": 2}, min_shared=30)


def accent(name: str, rate: str, bandwidth: float) -> AccentRecording:
    values = {"sample_rate": {rate: 12}, "channels": {"mono": 12}, "bit_depth": {"16-bit": 12}, "codec": {"WAV PCM_16": 12}}
    medians = {"duration": 2.0, "rms_dbfs": -20.0, "dc_offset": 0.0, "noise_floor_dbfs": -60.0, "bandwidth_hz": bandwidth}
    return AccentRecording(name, 4, 12, values, medians)


RECORDING = RecordingConfound(
    per_accent=(accent("NE", "48 kHz", 20000.0), accent("SE", "16 kHz", 7900.0)),
    separation={s: (1.0 if s in ("sample_rate", "bandwidth_hz") else 0.0) for s in STATISTICS},
    isolated={"sample_rate": ("NE", "SE")},
    probe=RecordingProbe(accent_f1=0.91, p_value=0.005, permutations=199, n_utterances=24, n_speakers=8, alpha=0.05),
)


def test_confound_section_names_shared_texts_and_the_text_confound():
    text = "\n".join(confound_section(ConfoundReport(texts=TEXTS)))
    assert "Texts: the accents share 0 of 4 texts (dataset.min_shared_texts = 30): **text confound**." in text
    assert "| NE | 2 | 2 |" in text and "not checked (features-only dataset, no audio)" in text


def test_confound_section_has_a_row_per_accent_and_the_probe_numbers():
    lines = confound_section(ConfoundReport(texts=TEXTS, recording=RECORDING))
    assert "| NE | 4 | 12 | 48 kHz | mono | 16-bit | WAV PCM_16 | 2.00 s | -20.0 dBFS | +0.0e+00 | -60.0 dBFS | 20.0 kHz |" in lines
    assert any("| SE | 4 | 12 | 16 kHz |" in line and "7.9 kHz" in line for line in lines)
    probe = next(line for line in lines if line.startswith("Recording probe"))
    assert ("**accent F1 0.91 from recording statistics alone, p = 0.005 (199 speaker-level permutations, "
            "24 utterances of 8 speakers, alpha 0.05): significant: recording confound**.") in probe
    assert "It reads 24 utterances, not all: at most `dataset.recording_probe.utterances_per_speaker`" in probe  # why fewer than the dataset's


def test_a_probe_that_did_not_run_is_said_so():
    report = ConfoundReport(texts=TEXTS, recording=RecordingConfound(
        per_accent=RECORDING.per_accent, separation=RECORDING.separation, isolated={}, probe_note="too few texts"))
    assert "Accent probe on recording statistics: not run (too few texts)." in confound_section(report)


def test_dataset_facts_carry_the_confound_report_and_groups():
    summary = SimpleNamespace(n_utterances=24, n_speakers=8, n_accents=2, n_texts=4, total_hours=0.1, speakers_per_group={"f": 4, "m": 4})
    dataset = SimpleNamespace(summary=summary, warnings=[], meets_minima=False, content_hash="h",
                              confounds=ConfoundReport(texts=TEXTS, recording=RECORDING))
    facts = DatasetFacts.from_dataset(dataset)
    assert facts.confounds.recording.probe.accent_f1 == 0.91 and facts.speakers_per_group == {"f": 4, "m": 4}
