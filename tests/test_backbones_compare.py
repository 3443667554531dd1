"""Several backbones in one run: settings, each backbone's own decision, the recommendation, the paired
F1 difference, the comparison table and figure, and config/compare_demo.yaml end to end (offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stage1_5.config import ExperimentConfig, Stage15Config, load_config
from stage1_5.decision import Level
from stage1_5.decision.backbones import decide_backbones, paired_f1_difference
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row
from stage1_5.errors import ConfigError
from stage1_5.sources import all_sources, configured_backbones, deciding_label, decides

ROOT = Path(__file__).resolve().parents[1]
TWO = {"sources": {"backbones": [{"name": "qwen17", "checkpoint": "tiny-random"}, {"name": "csm1b", "checkpoint": "tiny-random", "family": "csm"}]}}


# ------------------------------------------------------------------------------------ settings


def test_sources_backbone_is_a_one_item_list_named_backbone():
    assert [(b.name, b.checkpoint) for b in Stage15Config().sources.backbone_list()] == [("backbone", "Qwen/Qwen3-TTS-12Hz-1.7B-Base")]


def test_listed_backbones_become_deciding_sources_for_the_run_only():
    cfg = Stage15Config.model_validate(TWO)
    with configured_backbones(cfg) as names:
        assert names == ["qwen17", "csm1b"]
        assert [s.name for s in all_sources()][:2] == ["qwen17", "csm1b"] and decides("csm1b") and not decides("backbone")
        assert deciding_label() == "qwen17 or csm1b"
        assert [s.name for s in all_sources() if s.enabled(cfg)][:2] == ["qwen17", "csm1b"]
    assert not decides("csm1b") and decides("backbone")


@pytest.mark.parametrize(
    "sources, message",
    [
        ({"backbone": {"checkpoint": "x"}, "backbones": [{"name": "a"}]}, "set either backbone or backbones, not both"),
        ({"backbones": [{"name": "a"}, {"name": "a"}]}, "name 'a' is used twice"),
        ({"backbones": [{"name": "ssl"}]}, "name 'ssl' is a reference source's"),
        ({"backbones": [{"name": "Qwen-1"}]}, "should match pattern"),
    ],
)
def test_a_bad_backbones_list_is_one_config_error(tmp_path, sources, message):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"sources": sources}))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_each_listed_backbone_takes_the_run_seed_unless_it_sets_its_own():
    cfg = Stage15Config.model_validate({"seed": 7, "sources": {"backbones": [{"name": "a"}, {"name": "b", "seed": 2}]}})
    assert [b.seed for b in cfg.sources.backbone_list()] == [7, 2]


# ---------------------------------------------------------------------------------- decisions


def _metrics(qwen_f1: float, csm_f1: float, csm_low: float | None = None) -> pd.DataFrame:
    rows = [
        dummy_metrics_row("qwen17:decoder_block_04", accent_f1=qwen_f1),
        dummy_metrics_row("qwen17:decoder_block_08", accent_f1=qwen_f1 - 0.05),
        dummy_metrics_row("csm1b:decoder_block_04", accent_f1=csm_f1, **({"accent_f1_ci_low": csm_low} if csm_low is not None else {})),
        dummy_metrics_row("ssl:layer_06", accent_f1=0.9),
    ]
    return dummy_metrics(rows)


def test_each_backbone_decides_on_its_own_layers_and_the_references_never_decide():
    cfg = Stage15Config.model_validate(TWO)
    with configured_backbones(cfg):
        comparison = decide_backbones(_metrics(0.72, 0.42), ExperimentConfig(), ["qwen17", "csm1b"])
    assert comparison.decisions["qwen17"].decision is Level.GO
    assert comparison.decisions["csm1b"].decision is Level.NOGO
    assert comparison.decisions["csm1b"].best_representation == "csm1b:decoder_block_04"
    assert comparison.recommended == "qwen17" and comparison.ranking == ("qwen17", "csm1b")
    headline = comparison.decision
    assert (headline.decision, headline.best_representation) == (Level.GO, "qwen17:decoder_block_04")
    assert set(headline.assessments) == set(_metrics(0.72, 0.42)["representation"])  # every layer shown
    assert headline.roles["ssl:layer_06"] == "reference"
    assert "csm1b" in comparison.decisions["csm1b"].rationale and "qwen17" not in comparison.decisions["csm1b"].rationale


def test_at_the_same_level_the_higher_f1_lower_bound_is_recommended():
    cfg = Stage15Config.model_validate(TWO)
    with configured_backbones(cfg):
        comparison = decide_backbones(_metrics(0.72, 0.70, csm_low=0.68), ExperimentConfig(), ["qwen17", "csm1b"])
    assert comparison.decisions["csm1b"].decision is comparison.decisions["qwen17"].decision is Level.GO
    assert comparison.recommended == "csm1b"
    assert comparison.to_json()["ranking"] == ["csm1b", "qwen17"]


def _predictions(n_speakers: int, right: dict[str, float], seed: int = 0) -> tuple[pd.DataFrame, dict[str, str]]:
    """Speaker-CV predictions of two representations: each is right on a fraction of utterances."""
    rng = np.random.default_rng(seed)
    accents = ["a", "b", "c"]
    rows, speakers = [], {}
    for s in range(n_speakers):
        accent = accents[s % 3]
        for u in range(6):
            utt = f"s{s}_u{u}"
            speakers[utt] = f"s{s}"
            for rep, p in right.items():
                guess = accent if rng.random() < p else accents[(accents.index(accent) + 1) % 3]
                rows.append({"utt_id": utt, "representation": rep, "seed": 0, "fold": 0, "text_fold": -1, "split": "speaker_cv", "y_true": accent, "y_pred": guess})
    return pd.DataFrame(rows), speakers


def test_the_paired_difference_of_identical_predictions_is_exactly_zero():
    preds, speakers = _predictions(12, {"x:l1": 0.7})
    twin = preds.assign(representation="y:l1")
    diff = paired_f1_difference(pd.concat([preds, twin]), speakers, ("x", "x:l1"), ("y", "y:l1"), draws=200)
    assert (diff.difference, diff.ci_low, diff.ci_high) == (0.0, 0.0, 0.0)


def test_a_clearly_better_backbone_has_a_difference_interval_above_zero():
    preds, speakers = _predictions(24, {"x:l1": 0.95, "y:l1": 0.4})
    diff = paired_f1_difference(preds, speakers, ("x", "x:l1"), ("y", "y:l1"), draws=300)
    assert diff.difference > 0.3 and diff.ci_low > 0 and diff.ci_low <= diff.difference <= diff.ci_high


# ------------------------------------------------------------------------------- end to end


def test_compare_demo_runs_offline_and_writes_both_decisions_the_table_and_the_figure(tmp_path):
    from stage1_5.pipeline import run_experiment

    cfg = load_config(ROOT / "config" / "compare_demo.yaml")
    cfg = cfg.model_copy(
        update={
            "probes": cfg.probes.model_copy(update={"seeds": 1, "permutations": 5, "bootstrap": 5}),
            "stage2": cfg.stage2.model_copy(update={"enabled": False}),
            "output": cfg.output.model_copy(update={"dir": str(tmp_path / "run"), "cache_dir": str(tmp_path / "cache")}),
        }
    )
    result = run_experiment(cfg, progress=False, echo=lambda _m: None)
    decision = json.loads(result.paths.decision_json.read_text())
    backbones = decision["backbones"]
    assert set(backbones["decisions"]) == {"qwen", "csm"} and backbones["recommended"] in ("qwen", "csm")
    assert decision["best_representation"] == backbones["decisions"][backbones["recommended"]]["best_representation"]
    assert backbones["difference"]["first"] == backbones["recommended"]
    assert any(rep.startswith("csm:decoder_block_") for rep in decision["levels"])
    report = result.paths.report_md.read_text()
    assert "## Backbones compared" in report and "| csm" in report and "| qwen" in report
    assert (result.paths.analysis_dir / "backbones_f1_by_depth.png").stat().st_size > 10_000


def test_extraction_holds_one_backbone_at_a_time_and_keys_each_by_its_checkpoint(tmp_path, monkeypatch):
    import gc
    import weakref

    from stage1_5.backbone import huggingface
    from stage1_5.features.extract import extract_features
    from stage1_5.features.testing import FakeDataset, write_tone_utterances

    dataset = FakeDataset(write_tone_utterances(tmp_path / "wav", 3))
    layers = {"layers": ["decoder_block_00"], "dtype": "float32", "num_workers": 0}
    cfg = Stage15Config.model_validate({
        "sources": {
            "backbones": [{"name": "qwen", "checkpoint": "tiny-random", **layers}, {"name": "csm", "checkpoint": "tiny-random", "family": "csm", **layers}],
            "ssl": {"enabled": False}, "ecapa": {"enabled": False}, "acoustic": {"enabled": False},
        },
        "output": {"cache_dir": str(tmp_path / "cache")},
    })  # fmt: skip
    alive_at_load: list[int] = []
    models: list[weakref.ref] = []
    original = huggingface.HuggingFaceBackboneAdapter.__init__

    def tracking_init(self, *args, **kwargs):
        gc.collect()
        alive_at_load.append(sum(ref() is not None for ref in models))
        original(self, *args, **kwargs)
        models.append(weakref.ref(self.model))

    monkeypatch.setattr(huggingface.HuggingFaceBackboneAdapter, "__init__", tracking_init)
    with configured_backbones(cfg):
        features = extract_features(cfg, dataset, progress=False)
    assert sorted(features.vectors) == ["csm:decoder_block_00", "qwen:decoder_block_00"]
    assert alive_at_load == [0, 0]  # the first backbone was let go before the second loaded
    keys = [json.loads(p.read_text())["key"] for p in (tmp_path / "cache" / "features").rglob("meta.json")]
    assert {(k["source"], k["config"]["checkpoint"], k["config"]["family"]) for k in keys} == {("qwen", "tiny-random", None), ("csm", "tiny-random", "csm")}


def test_configured_backbones_nest_over_the_same_config():
    cfg = Stage15Config.model_validate(TWO)
    with configured_backbones(cfg), configured_backbones(cfg) as names:  # the gate session's, then run_experiment's
        assert names == ["qwen17", "csm1b"] and decides("csm1b")
    assert not decides("csm1b") and decides("backbone")
