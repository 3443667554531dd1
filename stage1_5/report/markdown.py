"""`report/stage1_5_report.md`: the run's results as text a person reads top-down (DESIGN §6).

`render_report` is pure: it formats already computed metrics, the `Decision`, dataset facts and the
resolved config into a string; the pipeline writes it with `stage1_5.io.atomic_write_text`.
"""

from __future__ import annotations

import importlib.metadata
import math
import platform
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import pandas as pd

from stage1_5.data.confounds import ConfoundReport, RecordingConfound, TextSharing
from stage1_5.data.recording import LABELS, STATISTICS
from stage1_5.decision.levels import Decision, Level, is_missing
from stage1_5.decision.wording import fmt_f1, fmt_p, fmt_pp
from stage1_5.report.layout import FIGURES, ordered
from stage1_5.report.stage2 import Stage2Facts, next_step, render_stage2_section
from stage1_5.sources import (
    all_sources,
    configured_layer_order,
    deciding_label,
    decides,
    reference_label,
    role_of,
    source_of,
    source_spec,
)

TABLE_HEADER = "| Layer | Accent F1 [95% CI] | Leak A→S | Text Drop | p layer / family | Level |"
ANALYSIS_LINK = "../artifacts/analysis"
"""Figures are linked relative to report/, where the report lives."""

VERSION_PACKAGES = (
    "torch", "transformers", "qwen-tts", "speechbrain", "scikit-learn", "numpy", "pandas", "matplotlib",
)  # fmt: skip

FIGURE_CAPTIONS = {
    "heatmap": "Every representation against every gate (green passes GO, amber passes conditional only, red fails)",
    "f1_by_layer": "Accent F1 by layer with 95% CI and the GO / conditional / NOGO thresholds",
    "confusion": "Confusion matrix of the best representation (held-out speakers)",
    "leakage_vs_f1": "Speaker leakage excess against accent F1, GO and conditional regions shaded",
}


@dataclass(frozen=True)
class DatasetFacts:
    """What the report says about the dataset; built from the dataset layer's `Dataset` by `from_dataset`."""

    n_utterances: int
    n_speakers: int
    n_accents: int
    n_texts: int
    total_hours: float
    speakers_per_accent: Mapping[str, int] = field(default_factory=dict)
    utterances_per_accent: Mapping[str, int] = field(default_factory=dict)
    min_texts_per_speaker: Optional[int] = None
    sample_rates: Any = None
    warnings: Sequence[str] = ()
    meets_minima: bool = True
    content_hash: Optional[str] = None
    speakers_per_group: Mapping[str, int] = field(default_factory=dict)
    confounds: Optional[ConfoundReport] = None

    @classmethod
    def from_dataset(cls, dataset: Any) -> "DatasetFacts":
        """Duck-typed: `dataset.summary` (DatasetSummary), `.warnings`, `.meets_minima`, `.content_hash`,
        `.confounds` (ConfoundReport)."""
        s = dataset.summary
        return cls(
            n_utterances=int(s.n_utterances),
            n_speakers=int(s.n_speakers),
            n_accents=int(s.n_accents),
            n_texts=int(s.n_texts),
            total_hours=float(s.total_hours),
            speakers_per_accent=dict(getattr(s, "speakers_per_accent", None) or {}),
            utterances_per_accent=dict(getattr(s, "utterances_per_accent", None) or {}),
            min_texts_per_speaker=getattr(s, "min_texts_per_speaker", None),
            sample_rates=getattr(s, "sample_rates", None),
            warnings=list(getattr(dataset, "warnings", ()) or ()),
            meets_minima=bool(getattr(dataset, "meets_minima", True)),
            content_hash=getattr(dataset, "content_hash", None),
            speakers_per_group=dict(getattr(s, "speakers_per_group", None) or {}),
            confounds=getattr(dataset, "confounds", None),
        )


