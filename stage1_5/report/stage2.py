"""The report's "Stage 2" section: where and how to train accent control, given this run's result.

`render_stage2_section` is pure: it formats the Stage 2 summary (`artifacts/stage2/stage2.json`, written
by `stage1_5.stage2.save_stage2`), the erasure columns of metrics.csv and the CKA matrix. It reads the
summary's keys: decision, strongest / recommended {representation, layer, module_path, axis, level}
(recommended is null on NOGO), layers
{representation: {layer, module_path, axis, C}}, files, erasure {accent_folds, fold_seeds, intervals,
speaker_c, text_folds}, cka {rows, speakers, speakers_per_accent}, notes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

import pandas as pd

from stage1_5.decision.levels import Decision, Level, is_missing
from stage1_5.config import Language
from stage1_5.decision.wording import fmt_f1
from stage1_5.report.i18n import DEFAULT_LANGUAGE, LEVEL_KEYS, text
from stage1_5.report.layout import ordered
from stage1_5.sources import decides, source_of

AXES = ("talker", "text", "frames")
"""Where a backbone layer sits (stage2.json `axis`); each has a `stage2.axis.<axis>` text in the catalogue."""


@dataclass(frozen=True)
class Stage2Facts:
    """What the report reads of the Stage 2 handoff: the summary, the CKA matrix and where the folder
    is relative to report/."""

    summary: Mapping[str, Any]
    cka: Optional[pd.DataFrame] = None
    folder_link: str = "../artifacts/stage2"


def _value(x: Any) -> Optional[float]:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _pp(x: Any) -> str:
    v = _value(x)
    return "n/a" if v is None else f"{100 * v:+.1f} pp"


def _ci(row: Mapping[str, Any], column: str, fmt) -> str:
    lo, hi = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    return "" if is_missing(lo) or is_missing(hi) else f" [{fmt(lo)}, {fmt(hi)}]"


def erasure_sentence(row: Mapping[str, Any], lang: Language = DEFAULT_LANGUAGE) -> str:
    """One sentence on a layer's two erasure results (numbers from its metrics row)."""
    layer = row["layer"]
    before, after, chance = (_value(row.get(c)) for c in ("erase_accent_speaker_acc", "erase_accent_speaker_acc_erased", "erase_accent_speaker_chance"))
    if before is None:
        first = text("stage2.erasure.unmeasured", lang)
    else:
        loss = _value(row.get("erase_accent_speaker_loss"))
        share = (
            text("stage2.erasure.share", lang, loss=f"{100 * loss:.0f}%", ci=_ci(row, "erase_accent_speaker_loss", lambda v: f"{100 * float(v):.0f}%"))
            if loss is not None
            else text("stage2.erasure.no_share", lang)
        )
        residual = _value(row.get("erase_accent_residual_f1"))
        first = text(
            "stage2.erasure.first", lang, drop=_pp(row.get("erase_accent_speaker_drop")), ci=_ci(row, "erase_accent_speaker_drop", _pp),
            before=f"{before:.2f}", after=f"{after:.2f}", chance=f"{chance:.2f}", share=share, residual=fmt_f1(residual),
        )  # fmt: skip
    base, erased = _value(row.get("erase_speaker_accent_f1_base")), _value(row.get("erase_speaker_accent_f1"))
    if erased is None:
        second = text("stage2.erasure.speaker_unmeasured", lang)
    else:
        second = text(
            "stage2.erasure.second", lang, erased=f"{erased:.2f}", ci=_ci(row, "erase_speaker_accent_f1", fmt_f1), base=fmt_f1(base),
            drop=fmt_f1(row.get("erase_speaker_accent_f1_drop")), drop_ci=_ci(row, "erase_speaker_accent_f1_drop", fmt_f1),
        )  # fmt: skip
        if base is not None and erased > base:
            second += text("stage2.erasure.higher", lang)
    return f"- `{layer}`: {first}; {second}."


def _best_talker_block(metrics: pd.DataFrame, layers: Mapping[str, Any]) -> Optional[str]:
    talker = [rep for rep, info in layers.items() if info.get("axis") == "talker"]
    rows = metrics[metrics["representation"].isin(talker)]
    if rows.empty or rows["accent_f1"].isna().all():
        return None
    return str(rows.loc[rows["accent_f1"].idxmax(), "representation"])


def next_step(level: Level, where: str, lang: Language = DEFAULT_LANGUAGE) -> str:
    """What to do after this decision (the guide's: GO → LoRA, conditional → adversarial regularisation and live
    leakage monitoring, NOGO → what to change), as one bold lead sentence and its detail."""
    return text(f"next.{LEVEL_KEYS[level]}", lang, where=where)


