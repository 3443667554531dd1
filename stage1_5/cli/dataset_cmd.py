"""`stage1_5 dataset validate|manifest|synth|demo`: thin wrappers over `stage1_5.data`.

Options default to None and only override the config (`--config`, else the defaults): the typed config
is the one place defaults live.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import click

_DATASET_OPTIONS = (
    click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                 help="Take the dataset.* settings, cache folder and alpha from this config (PATH still wins)."),
    click.option("--features-only", is_flag=True, default=None, help="Allow absent audio (features are brought precomputed)."),
    click.option("--max-zip-bytes", type=int, default=None, help="Refuse zips that unpack to more bytes [dataset.max_zip_uncompressed_bytes]."),
    click.option("--max-zip-ratio", type=float, default=None,
                 help="Refuse zips whose members inflate more than this many times [dataset.max_zip_inflation_ratio]."),
    click.option("--allow-symlinks-into", multiple=True, type=click.Path(file_okay=False),
                 help="A folder symbolic links in the dataset may lead into (repeatable) [dataset.allow_symlinks_into]."),
    click.option("--confounds", type=click.Choice(["warn", "error"]), default=None,
                 help="'error': a text or recording confound exits 2 [dataset.confounds]."),
    click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Where zips are unpacked and file statistics cached [<output.cache_dir>/datasets]."),
)

_DATASET_OPTION_NAMES = {
    "audio_required": "--features-only",
    "max_zip_uncompressed_bytes": "--max-zip-bytes",
    "max_zip_inflation_ratio": "--max-zip-ratio",
    "allow_symlinks_into": "--allow-symlinks-into",
}


@click.group("dataset")
def command() -> None:
    """Validate, index and synthesise accent datasets (folder, dataset.zip or 'demo')."""


def _dataset_options(fn: Callable) -> Callable:
    """The options shared by every command that loads a dataset."""
    for option in reversed(_DATASET_OPTIONS):
        fn = option(fn)
    return fn


def _settings(path: str, options: dict[str, Any]):
    """(Stage15Config with the dataset section overridden by PATH and the options, work folder)."""
    from stage1_5.cli.overrides import override
    from stage1_5.config import Stage15Config, load_config
    from stage1_5.paths import cache_paths

    cfg = load_config(options["config_file"]) if options["config_file"] else Stage15Config()
    overrides = {
        "path": path,
        "audio_required": False if options["features_only"] else None,
        "max_zip_uncompressed_bytes": options["max_zip_bytes"],
        "max_zip_inflation_ratio": options["max_zip_ratio"],
        "allow_symlinks_into": list(options["allow_symlinks_into"]) or None,
        "confounds": options["confounds"],
    }
    dataset = override(cfg.dataset, overrides, key="dataset", options=_DATASET_OPTION_NAMES)
    work_dir = options["work_dir"] or cache_paths(cfg.output).datasets
    return cfg.model_copy(update={"dataset": dataset}), work_dir


def _load(cfg, work_dir: Path, list_all: bool = False):
    """Load a dataset; validation problems become one DatasetError (every problem listed once if asked)."""
    from stage1_5.data.dataset import load_dataset
    from stage1_5.data.validation import DatasetValidationError
    from stage1_5.sources import reads_text

    try:
        return load_dataset(cfg.dataset.path, cfg.dataset, work_dir=work_dir, progress=sys.stderr.isatty(), text_required=reads_text(cfg))
    except DatasetValidationError as err:
        if list_all:
            raise DatasetValidationError(err.problems, listed=None) from None
        raise


def _echo_confounds(dataset) -> None:
    from tabulate import tabulate

    from stage1_5.data.recording import LABELS, STATISTICS

    texts = dataset.confounds.texts
    click.echo(f"texts shared by every accent: {texts.shared} of {texts.n_texts} (dataset.min_shared_texts={texts.min_shared})")
    recording = dataset.confounds.recording
    if recording is None:
        click.echo("recording conditions: not checked (no audio)")
        return
    rows = [[a.accent, *(a.describe(s) for s in STATISTICS)] for a in recording.per_accent]
    click.echo(tabulate(rows, headers=["accent", *(LABELS[s] for s in STATISTICS)], tablefmt="simple", disable_numparse=True))
    if recording.probe is not None:
        click.echo(f"recording probe: {recording.probe.summary}")
    elif recording.probe_note:
        click.echo(f"recording probe: not run ({recording.probe_note})")


@command.command("validate")
@click.argument("path")
@_dataset_options
def validate(path: str, **options: Any) -> None:
    """Check PATH, its design and its confounds; print a summary, the warnings and the content hash.

    Exit 2 when it is invalid (every problem listed once), or with --confounds error when it is confounded.
    """
    from tabulate import tabulate

    from stage1_5.data.confounds import raise_if_confounded
    from stage1_5.probes.confounds import attach_recording_probe

    cfg, work_dir = _settings(path, options)
    dataset = attach_recording_probe(_load(cfg, work_dir, list_all=True), cfg.dataset, alpha=cfg.experiment.alpha, work_dir=work_dir)
    s = dataset.summary
    rates = ", ".join(f"{sr} Hz ({n})" for sr, n in s.sample_rates.items()) or "no audio (features only)"
    click.echo(f"dataset       {dataset.root}")
    click.echo(f"content hash  {dataset.content_hash}")
    click.echo(
        f"{s.n_utterances} utterances, {s.n_speakers} speakers, {s.n_accents} accents, {s.n_texts} texts, "
        f"{s.total_hours:.3f} h; sample rates: {rates}; min texts per speaker: {s.min_texts_per_speaker}"
    )
    if s.speakers_per_group:
        click.echo("speakers per group: " + ", ".join(f"{g}: {n}" for g, n in s.speakers_per_group.items()))
    table = [(a, s.speakers_per_accent[a], s.utterances_per_accent[a]) for a in s.speakers_per_accent]
    click.echo(tabulate(table, headers=["accent", "speakers", "utterances"], tablefmt="simple"))
    _echo_confounds(dataset)
    for warning in dataset.warnings:
        click.echo(f"warning: {warning}")
    click.echo("meets design minima: " + ("yes" if dataset.meets_minima else "NO (not a scientific result)"))
    raise_if_confounded(dataset.confounds)


@command.command("manifest")
@click.argument("path")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("manifest.jsonl"),
              show_default=True, help="JSON lines, one utterance a line.")
@_dataset_options
def manifest(path: str, output: Path, **options: Any) -> None:
    """Validate PATH and write its manifest (utterances with duration, sample rate and group)."""
    cfg, work_dir = _settings(path, options)
    dataset = _load(cfg, work_dir)
    dataset.utterances.to_file(output)
    click.echo(f"wrote {output} ({len(dataset.utterances)} utterances, content hash {dataset.content_hash})")


@command.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--accents", type=int, default=None, help="Number of accents [3].")
@click.option("--speakers-per-accent", type=int, default=None, help="[4]")
@click.option("--texts", type=int, default=None, help="Shared texts every speaker reads [8].")
@click.option("--engine", type=click.Choice(["procedural", "espeak"]), default=None, help="[procedural]")
@click.option("--seed", type=int, default=None, help="[0]")
@click.option("--strength", type=float, default=None, help="Planted accent cue, 0 = none (procedural only) [1.0].")
@click.option("--language", type=click.Choice(["en", "pt"]), default=None,
              help="espeak language; accents are its variants (espeak only) [en].")
@click.option("--format", "audio_format", type=click.Choice(["wav", "flac"]), default=None, help="[wav]")
@click.option("--zip", "as_zip", is_flag=True, help="Write OUT as a dataset zip instead of a folder.")
def synth(out: Path, as_zip: bool, **options: Optional[Any]) -> None:
    """Write a synthetic dataset with a known truth (synth.json) to OUT, in the user guide's layout."""
    from stage1_5.cli.overrides import override
    from stage1_5.data.synth import SynthConfig, synthesize

    cfg = override(SynthConfig(), options, key="", options={"audio_format": "--format"})
    path = synthesize(out, cfg, as_zip=as_zip, progress=sys.stderr.isatty())
    n = cfg.accents * cfg.speakers_per_accent * cfg.texts
    click.echo(f"wrote {path} ({cfg.accents} accents x {cfg.speakers_per_accent} speakers x {cfg.texts} texts = {n} utterances)")


@command.command("demo")
@click.option("--regenerate", is_flag=True, help="Rebuild the embedded demo set from espeak-ng (deterministic).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --regenerate: write here instead of the packaged folder.")
def demo(regenerate: bool, out: Optional[Path]) -> None:
    """Print where the embedded demo dataset lives, or rebuild it byte for byte."""
    from stage1_5.data.layout import DEMO_DATA

    if not regenerate:
        if out is not None:
            raise click.UsageError("--out needs --regenerate")
        click.echo(DEMO_DATA)
        return
    from stage1_5.data.demo import regenerate as rebuild
    from stage1_5.planted_demo import PLANTED_BACKBONE, write_planted_backbone

    path = rebuild(out, progress=sys.stderr.isatty())
    write_planted_backbone(path, path / PLANTED_BACKBONE.name)  # the GO demo's features follow the dataset
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    click.echo(f"wrote {path} ({size / 1e6:.2f} MB)")