def package_versions(names: Sequence[str] = VERSION_PACKAGES) -> Dict[str, str]:
    """Installed versions (importlib.metadata), 'not installed' where absent, plus Python and stage1_5."""
    out = {"python": platform.python_version()}
    for name in ("stage1_5", *names):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# --------------------------------------------------------------------------------------------------


def _cell(text: Any) -> str:
    """Table-safe text: pipes escaped, newlines flattened."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(v) else fmt.format(v)


def _f1_ci(row: Mapping[str, Any]) -> str:
    f1, lo, hi = (row.get(k) for k in ("accent_f1", "accent_f1_ci_low", "accent_f1_ci_high"))
    ci = "" if is_missing(lo) or is_missing(hi) else f" [{fmt_f1(lo)}, {fmt_f1(hi)}]"
    return f"{fmt_f1(f1)}{ci}"


def _level_text(decision: Decision, rep: str) -> str:
    level = decision.levels[rep]
    text = level.label
    if not decides(source_of(rep)):
        text += " (reference)"
    if decision.assessments[rep].borderline:
        text += " · borderline"
    return text


def _layer_cell(row: Mapping[str, Any], best: Optional[str]) -> str:
    name = _cell(row["layer"])
    return f"**{name}** ★" if row["representation"] == best else name


def results_table(metrics: pd.DataFrame, decision: Decision, layer_order=None) -> List[str]:
    """The per-representation table, one bold source row before each group."""
    lines = [TABLE_HEADER, "|---|---:|---:|---:|---:|---|"]
    current = None
    for _, row in ordered(metrics, layer_order).iterrows():
        if row["source"] != current:
            current = row["source"]
            lines.append(f"| **{_cell(current)}** ({role_of(str(current)).value}) | | | | | |")
        rep = row["representation"]
        lines.append(
            f"| {_layer_cell(row, decision.best_representation)} | {_f1_ci(row)} | {fmt_pp(row['leak_excess_pp'])} "
            f"| {fmt_f1(row['text_drop'])} | {fmt_p(row['p_value'])} / {fmt_p(row.get('p_value_fwer'))} | {_level_text(decision, rep)} |"
        )
    return lines


VERDICT = {Level.GO: "GO", Level.CONDITIONAL: "conditional GO", Level.NOGO: "NOGO"}


def _figure(figures: Mapping[str, str], key: str) -> List[str]:
    """A figure with its caption, or nothing when the run drew no such figure."""
    if key not in figures:
        return []
    caption = FIGURE_CAPTIONS.get(key, key)
    return [f"![{caption}]({figures[key]})", "", f"*{caption}.*", ""]


def _one_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot or not head.endswith(".") else "")


def summary_section(metrics: pd.DataFrame, decision: Decision, figures: Mapping[str, str]) -> List[str]:
    """The verdict first: decision, best representation with F1, interval and family-wise p, the
    diagnosis in one sentence and the next step, then the F1-by-layer figure."""
    best = decision.best_representation
    rows = metrics[metrics["representation"] == best] if best else metrics.iloc[:0]
    if rows.empty:
        best_cell = f"none (no {deciding_label(metrics['representation'])} layer evaluated)"
    else:
        row = rows.iloc[0]
        best_cell = f"`{_cell(best)}`: accent F1 {_f1_ci(row)}, family-wise p {fmt_p(row.get('p_value_fwer'))}"
    diagnosis = decision.diagnosis_text or decision.rationale
    lines = [
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| **Decision** | **{VERDICT[decision.decision]}** |",
        f"| **Best representation** | {best_cell} |",
        f"| **Diagnosis** | {_cell(_one_sentence(diagnosis[0].upper() + diagnosis[1:]) if diagnosis else 'n/a')} |",
        f"| **Next step** | {_cell(next_step(decision.decision, f'`{best}`' if best else 'the best layer'))} |",
        "",
    ]
    return lines + _figure(figures, "f1_by_layer")


def _dataset_section(facts: DatasetFacts) -> List[str]:
    def per_accent(m: Mapping[str, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(m.items())) if m else "n/a"

    rates = facts.sample_rates
    if isinstance(rates, Mapping):
        rates = ", ".join(f"{k} Hz ({v})" for k, v in sorted(rates.items()))
    elif isinstance(rates, (list, tuple, set)):
        rates = ", ".join(f"{r} Hz" for r in sorted(rates))
    lines = [
        "## Dataset",
        "",
        "| | |",
        "|---|---|",
        f"| Utterances | {facts.n_utterances} |",
        f"| Speakers | {facts.n_speakers} |",
        f"| Accents | {facts.n_accents} |",
        f"| Texts | {facts.n_texts} |",
        f"| Audio | {facts.total_hours:.2f} h |",
        f"| Speakers per accent | {_cell(per_accent(facts.speakers_per_accent))} |",
        f"| Utterances per accent | {_cell(per_accent(facts.utterances_per_accent))} |",
        f"| Min texts per speaker | {'n/a' if facts.min_texts_per_speaker is None else facts.min_texts_per_speaker} |",
        f"| Sample rates | {_cell(rates) if rates else 'n/a'} |",
    ]
    if facts.speakers_per_group:
        lines.append(f"| Speakers per group | {_cell(per_accent(facts.speakers_per_group))} |")
    lines += [f"| Meets design minima | {'yes' if facts.meets_minima else '**no**'} |", ""]
    if facts.warnings:
        lines += ["Warnings:", ""] + [f"- ⚠ {w}" for w in facts.warnings] + [""]
    if facts.confounds is not None:
        lines += confound_section(facts.confounds)
    return lines


def _texts_block(texts: TextSharing) -> List[str]:
    verdict = "**text confound**" if texts.confounded else "no text confound"
    lines = [
        f"Texts: the accents share {texts.shared} of {texts.n_texts} texts (dataset.min_shared_texts = "
        f"{texts.min_shared}): {verdict}.",
        "",
        "| Accent | Texts read | Only in this accent |",
        "|---|---:|---:|",
    ]
    lines += [f"| {_cell(a)} | {n} | {texts.own_texts[a]} |" for a, n in texts.texts_per_accent.items()]
    return lines + [""]


def _recording_block(recording: RecordingConfound) -> List[str]:
    header = "| Accent | Speakers | Files | " + " | ".join(LABELS[s][0].upper() + LABELS[s][1:] for s in STATISTICS) + " |"
    lines = [
        "Recording conditions per accent (categorical: file counts; continuous: median over speakers):",
        "",
        header,
        "|---|---:|---:|" + "---|" * len(STATISTICS),
    ]
    for a in recording.per_accent:
        cells = " | ".join(_cell(a.describe(s)) for s in STATISTICS)
        lines.append(f"| {_cell(a.accent)} | {a.n_speakers} | {a.n_files} | {cells} |")
    separation = ", ".join(f"{LABELS[s]} {recording.separation[s]:.2f}" for s in STATISTICS)
    lines += ["", f"Separation of the accents by each statistic (adjusted R² over speaker means, 0 = none, 1 = apart): {separation}.", ""]
    if recording.probe is not None:
        lines.append(
            f"Recording probe (the speaker-disjoint accent probe of the results below): **{recording.probe.summary}**. "
            f"It reads {recording.probe.n_utterances} utterances, not all: at most `dataset.recording_probe.utterances_per_speaker` "
            "of each speaker's, since recording conditions belong to a speaker or session."
        )
    elif recording.probe_note:
        lines.append(f"Accent probe on recording statistics: not run ({_cell(recording.probe_note)}).")
    return lines + [""]


def confound_section(report: ConfoundReport) -> List[str]:
    """The dataset section's confound block: shared texts, recording conditions per accent and the
    recording probe's F1 and p (the warnings themselves are listed above it)."""
    lines = ["### Confound checks", ""] + _texts_block(report.texts)
    if report.recording is None:
        return lines + ["Recording conditions: not checked (features-only dataset, no audio).", ""]
    return lines + _recording_block(report.recording)