def _cka_sentence(cka: Optional[pd.DataFrame], rep: Optional[str], lang: Language = DEFAULT_LANGUAGE) -> Optional[str]:
    if cka is None or rep is None or rep not in cka.index:
        return None
    others = cka.loc[rep].drop(rep).dropna()
    refs = others[[not decides(source_of(str(r))) for r in others.index]]
    if refs.empty:
        return None
    nearest = refs.idxmax()
    parts = [f"`{r}` {v:.2f}" for r, v in refs.items() if r != nearest and source_of(str(r)) in ("ecapa", "acoustic")]
    tail = text("stage2.cka.tail", lang, parts=", ".join(parts)) if parts else ""
    return text("stage2.cka.nearest", lang, rep=rep, nearest=nearest, cka=f"{refs.max():.2f}", tail=tail)


def render_stage2_section(
    metrics: pd.DataFrame,
    decision: Decision,
    facts: Stage2Facts,
    *,
    figures: Optional[Mapping[str, str]] = None,
    layer_order=None,
    lang: Language = DEFAULT_LANGUAGE,
) -> List[str]:
    """The "## Stage 2 handoff" section as Markdown lines. figures: key (see `layout.STAGE2_FIGURES`) → link.
    Its words are in `lang`."""
    s = facts.summary
    files, layers = s.get("files", {}), s.get("layers", {})
    recommended, strongest = s.get("recommended"), s.get("strongest")
    lines = [text("stage2.heading", lang), ""]
    if recommended:
        where = text("stage2.where", lang, rep=recommended["representation"], module=recommended.get("module_path") or "n/a")
        axis_name = recommended.get("axis") or ""
        axis = text(f"stage2.axis.{axis_name}" if axis_name in AXES else "stage2.axis.other", lang)
        lines.append(text("stage2.recommended", lang, what=f"{where} ({axis}; {recommended['level']})"))
        if recommended.get("axis") != "talker":
            block = _best_talker_block(metrics, layers)
            if block:
                lines.append(text("stage2.talker_target", lang, block=block, module=layers[block].get("module_path")))
    else:
        where = text("stage2.the_backbone", lang)
        none = text("stage2.none", lang, decision=decision.decision.value)
        if strongest:
            none += text("stage2.strongest", lang, rep=strongest["representation"], module=strongest.get("module_path"))
        lines.append(text("stage2.recommended", lang, what=none))
    if files:
        lines.append(
            text("stage2.directions", lang, directions=files["directions"], sidecar=files["sidecar"], folder=facts.folder_link)
        )
    lines += [f"- {next_step(decision.decision, where, lang)}", ""]

    backbone = ordered(metrics, layer_order)
    backbone = backbone[[decides(str(src)) for src in backbone["source"]]]
    e = s.get("erasure", {})
    lines += [text("stage2.erasure_heading", lang), ""]
    if backbone.empty or "erase_accent_speaker_acc" not in backbone.columns:
        lines += [text("stage2.no_backbone", lang), ""]
    else:
        lines += [erasure_sentence(row, lang) for _, row in backbone.iterrows()] + [""]
        lines += [
            text("stage2.erasure.meaning", lang),
            "",
            text(
                "stage2.erasure.how", lang, accent_folds=e.get("accent_folds"), speaker_c=e.get("speaker_c"),
                text_folds=e.get("text_folds"), fold_seeds=e.get("fold_seeds"), intervals=e.get("intervals"),
            ),  # fmt: skip
            "",
        ]
        if figures and "erasure" in figures:
            caption = text("caption.erasure", lang)
            lines += [f"![{caption}]({figures['erasure']})", "", f"*{caption}.*", ""]

    c = s.get("cka", {})
    lines += [text("stage2.cka_heading", lang), ""]
    per_accent = ", ".join(f"{k}: {v}" for k, v in sorted(c.get("speakers_per_accent", {}).items()))
    lines.append(text("stage2.cka.how", lang, rows=c.get("rows"), speakers=c.get("speakers"), per_accent=per_accent or "n/a"))
    sentence = _cka_sentence(facts.cka, (recommended or strongest or {}).get("representation"), lang)
    lines += ([sentence] if sentence else []) + [""]
    if figures and "cka" in figures:
        caption = text("caption.cka", lang)
        lines += [f"![{caption}]({figures['cka']})", "", f"*{caption}.*", ""]
    if s.get("notes"):
        lines += [text("stage2.notes", lang), ""] + [f"- {n}" for n in s["notes"]] + [""]
    return lines

