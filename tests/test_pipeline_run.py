"""`stage1_5 run` end to end on procedural synthetic sets whose true answer is known.

The planted case is built once (its features and probe results land in a shared content-addressed
cache); every test that runs it again writes to its own run folder, so no test sees another's run.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.config import load_config
from stage1_5.data.synth import SynthConfig, synthesize
from stage1_5.pipeline import run_experiment
from stage1_5.stage2 import load_directions

import numpy as np
import pandas as pd

from stage1_5.data.testing import write_dataset
from stage1_5.probes.planted import planted_dataset

FAST_PROBES = {"seeds": 1, "permutations": 30, "bootstrap": 100}


def write_config(root: Path, data_dir: Path, sources: dict, minima: int = 4) -> Path:
    cfg = {
        "name": "planted",
        "dataset": {"path": str(data_dir), "min_accents": 3, "min_speakers_per_accent": minima, "min_texts_per_speaker": 6},
        "sources": sources,
        "probes": FAST_PROBES,
        "output": {"dir": str(root / "run"), "cache_dir": str(root / "cache")},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def quiet_run(config_path: Path, **kwargs):
    return run_experiment(load_config(config_path), progress=False, echo=lambda _m: None, **kwargs)


def procedural_run(root: Path, strength: float, layers: list[str]):
    """Real audio, real extraction: the tiny random Qwen3-TTS backbone and MFCC statistics."""
    data = synthesize(root / "data", SynthConfig(accents=3, speakers_per_accent=4, texts=6, strength=strength, seed=1), progress=False)
    sources = {
        "backbone": {"checkpoint": "tiny-random", "layers": layers, "dtype": "float32", "batch_size": 8},
        "ssl": {"enabled": False},
        "ecapa": {"enabled": False},
        "acoustic": {"features": ["mfcc_stats"]},
    }
    config_path = write_config(root, data, sources)
    return config_path, quiet_run(config_path)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Backbone features that carry a clean, text-independent accent code (user-supplied .npz)."""
    root = tmp_path_factory.mktemp("planted")
    data = planted_dataset(n_accents=3, speakers_per_accent=4, n_texts=6, dim=16, accent=3.0, speaker=0.5, random_state=0)
    rows = [
        {"utt_id": r.utt_id, "speaker": r.speaker, "accent": r.accent, "text_id": r.text_id, "rel_path": f"wav/{r.speaker}/{r.utt_id}.wav"}
        for r in data.meta.itertuples()
    ]
    write_dataset(root / "data", rows, audio=False)
    vectors = next(iter(data.features.values()))
    noise = np.random.default_rng(0).normal(size=vectors.shape).astype(np.float32)
    np.savez(root / "features.npz", utt_id=data.meta.utt_id.to_numpy(str), **{"backbone:decoder_block_08": vectors, "backbone:decoder_block_00": noise})
    cfg_path = write_config(root, root / "data", {"backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False}, "acoustic": {"enabled": False}, "external": [str(root / "features.npz")]})
    text = yaml.safe_load(cfg_path.read_text())
    text["dataset"]["audio_required"] = False
    cfg_path.write_text(yaml.safe_dump(text))
    return cfg_path, quiet_run(cfg_path)


def test_strong_accent_in_backbone_features_reaches_go(planted):
    _, result = planted
    assert result.decision.decision == "GO", result.decision.rationale
    assert result.decision.best_representation == "backbone:decoder_block_08"
    assert "decoder_block_08" in result.decision.rationale and "F1=" in result.decision.rationale


def test_a_random_weights_backbone_is_diagnosed_as_such_with_the_references_that_see_the_accent(tmp_path):
    # MFCC statistics see the planted accent; a randomly initialised backbone says nothing either way.
    _, result = procedural_run(tmp_path, strength=3.0, layers=["decoder_block_03"])
    assert result.decision.decision == "NOGO"
    assert result.decision.diagnosis == "random_weights"
    assert "acoustic:mfcc_stats" in result.decision.diagnosis_text


def test_absent_accent_with_random_weights_names_no_reference(tmp_path):
    _, result = procedural_run(tmp_path, strength=0.0, layers=["decoder_block_03"])
    assert result.decision.decision == "NOGO"
    assert result.decision.diagnosis == "random_weights"
    assert "references do see" not in result.decision.diagnosis_text


def test_run_writes_report_analysis_config_and_bundle(planted):
    _, result = planted
    paths = result.paths
    analysis = {p.name for p in paths.analysis_dir.iterdir()}
    assert {"metrics.csv", "predictions.csv", "decision.json", "manifest.jsonl"} <= analysis
    assert len([n for n in analysis if n.endswith(".png")]) == 4
    decision = json.loads(paths.decision_json.read_text())
    assert {"decision", "best_representation", "rationale", "diagnosis", "levels", "thresholds", "scientific"} <= set(decision)
    assert decision["scientific"] is True  # real (user) features, dataset meets the lowered minima
    report = paths.report_md.read_text()
    assert "## Decision" in report and "- **Decision:** " in report
    with zipfile.ZipFile(paths.bundle) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        assert tops == {"report", "artifacts", "config"}
        assert "report/stage1_5_report.md" in zf.namelist()
        assert "artifacts/analysis/metrics.csv" in zf.namelist()
        page = zf.read("report/stage1_5_report.html").decode()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) >= 4 and all(src.startswith("data:image/png;base64,") for src in srcs)  # self-contained: every figure embedded


def test_run_writes_the_stage2_handoff_into_metrics_report_and_bundle(planted):
    _, result = planted
    paths = result.paths
    written = {p.name for p in paths.stage2_dir.iterdir()}
    assert {"directions.safetensors", "directions.json", "erasure.csv", "cka.csv", "stage2.json", "erasure.png", "cka.png"} <= written
    metrics = pd.read_csv(paths.analysis_dir / "metrics.csv").set_index("representation")
    assert metrics.loc["backbone:decoder_block_08", "erase_speaker_accent_f1"] > 0.8  # a clean planted accent survives
    assert np.isnan(metrics.loc["backbone:decoder_block_00", "erase_accent_speaker_loss"])  # noise: no speaker ID to lose
    report = paths.report_md.read_text()
    assert "**GO → prepare Stage 2 (LoRA) on `backbone:decoder_block_08`, module `talker.model.layers.8`.**" in report
    assert "![LEACE erasure" in report and "(../artifacts/stage2/erasure.png)" in report
    with zipfile.ZipFile(paths.bundle) as zf:
        assert {"artifacts/stage2/directions.safetensors", "artifacts/stage2/stage2.json"} <= set(zf.namelist())
    directions = load_directions(paths.root)
    assert directions["decoder_block_08"].module_path == "talker.model.layers.8"
    assert directions.meta["origins"]["backbone:decoder_block_08"] == "external" and directions.meta["pooling"] is None


def test_a_run_into_a_new_folder_takes_stage2_from_the_cache(planted, tmp_path, monkeypatch):
    config_path, first = planted

    def recompute(*args, **kwargs):
        raise AssertionError("stage2 recomputed although the cache holds it")

    monkeypatch.setattr("stage1_5.stage2.compute_stage2", recompute)
    again = quiet_run(config_path, out_dir=tmp_path / "run")
    erasure = "artifacts/stage2/erasure.csv"
    assert (again.paths.root / erasure).read_bytes() == (first.paths.root / erasure).read_bytes()


def test_disabling_stage2_removes_its_folder_columns_and_report_section(planted, tmp_path):
    config_path, _ = planted
    quiet_run(config_path, out_dir=tmp_path / "run")
    cfg = load_config(config_path)
    cfg = cfg.model_copy(update={"stage2": cfg.stage2.model_copy(update={"enabled": False})})
    result = run_experiment(cfg, out_dir=tmp_path / "run", progress=False, echo=lambda _m: None)
    assert result.skipped == ["dataset", "features", "probes", "decision"]
    assert not result.paths.stage2_dir.exists()
    assert not any(c.startswith("erase_") for c in pd.read_csv(result.paths.analysis_dir / "metrics.csv").columns)
    assert "## Stage 2 handoff" not in result.paths.report_md.read_text()
    with zipfile.ZipFile(result.paths.bundle) as zf:
        assert not any(name.startswith("artifacts/stage2/") for name in zf.namelist())


def test_rerun_skips_every_finished_stage(planted, tmp_path):
    config_path, _ = planted
    first = quiet_run(config_path, out_dir=tmp_path / "run")
    again = quiet_run(config_path, out_dir=tmp_path / "run")
    assert again.skipped == ["dataset", "features", "probes", "decision", "stage2", "report", "bundle"]
    assert again.decision.decision == first.decision.decision


def test_force_redoes_the_stage_and_those_after_it(planted, tmp_path):
    config_path, _ = planted
    quiet_run(config_path, out_dir=tmp_path / "run")
    result = quiet_run(config_path, out_dir=tmp_path / "run", force="decision")
    assert result.skipped == ["dataset", "features", "probes"]
    assert list(result.stage_times) == ["decision", "stage2", "report", "bundle"]


def test_changed_threshold_reruns_decision_but_not_probes(planted, tmp_path):
    config_path, first = planted
    quiet_run(config_path, out_dir=tmp_path / "run")
    cfg = load_config(config_path)
    cfg = cfg.model_copy(update={"experiment": cfg.experiment.model_copy(update={"min_f1_go": 0.999, "min_f1_conditional": 0.998})})
    result = run_experiment(cfg, out_dir=tmp_path / "run", progress=False, echo=lambda _m: None)
    assert result.skipped == ["dataset", "features", "probes"]
    assert result.decision.thresholds != first.decision.thresholds  # the decision applied the new ones
    resolved = yaml.safe_load((result.paths.config_dir / "stage1_5.resolved.yaml").read_text())
    assert resolved["experiment"]["min_f1_go"] == 0.999  # the bundle's config is the one that made this report


def test_changed_alpha_reruns_probes_because_the_sequential_stop_depends_on_it(planted, tmp_path):
    config_path, _ = planted
    quiet_run(config_path, out_dir=tmp_path / "run")
    cfg = load_config(config_path)
    # 30 permutations cannot reach p < 0.001: significance fails at both levels, and the design says so
    cfg = cfg.model_copy(update={"experiment": cfg.experiment.model_copy(update={"alpha": 0.001})})
    result = run_experiment(cfg, out_dir=tmp_path / "run", progress=False, echo=lambda _m: None)
    assert result.skipped == ["dataset", "features"]
    assert result.decision.decision == "NOGO"
    assert result.decision.diagnosis == "significance_unreachable"
    assert "permutations" in result.decision.diagnosis_text


def test_cli_prints_decision_and_exits_0(planted, tmp_path):
    config_path, result = planted
    out = CliRunner().invoke(cli, ["run", str(config_path), "-o", str(tmp_path / "run"), "--no-progress"])
    assert out.exit_code == 0, out.output
    assert f"Decision: {result.decision.decision.value}" in out.output
    assert "Wall time:" in out.output


def test_cli_unknown_config_key_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("probes:\n  permutation: 3\n")
    out = CliRunner().invoke(cli, ["run", str(bad)])
    assert out.exit_code == 2
    assert "probes.permutation: unknown key" in out.output


def test_cli_rerun_that_skips_everything_prints_no_empty_stage_list(planted, tmp_path):
    config_path, _ = planted
    args = ["run", str(config_path), "-o", str(tmp_path / "run"), "--no-progress"]
    CliRunner().invoke(cli, args)
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    wall = next(line for line in again.output.splitlines() if line.startswith("Wall time:"))
    assert "[" not in wall and wall.endswith("(skipped, up to date: dataset, features, probes, decision, stage2, report, bundle)")