def _decision_section(decision: Decision) -> List[str]:
    best = f"none (no {deciding_label(decision.assessments)} layer evaluated)"
    if decision.best_representation:
        best = f"`{decision.best_representation}`"
    lines = [
        "## Decision",
        "",
        f"- **Best representation:** {best}",
        f"- **Decision:** {decision.decision.label}",
        f"- **Rationale:** {decision.rationale}",
    ]
    applied = decision.thresholds.get("applied", {}).get(decision.best_representation or "")
    if applied:
        lines.append(
            f"- **Thresholds applied** ({applied['n_accents']} accents, chance F1 {fmt_f1(applied['chance_f1'])}): "
            f"GO F1 ≥ {applied['f1_go']:.3f}, conditional F1 ≥ {applied['f1_conditional']:.3f}, "
            f"leakage excess ≤ {applied['leak_go_pp']:.1f} / {applied['leak_conditional_pp']:.1f} pp, "
            f"family-wise p < {applied['alpha']:g} at both levels"
        )
    if decision.facts.smallest_reachable_p is not None:
        lines.append(f"- **Smallest reachable p:** {fmt_p(decision.facts.smallest_reachable_p)} (permutations and distinct speaker labellings of this design)")
    if decision.diagnosis:
        lines.append(f"- **Diagnosis:** `{decision.diagnosis.value}` — {decision.diagnosis_text}")
    if decision.borderline:
        lines.append(
            f"- **Borderline layers:** {', '.join(f'`{r}`' for r in decision.borderline)} "
            "(F1 between the NOGO and conditional thresholds: more speakers may lift them)"
        )
    lines += ["", f"Only {deciding_label(decision.assessments)} layers decide; references ({reference_label()}, your own) only diagnose a NOGO."]
    lines.append("")
    return lines


