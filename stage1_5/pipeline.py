"""`stage1_5 run`: dataset → features → probes → decision → stage2 → report → bundle, one resumable run.

Each stage has a key made of everything its output depends on. The run folder remembers the key of
every finished stage (`.stage1_5_state.json`); a rerun skips stages whose key is unchanged and whose
outputs exist, and `force=STAGE` redoes that stage and every stage after it. Features and probe
results also live in the shared content-addressed cache (`output.cache_dir`), which the pytest gates
read too, so a gate run after `stage1_5 run` extracts nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np
import pandas as pd

from stage1_5 import __version__, distributed
from stage1_5.config import Stage15Config
from stage1_5.errors import ConfigError
from stage1_5.hashing import file_sha256, json_digest
from stage1_5.io import atomic_write_json, atomic_write_text, read_csv, write_csv
from stage1_5.locks import exclusive
from stage1_5.names import safe_file_name
from stage1_5.paths import STAGE2_DIR, cache_paths
from stage1_5.sources import all_sources, configured_backbones, configured_layer_order, decides, enabled_sources, reads_text, source_of


STAGES = ("dataset", "features", "probes", "decision", "stage2", "report", "bundle")


@dataclass(frozen=True)
class RunPaths:
    """Where one run writes (DESIGN §6)."""

    root: Path

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_md(self) -> Path:
        return self.report_dir / "stage1_5_report.md"

    @property
    def analysis_dir(self) -> Path:
        return self.root / "artifacts" / "analysis"

    @property
    def stage2_dir(self) -> Path:
        return self.root / STAGE2_DIR

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def bundle(self) -> Path:
        return self.root / "stage1_5_results.zip"

    @property
    def state(self) -> Path:
        return self.root / ".stage1_5_state.json"

    @property
    def decision_json(self) -> Path:
        return self.analysis_dir / "decision.json"

    @property
    def log(self) -> Path:
        """`stage1_5 run`'s DEBUG log, appended run after run (outside the results zip)."""
        return self.root / "run.log"

    @property
    def backbone_runtime_json(self) -> Path:
        """`stage1_5.backbone.runtime.BackboneRuntime` of the extraction: device, dtype, attention and why."""
        return self.analysis_dir / "backbone_runtime.json"


DECISION_SCHEMA_VERSION = 1
"""decision.json's `schema_version`: bumped when a key is renamed, removed or changes meaning (docs/columns.md)."""


def run_paths(cfg: Stage15Config, out_dir: Optional[str | Path] = None) -> RunPaths:
    """The run folder: `out_dir`, or the config's `output.dir`."""
    return RunPaths(Path(out_dir or cfg.output.dir))


@dataclass
class RunResult:
    decision: Any  # stage1_5.decision.Decision (imported lazily: it pulls in torch)
    paths: RunPaths
    stage_times: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _digest(*parts: object) -> str:
    return json_digest(parts)


# ----------------------------------------------------------------------------- representations


def deciding_representations(cfg: Stage15Config) -> list[str]:
    """Representations of the deciding sources (the backbone) that the config asks for, without loading
    any model: the configured layers of every enabled deciding source, then columns of external feature
    files named after a deciding source (users may bring backbone features extracted elsewhere)."""
    from stage1_5.features.external import representation_names

    names = [f"{spec.name}:{layer}" for spec in enabled_sources(cfg) if spec.decides for layer in spec.configured_layers(cfg) or ()]
    for path in cfg.sources.external:
        names += [name for name in representation_names(path) if decides(source_of(name))]
    return list(dict.fromkeys(names))


# ----------------------------------------------------------------------------- stages


