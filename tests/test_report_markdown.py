"""report/stage1_5_report.md structure (DESIGN §6)."""

import re
from types import SimpleNamespace

import pytest

from stage1_5.config import ExperimentConfig, Stage15Config
from stage1_5.decision import RunFacts, decide
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.report import TABLE_HEADER, DatasetFacts, package_versions, render_report

F1 = {"backbone:pre_vocoder": 0.30, "backbone:decoder_block_08": 0.52, "ssl:layer_06": 0.8, "ecapa:embedding": 0.7,
      "acoustic:mfcc_stats": 0.5}  # fmt: skip
REPS = list(F1)
FACTS = DatasetFacts(
    n_utterances=720, n_speakers=24, n_accents=3, n_texts=30, total_hours=0.8,
    speakers_per_accent={"en-gb": 8, "en-us": 8, "en-029": 8}, warnings=["resampled 3 files to 24000 Hz"],
    meets_minima=True, content_hash="d5e1f00",
)  # fmt: skip
VERSIONS = {"python": "3.11", "torch": "2.13.0"}


def metrics():
    return dummy_metrics([row(r, accent_f1=f1) for r, f1 in F1.items()])


def render(scientific=True, caveats=(), too_small=False, facts=FACTS, **kw):
    m = metrics()
    d = decide(m, ExperimentConfig(), facts=RunFacts(caveats=tuple(caveats) + (() if scientific else ("not scientific",)), dataset_too_small=too_small))
    return render_report(m, d, dataset=facts, config=Stage15Config(), label_map=["en-029", "en-gb", "en-us"],
                         device="cpu", versions=VERSIONS, **kw)  # fmt: skip


def test_table_header_line_is_exact_and_appears_once():
    assert render().splitlines().count(TABLE_HEADER) == 1
    assert TABLE_HEADER == "| Layer | Accent F1 [95% CI] | Leak A→S | Text Drop | p layer / family | Level |"


def test_every_representation_has_a_row_grouped_by_source():
    lines = render().splitlines()
    start = lines.index(TABLE_HEADER)
    table = lines[start : lines.index("", start)]
    for rep in REPS:
        layer = rep.split(":")[1]
        assert any(re.match(rf"\| (\*\*)?{layer}\b", line) for line in table), layer
    groups = [m.group(1) for line in table if (m := re.match(r"\| \*\*(\w+)\*\* \((?:decides|reference)\) \|", line))]
    assert groups == ["backbone", "ssl", "ecapa", "acoustic"]


def test_backbone_rows_in_depth_order():
    text = render()
    assert text.index("| **decoder_block_08** ★") < text.index("| pre_vocoder")


def test_decision_section_has_the_three_lines():
    text = render()
    section = text.split("## Decision", 1)[1]
    assert "\n- **Best representation:** `backbone:decoder_block_08`\n" in section
    assert "\n- **Decision:** conditional GO\n" in section
    assert re.search(r"\n- \*\*Rationale:\*\* Layer decoder_block_08 \(the best of 2 backbone layers\) passes conditional-GO thresholds \(F1=0\.52", section)


def test_nogo_report_shows_diagnosis():
    m = dummy_metrics([row("backbone:decoder_block_08", accent_f1=0.2), row("ssl:layer_06", accent_f1=0.8)])
    d = decide(m, ExperimentConfig())
    assert d.diagnosis == "backbone_inadequate"
    text = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS)
    assert "- **Diagnosis:** `backbone_inadequate`" in text


def test_banner_absent_for_scientific_result():
    assert "Not a scientific result" not in render()


@pytest.mark.parametrize(
    "kwargs, says",
    [
        (dict(scientific=False, caveats=["the backbone has randomly initialised weights (checkpoint 'tiny-random')"]), "randomly initialised"),
        (dict(too_small=True), "below the design minima"),
    ],
    ids=["random_weights", "dataset_below_minima"],
)
def test_banner_says_why_not_scientific(kwargs, says):
    banner = next(line for line in render(**kwargs).splitlines() if "⚠ Not a scientific result:" in line)
    assert says in banner