def _odd_numbers(metrics: pd.DataFrame) -> List[str]:
    """Notes under the table: what each source in it is when the registry says (a pretrained network's
    training data, a synthetic stand-in), and numbers that look like bugs but are not."""
    notes = []
    for source in dict.fromkeys(metrics["source"].astype(str)):
        spec = source_spec(source)
        if spec is not None and spec.synthetic:
            notes.append(f"`{source}` is **synthetic**: {spec.synthetic}.")
        if spec is not None and spec.about:
            notes.append(f"`{source}` is {spec.about}.")
    text_only = metrics[metrics["layer"] == "text_encoder_out"]
    for _, row in text_only.iterrows():
        notes.append(
            f"`{_cell(row['representation'])}` sits at the majority level (F1 {_f1_ci(row)}, majority {_num(row.get('majority_f1'))}) "
            "by construction: the text encoder sees only the text, no audio, and every accent reads the same texts."
        )
    return notes


def results_section(metrics: pd.DataFrame, decision: Decision, figures: Mapping[str, str], layer_order=None, probe_notes: Sequence[str] = ()) -> List[str]:
    """The per-representation table, its notes and the two figures that draw it (gates, leakage vs F1)."""
    lines = ["## Results", ""] + results_table(metrics, decision, layer_order) + [""]
    lines += [
        "Leak A→S: excess (percentage points) of within-accent speaker identification from the accent probe over "
        "chance. Text Drop: F1 on seen texts − F1 on unseen texts. p: speaker-level permutation test (n/a: no "
        "permutations run; such a layer cannot reach GO).",
        "",
    ]
    lines += [f"- {note}" for note in _odd_numbers(metrics)] + ([""] if _odd_numbers(metrics) else [])
    if probe_notes:
        lines += ["Probe notes:", ""] + [f"- {_cell(note)}" for note in probe_notes] + [""]
    return lines + _figure(figures, "heatmap") + _figure(figures, "leakage_vs_f1")