def dataset_stage(cfg: Stage15Config, progress: bool = True):
    """Load and validate the dataset, then run the confound checks (text sharing, recording probe);
    `dataset.confounds: error` stops here, before any model runs."""
    from stage1_5.data.dataset import load_dataset
    from stage1_5.probes.confounds import check_confounds

    work_dir = cache_paths(cfg.output).datasets
    dataset = load_dataset(
        cfg.dataset.path, cfg.dataset, work_dir=work_dir, progress=progress, text_required=reads_text(cfg), long_audio_is_error=True
    )
    return check_confounds(dataset, cfg.dataset, alpha=cfg.experiment.alpha, work_dir=work_dir)


def features_key(cfg: Stage15Config, dataset) -> str:
    # an external file by its content (and name), not by how the config spells its path: the same
    # file reached from another working directory or config location keys the same features
    external = [(Path(p).name, file_sha256(p)[:16]) for p in cfg.sources.external]
    sources = {spec.name: spec.settings(cfg).model_dump(mode="json") for spec in all_sources()}
    return _digest("features", __version__, dataset.content_hash, sources, external, cfg.output.feature_dtype)


def features_stage(cfg: Stage15Config, dataset, representations: Optional[set[str]] = None, progress: bool = True, force: bool = False):
    from stage1_5.features.extract import extract_features

    return extract_features(cfg, dataset, representations=representations, progress=progress, force=force)


def probes_key(cfg: Stage15Config, dataset, representations: Optional[Iterable[str]] = None) -> str:
    wanted = sorted(representations) if representations is not None else None
    from stage1_5.probes import PROTOCOL_VERSION

    stop_alpha = cfg.experiment.alpha if cfg.probes.sequential else None  # the sequential p-values depend on it
    return _digest("probes", PROTOCOL_VERSION, features_key(cfg, dataset), cfg.probes.model_dump(mode="json"), stop_alpha, wanted)


def _probe_cache_dir(cfg: Stage15Config, key: str) -> Path:
    return cache_paths(cfg.output).probes / key


def save_probe_results(results, folder: Path) -> None:
    """Write metrics.csv, predictions.csv, confusion/*.csv (user text spreadsheet-safe, `io.write_csv`)
    and label_map.json, each atomically."""
    write_csv(folder / "metrics.csv", results.metrics)
    write_csv(folder / "predictions.csv", results.predictions)
    written = set()
    for name, (labels, matrix) in results.confusion.items():
        frame = pd.DataFrame(np.asarray(matrix), index=list(labels), columns=list(labels))
        written.add(file_name := safe_file_name(name, ".csv"))
        write_csv(folder / "confusion" / file_name, frame, index=True)
    for stale in (folder / "confusion").glob("*.csv"):  # an earlier result's representations
        if stale.name not in written:
            stale.unlink()
    atomic_write_json(folder / "label_map.json", results.label_map)
    atomic_write_json(folder / "probe_notes.json", list(results.notes))
    atomic_write_json(folder / "probe_facts.json", results.facts.to_json())


def load_probe_results(folder: Path):
    from stage1_5.probes import DesignFacts, ProbeResults

    metrics = read_csv(folder / "metrics.csv")
    confusion = {}
    for name in dict.fromkeys(metrics["representation"].astype(str)):
        if (csv := folder / "confusion" / safe_file_name(name, ".csv")).is_file():
            frame = read_csv(csv, index_col=0)
            confusion[name] = ([str(x) for x in frame.index], frame.to_numpy())
    return ProbeResults(
        metrics=metrics,
        predictions=read_csv(folder / "predictions.csv", dtype={"utt_id": str, "y_true": str, "y_pred": str}),
        confusion=confusion,
        label_map=json.loads((folder / "label_map.json").read_text()),
        facts=DesignFacts.from_json(json.loads((folder / "probe_facts.json").read_text())),
        notes=json.loads(notes.read_text()) if (notes := folder / "probe_notes.json").exists() else [],
    )