def test_dataset_summary_and_warnings():
    text = render()
    assert "| Speakers | 24 |" in text
    assert "en-029: 8, en-gb: 8, en-us: 8" in text
    assert "- ⚠ resampled 3 files to 24000 Hz" in text


def test_figures_are_relative_links_to_analysis():
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", render())
    assert links == [
        "../artifacts/analysis/f1_by_layer.png",
        "../artifacts/analysis/metrics_heatmap.png",
        "../artifacts/analysis/leakage_vs_f1.png",
        "../artifacts/analysis/confusion_best.png",
    ]
    assert "![" not in render(figures={})


def render_rows(rows, config=None):
    """The report of these metrics rows under `config` (default: the defaults)."""
    m = dummy_metrics(rows)
    d = decide(m, ExperimentConfig(), facts=RunFacts())
    return render_report(m, d, dataset=FACTS, config=config or Stage15Config(), label_map=["a", "b", "c"], device="cpu", versions=VERSIONS)


def test_the_report_opens_with_the_verdict_box_and_the_f1_figure_under_it():
    text = render()
    box = text.split("## Summary", 1)[1].split("\n## ", 1)[0]
    assert text.index("## Summary") < text.index("## Results") < text.index("## Dataset")
    assert "| **Decision** | **conditional GO** |" in box
    assert re.search(r"\| \*\*Best representation\*\* \| `backbone:decoder_block_08`: accent F1 0\.52 .*family-wise p ", box)
    assert "| **Next step** | **Conditional GO → train with adversarial regularisation" in box
    assert box.rstrip().endswith("*Accent F1 by layer with 95% CI and the GO / conditional / NOGO thresholds.*")


@pytest.mark.parametrize(("f1", "step"), [(0.9, "**GO → prepare Stage 2 (LoRA)"), (0.1, "**NOGO → do not start LoRA")])
def test_the_next_step_follows_the_decision(f1, step):
    text = render_rows([row("backbone:decoder_block_08", accent_f1=f1, p_value=0.001), row("ssl:layer_06", accent_f1=0.2)])
    assert f"| **Next step** | {step}" in text


def test_each_figure_sits_beside_the_table_it_draws():
    text = render()
    results = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "metrics_heatmap.png" in results and "leakage_vs_f1.png" in results
    assert "confusion_best.png" in text.split("## Decision", 1)[1].split("\n## ", 1)[0]


def test_a_text_encoder_layer_at_the_majority_level_is_explained_where_it_appears():
    text = render_rows([row("backbone:text_encoder_out", accent_f1=0.17), row("backbone:decoder_block_08", accent_f1=0.5)])
    results = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "`backbone:text_encoder_out` sits at the majority level" in results and "sees only the text, no audio" in results


def test_a_disabled_sources_checkpoint_is_not_in_the_report():
    cfg = Stage15Config.model_validate({"sources": {"backbone": {"enabled": False}, "planted": {"enabled": True}}})
    text = render_rows([row("planted:decoder_block_08", accent_f1=0.9, p_value=0.001), row("ssl:layer_06", accent_f1=0.2)], cfg)
    assert "Qwen3-TTS" not in text
    assert text.startswith("# Stage 1.5 accent probing report — stage1_5 (planted features: synthetic, not a network's)")
    results = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "- `planted` is **synthetic**: the planted source holds synthetic vectors" in results


def test_a_pretrained_reference_says_what_it_was_trained_on_under_the_table():
    text = render_rows([row("backbone:decoder_block_08", accent_f1=0.5), row("ge2e:lstm_3", accent_f1=0.8)])
    results = text.split("## Results", 1)[1].split("\n## ", 1)[0]
    assert "- `ge2e` is Resemblyzer's pretrained voice encoder" in results and "LibriSpeech, VoxCeleb1 and VoxCeleb2" in results


