"""`stage1_5 run` on datasets as users bring them: the guide's layout zipped as printed runs end to
end, and confounds are printed at the start of the run, reported, or (confounds: error) stop it
before any model runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stage1_5.config import config_from_dict
from stage1_5.data.confounds import ConfoundError
from stage1_5.data.synth import SynthConfig, synthesize
from stage1_5.data.testing import dataset_rows, write_dataset, zip_folder
from stage1_5.pipeline import run_experiment
from stage1_5.probes.planted import planted_dataset

FAST_PROBES = {"seeds": 1, "permutations": 20, "bootstrap": 20, "c_grid": [1.0], "device": "cpu"}
OFF = {"enabled": False}


def config(root: Path, data: Path, sources: dict, **dataset) -> object:
    return config_from_dict({
        "name": "users",
        "dataset": {"path": str(data), **dataset},
        "sources": {"backbone": OFF, "ssl": OFF, "ecapa": OFF, "acoustic": OFF, **sources},
        "probes": FAST_PROBES,
        "output": {"dir": str(root / "run"), "cache_dir": str(root / "cache")},
    })


def run(cfg):
    lines: list[str] = []
    result = run_experiment(cfg, progress=False, echo=lines.append)
    return result, lines


def test_the_guide_layout_zipped_as_printed_runs_end_to_end_on_the_demo_models(tmp_path):
    folder = synthesize(tmp_path / "dataset", SynthConfig(accents=3, speakers_per_accent=2, texts=3, seed=2), progress=False)
    archive = zip_folder(folder, tmp_path / "dataset.zip", prefix="dataset/")  # the folder itself zipped
    sources = {"backbone": {"checkpoint": "tiny-random", "layers": ["decoder_block_01"], "dtype": "float32"},
               "acoustic": {"features": ["mfcc_stats"]}}
    result, lines = run(config(tmp_path, archive, sources))
    report = result.paths.report_md.read_text()
    assert result.decision.decision in ("GO", "conditional GO", "NOGO") and result.paths.bundle.is_file()
    assert "backbone:decoder_block_01" in (result.paths.analysis_dir / "metrics.csv").read_text()
    assert "### Confound checks" in report and "Recording probe (the speaker-disjoint accent probe" in report
    assert any(line.startswith("[dataset] done") for line in lines)


@pytest.fixture(scope="module")
def recorded_apart(tmp_path_factory):
    root = tmp_path_factory.mktemp("recorded_apart")
    data = write_dataset(root / "data", dataset_rows(("NE", "SE"), 6, 3), sample_rate={"NE": 48000, "SE": 16000}, duration_s=0.3)
    return root, data


def test_a_recording_confound_is_printed_first_and_reported_with_its_numbers(recorded_apart):
    root, data = recorded_apart
    result, lines = run(config(root, data, {"acoustic": {"features": ["mfcc_stats"]}}))
    confound = next(i for i, line in enumerate(lines) if line.startswith("[dataset] WARNING: RECORDING CONFOUND"))
    assert confound < next(i for i, line in enumerate(lines) if line.startswith("[features]"))
    assert "accent NE was recorded at 48 kHz, SE at 16 kHz" in lines[confound]
    report = result.paths.report_md.read_text()
    assert lines[confound].removeprefix("[dataset] WARNING: ") in report
    assert "significant: recording confound**" in report and "| NE | 6 | 18 | 48 kHz |" in report
    assert "accent is predictable from recording conditions (F1" in report.split("## Dataset")[0]  # the banner
    assert not result.decision.scientific


def test_confounds_error_stops_the_run_before_any_model_runs(recorded_apart, tmp_path):
    _, data = recorded_apart
    cfg = config(tmp_path, data, {"acoustic": {"features": ["mfcc_stats"]}}, confounds="error")
    with pytest.raises(ConfoundError, match="RECORDING CONFOUND"):
        run(cfg)
    assert not (tmp_path / "cache" / "features").exists() and not (tmp_path / "run" / "report").exists()


def test_accents_reading_disjoint_texts_are_printed_and_reported(tmp_path):
    planted = planted_dataset(n_accents=3, speakers_per_accent=2, n_texts=6, dim=8, accent=2.0, random_state=0)
    accents = sorted(planted.meta.accent.unique())
    keep = np.array([int(t.removeprefix("t")) // 2 == accents.index(a) for a, t in zip(planted.meta.accent, planted.meta.text_id)])
    meta = planted.meta[keep]
    rows = [{"utt_id": r.utt_id, "speaker": r.speaker, "accent": r.accent, "text_id": r.text_id, "rel_path": f"{r.speaker}/{r.utt_id}.wav"}
            for r in meta.itertuples()]
    write_dataset(tmp_path / "data", rows, audio=False)
    np.savez(tmp_path / "f.npz", utt_id=meta.utt_id.to_numpy(str), **{"backbone:decoder_block_08": next(iter(planted.features.values()))[keep]})
    result, lines = run(config(tmp_path, tmp_path / "data", {"external": [str(tmp_path / "f.npz")]}, audio_required=False))
    (line,) = [l for l in lines if "TEXT CONFOUND" in l]
    assert line.startswith("[dataset] WARNING: TEXT CONFOUND: the accents share 0 of 6 texts")
    report = result.paths.report_md.read_text()
    assert line.removeprefix("[dataset] WARNING: ") in report and "**text confound**" in report
    assert "Recording conditions: not checked (features-only dataset, no audio)." in report
