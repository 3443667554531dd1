"""report.language: the report, its figures' words and the run's closing summary in English or Brazilian
Portuguese, from one message catalogue (stage1_5.report.i18n)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from click.testing import CliRunner

from stage1_5.cli import cli
from stage1_5.cli.run_cmd import closing_summary
from stage1_5.config import ExperimentConfig, Stage15Config, load_config
from stage1_5.decision import Diagnosis, Level, RunFacts, decide
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.errors import ConfigError
from stage1_5.report import DatasetFacts, render_report
from stage1_5.report.html import render_html
from stage1_5.data.recording import STATISTICS
from stage1_5.report.i18n import CATALOGUE, EN, LANGUAGES, PT_BR, PT_BR_DECISION, PT_BR_RECORDING, placeholders, text
from stage1_5.report.sentences import ABOVE, FAILED_OP, PASSED_OP, diagnosis_sentence, rationale
from stage1_5.report.stage2 import Stage2Facts

DATA = Path(__file__).resolve().parent / "data" / "report_figures"
DEMOS = sorted(p.name for p in DATA.iterdir() if p.is_dir())
FACTS = DatasetFacts(
    n_utterances=720, n_speakers=24, n_accents=3, n_texts=30, total_hours=0.8,
    speakers_per_accent={"a": 8, "b": 8, "c": 8}, meets_minima=True, content_hash="d5e1f00",
)  # fmt: skip
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+")


def config(lang: str) -> Stage15Config:
    return Stage15Config.model_validate({"report": {"language": lang}})


def demo_report(demo: str, lang: str, **facts) -> str:
    """The demo's report (metrics, CKA and Stage 2 section from tests/data/report_figures/<demo>) in `lang`."""
    folder = DATA / demo
    metrics = pd.read_csv(folder / "metrics.csv")
    decision = decide(metrics, ExperimentConfig(), facts=RunFacts(**facts))
    cka = pd.read_csv(folder / "cka.csv", index_col=0)
    best = decision.best_representation
    summary = {
        "decision": decision.decision.value,
        "strongest": {"representation": best, "module_path": "talker.model.layers.1", "axis": "talker", "level": decision.levels[best].value},
        "layers": {best: {"layer": best.split(":")[1], "module_path": "talker.model.layers.1", "axis": "talker", "C": 1.0}},
        "files": {"directions": "directions.safetensors", "sidecar": "directions.json"},
        "erasure": {"accent_folds": 2, "fold_seeds": 2, "intervals": "cluster bootstrap", "speaker_c": 1.0, "text_folds": 2},
        "cka": {"rows": 96, "speakers": 12, "speakers_per_accent": {"a": 4, "b": 4, "c": 4}},
        "notes": [],
    }  # fmt: skip
    summary["recommended"] = summary["strongest"] if decision.decision != Level.NOGO else None
    return render_report(
        metrics, decision, dataset=FACTS, config=config(lang), label_map=["a", "b", "c"], device="cpu",
        versions={"python": "3.11"}, stage2=Stage2Facts(summary=summary, cka=cka), stage2_figures={"erasure": "e.png", "cka": "c.png"},
    )  # fmt: skip


def headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("#")]


# --------------------------------------------------------------------------------------------- catalogue


def test_every_key_exists_in_every_language():
    assert set(CATALOGUE) == set(LANGUAGES) == {"en", "pt-BR"}
    assert set(EN) == set(PT_BR), f"only English: {sorted(set(EN) - set(PT_BR))}; only pt-BR: {sorted(set(PT_BR) - set(EN))}"


def test_every_translation_has_the_placeholders_of_the_english_template():
    wrong = {key: (placeholders(EN[key]), placeholders(PT_BR[key])) for key in EN if placeholders(EN[key]) != placeholders(PT_BR[key])}
    assert not wrong


def test_the_composed_pt_br_sentences_cover_every_diagnosis_and_gate():
    for diagnosis in Diagnosis:
        assert f"diagnosis.{diagnosis.value}" in PT_BR_DECISION
    for metric in ("accent_f1", "leakage", "text_drop", "p_value"):
        assert f"metric.{metric}" in PT_BR_DECISION
    assert {f"gate.{gate}" for gate in ABOVE.values()} <= set(PT_BR_DECISION)
    assert set(PASSED_OP) == set(FAILED_OP)
    assert set(PT_BR_RECORDING) == set(STATISTICS)