def probes_stage(
    cfg: Stage15Config,
    dataset,
    features,
    representations: Optional[set[str]] = None,
    progress: bool = True,
    force: bool = False,
):
    """Probe every representation (or the `representations` subset); cached by `probes_key`."""
    from stage1_5.probes import evaluate_representations

    vectors = features.vectors
    if representations is not None:
        vectors = {k: v for k, v in vectors.items() if k in representations}
    folder = _probe_cache_dir(cfg, probes_key(cfg, dataset, vectors.keys()))
    if not force and (folder / "complete").exists():
        return load_probe_results(folder)
    ctx = distributed.current()  # under torchrun the ranks share the representations
    results = evaluate_representations(vectors, dataset.utterances.to_frame(), cfg.probes, alpha=cfg.experiment.alpha, progress=progress, ranks=ctx)
    if not ctx.is_main:  # another torchrun rank: rank 0 writes the results
        return results
    (folder / "complete").unlink(missing_ok=True)
    save_probe_results(results, folder)
    atomic_write_text(folder / "complete", folder.name)
    return results


def decision_stage(cfg: Stage15Config, dataset, probe_results):
    """The recommended backbone's decision (the only one when one backbone is configured)."""
    return comparison_stage(cfg, dataset, probe_results).decision


def comparison_stage(cfg: Stage15Config, dataset, probe_results):
    """Every configured backbone's own decision, the recommended one, the top two's F1 difference."""
    from stage1_5.decision import RunFacts
    from stage1_5.decision.backbones import decide_backbones
    from stage1_5.decision.levels import DATASET_CAVEAT
    from stage1_5.sources import deciding_sources, random_weights_caveats, random_weights_deciding

    caveats = random_weights_caveats(cfg) + ([DATASET_CAVEAT] if not dataset.meets_minima else []) + dataset.confounds.caveats
    facts = RunFacts(
        caveats=tuple(caveats),
        dataset_too_small=not dataset.meets_minima,
        random_weights=random_weights_deciding(cfg),
        significance_limit=probe_results.facts.limit_text(cfg.experiment.alpha),
        smallest_reachable_p=probe_results.facts.to_json()["smallest_reachable_p"],
    )
    frame = dataset.utterances.to_frame()
    probed = {source_of(str(rep)) for rep in probe_results.metrics["representation"]}
    # every deciding source that was probed decides on its own (configured backbones, the GO demo's
    # planted vectors, external columns named after one); none probed: the configured backbones say so
    deciders = [name for name in deciding_sources() if name in probed] or [b.name for b in cfg.sources.backbone_list()]
    return decide_backbones(
        probe_results.metrics,
        cfg.experiment,
        deciders,
        facts=facts,
        predictions=probe_results.predictions,
        speakers=dict(zip(frame["utt_id"].astype(str), frame["speaker"].astype(str))),
        interval_level=cfg.probes.interval_level,
        seed=cfg.probes.seed,
    )


def stage2_key(cfg: Stage15Config, dataset) -> str:
    """Everything the Stage 2 computation depends on: the probed features and probe settings (its C
    grid, inner folds, fold seeds, device), the stage2 settings and the directions file format; not the decision."""
    from stage1_5.stage2.directions import FORMAT_VERSION

    return _digest("stage2", probes_key(cfg, dataset), cfg.stage2.model_dump(mode="json"), FORMAT_VERSION)


def stage2_stage(cfg: Stage15Config, dataset, features=None, progress: bool = True, force: bool = False):
    """The Stage 2 handoff (directions, erasure, CKA) over every extracted representation; cached in
    `<cache_dir>/stage2/<stage2_key>` like the probe results (features are loaded only on a miss)."""
    from stage1_5.stage2 import compute_stage2
    from stage1_5.stage2.analysis import load_stage2, save_stage2

    folder = cache_paths(cfg.output).stage2 / stage2_key(cfg, dataset)
    if not force and (folder / "complete").exists():
        return load_stage2(folder)
    (folder / "complete").unlink(missing_ok=True)
    features = features if features is not None else features_stage(cfg, dataset, progress=progress)
    result = compute_stage2(features.vectors, dataset.utterances.to_frame(), cfg, dataset_hash=dataset.content_hash, progress=progress)
    save_stage2(result, folder)
    atomic_write_text(folder / "complete", folder.name)
    return result


