"""Per-file recording statistics: each one measures the condition it names."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from stage1_5.data.recording import format_statistic, measure_recording, recording_matrix
from stage1_5.data.testing import tone


def speech_like(sr: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """Broadband noise bursts (syllables) with quiet gaps between them."""
    rng = np.random.default_rng(seed)
    wav = 0.2 * rng.standard_normal(int(sr * seconds))
    gate = (np.arange(len(wav)) // int(0.1 * sr)) % 2 == 0
    return np.where(gate, wav, 0.001 * wav).astype(np.float32)


def measure(tmp_path, wav, sr, name="a.wav", **kwargs):
    path = tmp_path / name
    sf.write(path, wav, sr, **kwargs)
    return measure_recording(path)


def test_header_facts_sample_rate_channels_codec_and_bit_depth(tmp_path):
    stereo = np.stack([tone(), tone(seed=1)], axis=1)
    s = measure(tmp_path, stereo, 16000, "a.flac", subtype="PCM_24")
    assert (s.sample_rate, s.channels, s.codec, s.bit_depth) == (16000, 2, "FLAC PCM_24", 24)
    assert s.duration == pytest.approx(0.5)


def test_lossy_codec_has_no_bit_depth(tmp_path):
    s = measure(tmp_path, tone(), 16000, "a.ogg", format="OGG", subtype="VORBIS")
    assert s.codec == "OGG VORBIS" and s.bit_depth is None and format_statistic("bit_depth", 0) == "lossy"


def test_rms_level_follows_the_gain(tmp_path):
    loud = measure(tmp_path, speech_like(16000), 16000, "loud.wav")
    quiet = measure(tmp_path, 0.1 * speech_like(16000), 16000, "quiet.wav")
    assert loud.rms_dbfs - quiet.rms_dbfs == pytest.approx(20.0, abs=0.1)


def test_dc_offset_is_the_mean_sample(tmp_path):
    s = measure(tmp_path, speech_like(16000) + 0.05, 16000, subtype="FLOAT")
    assert s.dc_offset == pytest.approx(0.05, abs=0.002)


def test_noise_floor_is_the_level_of_the_pauses(tmp_path):
    s = measure(tmp_path, speech_like(16000), 16000, subtype="FLOAT")
    pause_db = 20 * np.log10(0.001 * 0.2)
    assert s.noise_floor_dbfs == pytest.approx(pause_db, abs=2.0) and s.rms_dbfs > s.noise_floor_dbfs + 30


def test_bandwidth_shows_a_16_khz_recording_stored_at_48_khz(tmp_path):
    full = measure(tmp_path, speech_like(48000), 48000, "full.wav")
    upsampled = soxr.resample(speech_like(16000), 16000, 48000).astype(np.float32)
    narrow = measure(tmp_path, upsampled, 48000, "narrow.wav")
    assert full.bandwidth_hz > 20000 and 7000 < narrow.bandwidth_hz < 8200 and narrow.sample_rate == 48000


def test_nan_samples_are_counted_and_left_out_of_the_levels(tmp_path):
    wav = speech_like(16000)
    clean = measure(tmp_path, wav, 16000, "clean.wav", subtype="FLOAT")
    wav[:10] = np.nan
    wav[10] = np.inf
    s = measure(tmp_path, wav, 16000, "nan.wav", subtype="FLOAT")
    assert s.nonfinite_samples == 11 and np.isfinite([s.rms_dbfs, s.noise_floor_dbfs, s.bandwidth_hz]).all()
    assert s.rms_dbfs == pytest.approx(clean.rms_dbfs, abs=0.1)


def test_statistics_of_a_file_shorter_than_a_frame_are_finite(tmp_path):
    s = measure(tmp_path, tone(duration_s=0.01), 16000)
    assert np.isfinite([s.noise_floor_dbfs, s.bandwidth_hz, s.rms_dbfs]).all() and s.frames == 160


def test_matrix_adds_one_indicator_per_codec_only_when_files_differ(tmp_path):
    wav_file = measure(tmp_path, tone(), 16000, "a.wav")
    flac_file = measure(tmp_path, tone(), 16000, "a.flac")
    same, X_same = recording_matrix([wav_file, wav_file])
    mixed, X_mixed = recording_matrix([wav_file, flac_file])
    assert not any(n.startswith("codec=") for n in same) and X_same.shape == (2, len(same))
    assert mixed[-2:] == ["codec=FLAC PCM_16", "codec=WAV PCM_16"] and X_mixed[:, -1].tolist() == [1.0, 0.0]


@pytest.mark.parametrize(
    "name, value, text",
    [("sample_rate", 44100, "44.1 kHz"), ("channels", 2, "stereo"), ("bit_depth", 16, "16-bit"),
     ("rms_dbfs", -21.44, "-21.4 dBFS"), ("bandwidth_hz", 7937.5, "7.9 kHz"), ("duration", 2.314, "2.31 s")],
)
def test_values_are_formatted_as_people_read_them(name, value, text):
    assert format_statistic(name, value) == text