def test_a_missing_placeholder_is_an_error_not_a_silent_blank():
    with pytest.raises(KeyError):
        text("decision.best", "pt-BR")


# --------------------------------------------------------------------------------------------- config


def test_the_report_language_defaults_to_english_and_config_show_prints_it(tmp_path):
    assert Stage15Config().report.language == "en"
    path = tmp_path / "c.yaml"
    path.write_text("report:\n  language: pt-BR\n")
    assert load_config(path).report.language == "pt-BR"
    shown = CliRunner().invoke(cli, ["config", "show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "report:\n  language: pt-BR\n" in shown.output


def test_an_unknown_report_language_names_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("report:\n  language: fr\n")
    with pytest.raises(ConfigError, match="report.language"):
        load_config(path)


# --------------------------------------------------------------------------------------------- report


@pytest.mark.parametrize("demo", DEMOS)
def test_the_pt_br_report_has_no_english_heading(demo):
    english, portuguese = demo_report(demo, "en"), demo_report(demo, "pt-BR")
    assert len(headings(portuguese)) == len(headings(english)) >= 8
    shared = set(headings(english)) & set(headings(portuguese))
    assert not shared, shared
    for label in ("**Decision**", "**Best representation**", "**Diagnosis**", "**Next step**", "| Layer |", "| Utterances |"):
        assert label in english and label not in portuguese


@pytest.mark.parametrize("demo", DEMOS)
def test_the_pt_br_report_carries_the_numbers_of_the_english_one(demo):
    english, portuguese = demo_report(demo, "en"), demo_report(demo, "pt-BR")

    def table_numbers(markdown: str) -> Counter:  # the diagnosis row is prose, composed differently (next test)
        rows = [line for line in markdown.splitlines() if line.startswith("|") and not line.startswith(("| **Diagnosis**", "| **Diagnóstico**"))]
        return Counter(n for line in rows for n in DECIMAL.findall(line))

    assert table_numbers(english) and table_numbers(portuguese) == table_numbers(english)
    thresholds = [next(line for line in md.splitlines() if line.startswith(start)) for md, start in
                  ((english, "- **Thresholds applied**"), (portuguese, "- **Limiares aplicados**"))]  # fmt: skip
    assert DECIMAL.findall(thresholds[0]) == DECIMAL.findall(thresholds[1])


def test_the_pt_br_summary_box_uses_the_guides_terms():
    report = demo_report("demo", "pt-BR")
    assert "## Resumo" in report and "| **Decisão** | **NOGO** |" in report
    assert "| Camada | F1 de sotaque [IC 95%] |" in report
    assert "**NOGO → não comece o controle de sotaque com LoRA" in report


def test_the_pt_br_rationale_is_composed_from_the_best_layers_gate_checks():
    go = decide(pd.read_csv(DATA / "demo_go" / "metrics.csv"), ExperimentConfig())
    assert go.decision == Level.GO
    sentence = rationale(go, "pt-BR")
    assert sentence.startswith(f"`{go.best_representation}` atinge GO: F1 ")
    assert "≥" in sentence and "(GO)" in sentence and "excesso de vazamento" in sentence
    assert rationale(go, "en") == go.rationale  # English: the decision's own sentence, word for word


def test_the_pt_br_diagnosis_gives_the_enums_meaning_with_the_numbers_of_the_english_one():
    nogo = decide(pd.read_csv(DATA / "demo" / "metrics.csv"), ExperimentConfig())
    assert nogo.diagnosis == Diagnosis.BACKBONE_INADEQUATE
    sentence = diagnosis_sentence(nogo, "pt-BR")
    assert sentence.startswith(PT_BR_DECISION["diagnosis.backbone_inadequate"] + " (")
    assert Counter(DECIMAL.findall(sentence)) == Counter(DECIMAL.findall(nogo.diagnosis_text))  # best F1, references' F1 and p
    assert diagnosis_sentence(nogo, "en") == nogo.diagnosis_text


def test_the_pt_br_entanglement_found_by_leakage_points_to_the_speaker_erasure_check_too():
    leaky = decide(dummy_metrics([row("backbone:decoder_block_08", leak_excess_pp=25.0)]), ExperimentConfig())
    by_text = decide(dummy_metrics([row("backbone:decoder_block_08", text_drop=0.3)]), ExperimentConfig())
    assert leaky.diagnosis == by_text.diagnosis == Diagnosis.ACCENT_ENTANGLED
    assert "erase_speaker_accent_f1" in diagnosis_sentence(leaky, "pt-BR")
    assert "erase_speaker_accent_f1" not in diagnosis_sentence(by_text, "pt-BR")


def test_the_pt_br_html_page_says_its_language_and_keeps_the_summary_box_style(tmp_path):
    page = render_html(demo_report("demo", "pt-BR"), tmp_path, lang="pt-BR")
    assert page.startswith('<!DOCTYPE html>\n<html lang="pt-BR">')
    assert '<h2 id="summary">Resumo</h2>' in page
    assert "<title>Relatório de sondagem de sotaque do Stage 1.5 — stage1_5</title>" in page


# --------------------------------------------------------------------------------------------- run summary


@pytest.mark.parametrize(("lang", "first", "report"), [("en", "Decision: NOGO", "Report:   "), ("pt-BR", "Decisão: NOGO", "Relatório: ")])
def test_the_runs_closing_summary_is_in_the_report_language(lang, first, report, tmp_path):
    decision = decide(pd.read_csv(DATA / "demo" / "metrics.csv"), ExperimentConfig())
    paths = SimpleNamespace(report_md=tmp_path / "r.md", analysis_dir=tmp_path / "a", stage2_dir=tmp_path / "s2", bundle=tmp_path / "b.zip")
    result = SimpleNamespace(decision=decision, paths=paths, stage_times={"probes": 1.0}, skipped=[])
    lines = closing_summary(result, lang, seconds=2.0)
    assert lines[1] == first
    assert any(line.startswith(report) for line in lines)
    assert lines[-1].endswith("2.0s [probes 1.0s]")


def test_the_pipelines_report_stage_writes_report_html_and_figures_in_the_configured_language(tmp_path, monkeypatch):
    import stage1_5.report.figures as figures
    from stage1_5.pipeline import RunPaths, write_report
    from stage1_5.report.html import HTML_NAME

    titles = []
    save = figures._save

    def keep_title(fig, path):
        titles.append(fig.get_suptitle())
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep_title)
    folder = DATA / "demo"
    metrics = pd.read_csv(folder / "metrics.csv")
    decision = decide(metrics, ExperimentConfig())
    confusion = pd.read_csv(folder / "confusion_best.csv", index_col=0)
    matrices = {decision.best_representation: (list(confusion.index), confusion.to_numpy())}
    probes = SimpleNamespace(metrics=metrics, confusion=matrices, label_map=list(confusion.index), notes=[], facts=SimpleNamespace(design_line=lambda: ""))  # the probe stage's ProbeResults
    paths = RunPaths(tmp_path / "run")
    for made in (paths.report_dir, paths.analysis_dir):
        made.mkdir(parents=True)
    write_report(paths, config("pt-BR"), FACTS, probes, decision)
    assert paths.report_md.read_text(encoding="utf-8").startswith("# Relatório de sondagem de sotaque do Stage 1.5")
    assert (paths.report_dir / HTML_NAME).read_text(encoding="utf-8").startswith('<!DOCTYPE html>\n<html lang="pt-BR">')
    assert "F1 de sotaque por camada — decisão: NOGO" in titles


def test_the_unstable_seeds_line_is_in_the_report_language():
    m = dummy_metrics([row("backbone:decoder_block_08", accent_f1_sd=0.13, accent_f1_seed_unstable=True), row("ssl:layer_06")])
    report = render_report(m, decide(m, ExperimentConfig()), dataset=FACTS, config=config("pt-BR"), label_map=["a"], device="cpu", versions={})
    assert "**Sementes de partição instáveis:** `backbone:decoder_block_08` (F1 sd 0.13)" in report and "Unstable" not in report
