"""`stage1_5 preflight`: the plan on a good config, one line and exit 2 on a bad one (before any model
loads), and the arithmetic of the projections."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import yaml
from click.testing import CliRunner

from stage1_5.backbone import synthetic
from stage1_5.cli import cli
from stage1_5.config import ProbeConfig
from stage1_5.data.testing import write_dataset
from stage1_5.preflight import PreflightPlan, ProbeProjection, SourcePlan

torch.set_num_threads(1)


def write_config(tmp_path, backbone: dict | None = None, dataset: str | None = None, acoustic: bool = True) -> str:
    """A valid 2 accents x 2 speakers x 2 texts set (0.5 s tones), the tiny backbone and MFCC statistics."""
    cfg = {
        "dataset": {"path": dataset or str(write_dataset(tmp_path / "data"))},
        "sources": {
            "backbone": {"checkpoint": "tiny-random", "layers": ["decoder_block_01"], "dtype": "float32", "batch_size": 2, **(backbone or {})},
            "ssl": {"enabled": False},
            "ecapa": {"enabled": False},
            "acoustic": {"enabled": acoustic},
        },
        "probes": {"device": "cpu", "permutations": 100},
        "output": {"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def no_model_builds(monkeypatch):
    """Fail the test if the tiny backbone is built at all."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the options were checked")

    monkeypatch.setattr(synthetic, "build_tiny_qwen3_tts", refuse)


def test_preflight_prints_the_plan_in_each_sources_words_and_exits_0(tmp_path):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "no problem found" in out and "8 utterances, 4 speakers, 2 accents" in out
    assert "device      cpu" in out and "dtype       float32 (set in the config); speech tokenizer float32" in out
    assert "attention   sdpa" in out
    for line in ("throughput  backbone", "throughput  acoustic", "extraction  ~", "probes      ~", "store       "):
        assert line in out, line
    assert "[preflight] backbone: loading 'tiny-random'" in out
    assert "[preflight] acoustic: no model to load" in out and "acoustic: loading" not in out  # no model, no "loading"
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache" / "features").exists()


def test_a_missing_checkpoint_folder_fails_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path, {"checkpoint": str(tmp_path / "qwen")})])
    assert result.exit_code == 2
    assert result.output.count("error:") == 1 and "sources.backbone.checkpoint: local folder" in result.output


def test_an_unknown_language_fails_before_any_model_is_built(tmp_path, no_model_builds):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path, {"language": "klingon"})])
    assert result.exit_code == 2, result.output
    assert "sources.backbone.language: 'klingon' is not supported by this checkpoint; valid: auto, chinese, english" in result.output


def test_a_layer_the_checkpoint_lacks_fails_before_any_model_is_built(tmp_path, no_model_builds):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path, {"layers": ["decoder_block_08"]})])
    assert result.exit_code == 2, result.output
    assert "sources.backbone.layers: 'decoder_block_08' does not exist: 'tiny-random' has 4 decoder blocks" in result.output


def test_a_bad_dataset_fails_before_any_model_is_built(tmp_path, no_model_builds):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path, dataset=str(tmp_path / "nowhere.zip"))])
    assert result.exit_code == 2 and result.output.count("error:") == 1 and "nowhere.zip" in result.output


