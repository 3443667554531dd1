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
from stage1_5.data.recording import STATISTICS
from stage1_5.config import Language
from stage1_5.decision.levels import Decision, is_missing
from stage1_5.decision.wording import fmt_f1, fmt_p, fmt_pp
from stage1_5.report.i18n import DEFAULT_LANGUAGE, EN, level_label, statistic_label, text
from stage1_5.report.layout import FIGURES, ordered
from stage1_5.report.sentences import diagnosis_sentence, gate_reasons, rationale, recording_probe_summary
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

TABLE_HEADER = EN["results.table_header"]
ANALYSIS_LINK = "../artifacts/analysis"
"""Figures are linked relative to report/, where the report lives."""

VERSION_PACKAGES = (
    "torch", "transformers", "qwen-tts", "speechbrain", "scikit-learn", "numpy", "pandas", "matplotlib",
)  # fmt: skip


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


def _level_text(decision: Decision, rep: str, lang: Language = DEFAULT_LANGUAGE) -> str:
    out = level_label(decision.levels[rep], lang)
    if not decides(source_of(rep)):
        out += text("results.reference", lang)
    if decision.assessments[rep].borderline:
        out += text("results.borderline", lang)
    return out


def _layer_cell(row: Mapping[str, Any], best: Optional[str]) -> str:
    name = _cell(row["layer"])
    return f"**{name}** ★" if row["representation"] == best else name


