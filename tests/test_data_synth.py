"""Synthetic datasets: the truth in synth.json matches metadata, and the planted strength is visible."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pydantic import ValidationError

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.layout import read_metadata
from stage1_5.data.synth import SENTENCES, SynthConfig, synthesize
from stage1_5.errors import DatasetError

SMALL = dict(accents=3, speakers_per_accent=4, texts=3)


def load(path, tmp_path):
    return load_dataset(path, DatasetConfig(), work_dir=tmp_path / "work", progress=False)


def spectral_centroid(wav: np.ndarray, sr: int) -> float:
    power = np.abs(np.fft.rfft(wav)) ** 2
    return float((power * np.fft.rfftfreq(len(wav), 1 / sr)).sum() / power.sum())


def accent_separation(ds) -> float:
    """Spread of accent means of per-speaker mean centroids, relative to the spread within accents."""
    frame = ds.utterances.to_frame()
    frame["centroid"] = [spectral_centroid(u.load_audio(), u.sample_rate) for u in ds.utterances]
    speakers = frame.groupby(["accent", "speaker"]).centroid.mean().reset_index()
    between = speakers.groupby("accent").centroid.mean().std()
    within = speakers.groupby("accent").centroid.std().mean()
    return between / within


def test_procedural_set_has_the_asked_counts_labels_and_truth(tmp_path):
    out = synthesize(tmp_path / "syn", SynthConfig(**SMALL, strength=0.5, seed=3), progress=False)
    ds = load(out, tmp_path)
    truth = json.loads((out / "synth.json").read_text())
    assert ds.summary.n_utterances == 36 and ds.summary.speakers_per_accent == {"acc01": 4, "acc02": 4, "acc03": 4}
    assert ds.summary.min_texts_per_speaker == 3 and set(ds.texts) == {"t01", "t02", "t03"}
    assert truth["strength"] == 0.5 and set(truth["accents"]) == {"acc01", "acc02", "acc03"}
    assert all(truth["speakers"][u.speaker]["accent"] == u.accent for u in ds.utterances)
    assert all(1.0 <= u.duration <= 2.5 and u.sample_rate == 16000 for u in ds.utterances)


def test_planted_accent_strength_zero_vs_high_shows_in_the_spectral_centroid(tmp_path):
    none = load(synthesize(tmp_path / "s0", SynthConfig(**SMALL, strength=0.0), progress=False), tmp_path)
    high = load(synthesize(tmp_path / "s2", SynthConfig(**SMALL, strength=2.0), progress=False), tmp_path)
    assert accent_separation(none) < 1.0
    assert accent_separation(high) > 3.0


def test_strength_zero_plants_no_cue(tmp_path):
    out = synthesize(tmp_path / "s0", SynthConfig(accents=2, speakers_per_accent=1, texts=1, strength=0.0), progress=False)
    cues = json.loads((out / "synth.json").read_text())["accents"].values()
    assert all(c["tilt"] == 0 and c["formant_shift"] == [0, 0, 0] for c in cues)


def test_same_seed_same_dataset_other_seed_other_speakers(tmp_path):
    cfg = dict(accents=2, speakers_per_accent=2, texts=2)
    a = load(synthesize(tmp_path / "a", SynthConfig(**cfg, seed=1), progress=False), tmp_path)
    b = load(synthesize(tmp_path / "b", SynthConfig(**cfg, seed=1), progress=False), tmp_path)
    c = load(synthesize(tmp_path / "c", SynthConfig(**cfg, seed=2), progress=False), tmp_path)
    assert a.content_hash == b.content_hash != c.content_hash


def test_espeak_set_uses_accent_variants_and_shared_sentences(tmp_path):
    cfg = SynthConfig(engine="espeak", accents=2, speakers_per_accent=2, texts=2, audio_format="flac")
    out = synthesize(tmp_path / "esp", cfg, progress=False)
    ds = load(out, tmp_path)
    assert ds.summary.speakers_per_accent == {"en-gb": 2, "en-us": 2}
    assert ds.texts == {"t01": SENTENCES["en"][0], "t02": SENTENCES["en"][1]}
    assert all(u.audio_path.endswith(".flac") and 0.8 < u.duration < 4.0 for u in ds.utterances)
    speakers = json.loads((out / "synth.json").read_text())["speakers"]
    assert speakers["en-us_s01"]["variant"] == speakers["en-gb_s01"]["variant"]  # variant never codes accent


def test_espeak_portuguese_has_two_accents(tmp_path):
    out = synthesize(tmp_path / "pt", SynthConfig(engine="espeak", language="pt", accents=2, speakers_per_accent=2, texts=1),
                     progress=False)
    assert load(out, tmp_path).summary.speakers_per_accent == {"pt": 2, "pt-br": 2}


def test_zip_output_loads_like_the_folder(tmp_path):
    cfg = SynthConfig(accents=2, speakers_per_accent=2, texts=2)
    folder = synthesize(tmp_path / "f", cfg, progress=False)
    archive = synthesize(tmp_path / "z", cfg, as_zip=True, progress=False)
    assert archive.name == "z.zip" and load(archive, tmp_path).content_hash == load(folder, tmp_path).content_hash


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(engine="espeak", strength=1.0), "--strength applies to the procedural engine only"),
        (dict(engine="espeak", language="pt", accents=3), "--accents: 3 accents asked, espeak has 2 for pt"),
        (dict(engine="espeak", texts=41), "--texts 41 > the 40 built-in sentences"),
        (dict(language="en"), "--language and accent names apply to the espeak engine only"),
        (dict(strength=-1.0), "greater than or equal to 0"),
        (dict(accents=0), "greater than or equal to 1"),
        (dict(colour="red"), "Extra inputs are not permitted"),
    ],
)
def test_bad_synth_options_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SynthConfig(**kwargs)


def test_synth_writes_the_user_guide_layout(tmp_path):
    out = synthesize(tmp_path / "syn", SynthConfig(accents=2, speakers_per_accent=2, texts=1), progress=False)
    rows, _ = read_metadata(out / "metadata.csv")
    assert rows[0].rel_path == "acc01_s01/t01.wav" and (out / "wav" / "acc01_s01" / "t01.wav").is_file()


def test_existing_output_is_never_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match="already exists"):
        synthesize(tmp_path / "out", SynthConfig(accents=2, speakers_per_accent=2, texts=1), progress=False)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
