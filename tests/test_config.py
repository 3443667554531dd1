"""Typed config: defaults, and one error naming the file and key for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.config import Stage15Config, load_config, load_yaml
from stage1_5.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["demo.yaml", "demo_go.yaml", "stage1_5.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "config" / name)
    assert cfg.sources.backbone.layers


def test_full_config_matches_the_design_thresholds_and_layers():
    cfg = load_config(REPO / "config" / "stage1_5.yaml")
    e = cfg.experiment
    assert (e.min_f1_go, e.min_f1_conditional, e.nogo_f1) == (0.55, 0.45, 0.40)
    assert (e.leakage_margin_pp, e.leakage_margin_conditional_pp, e.max_text_drop, e.alpha) == (7, 15, 0.10, 0.05)
    assert cfg.sources.backbone.checkpoint == "Qwen/Qwen3-TTS-12Hz-1.7B-Base"
    assert cfg.sources.backbone.layers == [
        "text_encoder_out", "decoder_block_02", "decoder_block_04", "decoder_block_08",
        "decoder_block_12", "decoder_block_16", "decoder_block_20", "pre_vocoder",
    ]


def test_an_empty_file_is_an_error_not_the_demo(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: the config file is empty"):
        load_config(write(tmp_path, "# nothing but a comment\n"))


def test_an_empty_file_exits_2_from_the_cli(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(write(tmp_path, ""))])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'c.yaml'}: the config file is empty; start from config/stage1_5.yaml (or config/demo.yaml for the demo)"
    ]


def test_relative_paths_resolve_against_the_config_files_folder(tmp_path, monkeypatch):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "models" / "talker").mkdir(parents=True)
    text = (
        "dataset: {path: data/set.zip, allow_symlinks_into: [../disk]}\n"
        "sources: {external: [feats.npz, /abs/f.npz], backbone: {checkpoint: models/talker}, ssl: {model: org/hub-name}}\n"
        "output: {dir: ../runs/x, cache_dir: cache}\n"
    )
    (folder / "c.yaml").write_text(text)
    monkeypatch.chdir(tmp_path / "experiments" / "models")  # anywhere else
    cfg = load_config(folder / "c.yaml")
    assert cfg.dataset.path == str(folder / "data" / "set.zip")
    assert cfg.dataset.allow_symlinks_into == [str(tmp_path / "disk")]
    assert cfg.sources.external == [str(folder / "feats.npz"), "/abs/f.npz"]
    assert cfg.sources.backbone.checkpoint == str(folder / "models" / "talker")  # a local folder beside the config
    assert cfg.sources.ssl.model == "org/hub-name"  # a hub name: no such folder, kept
    assert (cfg.output.dir, cfg.output.cache_dir) == (str(tmp_path / "runs" / "x"), str(folder / "cache"))


def test_the_demo_dataset_and_defaults_are_not_paths_of_the_file(tmp_path):
    cfg = load_config(write(tmp_path, "dataset: {path: demo}\n"))
    assert cfg.dataset.path == "demo" and cfg.output.dir == Stage15Config().output.dir


def test_unknown_key_names_file_and_dotted_key(tmp_path):
    path = write(tmp_path, "probes:\n  seedz: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: probes\.seedz: unknown key"):
        load_config(path)


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"sources\.backbone\.batch_size"):
        load_config(write(tmp_path, "sources:\n  backbone:\n    batch_size: many\n"))


def test_out_of_range_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"experiment\.alpha"):
        load_config(write(tmp_path, "experiment:\n  alpha: 1.5\n"))


def test_thresholds_must_be_ordered(tmp_path):
    with pytest.raises(ConfigError, match="nogo_f1 <= min_f1_conditional <= min_f1_go"):
        load_config(write(tmp_path, "experiment:\n  min_f1_go: 0.3\n"))


def test_invalid_yaml_and_missing_file_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_hash_changes_with_any_setting():
    a = Stage15Config()
    b = a.model_copy(update={"seed": 1})
    assert a.config_hash() != b.config_hash()
    assert a.config_hash() == Stage15Config().config_hash()


def test_config_show_prints_resolved_defaults(tmp_path):
    result = CliRunner().invoke(cli, ["config", "show", str(write(tmp_path, "seed: 7\n"))])
    assert result.exit_code == 0, result.output
    assert "seed: 7" in result.output and "min_f1_go: 0.55" in result.output


def test_config_show_bad_file_exits_2_with_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["config", "show", str(write(tmp_path, "foo: 1\n"))])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'c.yaml'}: foo: unknown key"]


def test_run_seed_is_the_default_of_every_section_seed(tmp_path):
    cfg = load_config(write(tmp_path, "seed: 7\n"))
    seeds = (cfg.probes.seed, cfg.sources.backbone.seed, cfg.sources.ssl.seed, cfg.sources.ecapa.seed)
    assert seeds == (7, 7, 7, 7)


def test_a_sections_own_seed_wins_over_the_run_seed(tmp_path):
    cfg = load_config(write(tmp_path, "seed: 7\nprobes:\n  seed: 2\nsources:\n  ssl:\n    seed: 3\n"))
    assert (cfg.probes.seed, cfg.sources.ssl.seed, cfg.sources.ecapa.seed) == (2, 3, 7)


def test_run_seed_reaches_sections_given_as_objects():
    from stage1_5.config import SourcesConfig, SSLConfig

    cfg = Stage15Config(seed=5, sources=SourcesConfig(ssl=SSLConfig(model="tiny-random")))
    assert (cfg.sources.ssl.seed, cfg.sources.ssl.model, cfg.probes.seed) == (5, "tiny-random", 5)


def test_run_seed_cannot_be_changed_after_the_sections_took_it():
    from pydantic import ValidationError

    cfg = Stage15Config(seed=5)
    with pytest.raises(ValidationError, match="frozen"):
        cfg.seed = 6
    assert cfg.probes.seed == 5


def test_a_key_given_twice_is_an_error_naming_the_key_and_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("probes:\n  seeds: 5\n  permutations: 100\n  seeds: 1\n")
    result = CliRunner().invoke(cli, ["config", "show", str(path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: duplicate key 'seeds' in lines 2 and 4 (the second would silently win; keep one)"
    ]


def test_a_yaml_merge_key_may_still_be_overridden_as_safe_load_allows():
    text = "base: &b {seeds: 5, permutations: 100}\nprobes:\n  <<: *b\n  seeds: 2\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["probes"] == {"seeds": 2, "permutations": 100}