def merge_stage2_metrics(metrics: pd.DataFrame, erasure: Optional[pd.DataFrame]) -> pd.DataFrame:
    """metrics.csv with the erasure columns of this run (by representation; NaN for references), any
    earlier run's erasure columns dropped first; `erasure=None` (stage2 disabled) only drops them."""
    from stage1_5.stage2 import ERASURE_COLUMNS

    base = metrics.drop(columns=[c for c in ERASURE_COLUMNS if c in metrics.columns])
    return base if erasure is None else base.merge(erasure, on="representation", how="left")


def load_stage2_facts(paths: RunPaths):
    """The report's view of artifacts/stage2/ (summary + CKA), or None when the run wrote none."""
    from stage1_5.report.stage2 import Stage2Facts
    from stage1_5.stage2.analysis import CKA_FILE, SUMMARY_FILE

    summary = paths.stage2_dir / SUMMARY_FILE
    if not summary.is_file():
        return None
    cka = paths.stage2_dir / CKA_FILE
    return Stage2Facts(
        summary=json.loads(summary.read_text(encoding="utf-8")),
        cka=read_csv(cka, index_col=0) if cka.is_file() else None,
        folder_link=os.path.relpath(paths.stage2_dir, paths.report_dir),
    )


def write_report(paths: RunPaths, cfg: Stage15Config, dataset, probe_results, decision, comparison=None) -> None:
    """Figures under artifacts/analysis/ (and artifacts/stage2/), then the Markdown report that links them
    and its self-contained HTML copy."""
    from stage1_5.report import render_report
    from stage1_5.report.figures import render_figures
    from stage1_5.report.html import HTML_NAME, write_html_report
    from stage1_5.report.stage2_figures import render_stage2_figures

    figures = render_figures(
        probe_results.metrics,
        probe_results.confusion,
        decision,
        paths.analysis_dir,
        layer_order=configured_layer_order(cfg),
        fold_seeds=cfg.probes.seeds,
        lang=cfg.report.language,
    )
    links = {name: os.path.relpath(path, paths.report_dir) for name, path in figures.items()}
    stage2 = load_stage2_facts(paths)
    stage2_links = None
    if stage2 is not None:
        strongest = (stage2.summary.get("strongest") or {}).get("representation")
        drawn = render_stage2_figures(
            probe_results.metrics, stage2.cka, decision, paths.stage2_dir, highlight=strongest, layer_order=configured_layer_order(cfg),
            lang=cfg.report.language,
        )
        stage2_links = {name: os.path.relpath(path, paths.report_dir) for name, path in drawn.items()}
    text = render_report(
        probe_results.metrics,
        decision,
        dataset=dataset,
        config=cfg,
        label_map=probe_results.label_map,
        device=_device_description(paths),
        figures=links,
        probe_notes=probe_results.notes,
        probe_design=probe_results.facts.design_line(),
        stage2=stage2,
        stage2_figures=stage2_links,
    )
    from stage1_5.backbone.checkpoint import language_notes

    notes = language_notes([b for b in cfg.sources.backbone_list() if b.enabled])
    if notes:
        text += "\n" + "\n".join(["## Backbone notes", "", *[f"- {note}." for note in notes], ""])
    if comparison is not None and len(comparison.decisions) > 1:
        from stage1_5.report.comparison import COMPARISON_FIGURE, comparison_lines, plot_backbones_by_depth

        figure = plot_backbones_by_depth(probe_results.metrics, comparison, paths.analysis_dir / COMPARISON_FIGURE, configured_layer_order(cfg))
        link = os.path.relpath(figure, paths.report_dir)
        text += "\n" + "\n".join([*comparison_lines(probe_results.metrics, comparison), f"![Backbones compared]({link})", ""])
    atomic_write_text(paths.report_md, text)
    write_html_report(text, paths.report_dir / HTML_NAME, lang=cfg.report.language)  # the same report, figures embedded: one file to send


