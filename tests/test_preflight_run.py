"""`stage1_5 run` does the cheap preflight checks before it extracts anything, and records what the
backbone ran with (device, dtype, attention and why) in the run folder and the report; it appends a
DEBUG log to `<run folder>/run.log` (the file a bug report attaches) without touching resume or the
results zip, and decision.json carries its schema version."""

from __future__ import annotations

import json
import os
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from click.testing import CliRunner

from stage1_5.backbone.runtime import BackboneRuntime
from stage1_5.cli import cli
from stage1_5.config import config_from_dict
from stage1_5.data.synth import SynthConfig, synthesize
from stage1_5.errors import FeatureError
from stage1_5.pipeline import DECISION_SCHEMA_VERSION, run_experiment

torch.set_num_threads(1)


def _config(tmp_path, data, **backbone):
    return config_from_dict({
        "dataset": {"path": str(data), "min_accents": 3, "min_speakers_per_accent": 2, "min_texts_per_speaker": 2},
        "sources": {
            "backbone": {"checkpoint": "tiny-random", "layers": ["decoder_block_00"], "dtype": "float32", "batch_size": 8, **backbone},
            "ssl": {"enabled": False}, "ecapa": {"enabled": False}, "acoustic": {"features": ["mfcc_stats"]},
        },
        "probes": {"seeds": 1, "permutations": 0, "bootstrap": 0, "device": "cpu"},
        "output": {"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")},
    })


def _config_file(tmp_path, data, **backbone) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(_config(tmp_path, data, **backbone).to_yaml())
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    cfg = SynthConfig(accents=3, speakers_per_accent=2, texts=3, strength=1.0, seed=3)
    return synthesize(tmp_path_factory.mktemp("synth") / "data", cfg, progress=False)


def test_run_stops_on_a_bad_backbone_option_before_extracting_anything(tmp_path, data):
    with pytest.raises(FeatureError, match=r"^sources\.backbone\.language: 'klingon'"):
        run_experiment(_config(tmp_path, data, language="klingon"), progress=False, echo=lambda _m: None)
    assert not (tmp_path / "cache" / "features").exists()  # not even the acoustic features


def test_run_records_the_backbone_runtime_in_the_analysis_folder_and_the_report(tmp_path, data):
    result = run_experiment(_config(tmp_path, data), progress=False, echo=lambda _m: None)
    runtime = BackboneRuntime.from_dict(json.loads(result.paths.backbone_runtime_json.read_text()))
    assert (runtime.device, runtime.dtype, runtime.attn_implementation) == ("cpu", "float32", "sdpa")
    assert f"backbone extracted on {runtime.summary()}" in result.paths.report_md.read_text()


def test_run_appends_a_debug_log_that_resume_and_the_zip_leave_alone(tmp_path, data):
    config = _config_file(tmp_path, data)
    first = CliRunner().invoke(cli, ["run", config, "--no-progress"])
    assert first.exit_code == 0, first.output
    decision = json.loads((tmp_path / "run" / "artifacts" / "analysis" / "decision.json").read_text())
    assert decision["schema_version"] == DECISION_SCHEMA_VERSION
    bundle = (tmp_path / "run" / "stage1_5_results.zip").read_bytes()
    second = CliRunner().invoke(cli, ["run", config, "--no-progress"])
    assert second.exit_code == 0, second.output
    assert "[probes] up to date, skipped" in second.output  # resume still skips

    text = (tmp_path / "run" / "run.log").read_text()
    assert text.count("run started") == 2  # appended, one header per run
    assert " DEBUG   stage1_5.run: config " in text and "checkpoint: tiny-random" in text  # the resolved config at DEBUG
    assert "INFO    stage1_5.run: [features] done in" in text and "[probes] up to date, skipped" in text
    assert "stage1_5.run: decision " in text and "; stage times " in text
    with zipfile.ZipFile(tmp_path / "run" / "stage1_5_results.zip") as zf:
        assert not any(name.endswith("run.log") for name in zf.namelist())
    assert (tmp_path / "run" / "stage1_5_results.zip").read_bytes() == bundle  # the skipped bundle is untouched


def test_a_failed_run_logs_its_error(tmp_path, data):
    result = CliRunner().invoke(cli, ["run", _config_file(tmp_path, data, language="klingon"), "--no-progress"])
    assert result.exit_code == 2 and result.output.count("error:") == 1
    assert "ERROR   stage1_5.run: run failed: sources.backbone.language: 'klingon'" in (tmp_path / "run" / "run.log").read_text()

