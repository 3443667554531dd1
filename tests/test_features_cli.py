"""`stage1_5 features SOURCE --config FILE`: options override the config, the store is reused, errors exit 2."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.data.testing import write_dataset

torch.set_num_threads(1)


@pytest.fixture
def config_file(tmp_path):
    data = write_dataset(tmp_path / "data")
    cfg = {
        "dataset": {"path": str(data)},
        "sources": {"backbone": {"enabled": False}, "ssl": {"model": "tiny-random", "enabled": False}, "ecapa": {"model": "tiny-random"}},
        "output": {"cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _invoke(*args):
    return CliRunner().invoke(cli, ["features", *args, "--no-progress"], catch_exceptions=False)


def test_acoustic_extracts_exports_and_then_reads_the_store(config_file, tmp_path):
    first = _invoke("acoustic", "-c", str(config_file), "-o", str(tmp_path / "out.npz"))
    assert first.exit_code == 0, first.output
    assert "acoustic: 8 utterances, 1 representations (computed)" in first.output
    with np.load(tmp_path / "out.npz", allow_pickle=False) as npz:
        assert npz["acoustic:mfcc_stats"].shape == (8, 120) and len(npz["utt_id"]) == 8
    second = _invoke("acoustic", "-c", str(config_file))
    assert "(from cache)" in second.output


def test_options_override_and_enable_the_config_section(config_file):
    result = _invoke("ssl", "-c", str(config_file), "--layers", "layer_00,layer_02", "--batch-size", "3", "--dtype", "float32")
    assert result.exit_code == 0, result.output
    assert "ssl:layer_00: 32 dims" in result.output and "ssl:layer_02" in result.output and "ssl:layer_01" not in result.output


def test_ecapa_runs_with_the_tiny_model(config_file):
    result = _invoke("ecapa", "-c", str(config_file), "--batch-size", "4", "--store-dtype", "float16")
    assert result.exit_code == 0, result.output
    assert "ecapa:embedding: 192 dims" in result.output


def test_invalid_layer_option_prints_one_line_naming_it_and_exits_2(config_file):
    result = CliRunner().invoke(cli, ["features", "acoustic", "-c", str(config_file), "--layers", "prosody"])
    assert result.exit_code == 2
    assert result.output.startswith("error: --layers ['prosody']: Input should be 'mfcc_stats' or 'egemaps'")
    assert len(result.output.strip().splitlines()) == 1


def test_unknown_layer_of_the_model_exits_2_naming_it(config_file):
    result = CliRunner().invoke(cli, ["features", "ssl", "-c", str(config_file), "--layers", "layer_09"])
    assert result.exit_code == 2 and "layer_09" in result.output


def test_missing_config_file_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["features", "acoustic", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output


def test_features_then_run_with_a_float16_store_extracts_once(tmp_path):
    from stage1_5.data.synth import SynthConfig, synthesize

    data = synthesize(tmp_path / "data", SynthConfig(accents=3, speakers_per_accent=2, texts=4), progress=False)
    cfg = {
        "dataset": {"path": str(data)},
        "sources": {"backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False}},
        "probes": {"seeds": 1, "permutations": 0, "bootstrap": 0},
        "output": {"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache"), "feature_dtype": "float16"},
    }
    path = tmp_path / "f16.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert "(computed)" in _invoke("acoustic", "-c", str(path)).output
    run = CliRunner().invoke(cli, ["run", str(path), "--no-progress"], catch_exceptions=False)
    assert run.exit_code == 0, run.output
    assert "[features] acoustic: 24 utterances, from cache" in run.output
    (entry,) = (tmp_path / "cache" / "features" / "acoustic").iterdir()
    assert yaml.safe_load((entry / "meta.json").read_text())["key"]["dtype"] == "float16"