def test_reproducibility_names_hashes_versions_seeds_and_labels():
    text = render()
    assert f"| Config hash | `{Stage15Config().config_hash()}`" in text
    assert "| Dataset hash | `d5e1f00` |" in text
    assert "| torch | 2.13.0 |" in text
    assert "| Label map | 0 = en-029, 1 = en-gb, 2 = en-us |" in text
    assert "| Device | cpu |" in text and "| Seeds | run 0; probes 0" in text


def test_context_section_reports_speaker_acc_majority_and_fwer():
    text = render()
    assert "Speaker acc" in text and "Majority F1" in text and "p (FWER)" in text
    assert "| ecapa:embedding | 24 | 720 |" in text


def test_unstable_fold_seeds_are_named_with_their_likely_cause():
    m = dummy_metrics([row("backbone:decoder_block_08", accent_f1_sd=0.13, accent_f1_seed_unstable=True), row("ssl:layer_06")])
    d = decide(m, ExperimentConfig())
    text = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS)
    assert "**Unstable fold seeds:** `backbone:decoder_block_08` (F1 sd 0.13)" in text and "group column" in text
    assert "Unstable fold seeds" not in render()


def test_nan_p_value_renders_as_na():
    m = dummy_metrics([row(p_value=float("nan"), p_value_fwer=float("nan"))])
    d = decide(m, ExperimentConfig())
    text = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS)
    assert "| 0.05 | n/a / n/a | NOGO |" in text


def test_decision_section_shows_the_thresholds_applied_for_two_accents():
    m = dummy_metrics([row(n_accents=2, chance_f1=0.5)])
    text = render_report(m, decide(m, ExperimentConfig()), dataset=FACTS, config=Stage15Config(), label_map=["a", "b"], device="cpu", versions=VERSIONS)
    assert "- **Thresholds applied** (2 accents, chance F1 0.50): GO F1 ≥ 0.662, conditional F1 ≥ 0.588" in text


def test_pipe_in_user_layer_name_is_escaped():
    m = dummy_metrics([row(), row("mine:a|b")])
    d = decide(m, ExperimentConfig())
    text = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS)
    assert "| a\\|b |" in text


def test_dataset_facts_read_duck_typed_dataset():
    summary = SimpleNamespace(n_utterances=10, n_speakers=4, n_accents=2, n_texts=5, total_hours=0.01,
                              speakers_per_accent={"a": 2, "b": 2}, utterances_per_accent={"a": 5, "b": 5},
                              min_texts_per_speaker=2, sample_rates={16000: 10})  # fmt: skip
    ds = SimpleNamespace(summary=summary, warnings=["only 2 speakers per accent"], meets_minima=False, content_hash="h")
    facts = DatasetFacts.from_dataset(ds)
    assert (facts.n_speakers, facts.meets_minima, facts.content_hash) == (4, False, "h")
    assert "| Sample rates | 16000 Hz (10) |" in render(facts=ds)


def test_package_versions_reports_missing_packages():
    v = package_versions(("numpy", "surely-not-installed-pkg"))
    assert v["surely-not-installed-pkg"] == "not installed"
    assert v["numpy"][0].isdigit() and "python" in v


def test_probe_notes_are_listed_under_the_results():
    m = dummy_metrics([row("backbone:decoder_block_08")])
    d = decide(m, ExperimentConfig())
    note = "accent 'NE' has fewer than 2 training speakers in a fold: C fixed at 0.1"
    text = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS, probe_notes=[note])
    assert f"- {note}" in text
    assert text.index("Probe notes:") < text.index("## Decision")
    plain = render_report(m, d, dataset=FACTS, config=Stage15Config(), label_map=["a"], device="cpu", versions=VERSIONS)
    assert "Probe notes:" not in plain


def test_the_probe_design_line_names_the_fold_design_and_the_speaker_id_cap():
    line = "5 grouped outer folds, speakers never split, accents balanced; speaker-ID context probe on a fixed subsample of 60 of 120 speakers"
    assert f"Probe design: {line}." in render(probe_design=line).splitlines()
    assert "Probe design:" not in render()