def results_table(metrics: pd.DataFrame, decision: Decision, layer_order=None, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """The per-representation table, one bold source row before each group."""
    lines = [text("results.table_header", lang), "|---|---:|---:|---:|---:|---|"]
    current = None
    for _, row in ordered(metrics, layer_order).iterrows():
        if row["source"] != current:
            current = row["source"]
            role = text(f"results.role.{role_of(str(current)).value}", lang)
            lines.append(f"| **{_cell(current)}** ({role}) | | | | | |")
        rep = row["representation"]
        lines.append(
            f"| {_layer_cell(row, decision.best_representation)} | {_f1_ci(row)} | {fmt_pp(row['leak_excess_pp'])} "
            f"| {fmt_f1(row['text_drop'])} | {fmt_p(row['p_value'])} / {fmt_p(row.get('p_value_fwer'))} | {_level_text(decision, rep, lang)} |"
        )
    return lines


def _figure(figures: Mapping[str, str], key: str, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """A figure with its caption, or nothing when the run drew no such figure."""
    if key not in figures:
        return []
    caption = text(f"caption.{key}", lang)
    return [f"![{caption}]({figures[key]})", "", f"*{caption}.*", ""]


def _one_sentence(text: str) -> str:
    head, dot, _ = text.partition(". ")
    return head + ("." if dot or not head.endswith(".") else "")


def _best_row(metrics: pd.DataFrame, decision: Decision) -> Optional[Mapping[str, Any]]:
    best = decision.best_representation
    rows = metrics[metrics["representation"] == best] if best else metrics.iloc[:0]
    return None if rows.empty else rows.iloc[0]


def summary_section(metrics: pd.DataFrame, decision: Decision, figures: Mapping[str, str], lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """The verdict first: decision, best representation with F1, interval and family-wise p, the
    diagnosis in one sentence and the next step, then the F1-by-layer figure."""
    best = decision.best_representation
    row = _best_row(metrics, decision)
    if row is None:
        best_cell = text("summary.best_none", lang, deciding=deciding_label(metrics["representation"]))
    else:
        best_cell = text("summary.best_cell", lang, best=_cell(best), f1=_f1_ci(row), p=fmt_p(row.get("p_value_fwer")))
    diagnosis = diagnosis_sentence(decision, lang)
    where = f"`{best}`" if best else text("summary.best_layer", lang)
    lines = [
        text("summary.heading", lang),
        "",
        "| | |",
        "|---|---|",
        f"| **{text('summary.decision', lang)}** | **{level_label(decision.decision, lang)}** |",
        f"| **{text('summary.best', lang)}** | {best_cell} |",
        f"| **{text('summary.diagnosis', lang)}** | {_cell(_one_sentence(diagnosis[0].upper() + diagnosis[1:]) if diagnosis else 'n/a')} |",
        f"| **{text('summary.next', lang)}** | {_cell(next_step(decision.decision, where, lang))} |",
        "",
    ]
    return lines + _figure(figures, "f1_by_layer", lang)


def _dataset_section(facts: DatasetFacts, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    def per_accent(m: Mapping[str, int]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in sorted(m.items())) if m else "n/a"

    rates = facts.sample_rates
    if isinstance(rates, Mapping):
        rates = ", ".join(f"{k} Hz ({v})" for k, v in sorted(rates.items()))
    elif isinstance(rates, (list, tuple, set)):
        rates = ", ".join(f"{r} Hz" for r in sorted(rates))
    def t(key: str) -> str:
        return text(f"dataset.{key}", lang)

    lines = [
        t("heading"),
        "",
        "| | |",
        "|---|---|",
        f"| {t('utterances')} | {facts.n_utterances} |",
        f"| {t('speakers')} | {facts.n_speakers} |",
        f"| {t('accents')} | {facts.n_accents} |",
        f"| {t('texts')} | {facts.n_texts} |",
        f"| {t('audio')} | {facts.total_hours:.2f} h |",
        f"| {t('speakers_per_accent')} | {_cell(per_accent(facts.speakers_per_accent))} |",
        f"| {t('utterances_per_accent')} | {_cell(per_accent(facts.utterances_per_accent))} |",
        f"| {t('min_texts')} | {'n/a' if facts.min_texts_per_speaker is None else facts.min_texts_per_speaker} |",
        f"| {t('sample_rates')} | {_cell(rates) if rates else 'n/a'} |",
    ]
    if facts.speakers_per_group:
        lines.append(f"| {t('speakers_per_group')} | {_cell(per_accent(facts.speakers_per_group))} |")
    lines += [f"| {t('minima')} | {t('yes') if facts.meets_minima else t('no')} |", ""]
    if facts.warnings:
        lines += [t("warnings"), ""] + [f"- ⚠ {w}" for w in facts.warnings] + [""]
    if facts.confounds is not None:
        lines += confound_section(facts.confounds, lang)
    return lines


def _texts_block(texts: TextSharing, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    verdict = text("confounds.text_confound" if texts.confounded else "confounds.no_text_confound", lang)
    lines = [
        text("confounds.texts", lang, shared=texts.shared, n_texts=texts.n_texts, min_shared=texts.min_shared, verdict=verdict),
        "",
        text("confounds.texts_header", lang),
        "|---|---:|---:|",
    ]
    lines += [f"| {_cell(a)} | {n} | {texts.own_texts[a]} |" for a, n in texts.texts_per_accent.items()]
    return lines + [""]


def _recording_block(recording: RecordingConfound, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    labels = {s: statistic_label(s, lang) for s in STATISTICS}
    header = text("confounds.recording_header", lang) + " | ".join(labels[s][0].upper() + labels[s][1:] for s in STATISTICS) + " |"
    lines = [
        text("confounds.recording_intro", lang),
        "",
        header,
        "|---|---:|---:|" + "---|" * len(STATISTICS),
    ]
    for a in recording.per_accent:
        cells = " | ".join(_cell(a.describe(s)) for s in STATISTICS)
        lines.append(f"| {_cell(a.accent)} | {a.n_speakers} | {a.n_files} | {cells} |")
    separation = ", ".join(f"{labels[s]} {recording.separation[s]:.2f}" for s in STATISTICS)
    lines += ["", text("confounds.separation", lang, separation=separation), ""]
    if recording.probe is not None:
        lines.append(text("confounds.probe", lang, summary=recording_probe_summary(recording.probe, lang), n=recording.probe.n_utterances))
    elif recording.probe_note:
        lines.append(text("confounds.probe_not_run", lang, note=_cell(recording.probe_note)))
    return lines + [""]


def confound_section(report: ConfoundReport, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """The dataset section's confound block: shared texts, recording conditions per accent and the
    recording probe's F1 and p (the warnings themselves are listed above it)."""
    lines = [text("confounds.heading", lang), ""] + _texts_block(report.texts, lang)
    if report.recording is None:
        return lines + [text("confounds.no_audio", lang), ""]
    return lines + _recording_block(report.recording, lang)


def _decision_section(decision: Decision, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    deciding = deciding_label(decision.assessments)
    best = text("decision.best_none", lang, deciding=deciding)
    if decision.best_representation:
        best = f"`{decision.best_representation}`"
    lines = [
        text("decision.heading", lang),
        "",
        text("decision.best", lang, best=best),
        text("decision.decision", lang, level=level_label(decision.decision, lang)),
        text("decision.rationale", lang, rationale=rationale(decision, lang)),
    ]
    applied = decision.thresholds.get("applied", {}).get(decision.best_representation or "")
    if applied:
        lines.append(
            text(
                "decision.thresholds", lang, n_accents=applied["n_accents"], chance=fmt_f1(applied["chance_f1"]),
                f1_go=f"{applied['f1_go']:.3f}", f1_conditional=f"{applied['f1_conditional']:.3f}",
                leak_go=f"{applied['leak_go_pp']:.1f}", leak_conditional=f"{applied['leak_conditional_pp']:.1f}", alpha=f"{applied['alpha']:g}",
            )  # fmt: skip
        )
    if decision.facts.smallest_reachable_p is not None:
        lines.append(text("decision.smallest_p", lang, p=fmt_p(decision.facts.smallest_reachable_p)))
    if decision.diagnosis:
        lines.append(text("decision.diagnosis", lang, code=decision.diagnosis.value, text=diagnosis_sentence(decision, lang)))
    if decision.borderline:
        lines.append(text("decision.borderline", lang, layers=", ".join(f"`{r}`" for r in decision.borderline)))
    lines += ["", text("decision.who_decides", lang, deciding=deciding, references=reference_label())]
    lines.append("")
    return lines


def _odd_numbers(metrics: pd.DataFrame, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """Notes under the table: what each source in it is when the registry says (a pretrained network's
    training data, a synthetic stand-in), and numbers that look like bugs but are not."""
    notes = []
    for source in dict.fromkeys(metrics["source"].astype(str)):
        spec = source_spec(source)
        if spec is not None and spec.synthetic:
            notes.append(text("results.synthetic", lang, source=source, what=spec.synthetic))
        if spec is not None and spec.about:
            notes.append(text("results.about", lang, source=source, what=spec.about))
    text_only = metrics[metrics["layer"] == "text_encoder_out"]
    for _, row in text_only.iterrows():
        notes.append(text("results.text_only", lang, rep=_cell(row["representation"]), f1=_f1_ci(row), majority=_num(row.get("majority_f1"))))
    return notes


def results_section(
    metrics: pd.DataFrame, decision: Decision, figures: Mapping[str, str], layer_order=None, probe_notes: Sequence[str] = (),
    lang: Language = DEFAULT_LANGUAGE,
) -> List[str]:  # fmt: skip
    """The per-representation table, its notes and the two figures that draw it (gates, leakage vs F1)."""
    lines = [text("results.heading", lang), ""] + results_table(metrics, decision, layer_order, lang) + [""]
    lines += [text("results.legend", lang), ""]
    notes = _odd_numbers(metrics, lang)
    lines += [f"- {note}" for note in notes] + ([""] if notes else [])
    if probe_notes:
        lines += [text("results.probe_notes", lang), ""] + [f"- {_cell(note)}" for note in probe_notes] + [""]
    return lines + _figure(figures, "heatmap", lang) + _figure(figures, "leakage_vs_f1", lang)


def _gate_details(metrics: pd.DataFrame, decision: Decision, layer_order=None, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    deciding = deciding_label(metrics["representation"])
    lines = [text("gates.heading", lang, deciding=deciding), ""]
    reps = [r for r in ordered(metrics, layer_order)["representation"] if decides(source_of(r))]
    if not reps:
        return lines + [text("gates.none", lang, deciding=deciding), ""]
    for rep in reps:
        a = decision.assessments[rep]
        lines.append(text("gates.line", lang, rep=rep, level=level_label(a.level, lang), reasons=gate_reasons(a, lang)))
    return lines + [""]


def _thresholds_line(t: Mapping[str, Any], lang: Language = DEFAULT_LANGUAGE) -> str:
    strict = bool(t.get("strict"))
    return text(
        "repro.thresholds_line", lang,
        ci_low=text("repro.ci_low", lang) if strict else "", ci_high=text("repro.ci_high", lang) if strict else "",
        min_f1_go=t["min_f1_go"], leak_go=t["leakage_margin_pp"], max_text_drop=t["max_text_drop"], alpha=t["alpha"],
        min_f1_conditional=t["min_f1_conditional"], leak_conditional=t["leakage_margin_conditional_pp"], nogo_f1=t["nogo_f1"],
        reference_accents=t.get("reference_accents", 3), f1_scale=t.get("f1_scale", "absolute"),
        reference_speakers=t.get("reference_speakers_per_accent", 8), leakage_scale=t.get("leakage_scale", "absolute"),
        strict=text("repro.on" if strict else "repro.off", lang),
    )  # fmt: skip


def _context_section(metrics: pd.DataFrame, layer_order=None, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    lines = [
        text("context.heading", lang),
        "",
        text("context.header", lang),
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
    lines += ["", text("context.legend", lang), ""]
    if "accent_f1_seed_unstable" in metrics.columns:
        unstable = metrics[metrics["accent_f1_seed_unstable"].fillna(False).astype(bool)]
        if len(unstable):
            layers = ", ".join(f"`{r}` (F1 sd {_num(sd)})" for r, sd in zip(unstable["representation"], unstable["accent_f1_sd"]))
            lines += [text("context.unstable", lang, layers=layers), ""]
    return lines


def _label_map_text(label_map: Union[Mapping[str, int], Sequence[str]]) -> str:
    if isinstance(label_map, Mapping):
        items = sorted(label_map.items(), key=lambda kv: kv[1])
        return ", ".join(f"{v} = {_cell(k)}" for k, v in items)
    return ", ".join(f"{i} = {_cell(k)}" for i, k in enumerate(label_map))


def _repro_section(
    config: Any, facts: DatasetFacts, device: str, label_map: Any, versions: Mapping[str, str], t: Mapping[str, Any],
    lang: Language = DEFAULT_LANGUAGE,
) -> List[str]:  # fmt: skip
    probes = config.probes
    sections = [(spec, spec.settings(config)) for spec in all_sources()]
    inits = "".join(text("repro.init", lang, source=spec.name, seed=settings.seed) for spec, settings in sections if hasattr(settings, "seed"))
    seeds = text(
        "repro.seed_text", lang, run=config.seed, probes=probes.seed, fold_seeds=probes.seeds, permutations=probes.permutations,
        bootstrap=probes.bootstrap, inits=inits,
    )  # fmt: skip
    lines = [
        text("repro.heading", lang),
        "",
        "| | |",
        "|---|---|",
        text("repro.config_hash", lang, hash=config.config_hash()),
        f"| {text('repro.dataset_hash', lang)} | `{facts.content_hash or 'n/a'}` |",
        f"| {text('repro.device', lang)} | {_cell(device)} |",
        f"| {text('repro.seeds', lang)} | {seeds} |",
        f"| {text('repro.label_map', lang)} | {_label_map_text(label_map)} |",
    ]
    lines += [  # only what the run used: a disabled source's checkpoint is no part of this result
        f"| {spec.title} | `{_cell(getattr(settings, spec.weights))}` |"
        for spec, settings in sections
        if spec.weights is not None and settings.enabled
    ]

    lines += [
        f"| {text('repro.thresholds', lang)} | {_thresholds_line(t, lang)} |",
        "",
        text("repro.package_header", lang),
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in versions.items()]
    return lines + [""]


def header_section(decision: Decision, config: Any, lang: Language = DEFAULT_LANGUAGE) -> List[str]:
    """Title (naming a synthetic stand-in when one decides), the not-scientific banner and the question."""
    synthetic = [spec.name for spec in all_sources() if spec.synthetic and spec.enabled(config)]
    planted = text("title.planted", lang, sources=", ".join(synthetic)) if synthetic else ""
    lines = [text("title", lang, name=_cell(config.name), planted=planted), ""]
    if not decision.scientific:
        why = "; ".join(decision.caveats) if decision.caveats else text("banner.default", lang)
        lines += [text("banner", lang, why=why), ""]
    return lines + [text("question", lang, verdict=level_label(decision.decision, lang)), ""]


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
    config: the resolved `Stage15Config` (hash, seeds, checkpoints, configured layer order, `report.language`).
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
    lang = config.report.language
    lines = header_section(decision, config, lang)
    lines += summary_section(metrics, decision, figures, lang)
    lines += results_section(metrics, decision, figures, layer_order, probe_notes, lang)
    if probe_design:
        lines += [text("report.probe_design", lang, design=_cell(probe_design)), ""]
    lines += _decision_section(decision, lang) + _gate_details(metrics, decision, layer_order, lang) + _figure(figures, "confusion", lang)
    if stage2 is not None:
        lines += render_stage2_section(metrics, decision, stage2, figures=stage2_figures, layer_order=layer_order, lang=lang)
    lines += _dataset_section(facts, lang)
    lines += _context_section(metrics, layer_order, lang)
    lines += _repro_section(config, facts, device, label_map, versions, decision.thresholds, lang)
    return "\n".join(lines).rstrip() + "\n"
