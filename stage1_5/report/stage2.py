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
from stage1_5.decision.wording import fmt_f1
from stage1_5.report.layout import STAGE2_FIGURES, ordered
from stage1_5.sources import decides, source_of

STAGE2_CAPTIONS = {
    "erasure": "LEACE erasure per backbone layer on held-out speakers: within-accent speaker ID before / after erasing accent "
    "(left), accent F1 before / after erasing within-accent speaker contrasts (right)",
    "cka": "Linear CKA between every pair of representations (held-out speakers' utterances)",
}

AXIS_TEXT = {
    "talker": "talker block output (residual stream)",
    "text": "text projection at transcript positions (sees no audio: a negative control)",
    "frames": "speech-tokenizer decoder frames (a codec view of the reference audio: under teacher forcing it depends only on the codes)",
}


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


def erasure_sentence(row: Mapping[str, Any]) -> str:
    """One sentence on a layer's two erasure results (numbers from its metrics row)."""
    layer = row["layer"]
    before, after, chance = (_value(row.get(c)) for c in ("erase_accent_speaker_acc", "erase_accent_speaker_acc_erased", "erase_accent_speaker_chance"))
    if before is None:
        first = "the accent erasure could not be measured (too few speakers or texts)"
    else:
        loss = _value(row.get("erase_accent_speaker_loss"))
        share = (
            f", {100 * loss:.0f}%{_ci(row, 'erase_accent_speaker_loss', lambda v: f'{100 * float(v):.0f}%')} of its excess over chance"
            if loss is not None
            else ", no identification reliably above chance to lose"
        )
        residual = _value(row.get("erase_accent_residual_f1"))
        first = (
            f"erasing accent costs {_pp(row.get('erase_accent_speaker_drop'))}{_ci(row, 'erase_accent_speaker_drop', _pp)} "
            f"of within-accent speaker ID ({before:.2f} → {after:.2f}, chance {chance:.2f}{share}; "
            f"the eraser leaves held-out accent F1 at {fmt_f1(residual)})"
        )
    base, erased = _value(row.get("erase_speaker_accent_f1_base")), _value(row.get("erase_speaker_accent_f1"))
    if erased is None:
        second = "the speaker-contrast erasure could not be measured"
    else:
        second = (
            f"erasing within-accent speaker contrasts leaves accent F1 {erased:.2f}{_ci(row, 'erase_speaker_accent_f1', fmt_f1)} "
            f"of {fmt_f1(base)} (drop {fmt_f1(row.get('erase_speaker_accent_f1_drop'))}"
            f"{_ci(row, 'erase_speaker_accent_f1_drop', fmt_f1)})"
        )
        if base is not None and erased > base:
            second += (
                " — higher, not a bug: the eraser removes speaker variance the accent probe had to see through, so the "
                "accents stand further apart in what is left"
            )
    return f"- `{layer}`: {first}; {second}."


def _best_talker_block(metrics: pd.DataFrame, layers: Mapping[str, Any]) -> Optional[str]:
    talker = [rep for rep, info in layers.items() if info.get("axis") == "talker"]
    rows = metrics[metrics["representation"].isin(talker)]
    if rows.empty or rows["accent_f1"].isna().all():
        return None
    return str(rows.loc[rows["accent_f1"].idxmax(), "representation"])


def next_step(level: Level, where: str) -> str:
    """What to do after this decision (the guide's: GO → LoRA, conditional → adversarial regularisation and live
    leakage monitoring, NOGO → what to change), as one bold lead sentence and its detail."""
    if level == Level.GO:
        return (
            f"**GO → prepare Stage 2 (LoRA) on {where}.** Put the LoRA adapters on the talker blocks up to that module "
            "(attention q/v projections) and condition them on the accent; the directions file gives the frozen probe "
            "(an auxiliary accent loss) and the class means / LDA basis (a steering target). Watch accent F1 and "
            "leakage on held-out speakers while training with `AccentMonitor` / `AccentMonitorCallback`."
        )
    if level == Level.CONDITIONAL:
        return (
            f"**Conditional GO → train with adversarial regularisation on {where}.** Accent is there, but not cleanly "
            "enough for plain LoRA: add a speaker-ID head on that module behind gradient reversal, trained on the "
            "within-accent speaker labels; keep the frozen directions as auxiliary accent probes during training; and "
            "monitor leakage in real time (`AccentMonitorCallback` every N steps): stop, or raise the adversarial "
            "weight, when the leakage excess passes the conditional margin."
        )
    return (
        "**NOGO → do not start LoRA accent control on this backbone as it is.** No layer carries accent linearly, "
        "apart from speaker identity and across sentences, well enough; fix what the diagnosis above names first "
        "(more speakers per accent, another backbone, or accents that this data can separate). The directions file "
        "is written for inspection only: do not use it as an accent control target."
    )