# ----------------------------------------------------------------------------- the run


def _read_state(paths: RunPaths) -> dict[str, str]:
    try:
        return json.loads(paths.state.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _stage_outputs(paths: RunPaths, cfg: Stage15Config) -> dict[str, list[Path]]:
    from stage1_5.stage2.analysis import SUMMARY_FILE

    a = paths.analysis_dir
    return {
        "dataset": [a / "manifest.jsonl"],
        "features": [],
        "probes": [a / "metrics.csv", a / "predictions.csv"],
        "decision": [paths.decision_json],
        "stage2": [paths.stage2_dir / SUMMARY_FILE] if cfg.stage2.enabled else [],
        "report": [paths.report_md],
        "bundle": [paths.bundle],
    }


def _stage_writes(paths: RunPaths, cfg: Stage15Config) -> dict[str, list[Path]]:
    """Everything each stage writes into the run folder (files and folders): removed, for that stage and
    every later one, before the stage is rewritten, so that no two outputs of a run ever disagree."""
    from stage1_5.report.layout import FIGURES

    a = paths.analysis_dir
    written = {stage: list(files) for stage, files in _stage_outputs(paths, cfg).items()}
    written["features"] += [paths.backbone_runtime_json]
    written["probes"] += [a / "confusion", a / "label_map.json", a / "probe_notes.json"]
    written["stage2"] += [paths.stage2_dir]
    written["report"] += [paths.report_dir] + [a / name for name in FIGURES.values()]
    return written


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


KILL_AT_ENV = "STAGE1_5_KILL_AT"
"""Fault injection for the crash tests: `STAGE1_5_KILL_AT=<stage>` makes the run kill itself (SIGKILL,
as `kill -9` would) once that stage has started, after its and every later stage's outputs are removed
and before it writes anything."""


def _fault_point(stage: str) -> None:
    if os.environ.get(KILL_AT_ENV) == stage:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


RUN_LOCK = ".stage1_5.lock"
"""The run folder's lock file (`stage1_5.locks`): one run at a time writes a run folder."""


def run_experiment(
    cfg: Stage15Config,
    out_dir: Optional[str | Path] = None,
    force: Optional[str] = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    wait: bool = False,
) -> Optional[RunResult]:
    """Run (or resume) the whole experiment into `out_dir` (default `cfg.output.dir`).

    The run folder is locked for the run: if another live process holds it, raise `LockBusy` naming its
    pid, or with `wait=True` wait until it is free (a lock left by a killed run is cleared). Under
    torchrun (`distributed.session()`), every rank extracts a shard of the features and rank 0 alone
    runs the other stages and writes the run folder; the other ranks return None after the features stage."""
    if force is not None and force not in STAGES:
        raise ConfigError(f"--force: unknown stage {force!r}; choose one of {', '.join(STAGES)}")
    ctx = distributed.current()
    if not ctx.is_main:
        with configured_backbones(cfg):
            _features_worker(cfg, ctx, progress)
        return None
    paths = run_paths(cfg, out_dir)
    with output_folder_lock(paths.root, wait=wait), configured_backbones(cfg):
        return _run_locked(cfg, ctx, paths, force, progress, echo)


@contextlib.contextmanager
def output_folder_lock(folder: Path, *, wait: bool) -> Iterator[None]:
    """The lock of a folder that `run` or `probes` writes: while a live process holds it, another exits 2
    naming its pid, or with `wait` waits for it (a lock left by a killed process is cleared). A folder
    the lock created is removed again when nothing was written into it (a run that failed early)."""
    existed = folder.exists()
    try:
        with exclusive(folder / RUN_LOCK, what=f"run folder {folder}", wait=wait, hint="; wait for it to finish, or pass --wait"):
            yield
    finally:
        if not existed:
            with contextlib.suppress(OSError):  # not empty: something was written
                folder.rmdir()


def _run_locked(
    cfg: Stage15Config, ctx: "distributed.DistContext", paths: RunPaths, force: Optional[str], progress: bool, echo: Callable[[str], None]
) -> RunResult:
    from stage1_5.report import write_bundle

    state = _read_state(paths)
    outputs = _stage_outputs(paths, cfg)
    writes = _stage_writes(paths, cfg)
    forced = set(STAGES[STAGES.index(force):]) if force else set()
    times: dict[str, float] = {}
    skipped: list[str] = []
    stale = False  # once one stage reruns, every later stage reruns too

    def invalidate_from(stage: str) -> None:
        """Forget and remove this stage's outputs and every later stage's, the state file first."""
        later = STAGES[STAGES.index(stage):]
        if any(s in state for s in later):
            for s in later:
                state.pop(s, None)
            atomic_write_json(paths.state, state)
        for s in later:
            for path in writes[s]:
                _remove(path)

    def should_run(stage: str, key: str) -> bool:
        nonlocal stale
        done = state.get(stage) == key and all(p.exists() for p in outputs[stage])
        if stage in forced or not done or stale:
            if not stale:
                invalidate_from(stage)
            stale = True
            _fault_point(stage)
            return True
        skipped.append(stage)
        echo(f"[{stage}] up to date, skipped")
        return False

    def finish(stage: str, key: str, started: float) -> None:
        state[stage] = key
        atomic_write_json(paths.state, state)
        times[stage] = time.perf_counter() - started
        echo(f"[{stage}] done in {times[stage]:.1f} s")

    # dataset: always validated (cheap: per-file hashes are cached), written to the run when changed
    t0 = time.perf_counter()
    with ctx.main_first():
        dataset = dataset_stage(cfg, progress=progress)
    for warning in dataset.warnings:
        echo(f"[dataset] WARNING: {warning}")
    key = _digest("dataset", dataset.content_hash)
    if should_run("dataset", key):
        dataset.utterances.to_file(paths.analysis_dir / "manifest.jsonl")
        finish("dataset", key, t0)
    _write_config(cfg, paths)  # every run: the bundle's config/ must match the config that made the report

    features = None
    key = features_key(cfg, dataset)
    run_features = should_run("features", key)
    ctx.broadcast({"force": "features" in forced} if run_features else None)  # the other ranks' order
    if run_features:
        t0 = time.perf_counter()
        backbones = [b for b in cfg.sources.backbone_list() if b.enabled]
        if backbones and dataset.has_audio:
            from stage1_5.backbone.checkpoint import check_backbone

            checks = [check_backbone(b) for b in backbones]  # config.json and options, in seconds, before any model loads
            atomic_write_json(paths.backbone_runtime_json, checks[0].runtime.to_dict())
            for b, check in zip(backbones, checks):
                echo(f"[features] {b.name}: {check.checkpoint.summary()}; {check.runtime.summary()}")
        else:
            paths.backbone_runtime_json.unlink(missing_ok=True)
        features = features_stage(cfg, dataset, progress=progress, force="features" in forced)
        for source, stats in features.stats.items():
            origin = "from cache" if stats.from_cache else f"{stats.audio_seconds_per_s:.1f} audio-s/s"
            echo(f"[features] {source}: {stats.n_utterances} utterances, {origin}")
        finish("features", key, t0)
    key = probes_key(cfg, dataset)
    run_probes = should_run("probes", key)
    ctx.broadcast({"force": "probes" in forced} if run_probes else None)  # the other ranks' order: they share the representations
    if run_probes:
        t0 = time.perf_counter()
        if features is None:
            features = features_stage(cfg, dataset, progress=progress)
        results = probes_stage(cfg, dataset, features, progress=progress, force="probes" in forced)
        for note in results.notes:
            echo(f"[probes] NOTE: {note}")
        facts = results.facts
        echo(f"[probes] design: {facts.design_line()}")
        echo(f"[probes] smallest reachable p: {facts.smallest_reachable_p:.3g} ({facts.permutations} permutations, {facts.distinct_labellings} distinct speaker labellings)")
        if (limit := facts.limit_text(cfg.experiment.alpha)) is not None:
            echo(f"[probes] WARNING: {limit}")
        save_probe_results(results, paths.analysis_dir)
        finish("probes", key, t0)
    distributed.finish()  # the ranks' work is done: what follows runs here alone
    results = load_probe_results(paths.analysis_dir)

    comparison = comparison_stage(cfg, dataset, results)  # pure and cheap: always recomputed
    decision = comparison.decision
    key = _digest("decision", key, cfg.experiment.model_dump(mode="json"), decision.scientific)
    if should_run("decision", key):
        t0 = time.perf_counter()
        atomic_write_json(paths.decision_json, {"schema_version": DECISION_SCHEMA_VERSION, **decision.to_json(), "backbones": comparison.to_json()})
        finish("decision", key, t0)

    key = _digest("stage2", key, __version__, cfg.stage2.model_dump(mode="json"))
    if should_run("stage2", key):
        t0 = time.perf_counter()
        erasure = None
        if cfg.stage2.enabled:
            from stage1_5.stage2.analysis import save_stage2, stage2_summary

            handoff = stage2_stage(cfg, dataset, features, progress=progress, force="stage2" in forced)
            for note in handoff.notes:
                echo(f"[stage2] NOTE: {note}")
            save_stage2(handoff, paths.stage2_dir, stage2_summary(handoff, decision))
            erasure = handoff.erasure
        results.metrics = merge_stage2_metrics(results.metrics, erasure)
        write_csv(paths.analysis_dir / "metrics.csv", results.metrics)
        finish("stage2", key, t0)

    key = _digest("report", key, __version__, cfg.config_hash())
    if should_run("report", key):
        t0 = time.perf_counter()
        write_report(paths, cfg, dataset, results, decision, comparison)
        finish("report", key, t0)

    if should_run("bundle", key):
        t0 = time.perf_counter()
        write_bundle(paths.root)
        finish("bundle", key, t0)

    return RunResult(decision=decision, paths=paths, stage_times=times, skipped=skipped)


def _features_worker(cfg: Stage15Config, ctx: "distributed.DistContext", progress: bool) -> None:
    """A torchrun rank other than 0: load the dataset once rank 0 has cached it, extract this rank's
    shard when rank 0 says the features stage runs, then probe this rank's share of the
    representations when rank 0 says the probes stage runs (`probes.protocol.rank_share`)."""
    with ctx.main_first():
        dataset = dataset_stage(cfg, progress=False)
    order = ctx.broadcast(None)
    features = None
    if order is not None:
        features = features_stage(cfg, dataset, progress=progress, force=order["force"])
    order = ctx.broadcast(None)
    if order is not None:
        if features is None:
            features = features_stage(cfg, dataset, progress=False)
        probes_stage(cfg, dataset, features, progress=False, force=order["force"])


def _write_config(cfg: Stage15Config, paths: RunPaths) -> None:
    atomic_write_text(paths.config_dir / "stage1_5.resolved.yaml", cfg.to_yaml())


def machine_description() -> str:
    """'cuda: <GPU name>' or 'cpu (N threads)'."""
    import torch

    return f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"


def _device_description(paths: RunPaths) -> str:
    """This machine, and what the backbone was extracted with (when this run extracted it)."""
    from stage1_5.backbone.runtime import BackboneRuntime

    here = machine_description()
    if not paths.backbone_runtime_json.exists():
        return here
    runtime = BackboneRuntime.from_dict(json.loads(paths.backbone_runtime_json.read_text()))
    return f"{here}; backbone extracted on {runtime.summary()}"
