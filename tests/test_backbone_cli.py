"""`stage1_5 layers`: lists the aliases (and, on request, raw module paths) of a checkpoint."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from click.testing import CliRunner

from stage1_5.cli import cli

torch.set_num_threads(1)


def test_layers_lists_the_tiny_model_aliases_with_their_modules():
    result = CliRunner().invoke(cli, ["layers", "--checkpoint", "tiny-random"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = [line.split()[0] for line in lines if not line.startswith("#")]
    assert names == ["text_encoder_out", "decoder_block_00", "decoder_block_01", "decoder_block_02", "decoder_block_03", "pre_vocoder"]
    assert any("pre_vocoder" in line and "speech_tokenizer.model.decoder.pre_transformer" in line for line in lines)


def test_layers_modules_flag_adds_raw_module_paths():
    result = CliRunner().invoke(cli, ["layers", "--checkpoint", "tiny-random", "--modules"])
    assert result.exit_code == 0, result.output
    assert "talker.model.layers.3.mlp" in result.output.split()


def test_layers_with_a_missing_folder_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["layers", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "not found" in result.output and "Traceback" not in result.output


def test_layers_reads_the_named_backbone_of_a_backbones_list():
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "config" / "compare_demo.yaml"
    result = CliRunner().invoke(cli, ["layers", "-c", str(config), "--backbone", "csm"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# CSM: tiny-random") and "depth_decoder_out" in result.output
    missing = CliRunner().invoke(cli, ["layers", "-c", str(config), "--backbone", "nope"])
    assert missing.exit_code == 2 and "'nope' is not among the config's backbones: qwen, csm" in missing.output


def test_features_backbone_name_must_be_one_of_the_configs_backbones():
    from pathlib import Path

    config = Path(__file__).resolve().parents[1] / "config" / "compare_demo.yaml"
    result = CliRunner().invoke(cli, ["features", "backbone", "-c", str(config), "--name", "nope"])
    assert result.exit_code == 2 and "--name: 'nope' is not among the config's backbones: qwen, csm" in result.output
