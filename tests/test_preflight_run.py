"""`stage1_5 run` does the cheap preflight checks before it extracts anything, and records what the
backbone ran with (device, dtype, attention and why) in the run folder and the report."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from stage1_5.backbone.runtime import BackboneRuntime
from stage1_5.config import config_from_dict
from stage1_5.data.synth import SynthConfig, synthesize
from stage1_5.errors import FeatureError
from stage1_5.pipeline import run_experiment

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
