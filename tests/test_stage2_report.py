"""The report's Stage 2 section and figures: what the guide's next step means for GO, conditional GO and NOGO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stage1_5.config import ExperimentConfig, Stage15Config
from stage1_5.decision import Level, decide
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.report import DatasetFacts, render_report
from stage1_5.report.stage2 import Stage2Facts, erasure_sentence, render_stage2_section
from stage1_5.report.stage2_figures import render_stage2_figures

BLOCKS = ["backbone:decoder_block_04", "backbone:decoder_block_08", "backbone:pre_vocoder"]
PATHS = {"decoder_block_04": "talker.model.layers.4", "decoder_block_08": "talker.model.layers.8", "pre_vocoder": "speech_tokenizer.model.decoder.pre_transformer"}
AXES = {"decoder_block_04": "talker", "decoder_block_08": "talker", "pre_vocoder": "frames"}
ERASURE = {
    "erase_accent_speaker_acc": 0.62, "erase_accent_speaker_acc_erased": 0.40, "erase_accent_speaker_chance": 0.25,
    "erase_accent_speaker_drop": 0.22, "erase_accent_speaker_drop_ci_low": 0.15, "erase_accent_speaker_drop_ci_high": 0.30,
    "erase_accent_speaker_loss": 0.59, "erase_accent_speaker_loss_ci_low": 0.41, "erase_accent_speaker_loss_ci_high": 0.77,
    "erase_accent_residual_f1": 0.17, "erase_speaker_accent_f1_base": 0.80, "erase_speaker_accent_f1": 0.71,
    "erase_speaker_accent_f1_ci_low": 0.60, "erase_speaker_accent_f1_ci_high": 0.81, "erase_speaker_accent_f1_drop": 0.09,
    "erase_speaker_accent_f1_drop_ci_low": 0.02, "erase_speaker_accent_f1_drop_ci_high": 0.16,
}  # fmt: skip


def metrics(best: str = "backbone:decoder_block_08", **best_overrides) -> pd.DataFrame:
    rows = [row(rep, accent_f1=0.3) for rep in BLOCKS if rep != best] + [row(best, **{"accent_f1": 0.9, **best_overrides})]
    rows += [row("ssl:layer_06", accent_f1=0.8), row("ecapa:embedding", accent_f1=0.6)]
    m = dummy_metrics(rows)
    backbone = m["source"] == "backbone"
    for column, value in ERASURE.items():
        m[column] = np.where(backbone, value, np.nan)
    return m


def facts(m: pd.DataFrame, decision) -> Stage2Facts:
    layers = {rep: {"layer": rep.split(":")[1], "module_path": PATHS[rep.split(":")[1]], "axis": AXES[rep.split(":")[1]], "C": 1.0} for rep in BLOCKS}
    best = decision.best_representation
    strongest = {**layers[best], "representation": best, "level": decision.levels[best].value}
    names = list(m["representation"])
    cka = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    cka.loc[best, "ssl:layer_06"] = cka.loc["ssl:layer_06", best] = 0.74
    cka.loc[best, "ecapa:embedding"] = cka.loc["ecapa:embedding", best] = 0.21
    summary = {
        "decision": decision.decision.value,
        "strongest": strongest,
        "recommended": strongest if decision.decision != Level.NOGO else None,
        "layers": layers,
        "files": {"directions": "directions.safetensors", "sidecar": "directions.json", "erasure": "erasure.csv", "cka": "cka.csv"},
        "erasure": {"accent_folds": 2, "fold_seeds": 2, "intervals": "cluster bootstrap over held-out speakers", "speaker_c": 1.0, "text_folds": 2},
        "cka": {"rows": 360, "speakers": 12, "speakers_per_accent": {"a": 4, "b": 4, "c": 4}},
        "notes": [],
    }
    return Stage2Facts(summary=summary, cka=cka)


def section(best: str = "backbone:decoder_block_08", **overrides) -> tuple[str, object]:
    m = metrics(best, **overrides)
    d = decide(m, ExperimentConfig())
    return "\n".join(render_stage2_section(m, d, facts(m, d), figures={"erasure": "e.png", "cka": "c.png"})), d


def test_go_recommends_lora_on_the_layer_at_its_module_path():
    text, d = section()
    assert d.decision == Level.GO
    assert "- **Recommended layer:** `backbone:decoder_block_08`, module `talker.model.layers.8` (talker block output" in text
    assert "**GO → prepare Stage 2 (LoRA) on `backbone:decoder_block_08`, module `talker.model.layers.8`.**" in text
    assert "adversarial" not in text


def test_conditional_go_recommends_adversarial_regularisation_and_live_leakage_monitoring():
    text, d = section(leak_excess_pp=10.0)  # between the GO and the conditional leakage margins
    assert d.decision == Level.CONDITIONAL
    assert "**Conditional GO → train with adversarial regularisation on `backbone:decoder_block_08`" in text
    assert "speaker-ID head on that module behind gradient reversal" in text and "`AccentMonitorCallback` every N steps" in text


def test_nogo_recommends_no_layer_and_says_what_not_to_do():
    text, d = section(accent_f1=0.2)
    assert d.decision == Level.NOGO
    assert "- **Recommended layer:** none (decision NOGO); the strongest backbone layer was" in text
    assert "**NOGO → do not start LoRA accent control on this backbone as it is.**" in text
    assert "LoRA) on" not in text


def test_a_codec_view_recommendation_also_names_the_best_talker_block():
    text, _ = section(best="backbone:pre_vocoder")
    assert "codec view of the reference audio" in text
    assert "the best talker block by accent F1 is `backbone:decoder_block_04`, module `talker.model.layers.4`" in text


def test_one_erasure_sentence_per_backbone_layer_and_none_for_references():
    text, _ = section()
    sentences = [line for line in text.splitlines() if line.startswith("- `") and "erasing accent costs" in line]
    assert [s.split("`")[1] for s in sentences] == ["decoder_block_04", "decoder_block_08", "pre_vocoder"]


def test_the_erasure_sentence_names_both_numbers_with_their_intervals():
    sentence = erasure_sentence({"layer": "decoder_block_08", **ERASURE})
    assert sentence == (
        "- `decoder_block_08`: erasing accent costs +22.0 pp [+15.0 pp, +30.0 pp] of within-accent speaker ID "
        "(0.62 → 0.40, chance 0.25, 59% [41%, 77%] of its excess over chance; the eraser leaves held-out accent F1 at 0.17); "
        "erasing within-accent speaker contrasts leaves accent F1 0.71 [0.60, 0.81] of 0.80 (drop 0.09 [0.02, 0.16])."
    )


def test_no_identification_above_chance_says_so_instead_of_a_share():
    sentence = erasure_sentence({"layer": "x", **ERASURE, "erase_accent_speaker_loss": float("nan")})
    assert "no identification reliably above chance to lose" in sentence and "%" not in sentence.split(";")[0]


def test_the_similarity_paragraph_names_its_rows_and_the_nearest_reference():
    text, _ = section()
    assert "Linear CKA on the 360 utterances of the 12 speakers held out in the first accent-erasure fold (a: 4, b: 4, c: 4)" in text
    assert "`backbone:decoder_block_08` is most alike the reference `ssl:layer_06` (CKA 0.74); against the speaker / acoustic baselines: `ecapa:embedding` 0.21." in text


def test_the_full_report_carries_the_section_only_when_given_one():
    m = metrics()
    d = decide(m, ExperimentConfig())
    common = dict(dataset=DatasetFacts(720, 24, 3, 30, 0.8), config=Stage15Config(), label_map=["a", "b", "c"], device="cpu", versions={})
    with_stage2 = render_report(m, d, stage2=facts(m, d), **common)
    assert "## Stage 2 handoff" in with_stage2 and with_stage2.index("## Decision") < with_stage2.index("## Stage 2 handoff")
    assert "## Stage 2 handoff" not in render_report(m, d, **common)


def test_stage2_figures_are_written_as_pngs(tmp_path):
    m = metrics()
    d = decide(m, ExperimentConfig())
    paths = render_stage2_figures(m, facts(m, d).cka, d, tmp_path, highlight=d.best_representation)
    assert set(paths) == {"erasure", "cka"}
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_no_similarity_matrix_draws_only_the_erasure_figure(tmp_path):
    m = metrics()
    d = decide(m, ExperimentConfig())
    assert set(render_stage2_figures(m, None, d, tmp_path)) == {"erasure"}


def test_stage2_tables_keep_user_names_as_text_in_a_spreadsheet_and_read_back_unchanged(tmp_path):
    import pandas as pd

    from stage1_5.stage2.analysis import CKA_FILE, ERASURE_FILE, Stage2Result, load_stage2, save_stage2

    names = ["=cmd|' /C calc'!A0:x", "backbone:decoder_block_02"]
    erasure = pd.DataFrame({"representation": names, "erase_accent_speaker_drop": [0.1, -0.2]})
    cka = pd.DataFrame([[1.0, 0.5], [0.5, 1.0]], index=names, columns=names)
    save_stage2(Stage2Result([], {}, erasure, cka, design={}), tmp_path)
    for written in (tmp_path / ERASURE_FILE, tmp_path / CKA_FILE):
        assert not any(line.startswith("=") or ",=" in line for line in written.read_text().splitlines()), written.name
    loaded = load_stage2(tmp_path)
    assert list(loaded.erasure["representation"]) == names
    assert list(loaded.cka.index) == names and list(loaded.cka.columns) == names
    assert loaded.erasure["erase_accent_speaker_drop"].tolist() == [0.1, -0.2]


def test_erasing_speaker_contrasts_that_raises_accent_f1_is_explained_in_its_sentence():
    rising = {"layer": "decoder_block_08", "erase_speaker_accent_f1_base": 0.60, "erase_speaker_accent_f1": 0.66, "erase_speaker_accent_f1_drop": -0.06}
    falling = {**rising, "erase_speaker_accent_f1": 0.50, "erase_speaker_accent_f1_drop": 0.10}
    assert "higher, not a bug" in erasure_sentence(rising)
    assert "not a bug" not in erasure_sentence(falling)