def _gate_details(metrics: pd.DataFrame, decision: Decision, layer_order=None) -> List[str]:
    deciding = deciding_label(metrics["representation"])
    lines = [f"### Why each {deciding} layer sits where it does", ""]
    reps = [r for r in ordered(metrics, layer_order)["representation"] if decides(source_of(r))]
    if not reps:
        return lines + [f"No {deciding} layer was evaluated.", ""]
    for rep in reps:
        a = decision.assessments[rep]
        lines.append(f"- `{rep}` — {a.level.label}: {'; '.join(a.reasons)}")
    return lines + [""]


def _thresholds_line(t: Mapping[str, Any]) -> str:
    strict = bool(t.get("strict"))
    return (
        f"GO: F1{' CI low' if strict else ''} ≥ {t['min_f1_go']}, "
        f"leakage excess{' CI high' if strict else ''} ≤ {t['leakage_margin_pp']} pp, "
        f"text drop{' CI high' if strict else ''} ≤ {t['max_text_drop']}, family-wise p < {t['alpha']}; "
        f"conditional GO: F1 ≥ {t['min_f1_conditional']}, leakage excess ≤ {t['leakage_margin_conditional_pp']} pp, "
        f"text drop ≤ {t['max_text_drop']}, family-wise p < {t['alpha']}; borderline NOGO from F1 {t['nogo_f1']}. "
        f"F1 thresholds read at {t.get('reference_accents', 3)} accents, scale {t.get('f1_scale', 'absolute')}; "
        f"leakage margins read at {t.get('reference_speakers_per_accent', 8)} speakers per accent, scale {t.get('leakage_scale', 'absolute')}; "
        f"strict mode {'on' if strict else 'off'}."
    )


