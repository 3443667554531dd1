"""The report's words in each language it is written in (`report.language`): one catalogue, one lookup.

`text(key, lang, **params)` fills a `str.format` template; every key exists in every language with the
same placeholders (tests/test_report_i18n.py checks both). The English templates are the report's
wording; the Brazilian Portuguese ones use the guide's terms (limiar, camada, falante, sotaque,
intervalo de confiança) and keep GO / NOGO as they are.
"""

from __future__ import annotations

import string
from typing import Dict, get_args

from stage1_5.config import Language
from stage1_5.data.recording import LABELS
from stage1_5.decision.levels import Diagnosis, Level
from stage1_5.sources import Role

LANGUAGES: tuple[str, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "en"
LEVEL_KEYS = {Level.GO: "go", Level.CONDITIONAL: "conditional", Level.NOGO: "nogo"}

EN: Dict[str, str] = {
    # header
    "title": "# Stage 1.5 accent probing report — {name}{planted}",
    "title.planted": " ({sources} features: synthetic, not a network's)",
    "html.title": "Stage 1.5 accent probing report",
    "banner": "> **⚠ Not a scientific result:** {why}. Read the numbers as a check of the pipeline, not as evidence about the backbone.",
    "banner.default": "the run was marked not scientific",
    "question": "**{verdict}** — does the backbone carry regional accent linearly in a layer, apart from speaker identity "
    "and robustly across sentences? Accent F1 is macro-F1 of a linear probe on held-out speakers.",
    "level.go": Level.GO.label,
    "level.conditional": Level.CONDITIONAL.label,
    "level.nogo": Level.NOGO.label,
    # summary box
    "summary.heading": "## Summary",
    "summary.decision": "Decision",
    "summary.best": "Best representation",
    "summary.diagnosis": "Diagnosis",
    "summary.next": "Next step",
    "summary.best_none": "none (no {deciding} layer evaluated)",
    "summary.best_cell": "`{best}`: accent F1 {f1}, family-wise p {p}",
    "summary.best_layer": "the best layer",
    # figures' captions
    "caption.heatmap": "Every representation against every gate (green passes GO, amber passes conditional only, red fails)",
    "caption.f1_by_layer": "Accent F1 by layer with 95% CI and the GO / conditional / NOGO thresholds",
    "caption.confusion": "Confusion matrix of the best representation (held-out speakers)",
    "caption.leakage_vs_f1": "Speaker leakage excess against accent F1, GO and conditional regions shaded",
    # results
    "results.heading": "## Results",
    "results.table_header": "| Layer | Accent F1 [95% CI] | Leak A→S | Text Drop | p layer / family | Level |",
    "results.role.decides": Role.DECIDES.value,
    "results.role.reference": Role.REFERENCE.value,
    "results.reference": " (reference)",
    "results.borderline": " · borderline",
    "results.legend": "Leak A→S: excess (percentage points) of within-accent speaker identification from the accent probe over "
    "chance. Text Drop: F1 on seen texts − F1 on unseen texts. p: speaker-level permutation test (n/a: no "
    "permutations run; such a layer cannot reach GO).",
    "results.synthetic": "`{source}` is **synthetic**: {what}.",
    "results.about": "`{source}` is {what}.",
    "results.text_only": "`{rep}` sits at the majority level (F1 {f1}, majority {majority}) "
    "by construction: the text encoder sees only the text, no audio, and every accent reads the same texts.",
    "results.probe_notes": "Probe notes:",
    # decision
    "decision.heading": "## Decision",
    "decision.best_none": "none (no {deciding} layer evaluated)",
    "decision.best": "- **Best representation:** {best}",
    "decision.decision": "- **Decision:** {level}",
    "decision.rationale": "- **Rationale:** {rationale}",
    "decision.thresholds": "- **Thresholds applied** ({n_accents} accents, chance F1 {chance}): "
    "GO F1 ≥ {f1_go}, conditional F1 ≥ {f1_conditional}, leakage excess ≤ {leak_go} / {leak_conditional} pp, "
    "family-wise p < {alpha} at both levels",
    "decision.smallest_p": "- **Smallest reachable p:** {p} (permutations and distinct speaker labellings of this design)",
    "decision.diagnosis": "- **Diagnosis:** `{code}` — {text}",
    "decision.borderline": "- **Borderline layers:** {layers} (significant, F1 between the NOGO and conditional thresholds: more speakers may lift them)",
    "decision.who_decides": "Only {deciding} layers decide; references ({references}, your own) only diagnose a NOGO.",
    "gates.heading": "### Why each {deciding} layer sits where it does",
    "gates.none": "No {deciding} layer was evaluated.",
    "gates.line": "- `{rep}` — {level}: {reasons}",
    # dataset
    "dataset.heading": "## Dataset",
    "dataset.utterances": "Utterances",
    "dataset.speakers": "Speakers",
    "dataset.accents": "Accents",
    "dataset.texts": "Texts",
    "dataset.audio": "Audio",
    "dataset.speakers_per_accent": "Speakers per accent",
    "dataset.utterances_per_accent": "Utterances per accent",
    "dataset.min_texts": "Min texts per speaker",
    "dataset.sample_rates": "Sample rates",
    "dataset.speakers_per_group": "Speakers per group",
    "dataset.minima": "Meets design minima",
    "dataset.yes": "yes",
    "dataset.no": "**no**",
    "dataset.warnings": "Warnings:",
    "confounds.heading": "### Confound checks",
    "confounds.texts": "Texts: the accents share {shared} of {n_texts} texts (dataset.min_shared_texts = {min_shared}): {verdict}.",
    "confounds.text_confound": "**text confound**",
    "confounds.no_text_confound": "no text confound",
    "confounds.texts_header": "| Accent | Texts read | Only in this accent |",
    "confounds.recording_intro": "Recording conditions per accent (categorical: file counts; continuous: median over speakers):",
    "confounds.recording_header": "| Accent | Speakers | Files | ",
    "confounds.separation": "Separation of the accents by each statistic (adjusted R² over speaker means, 0 = none, 1 = apart): {separation}.",
    "confounds.probe": "Recording probe (the speaker-disjoint accent probe of the results below): **{summary}**. "
    "It reads {n} utterances, not all: at most `dataset.recording_probe.utterances_per_speaker` "
    "of each speaker's, since recording conditions belong to a speaker or session.",
    "confounds.probe_not_run": "Accent probe on recording statistics: not run ({note}).",
    "confounds.no_audio": "Recording conditions: not checked (features-only dataset, no audio).",
    # context
    "context.heading": "## Context (reported, not gated)",
    "context.header": "| Representation | Speakers | Utterances | F1 sd | Majority F1 | p (FWER) | F1 seen texts | F1 unseen texts "
    "| Leak acc | Leak chance | Speaker acc |",
    "context.legend": "Leak acc: speaker identified within each accent from the accent probe's output; chance ≈ 1/speakers per "
    "accent. Speaker acc: speaker ID from the full representation.",
    "report.probe_design": "Probe design: {design}.",
    "context.unstable": "**Unstable fold seeds:** {layers}: the fold seeds disagree more than one seed's standard error over the speakers allows, so the "
    "pairing of held-out speakers decides the number. Likely cause: a factor shared across accents (a voice donor, a device, a "
    "session) held out with some pairings and not others; name it in metadata.csv's group column.",
    # reproducibility
    "repro.heading": "## Reproducibility",
    "repro.config_hash": "| Config hash | `{hash}` (resolved config in `../config/`) |",
    "repro.dataset_hash": "Dataset hash",
    "repro.device": "Device",
    "repro.seeds": "Seeds",
    "repro.label_map": "Label map",
    "repro.thresholds": "Thresholds",
    "repro.package_header": "| Package | Version |",
    "repro.seed_text": "run {run}; probes {probes} ({fold_seeds} fold seeds, {permutations} permutations, {bootstrap} bootstrap resamples){inits}",
    "repro.init": "; {source} init {seed}",
    "repro.thresholds_line": "GO: F1{ci_low} ≥ {min_f1_go}, leakage excess{ci_high} ≤ {leak_go} pp, text drop{ci_high} ≤ {max_text_drop}, "
    "family-wise p < {alpha}; conditional GO: F1 ≥ {min_f1_conditional}, leakage excess ≤ {leak_conditional} pp, "
    "text drop ≤ {max_text_drop}, family-wise p < {alpha}; borderline NOGO from F1 {nogo_f1}. "
    "F1 thresholds read at {reference_accents} accents, scale {f1_scale}; leakage margins read at "
    "{reference_speakers} speakers per accent, scale {leakage_scale}; strict mode {strict}.",
    "repro.ci_low": " CI low",
    "repro.ci_high": " CI high",
    "repro.on": "on",
    "repro.off": "off",
    # Stage 2 section
    "stage2.heading": "## Stage 2 handoff",
    "stage2.erasure_heading": "### Concept erasure (LEACE, held-out speakers)",
    "stage2.cka_heading": "### Layer similarity (linear CKA)",
    "stage2.notes": "Stage 2 notes:",
    "stage2.where": "`{rep}`, module `{module}`",
    "stage2.the_backbone": "the backbone",
    "stage2.axis.talker": "talker block output (residual stream)",
    "stage2.axis.text": "text projection at transcript positions (sees no audio: a negative control)",
    "stage2.axis.frames": "speech-tokenizer decoder frames (a codec view of the reference audio: under teacher forcing it depends only on the codes)",
    "stage2.axis.other": "module output",
    "stage2.recommended": "- **Recommended layer:** {what}.",
    "stage2.talker_target": "- **Talker target:** LoRA and adversarial heads act on the talker; the best talker block by accent F1 is "
    "`{block}`, module `{module}`.",
    "stage2.none": "none (decision {decision})",
    "stage2.strongest": "; the strongest backbone layer was `{rep}` (module `{module}`), for reference only",
    "stage2.directions": "- **Accent directions:** [`{directions}`]({folder}/{directions}) + [`{sidecar}`]({folder}/{sidecar}): per backbone "
    "layer the accent probe refit on every speaker at its inner-CV C (standardisation folded in: logits = x·Wᵀ + b on raw pooled "
    "vectors), the per-accent means and an LDA basis; `stage1_5.stage2.load_directions(run_dir)` returns them as tensors.",
    "stage2.no_backbone": "No backbone layer was analysed.",
    "stage2.erasure.unmeasured": "the accent erasure could not be measured (too few speakers or texts)",
    "stage2.erasure.share": ", {loss}{ci} of its excess over chance",
    "stage2.erasure.no_share": ", no identification reliably above chance to lose",
    "stage2.erasure.first": "erasing accent costs {drop}{ci} of within-accent speaker ID ({before} → {after}, chance {chance}{share}; "
    "the eraser leaves held-out accent F1 at {residual})",
    "stage2.erasure.speaker_unmeasured": "the speaker-contrast erasure could not be measured",
    "stage2.erasure.second": "erasing within-accent speaker contrasts leaves accent F1 {erased}{ci} of {base} (drop {drop}{drop_ci})",
    "stage2.erasure.higher": " — higher, not a bug: the eraser removes speaker variance the accent probe had to see through, so the "
    "accents stand further apart in what is left",
    "stage2.erasure.meaning": "A large speaker-ID loss when accent is erased means speaker identity rides on the accent axis: steering accent "
    "at that layer drags the speaker along. Accent F1 that survives erasing the within-accent speaker contrasts "
    "means accent can be moved apart from who is speaking.",
    "stage2.erasure.how": "How: the accent eraser is fit on training speakers only ({accent_folds} speaker folds, each holding out "
    "1/k of every accent's speakers), then held-out speakers are identified within their accent by a standardised "
    "L2 logistic regression (C = {speaker_c}) trained on {text_folds} text folds of their own "
    "utterances in turn; the speaker-contrast eraser and the accent probe (the layer's C) are fit on training "
    "speakers, one speaker per accent held out. Fold seeds: {fold_seeds}. Intervals: {intervals}.",
    "stage2.cka.how": "Linear CKA on the {rows} utterances of the {speakers} speakers held out in the first accent-erasure "
    "fold ({per_accent}): every pair of representations, references included.",
    "stage2.cka.nearest": "`{rep}` is most alike the reference `{nearest}` (CKA {cka}){tail}.",
    "stage2.cka.tail": "; against the speaker / acoustic baselines: {parts}",
    "caption.erasure": "LEACE erasure per backbone layer on held-out speakers: within-accent speaker ID before / after erasing accent "
    "(left), accent F1 before / after erasing within-accent speaker contrasts (right)",
    "caption.cka": "Linear CKA between every pair of representations (held-out speakers' utterances)",
    "next.go": "**GO → prepare Stage 2 (LoRA) on {where}.** Put the LoRA adapters on the talker blocks up to that module "
    "(attention q/v projections) and condition them on the accent; the directions file gives the frozen probe "
    "(an auxiliary accent loss) and the class means / LDA basis (a steering target). Watch accent F1 and "
    "leakage on held-out speakers while training with `AccentMonitor` / `AccentMonitorCallback`.",
    "next.conditional": "**Conditional GO → train with adversarial regularisation on {where}.** Accent is there, but not cleanly "
    "enough for plain LoRA: add a speaker-ID head on that module behind gradient reversal, trained on the "
    "within-accent speaker labels; keep the frozen directions as auxiliary accent probes during training; and "
    "monitor leakage in real time (`AccentMonitorCallback` every N steps): stop, or raise the adversarial "
    "weight, when the leakage excess passes the conditional margin.",
    "next.nogo": "**NOGO → do not start LoRA accent control on this backbone as it is.** No layer carries accent linearly, "
    "apart from speaker identity and across sentences, well enough; fix what the diagnosis above names first "
    "(more speakers per accent, another backbone, or accents that this data can separate). The directions file "
    "is written for inspection only: do not use it as an accent control target.",
    # the CLI's closing summary of `stage1_5 run`
    "cli.decision": "Decision: {level}",
    "cli.best": "Best representation: {best}",
    "cli.rationale": "Rationale: {rationale}",
    "cli.diagnosis": "Diagnosis: {code}",
    "cli.warning": "WARNING: {text}.",
    "cli.not_scientific": "NOTE: not a scientific result: {caveats}.",
    "cli.report": "Report:   {path}",
    "cli.analysis": "Analysis: {path}",
    "cli.stage2": "Stage 2:  {path}",
    "cli.bundle": "Bundle:   {path}",
    "cli.wall_time": "Wall time: {seconds}s{stages}",
    # figures
    "fig.heatmap.f1": "Accent F1",
    "fig.heatmap.ci_low": "F1 CI low",
    "fig.heatmap.leak": "Leak excess\n(pp)",
    "fig.heatmap.text_drop": "Text drop",
    "fig.heatmap.p": "p family-wise",
    "fig.heatmap.speaker": "Speaker acc\n(context)",
    "fig.heatmap.level": "Level",
    "fig.heatmap.ref": " (ref)",
    "fig.heatmap.go": "✓ passes GO gate",
    "fig.heatmap.cond": "~ passes the conditional gate only",
    "fig.heatmap.fail": "✗ fails the conditional gate",
    "fig.heatmap.context": "context (not gated)",
    "fig.heatmap.title": "Gates: F1{ci_low} ≥ {f1_go} GO / {f1_cond} cond · leak ≤ {leak_go} / {leak_cond} pp · "
    "text drop ≤ {text_drop} · p < {alpha} (GO)",
    "fig.short.go": "GO",
    "fig.short.conditional": "COND",
    "fig.short.nogo": "NOGO",
    "fig.chance": "chance {value}",
    "fig.line.go": "GO",
    "fig.line.conditional": "conditional",
    "fig.line.nogo": "NOGO below",
    "fig.f1.decides": "{decider} (decides)",
    "fig.f1.references": "References (diagnose only)",
    "fig.f1.none": "No representations",
    "fig.f1.ylabel": "Accent macro-F1 (held-out speakers)",
    "fig.f1.mean": "mean F1, band = 95% CI",
    "fig.f1.majority": "majority baseline",
    "fig.f1.chance": "chance (1/K)",
    "fig.f1.best": "best representation (ring)",
    "fig.f1.strict": " (strict: gates test the CI low)",
    "fig.f1.no_decider": " (no {deciding} layer evaluated)",
    "fig.f1.title": "Accent F1 by layer — decision: {level}{none}{strict}",
    "fig.confusion.summed": "counts summed over {n} fold seeds: each held-out utterance is counted once per seed",
    "fig.confusion.predicted": "predicted accent",
    "fig.confusion.true": "true accent",
    "fig.confusion.share": "share of the true accent's utterances",
    "fig.confusion.default_title": "Confusion matrix",
    "fig.confusion.title": "{best} ({level}) — held-out speakers",
    "fig.leak.cond_region": "conditional-GO region",
    "fig.leak.go_region": "GO region",
    "fig.leak.outline": "{source} (outline)",
    "fig.leak.best": "best representation",
    "fig.leak.xlabel": "Accent F1{strict}",
    "fig.leak.strict": " CI low (strict)",
    "fig.leak.ylabel": "Speaker leakage A→S: excess over chance (pp)",
    "fig.leak.title": "Leakage vs accent F1 (regions ignore text drop and p; fill and shape = level, outline = source)",
    "fig.leak.refs": "reference sources with several layers: only their best layer is labelled",
    "fig.leak.missing": "not plotted (not measured): {reps}",
    "fig.erasure.left": "Erase accent → within-accent speaker ID",
    "fig.erasure.left_y": "accuracy (held-out speakers)",
    "fig.erasure.right": "Erase within-accent speaker contrasts → accent F1",
    "fig.erasure.right_y": "accent macro-F1 (held-out speakers)",
    "fig.erasure.before": "before erasure",
    "fig.erasure.after": "after erasure (error bar: 95% CI of the drop)",
    "fig.erasure.chance": "chance (1 / held-out speakers of the accent)",
    "fig.erasure.none": " (no {deciding} layer analysed)",
    "fig.erasure.title": "LEACE concept erasure per {deciding} layer{none}\n−x%: share of above-chance speaker ID lost (+x%: gained)",
    "fig.cka.colorbar": "linear CKA",
    "fig.cka.title": "Layer similarity (linear CKA, held-out speakers)",
    "fig.cka.highlight": "bold: best layer {layer}",
}

PT_BR: Dict[str, str] = {
    "title": "# Relatório de sondagem de sotaque do Stage 1.5 — {name}{planted}",
    "title.planted": " (atributos {sources}: sintéticos, não de uma rede)",
    "html.title": "Relatório de sondagem de sotaque do Stage 1.5",
    "banner": "> **⚠ Não é um resultado científico:** {why}. Leia os números como uma verificação do pipeline, não como evidência sobre o backbone.",
    "banner.default": "a execução foi marcada como não científica",
    "question": "**{verdict}** — o backbone carrega o sotaque regional linearmente em alguma camada, separado da identidade do "
    "falante e de forma robusta entre frases? O F1 de sotaque é o macro-F1 de uma sonda linear em falantes retidos.",
    "level.go": "GO",
    "level.conditional": "GO condicional",
    "level.nogo": "NOGO",
    "summary.heading": "## Resumo",
    "summary.decision": "Decisão",
    "summary.best": "Melhor representação",
    "summary.diagnosis": "Diagnóstico",
    "summary.next": "Próximo passo",
    "summary.best_none": "nenhuma (nenhuma camada do {deciding} avaliada)",
    "summary.best_cell": "`{best}`: F1 de sotaque {f1}, p por família {p}",
    "summary.best_layer": "a melhor camada",
    "caption.heatmap": "Cada representação diante de cada critério (verde passa em GO, âmbar só no condicional, vermelho falha)",
    "caption.f1_by_layer": "F1 de sotaque por camada com intervalo de confiança de 95% e os limiares GO / condicional / NOGO",
    "caption.confusion": "Matriz de confusão da melhor representação (falantes retidos)",
    "caption.leakage_vs_f1": "Excesso de vazamento de falante contra o F1 de sotaque, regiões GO e condicional sombreadas",
    "results.heading": "## Resultados",
    "results.table_header": "| Camada | F1 de sotaque [IC 95%] | Vazamento S→F | Queda por texto | p camada / família | Nível |",
    "results.role.decides": "decide",
    "results.role.reference": "referência",
    "results.reference": " (referência)",
    "results.borderline": " · limítrofe",
    "results.legend": "Vazamento S→F: excesso (pontos percentuais) sobre o acaso da identificação do falante dentro do sotaque a partir "
    "da sonda de sotaque. Queda por texto: F1 em textos vistos − F1 em textos não vistos. p: teste de permutação no nível do "
    "falante (n/a: nenhuma permutação executada; tal camada não pode chegar a GO).",
    "results.synthetic": "`{source}` é **sintética**: {what}.",
    "results.about": "`{source}`: {what}.",
    "results.text_only": "`{rep}` fica no nível da classe majoritária (F1 {f1}, majoritária {majority}) "
    "por construção: o codificador de texto vê só o texto, nenhum áudio, e todos os sotaques leem os mesmos textos.",
    "results.probe_notes": "Notas das sondas:",
    "decision.heading": "## Decisão",
    "decision.best_none": "nenhuma (nenhuma camada do {deciding} avaliada)",
    "decision.best": "- **Melhor representação:** {best}",
    "decision.decision": "- **Decisão:** {level}",
    "decision.rationale": "- **Justificativa:** {rationale}",
    "decision.thresholds": "- **Limiares aplicados** ({n_accents} sotaques, F1 do acaso {chance}): "
    "GO F1 ≥ {f1_go}, condicional F1 ≥ {f1_conditional}, excesso de vazamento ≤ {leak_go} / {leak_conditional} pp, "
    "p por família < {alpha} nos dois níveis",
    "decision.smallest_p": "- **Menor p alcançável:** {p} (permutações e rotulações distintas de falantes deste desenho)",
    "decision.diagnosis": "- **Diagnóstico:** `{code}` — {text}",
    "decision.borderline": "- **Camadas limítrofes:** {layers} (significativas, F1 entre os limiares NOGO e condicional: mais falantes podem elevá-las)",
    "decision.who_decides": "Só as camadas do {deciding} decidem; as referências ({references}, as suas) só diagnosticam um NOGO.",
    "gates.heading": "### Por que cada camada do {deciding} fica onde fica",
    "gates.none": "Nenhuma camada do {deciding} foi avaliada.",
    "gates.line": "- `{rep}` — {level}: {reasons}",
    "dataset.heading": "## Conjunto de dados",
    "dataset.utterances": "Enunciados",
    "dataset.speakers": "Falantes",
    "dataset.accents": "Sotaques",
    "dataset.texts": "Textos",
    "dataset.audio": "Áudio",
    "dataset.speakers_per_accent": "Falantes por sotaque",
    "dataset.utterances_per_accent": "Enunciados por sotaque",
    "dataset.min_texts": "Mínimo de textos por falante",
    "dataset.sample_rates": "Taxas de amostragem",
    "dataset.speakers_per_group": "Falantes por grupo",
    "dataset.minima": "Atende aos mínimos do desenho",
    "dataset.yes": "sim",
    "dataset.no": "**não**",
    "dataset.warnings": "Avisos:",
    "confounds.heading": "### Verificação de confusores",
    "confounds.texts": "Textos: os sotaques compartilham {shared} de {n_texts} textos (dataset.min_shared_texts = {min_shared}): {verdict}.",
    "confounds.text_confound": "**confusor de texto**",
    "confounds.no_text_confound": "sem confusor de texto",
    "confounds.texts_header": "| Sotaque | Textos lidos | Só neste sotaque |",
    "confounds.recording_intro": "Condições de gravação por sotaque (categóricas: contagem de arquivos; contínuas: mediana sobre os falantes):",
    "confounds.recording_header": "| Sotaque | Falantes | Arquivos | ",
    "confounds.separation": "Separação dos sotaques por cada estatística (R² ajustado sobre as médias dos falantes, 0 = nenhuma, 1 = separados): {separation}.",
    "confounds.probe": "Sonda de gravação (a sonda de sotaque com falantes disjuntos dos resultados abaixo): **{summary}**. "
    "Ela lê {n} enunciados, não todos: no máximo `dataset.recording_probe.utterances_per_speaker` "
    "de cada falante, pois as condições de gravação pertencem a um falante ou sessão.",
    "confounds.probe_not_run": "Sonda de sotaque sobre as estatísticas de gravação: não executada ({note}).",
    "confounds.no_audio": "Condições de gravação: não verificadas (conjunto só de atributos, sem áudio).",
    "context.heading": "## Contexto (relatado, sem critério)",
    "context.header": "| Representação | Falantes | Enunciados | DP do F1 | F1 majoritário | p (FWER) | F1 textos vistos | F1 textos não vistos "
    "| Acurácia do vazamento | Acaso do vazamento | Acurácia de falante |",
    "context.legend": "Acurácia do vazamento: falante identificado dentro de cada sotaque a partir da saída da sonda de sotaque; acaso ≈ "
    "1/falantes por sotaque. Acurácia de falante: identificação do falante a partir da representação completa.",
    "report.probe_design": "Desenho das sondas: {design}.",
    "context.unstable": "**Sementes de partição instáveis:** {layers}: as sementes de partição discordam mais do que o erro-padrão de "
    "uma semente sobre os falantes permite, então o pareamento dos falantes retidos decide o número. Causa provável: um fator comum aos sotaques (um "
    "doador de voz, um dispositivo, uma sessão) retido em alguns pareamentos e não em outros; nomeie-o na coluna group do metadata.csv.",
    "repro.heading": "## Reprodutibilidade",
    "repro.config_hash": "| Hash da configuração | `{hash}` (configuração resolvida em `../config/`) |",
    "repro.dataset_hash": "Hash do conjunto de dados",
    "repro.device": "Dispositivo",
    "repro.seeds": "Sementes",
    "repro.label_map": "Mapa de rótulos",
    "repro.thresholds": "Limiares",
    "repro.package_header": "| Pacote | Versão |",
    "repro.seed_text": "execução {run}; sondas {probes} ({fold_seeds} sementes de partição, {permutations} permutações, "
    "{bootstrap} reamostragens bootstrap){inits}",
    "repro.init": "; {source} inicialização {seed}",
    "repro.thresholds_line": "GO: F1{ci_low} ≥ {min_f1_go}, excesso de vazamento{ci_high} ≤ {leak_go} pp, queda por texto{ci_high} ≤ "
    "{max_text_drop}, p por família < {alpha}; GO condicional: F1 ≥ {min_f1_conditional}, excesso de vazamento ≤ "
    "{leak_conditional} pp, queda por texto ≤ {max_text_drop}, p por família < {alpha}; NOGO limítrofe a partir de F1 {nogo_f1}. "
    "Limiares de F1 lidos com {reference_accents} sotaques, escala {f1_scale}; margens de vazamento lidas com "
    "{reference_speakers} falantes por sotaque, escala {leakage_scale}; modo estrito {strict}.",
    "repro.ci_low": " limite inferior do IC",
    "repro.ci_high": " limite superior do IC",
    "repro.on": "ligado",
    "repro.off": "desligado",
    "stage2.heading": "## Passagem para o Stage 2",
    "stage2.erasure_heading": "### Apagamento de conceito (LEACE, falantes retidos)",
    "stage2.cka_heading": "### Semelhança entre camadas (CKA linear)",
    "stage2.notes": "Notas do Stage 2:",
    "stage2.where": "`{rep}`, módulo `{module}`",
    "stage2.the_backbone": "o backbone",
    "stage2.axis.talker": "saída de bloco do talker (fluxo residual)",
    "stage2.axis.text": "projeção de texto nas posições da transcrição (não vê áudio: um controle negativo)",
    "stage2.axis.frames": "quadros do decodificador do speech tokenizer (uma visão de codec do áudio de referência: com teacher forcing depende só dos códigos)",
    "stage2.axis.other": "saída do módulo",
    "stage2.recommended": "- **Camada recomendada:** {what}.",
    "stage2.talker_target": "- **Alvo no talker:** LoRA e cabeças adversariais atuam no talker; o melhor bloco do talker pelo F1 de sotaque é "
    "`{block}`, módulo `{module}`.",
    "stage2.none": "nenhuma (decisão {decision})",
    "stage2.strongest": "; a camada mais forte do backbone foi `{rep}` (módulo `{module}`), só como referência",
    "stage2.directions": "- **Direções de sotaque:** [`{directions}`]({folder}/{directions}) + [`{sidecar}`]({folder}/{sidecar}): por camada do "
    "backbone, a sonda de sotaque reajustada em todos os falantes no C da validação cruzada interna (padronização incorporada: "
    "logits = x·Wᵀ + b sobre os vetores agregados brutos), as médias por sotaque e uma base LDA; "
    "`stage1_5.stage2.load_directions(run_dir)` devolve-as como tensores.",
    "stage2.no_backbone": "Nenhuma camada do backbone foi analisada.",
    "stage2.erasure.unmeasured": "o apagamento do sotaque não pôde ser medido (poucos falantes ou textos)",
    "stage2.erasure.share": ", {loss}{ci} do seu excesso sobre o acaso",
    "stage2.erasure.no_share": ", nenhuma identificação confiavelmente acima do acaso a perder",
    "stage2.erasure.first": "apagar o sotaque custa {drop}{ci} da identificação do falante dentro do sotaque ({before} → {after}, acaso "
    "{chance}{share}; o apagador deixa o F1 de sotaque dos falantes retidos em {residual})",
    "stage2.erasure.speaker_unmeasured": "o apagamento dos contrastes de falante não pôde ser medido",
    "stage2.erasure.second": "apagar os contrastes de falante dentro do sotaque deixa o F1 de sotaque em {erased}{ci} de {base} "
    "(queda {drop}{drop_ci})",
    "stage2.erasure.higher": " — maior, não é um erro: o apagador remove a variância de falante que a sonda de sotaque precisava "
    "atravessar, e os sotaques ficam mais afastados no que resta",
    "stage2.erasure.meaning": "Uma grande perda na identificação do falante ao apagar o sotaque significa que a identidade do falante "
    "anda no eixo do sotaque: direcionar o sotaque nessa camada arrasta o falante junto. Um F1 de sotaque que sobrevive ao apagamento "
    "dos contrastes de falante dentro do sotaque significa que o sotaque pode ser movido separado de quem fala.",
    "stage2.erasure.how": "Como: o apagador de sotaque é ajustado só nos falantes de treino ({accent_folds} partições de falantes, cada uma "
    "retendo 1/k dos falantes de cada sotaque); depois os falantes retidos são identificados dentro do seu sotaque por uma "
    "regressão logística L2 padronizada (C = {speaker_c}) treinada em {text_folds} partições de texto dos seus próprios "
    "enunciados, uma de cada vez; o apagador de contrastes de falante e a sonda de sotaque (o C da camada) são ajustados nos "
    "falantes de treino, um falante por sotaque retido. Sementes de partição: {fold_seeds}. Intervalos: {intervals}.",
    "stage2.cka.how": "CKA linear sobre os {rows} enunciados dos {speakers} falantes retidos na primeira partição do apagamento "
    "de sotaque ({per_accent}): todos os pares de representações, referências incluídas.",
    "stage2.cka.nearest": "`{rep}` é mais parecida com a referência `{nearest}` (CKA {cka}){tail}.",
    "stage2.cka.tail": "; diante das linhas de base de falante / acústicas: {parts}",
    "caption.erasure": "Apagamento LEACE por camada do backbone em falantes retidos: identificação do falante dentro do sotaque "
    "antes / depois de apagar o sotaque (esquerda), F1 de sotaque antes / depois de apagar os contrastes de falante (direita)",
    "caption.cka": "CKA linear entre cada par de representações (enunciados dos falantes retidos)",
    "next.go": "**GO → prepare o Stage 2 (LoRA) em {where}.** Coloque os adaptadores LoRA nos blocos do talker até esse módulo "
    "(projeções q/v da atenção) e condicione-os no sotaque; o arquivo de direções traz a sonda congelada "
    "(uma perda auxiliar de sotaque) e as médias por classe / a base LDA (um alvo de direcionamento). Acompanhe o F1 de "
    "sotaque e o vazamento em falantes retidos durante o treino com `AccentMonitor` / `AccentMonitorCallback`.",
    "next.conditional": "**GO condicional → treine com regularização adversarial em {where}.** O sotaque está lá, mas não de forma "
    "limpa o bastante para LoRA simples: adicione uma cabeça de identificação de falante nesse módulo atrás de reversão de "
    "gradiente, treinada com os rótulos de falante dentro de cada sotaque; mantenha as direções congeladas como sondas "
    "auxiliares de sotaque durante o treino; e monitore o vazamento em tempo real (`AccentMonitorCallback` a cada N passos): "
    "pare, ou aumente o peso adversarial, quando o excesso de vazamento passar da margem condicional.",
    "next.nogo": "**NOGO → não comece o controle de sotaque com LoRA neste backbone como está.** Nenhuma camada carrega o sotaque "
    "linearmente, separado da identidade do falante e entre frases, bem o bastante; corrija primeiro o que o diagnóstico acima "
    "aponta (mais falantes por sotaque, outro backbone ou sotaques que estes dados consigam separar). O arquivo de direções "
    "é escrito só para inspeção: não o use como alvo de controle de sotaque.",
    "cli.decision": "Decisão: {level}",
    "cli.best": "Melhor representação: {best}",
    "cli.rationale": "Justificativa: {rationale}",
    "cli.diagnosis": "Diagnóstico: {code}",
    "cli.warning": "AVISO: {text}.",
    "cli.not_scientific": "NOTA: não é um resultado científico: {caveats}.",
    "cli.report": "Relatório: {path}",
    "cli.analysis": "Análise:   {path}",
    "cli.stage2": "Stage 2:   {path}",
    "cli.bundle": "Pacote:    {path}",
    "cli.wall_time": "Tempo total: {seconds}s{stages}",
    "fig.heatmap.f1": "F1 de sotaque",
    "fig.heatmap.ci_low": "F1 IC inferior",
    "fig.heatmap.leak": "Excesso de\nvazamento (pp)",
    "fig.heatmap.text_drop": "Queda por\ntexto",
    "fig.heatmap.p": "p por família",
    "fig.heatmap.speaker": "Acurácia de\nfalante (contexto)",
    "fig.heatmap.level": "Nível",
    "fig.heatmap.ref": " (ref)",
    "fig.heatmap.go": "✓ passa no critério GO",
    "fig.heatmap.cond": "~ passa só no critério condicional",
    "fig.heatmap.fail": "✗ falha no critério condicional",
    "fig.heatmap.context": "contexto (sem critério)",
    "fig.heatmap.title": "Critérios: F1{ci_low} ≥ {f1_go} GO / {f1_cond} cond · vazamento ≤ {leak_go} / {leak_cond} pp · "
    "queda por texto ≤ {text_drop} · p < {alpha} (GO)",
    "fig.short.go": "GO",
    "fig.short.conditional": "COND",
    "fig.short.nogo": "NOGO",
    "fig.chance": "acaso {value}",
    "fig.line.go": "GO",
    "fig.line.conditional": "condicional",
    "fig.line.nogo": "NOGO abaixo",
    "fig.f1.decides": "{decider} (decide)",
    "fig.f1.references": "Referências (só diagnosticam)",
    "fig.f1.none": "Nenhuma representação",
    "fig.f1.ylabel": "Macro-F1 de sotaque (falantes retidos)",
    "fig.f1.mean": "F1 médio, faixa = IC 95%",
    "fig.f1.majority": "linha de base majoritária",
    "fig.f1.chance": "acaso (1/K)",
    "fig.f1.best": "melhor representação (anel)",
    "fig.f1.strict": " (estrito: os critérios testam o limite inferior do IC)",
    "fig.f1.no_decider": " (nenhuma camada do {deciding} avaliada)",
    "fig.f1.title": "F1 de sotaque por camada — decisão: {level}{none}{strict}",
    "fig.confusion.summed": "contagens somadas sobre {n} sementes de partição: cada enunciado retido conta uma vez por semente",
    "fig.confusion.predicted": "sotaque previsto",
    "fig.confusion.true": "sotaque verdadeiro",
    "fig.confusion.share": "fração dos enunciados do sotaque verdadeiro",
    "fig.confusion.default_title": "Matriz de confusão",
    "fig.confusion.title": "{best} ({level}) — falantes retidos",
    "fig.leak.cond_region": "região de GO condicional",
    "fig.leak.go_region": "região de GO",
    "fig.leak.outline": "{source} (contorno)",
    "fig.leak.best": "melhor representação",
    "fig.leak.xlabel": "F1 de sotaque{strict}",
    "fig.leak.strict": " limite inferior do IC (estrito)",
    "fig.leak.ylabel": "Vazamento de falante S→F: excesso sobre o acaso (pp)",
    "fig.leak.title": "Vazamento vs F1 de sotaque (regiões ignoram queda por texto e p; preenchimento e forma = nível, contorno = fonte)",
    "fig.leak.refs": "fontes de referência com várias camadas: só a melhor camada de cada uma é rotulada",
    "fig.leak.missing": "não plotadas (não medidas): {reps}",
    "fig.erasure.left": "Apagar o sotaque →\nidentificação do falante dentro do sotaque",
    "fig.erasure.left_y": "acurácia (falantes retidos)",
    "fig.erasure.right": "Apagar os contrastes de falante\ndentro do sotaque → F1 de sotaque",
    "fig.erasure.right_y": "macro-F1 de sotaque (falantes retidos)",
    "fig.erasure.before": "antes do apagamento",
    "fig.erasure.after": "depois do apagamento (barra de erro: IC 95% da queda)",
    "fig.erasure.chance": "acaso (1 / falantes retidos do sotaque)",
    "fig.erasure.none": " (nenhuma camada do {deciding} analisada)",
    "fig.erasure.title": "Apagamento de conceito LEACE por camada do {deciding}{none}\n−x%: fração da identificação de falante acima do acaso perdida (+x%: ganha)",
    "fig.cka.colorbar": "CKA linear",
    "fig.cka.title": "Semelhança entre camadas (CKA linear, falantes retidos)",
    "fig.cka.highlight": "negrito: melhor camada {layer}",
}

PT_BR_DECISION: Dict[str, str] = {
    "rationale.level": "`{best}` atinge {level}: {checks}.",
    "rationale.nogo": "nenhuma camada do {deciding} atinge GO condicional; {gloss}.",
    "rationale.nogo_plain": "nenhuma camada do {deciding} atinge GO condicional.",
    "reasons.passed": "passa em todos os critérios de {level}",
    "reasons.no_checks": "a sonda falhou: nenhum critério foi testado",
    "check": "{metric} {value} {op} {threshold} ({level})",
    "metric.accent_f1": "F1",
    "metric.leakage": "excesso de vazamento",
    "metric.text_drop": "queda por texto",
    "metric.p_value": "p por família",
    "gate.go": "GO",
    "gate.conditional": "condicional",
    "recording_probe": "F1 de sotaque {f1} só com as estatísticas de gravação, p = {p} ({permutations} permutações no nível do "
    "falante, {n_utterances} enunciados de {n_speakers} falantes, alfa {alpha}): {verdict}",
    "recording_probe.significant": "significativo: confusor de gravação",
    "recording_probe.not_significant": "não significativo",
    "diagnosis": "{gloss} ({details})",
    "details.best": "melhor camada do {deciding}: `{rep}`, F1 {f1}",
    "details.reference": "`{rep}` F1 {f1} (p {p})",
    "details.references": "referências que separam os sotaques: {references}",
    "details.leakage_caveat": "o vazamento é medido na sonda ajustada, que passa de zero mesmo num código limpo (calibração: cerca de "
    "+2 pp em coordenadas bem condicionadas, +14 pp nas mesmas vistas por coordenadas correlacionadas): antes de concluir, compare o F1 "
    "com os falantes apagados do Stage 2 (erase_speaker_accent_f1)",
    "diagnosis.no_backbone": "nenhuma representação do backbone foi avaliada",
    "diagnosis.random_weights": "o backbone que decide tem pesos inicializados aleatoriamente",
    "diagnosis.significance_unreachable": "o desenho não consegue produzir p < alfa (poucas permutações ou rotulações de falantes)",
    "diagnosis.dataset_too_small": "o conjunto de dados está abaixo dos mínimos do desenho",
    "diagnosis.balanced_nuisance": "F1 significativamente abaixo do acaso: um fator de confusão equilibrado entre sotaques inclina as partições",
    "diagnosis.accent_entangled": "o backbone separa os sotaques, mas falha nos critérios de vazamento de falante ou de queda por texto",
    "diagnosis.backbone_inadequate": "as referências separam os sotaques significativamente, o backbone não",
    "diagnosis.accents_not_separable": "nenhuma representação separa os sotaques significativamente nestes dados",
}
"""Sentences the pt-BR report composes from typed fields (the Decision's, the recording probe's) in place
of the English ones the decision and data layers write (the English report keeps those word for word)."""

PT_BR_RECORDING: Dict[str, str] = {
    "sample_rate": "taxa de amostragem",
    "channels": "canais",
    "bit_depth": "profundidade de bits",
    "codec": "codec",
    "duration": "duração",
    "rms_dbfs": "nível RMS",
    "dc_offset": "offset DC",
    "noise_floor_dbfs": "ruído de fundo",
    "bandwidth_hz": "largura de banda",
}
"""The recording statistics' names in pt-BR (English: `stage1_5.data.recording.LABELS`)."""

CATALOGUE: Dict[str, Dict[str, str]] = {"en": EN, "pt-BR": PT_BR}


def text(key: str, lang: Language = DEFAULT_LANGUAGE, **params: object) -> str:
    """The template `key` in `lang`, filled with `params` (`str.format`)."""
    return CATALOGUE[lang][key].format(**params)


def pt(key: str, **params: object) -> str:
    """A pt-BR sentence composed from the Decision's fields (`PT_BR_DECISION`)."""
    return PT_BR_DECISION[key].format(**params)


def placeholders(template: str) -> set[str]:
    """The named fields of a `str.format` template."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def level_label(level: Level, lang: Language = DEFAULT_LANGUAGE) -> str:
    """'GO' / 'conditional GO' / 'NOGO' in `lang` (English: `Level.label`, through the catalogue)."""
    return text(f"level.{LEVEL_KEYS[level]}", lang)


def statistic_label(name: str, lang: Language = DEFAULT_LANGUAGE) -> str:
    """A recording statistic's name in `lang`, lower case ('RMS level')."""
    return LABELS[name] if lang == "en" else PT_BR_RECORDING[name]


def diagnosis_gloss(diagnosis: Diagnosis, lang: Language) -> str:
    """The one-line meaning of a diagnosis in `lang` (English: `Diagnosis.gloss`)."""
    return diagnosis.gloss if lang == "en" else pt(f"diagnosis.{diagnosis.value}")