class _WorkClock:
    """A clock that moves only when the (fake) probe stage works: 1 s per call plus 0.1 s per permutation."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def evaluate(self, features, meta, config, progress=False):
        assert len(features) == 1 and next(iter(features.values())).shape[0] == len(meta)
        self.now += 1.0 + 0.1 * config.permutations


def test_probe_projection_times_each_source_and_width_once_and_counts_the_rest(monkeypatch):
    import numpy as np
    import pandas as pd

    from stage1_5 import preflight, probes
    from stage1_5.config import Stage15Config

    clock = _WorkClock()
    monkeypatch.setattr(preflight, "time", clock)
    monkeypatch.setattr(probes, "evaluate_representations", clock.evaluate)
    samples = {"backbone:a": np.ones((4, 8)), "backbone:b": np.ones((4, 8)), "ssl:x": np.ones((4, 8)), "ssl:y": np.ones((4, 3))}
    cfg = Stage15Config(probes=ProbeConfig(permutations=199))  # alpha 0.05: first look after 4 * 10 permutations
    plan = preflight.project_probe_seconds(pd.DataFrame(index=range(20)), samples, cfg)
    assert (plan.first_look, plan.permutations) == (40, 199)
    assert plan.settled_s == pytest.approx(4 * (1.0 + 0.1 * 40))  # 3 groups timed, backbone counted twice
    assert plan.full_s == pytest.approx(4 * (1.0 + 0.1 * 199))
    assert "if every family stops after 40 permutations" in plan.text(4, "cpu") and "runs all 199" in plan.text(4, "cpu")
    unstopped = preflight.project_probe_seconds(pd.DataFrame(index=range(20)), samples, cfg.model_copy(update={"probes": ProbeConfig(permutations=199, sequential=False)}))
    assert unstopped.settled_s == pytest.approx(unstopped.full_s) and "if every family" not in unstopped.text(4, "cpu")


def _plan(**changes) -> PreflightPlan:
    source = SourcePlan("backbone", {"backbone:a": 1024, "backbone:b": 1024}, 8, 32.0, 2.0, 5.0, 2**30, "cuda")
    fields = dict(
        config_name="x.yaml", n_utterances=720, n_speakers=24, n_accents=3, audio_hours=1.0, dataset_warnings=[], backbones={},
        sources=[source], external_dims={}, probe_device="cuda", probes=ProbeProjection(60.0, 60.0, 0, 0), feature_dtype="float16", cache_dir="cache",
    )
    return PreflightPlan(**{**fields, **changes})


def test_plan_projects_extraction_from_the_measured_throughput_and_the_model_load():
    plan = _plan()  # 16 audio-s/s measured, one hour of audio, 5 s of load and warm-up on no audio
    assert plan.extraction_seconds == pytest.approx(5 + 3600 / 16)
    assert any(line.startswith("extraction  ~3m50s") for line in plan.lines())
    warm = SourcePlan("backbone", {"backbone:a": 1024}, 8, 32.0, 2.0, 5.0, 2**30, "cuda", warmup_audio_seconds=16.0)
    assert warm.model_load_s == pytest.approx(4.0)  # the warm-up's 16 audio-s take 1 s at the measured rate


def test_plan_sizes_the_feature_store_from_the_dims_and_the_feature_dtype():
    assert _plan().feature_store_bytes == 720 * 2048 * 2
    assert _plan(feature_dtype="float32").feature_store_bytes == 720 * 2048 * 4


def test_preflight_words_the_warm_up_after_what_the_source_loads():
    from stage1_5.config import Stage15Config
    from stage1_5.preflight import _loading

    cfg = Stage15Config()
    assert _loading("backbone", cfg) == "loading 'Qwen/Qwen3-TTS-12Hz-1.7B-Base' and running the longest batch"
    assert _loading("ge2e", cfg).startswith("loading its model")  # weights ship in a wheel: no option names them
    for source in ("acoustic", "planted"):
        assert _loading(source, cfg).startswith("no model to load"), source


def test_a_source_that_reads_no_audio_is_projected_by_utterances():
    planted = SourcePlan("planted", {"planted:a": 16}, 64, 0.0, 0.5, 0.75, 2**20, "rss", warmup_audio_seconds=0.0, warmup_utterances=64)
    plan = _plan(sources=[planted])  # 720 utterances at 128 utt/s, 0.25 s of load beyond the warm-up batch's work
    assert planted.model_load_s == pytest.approx(0.25)
    assert plan.extraction_seconds == pytest.approx(0.25 + 720 / 128)
    assert "= 128 utt/s (no audio read)" in "\n".join(plan.lines())


def test_plan_prints_the_fold_design_and_each_torchrun_rank_s_share_of_the_probes():
    design = "8 outer folds holding out one speaker of every accent (speaker_per_accent); speaker-ID context probe on all 24 speakers"
    lines = _plan(probe_design=design, probe_rank_shares=(2, 1)).lines()
    assert any(design in line for line in lines)
    assert any("2 ranks share the representations (rank 0: 2, rank 1: 1)" in line for line in lines)
    assert not any("ranks share" in line for line in _plan(probe_rank_shares=(3,)).lines())


def test_preflight_names_the_outer_folds_the_probes_will_use(tmp_path):
    result = CliRunner().invoke(cli, ["preflight", write_config(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "outer folds holding out one speaker of every accent" in result.output


def test_plan_summary_lists_every_listed_backbone_s_check():
    from stage1_5.backbone.checkpoint import check_backbone
    from stage1_5.config import NamedBackboneConfig

    listed = [NamedBackboneConfig(name="qwen17", checkpoint="tiny-random"), NamedBackboneConfig(name="csm1b", checkpoint="tiny-random", family="csm")]
    lines = _plan(backbones={b.name: check_backbone(b, layers=False) for b in listed}).lines()
    summaries = [line for line in lines if line.startswith("backbone    ")]
    assert [line.split()[1] for line in summaries] == ["qwen17:", "csm1b:"]
    assert "CSM" in summaries[1] and sum(line.startswith("dtype       csm1b: ") for line in lines) == 1