def _context_section(metrics: pd.DataFrame, layer_order=None) -> List[str]:
    lines = [
        "## Context (reported, not gated)",
        "",
        "| Representation | Speakers | Utterances | F1 sd | Majority F1 | p (FWER) | F1 seen texts | F1 unseen texts "
        "| Leak acc | Leak chance | Speaker acc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in ordered(metrics, layer_order).iterrows():
        lines.append(
            f"| {_cell(r['representation'])} | {_num(r['n_speakers'], '{:.0f}')} "
            f"| {_num(r['n_utterances'], '{:.0f}')} "
            f"| {_num(r['accent_f1_sd'])} | {_num(r['majority_f1'])} | {fmt_p(r['p_value_fwer'])} "
            f"| {_num(r['text_f1_seen'])} | {_num(r['text_f1_unseen'])} | {_num(r['leak_acc'])} "
            f"| {_num(r['leak_chance'])} | {_num(r['speaker_acc'])} |"
        )
    return lines + [
        "",
        "Leak acc: speaker identified within each accent from the accent probe's output; chance ≈ 1/speakers per "
        "accent. Speaker acc: speaker ID from the full representation.",
        "",
    ]


def _label_map_text(label_map: Union[Mapping[str, int], Sequence[str]]) -> str:
    if isinstance(label_map, Mapping):
        items = sorted(label_map.items(), key=lambda kv: kv[1])
        return ", ".join(f"{v} = {_cell(k)}" for k, v in items)
    return ", ".join(f"{i} = {_cell(k)}" for i, k in enumerate(label_map))


def _repro_section(
    config: Any, facts: DatasetFacts, device: str, label_map: Any, versions: Mapping[str, str], t: Mapping[str, Any]
) -> List[str]:
    probes = config.probes
    sections = [(spec, spec.settings(config)) for spec in all_sources()]
    inits = "".join(f"; {spec.name} init {settings.seed}" for spec, settings in sections if hasattr(settings, "seed"))
    seeds = (
        f"run {config.seed}; probes {probes.seed} ({probes.seeds} fold seeds, {probes.permutations} permutations, "
        f"{probes.bootstrap} bootstrap resamples){inits}"
    )
    lines = [
        "## Reproducibility",
        "",
        "| | |",
        "|---|---|",
        f"| Config hash | `{config.config_hash()}` (resolved config in `../config/`) |",
        f"| Dataset hash | `{facts.content_hash or 'n/a'}` |",
        f"| Device | {_cell(device)} |",
        f"| Seeds | {seeds} |",
        f"| Label map | {_label_map_text(label_map)} |",
    ]
    lines += [  # only what the run used: a disabled source's checkpoint is no part of this result
        f"| {spec.title} | `{_cell(getattr(settings, spec.weights))}` |"
        for spec, settings in sections
        if spec.weights is not None and settings.enabled
    ]

    lines += [
        f"| Thresholds | {_thresholds_line(t)} |",
        "",
        "| Package | Version |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in versions.items()]
    return lines + [""]


def header_section(decision: Decision, config: Any) -> List[str]:
    """Title (naming a synthetic stand-in when one decides), the not-scientific banner and the question."""
    synthetic = [spec.name for spec in all_sources() if spec.synthetic and spec.enabled(config)]
    planted = f" ({', '.join(synthetic)} features: synthetic, not a network's)" if synthetic else ""
    lines = [f"# Stage 1.5 accent probing report — {_cell(config.name)}{planted}", ""]
    if not decision.scientific:
        why = "; ".join(decision.caveats) if decision.caveats else "the run was marked not scientific"
        lines += [
            f"> **⚠ Not a scientific result:** {why}. "
            "Read the numbers as a check of the pipeline, not as evidence about the backbone.",
            "",
        ]
    return lines + [
        f"**{VERDICT[decision.decision]}** — does the backbone carry regional accent linearly in a layer, apart from speaker identity "
        "and robustly across sentences? Accent F1 is macro-F1 of a linear probe on held-out speakers.",
        "",
    ]


def render_report(
    metrics: pd.DataFrame,
    decision: Decision,
    *,
    dataset: Any,
    config: Any,
    label_map: Union[Mapping[str, int], Sequence[str]],
    device: str,
    figures: Optional[Mapping[str, str]] = None,
    versions: Optional[Mapping[str, str]] = None,
    probe_notes: Sequence[str] = (),
    probe_design: str = "",
    stage2: Optional[Stage2Facts] = None,
    stage2_figures: Optional[Mapping[str, str]] = None,
) -> str:
    """The whole report as Markdown.

    dataset: `DatasetFacts` or the dataset layer's `Dataset` (read duck-typed).
    config: the resolved `Stage15Config` (hash, seeds, checkpoints, configured layer order).
    figures: key (see `layout.FIGURES`) -> link relative to report/; default: all four under ../artifacts/analysis.
    versions: package -> version; default `package_versions()`.
    probe_notes: protocol fallbacks the probes took (e.g. no inner CV possible), listed under the results.
    probe_design: the outer folds and the speaker-ID probe as they ran (`DesignFacts.design_line`), one line.
    stage2: the Stage 2 handoff (summary, CKA); None (stage2 disabled) leaves the section out.
    stage2_figures: key (see `layout.STAGE2_FIGURES`) -> link relative to report/.
    """
    facts = dataset if isinstance(dataset, DatasetFacts) else DatasetFacts.from_dataset(dataset)
    if figures is None:
        figures = {k: f"{ANALYSIS_LINK}/{name}" for k, name in FIGURES.items()}
    versions = package_versions() if versions is None else versions
    layer_order = configured_layer_order(config)
    lines = header_section(decision, config)
    lines += summary_section(metrics, decision, figures)
    lines += results_section(metrics, decision, figures, layer_order, probe_notes)
    if probe_design:
        lines += [f"Probe design: {_cell(probe_design)}.", ""]
    lines += _decision_section(decision) + _gate_details(metrics, decision, layer_order) + _figure(figures, "confusion")
    if stage2 is not None:
        lines += render_stage2_section(metrics, decision, stage2, figures=stage2_figures, layer_order=layer_order)
    lines += _dataset_section(facts)
    lines += _context_section(metrics, layer_order)
    lines += _repro_section(config, facts, device, label_map, versions, decision.thresholds)
    return "\n".join(lines).rstrip() + "\n"
