"""`stage1_5 dataset validate|manifest|synth`: thin wrappers over `stage1_5.data`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import click

from stage1_5.config import DatasetConfig
from stage1_5.errors import DatasetError


@click.group("dataset")
def command() -> None:
    """Validate, index and synthesise accent datasets (folder, dataset.zip or 'demo')."""


_DATASET_OPTIONS = (
    click.option("--features-only", is_flag=True, help="Allow absent audio (features are brought precomputed)."),
    click.option(
        "--max-zip-bytes",
        type=click.IntRange(min=1),
        default=DatasetConfig().max_zip_uncompressed_bytes,
        show_default=True,
        help="Refuse zips that unpack to more bytes than this.",
    ),
    click.option(
        "--work-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where zips are unpacked and file hashes cached [default: .stage1_5_cache/datasets].",
    ),
)


def _dataset_options(fn: Callable) -> Callable:
    """The options shared by every command that loads a dataset."""
    for option in reversed(_DATASET_OPTIONS):
        fn = option(fn)
    return fn


def _load(path: str, features_only: bool, max_zip_bytes: int, work_dir: Path | None, list_problems: bool = False):
    """Load a dataset; on validation problems raise a one-line DatasetError (the full list to stdout if asked)."""
    from stage1_5.data.dataset import load_dataset
    from stage1_5.data.validation import DatasetValidationError

    config = DatasetConfig(audio_required=not features_only, max_zip_uncompressed_bytes=max_zip_bytes)
    try:
        return load_dataset(path, config, work_dir=work_dir, progress=sys.stderr.isatty())
    except DatasetValidationError as err:
        if list_problems:
            click.echo(f"{len(err.problems)} problem(s) in {path}:")
            for problem in err.problems:
                click.echo(f"  {problem}")
        raise DatasetError(err.headline) from None


@command.command("validate")
@click.argument("path")
@_dataset_options
def validate(path: str, features_only: bool, max_zip_bytes: int, work_dir: Path | None) -> None:
    """Check PATH, then print a summary, the warnings and the content hash (exit 2 when invalid)."""
    from tabulate import tabulate

    dataset = _load(path, features_only, max_zip_bytes, work_dir, list_problems=True)
    s = dataset.summary
    rates = ", ".join(f"{sr} Hz ({n})" for sr, n in s.sample_rates.items()) or "no audio (features only)"
    click.echo(f"dataset       {dataset.root}")
    click.echo(f"content hash  {dataset.content_hash}")
    click.echo(
        f"{s.n_utterances} utterances, {s.n_speakers} speakers, {s.n_accents} accents, {s.n_texts} texts, "
        f"{s.total_hours:.3f} h; sample rates: {rates}; min texts per speaker: {s.min_texts_per_speaker}"
    )
    table = [(a, s.speakers_per_accent[a], s.utterances_per_accent[a]) for a in s.speakers_per_accent]
    click.echo(tabulate(table, headers=["accent", "speakers", "utterances"], tablefmt="simple"))
    for warning in dataset.warnings:
        click.echo(f"warning: {warning}")
    click.echo("meets design minima: " + ("yes" if dataset.meets_minima else "NO (not a scientific result)"))


@command.command("manifest")
@click.argument("path")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("manifest.jsonl"),
              show_default=True, help="JSON lines, one utterance a line.")
@_dataset_options
def manifest(path: str, output: Path, features_only: bool, max_zip_bytes: int, work_dir: Path | None) -> None:
    """Validate PATH and write its manifest (utterances with duration and sample rate)."""
    dataset = _load(path, features_only, max_zip_bytes, work_dir)
    dataset.utterances.to_file(output)
    click.echo(f"wrote {output} ({len(dataset.utterances)} utterances, content hash {dataset.content_hash})")


@command.command("synth")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--accents", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--speakers-per-accent", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--texts", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--engine", type=click.Choice(["procedural", "espeak"]), default="procedural", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--strength", type=click.FloatRange(min=0), default=None,
              help="Planted accent cue, 0 = none (procedural only) [default: 1.0].")
@click.option("--language", type=click.Choice(["en", "pt"]), default=None,
              help="espeak language; accents are its variants (espeak only) [default: en].")
@click.option("--format", "audio_format", type=click.Choice(["wav", "flac"]), default="wav", show_default=True)
@click.option("--zip", "as_zip", is_flag=True, help="Write OUT as a dataset zip instead of a folder.")
def synth(out: Path, accents: int, speakers_per_accent: int, texts: int, engine: str, seed: int,
          strength: float | None, language: str | None, audio_format: str, as_zip: bool) -> None:
    """Write a synthetic dataset with a known truth (synth.json) to OUT."""
    from stage1_5.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(
        engine=engine, accents=accents, speakers_per_accent=speakers_per_accent, texts=texts, seed=seed,
        strength=strength, language=language, audio_format=audio_format,
    )
    path = synthesize(out, cfg, as_zip=as_zip, progress=sys.stderr.isatty())
    n = accents * speakers_per_accent * texts
    click.echo(f"wrote {path} ({accents} accents x {speakers_per_accent} speakers x {texts} texts = {n} utterances)")