def _cka_sentence(cka: Optional[pd.DataFrame], rep: Optional[str]) -> Optional[str]:
    if cka is None or rep is None or rep not in cka.index:
        return None
    others = cka.loc[rep].drop(rep).dropna()
    refs = others[[not decides(source_of(str(r))) for r in others.index]]
    if refs.empty:
        return None
    nearest = refs.idxmax()
    parts = [f"`{r}` {v:.2f}" for r, v in refs.items() if r != nearest and source_of(str(r)) in ("ecapa", "acoustic")]
    tail = f"; against the speaker / acoustic baselines: {', '.join(parts)}" if parts else ""
    return f"`{rep}` is most alike the reference `{nearest}` (CKA {refs.max():.2f}){tail}."


def render_stage2_section(
    metrics: pd.DataFrame,
    decision: Decision,
    facts: Stage2Facts,
    *,
    figures: Optional[Mapping[str, str]] = None,
    layer_order=None,
) -> List[str]:
    """The "## Stage 2 handoff" section as Markdown lines. figures: key (see `layout.STAGE2_FIGURES`) → link."""
    s = facts.summary
    files, layers = s.get("files", {}), s.get("layers", {})
    recommended, strongest = s.get("recommended"), s.get("strongest")
    lines = ["## Stage 2 handoff", ""]
    if recommended:
        where = f"`{recommended['representation']}`, module `{recommended.get('module_path') or 'n/a'}`"
        axis = AXIS_TEXT.get(recommended.get("axis") or "", "module output")
        lines.append(f"- **Recommended layer:** {where} ({axis}; {recommended['level']}).")
        if recommended.get("axis") != "talker":
            block = _best_talker_block(metrics, layers)
            if block:
                lines.append(
                    f"- **Talker target:** LoRA and adversarial heads act on the talker; the best talker block by accent F1 is "
                    f"`{block}`, module `{layers[block].get('module_path')}`."
                )
    else:
        where = "the backbone"
        text = f"none (decision {decision.decision.value})"
        if strongest:
            text += f"; the strongest backbone layer was `{strongest['representation']}` (module `{strongest.get('module_path')}`), for reference only"
        lines.append(f"- **Recommended layer:** {text}.")
    if files:
        lines.append(
            f"- **Accent directions:** [`{files['directions']}`]({facts.folder_link}/{files['directions']}) + "
            f"[`{files['sidecar']}`]({facts.folder_link}/{files['sidecar']}): per backbone layer the accent probe refit on "
            "every speaker at its inner-CV C (standardisation folded in: logits = x·Wᵀ + b on raw pooled vectors), the "
            "per-accent means and an LDA basis; `stage1_5.stage2.load_directions(run_dir)` returns them as tensors."
        )
    lines += [f"- {next_step(decision.decision, where)}", ""]

    backbone = ordered(metrics, layer_order)
    backbone = backbone[[decides(str(src)) for src in backbone["source"]]]
    e = s.get("erasure", {})
    lines += ["### Concept erasure (LEACE, held-out speakers)", ""]
    if backbone.empty or "erase_accent_speaker_acc" not in backbone.columns:
        lines += ["No backbone layer was analysed.", ""]
    else:
        lines += [erasure_sentence(row) for _, row in backbone.iterrows()] + [""]
        lines += [
            "A large speaker-ID loss when accent is erased means speaker identity rides on the accent axis: steering accent "
            "at that layer drags the speaker along. Accent F1 that survives erasing the within-accent speaker contrasts "
            "means accent can be moved apart from who is speaking.",
            "",
            f"How: the accent eraser is fit on training speakers only ({e.get('accent_folds')} speaker folds, each holding out "
            "1/k of every accent's speakers), then held-out speakers are identified within their accent by a standardised "
            f"L2 logistic regression (C = {e.get('speaker_c')}) trained on {e.get('text_folds')} text folds of their own "
            "utterances in turn; the speaker-contrast eraser and the accent probe (the layer's C) are fit on training "
            "speakers, one speaker per accent held out. "
            f"Fold seeds: {e.get('fold_seeds')}. Intervals: {e.get('intervals')}.",
            "",
        ]
        if figures and "erasure" in figures:
            lines += [f"![{STAGE2_CAPTIONS['erasure']}]({figures['erasure']})", "", f"*{STAGE2_CAPTIONS['erasure']}.*", ""]

    c = s.get("cka", {})
    lines += ["### Layer similarity (linear CKA)", ""]
    per_accent = ", ".join(f"{k}: {v}" for k, v in sorted(c.get("speakers_per_accent", {}).items()))
    lines.append(
        f"Linear CKA on the {c.get('rows')} utterances of the {c.get('speakers')} speakers held out in the first accent-erasure "
        f"fold ({per_accent or 'n/a'}): every pair of representations, references included."
    )
    sentence = _cka_sentence(facts.cka, (recommended or strongest or {}).get("representation"))
    lines += ([sentence] if sentence else []) + [""]
    if figures and "cka" in figures:
        lines += [f"![{STAGE2_CAPTIONS['cka']}]({figures['cka']})", "", f"*{STAGE2_CAPTIONS['cka']}.*", ""]
    if s.get("notes"):
        lines += ["Stage 2 notes:", ""] + [f"- {n}" for n in s["notes"]] + [""]
    return lines

