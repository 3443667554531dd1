"""`stage1_5 features {backbone,ssl,ecapa,acoustic} --config FILE [options]`: extract one source into the store.

Options override that source's config section (and enable it); the vectors land in the feature store
under `output.cache_dir`, where `stage1_5 run` and the gates find them; `-o` also exports an `.npz`.
"""

from __future__ import annotations

from typing import Any, Callable

import click

from stage1_5.features.store import DEFAULT_CHUNK_SIZE, STORE_DTYPES

MODEL_DTYPES = ("float32", "bfloat16", "float16")


def _split_layers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str] | None:
    """`--layers a,b --layers c` → ['a', 'b', 'c']; None when not given."""
    names = [name.strip() for chunk in value for name in chunk.split(",") if name.strip()]
    return names or None


def _common(fn: Callable) -> Callable:
    options = [
        click.option("-c", "--config", "config_file", required=True, type=click.Path(dir_okay=False), help="Experiment config (YAML)."),
        click.option("-o", "--output", "export_path", type=click.Path(dir_okay=False), default=None, help="Also export the vectors to this .npz or .parquet (utt_id + one array per representation)."),
        click.option("--store-dtype", type=click.Choice(STORE_DTYPES), default="float32", show_default=True, help="Dtype of the stored vectors."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=DEFAULT_CHUNK_SIZE, show_default=True, help="Utterances per store chunk (the most a killed run recomputes)."),
        click.option("--force", is_flag=True, help="Recompute even if the store holds these vectors."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


_layers = click.option("--layers", multiple=True, callback=_split_layers, help="Comma-separated layer names (repeatable); default: the config's.")
_batch = click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Utterances per forward pass.")
_dtype = click.option("--dtype", type=click.Choice(MODEL_DTYPES), default=None, help="Model compute dtype.")


def _run(source: str, overrides: dict[str, Any], config_file: str, export_path: str | None, store_dtype: str, chunk_size: int, force: bool, no_progress: bool) -> None:
    from pydantic import ValidationError

    from stage1_5.config import load_config
    from stage1_5.errors import ConfigError
    from stage1_5.features.extract import export_features, extract_features
    from stage1_5.pipeline import dataset_stage
    from stage1_5.runtime import configure_torch_threads

    cfg = load_config(config_file)
    section = getattr(cfg.sources, source)
    updates = {"enabled": True, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        section = type(section).model_validate({**section.model_dump(), **updates})
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0])
        option = "--layers" if field == "features" else "--" + field.replace("_", "-")
        raise ConfigError(f"{option} {updates.get(field)!r}: {first['msg']}") from None
    cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={source: section})})
    configure_torch_threads()
    dataset = dataset_stage(cfg, progress=not no_progress)
    features = extract_features(cfg, dataset, sources=[source], progress=not no_progress, force=force, store_dtype=store_dtype, chunk_size=chunk_size)
    stats = features.stats[source]
    origin = "from cache" if stats.from_cache else "computed"
    click.echo(
        f"{source}: {len(features.utt_ids)} utterances, {len(features.vectors)} representations ({origin}); "
        f"{stats.utterances_per_s:.1f} utt/s, {stats.audio_seconds_per_s:.1f} audio-s/s, "
        f"peak memory {stats.peak_memory_bytes / 2**20:.0f} MiB ({stats.peak_memory_kind})"
    )
    for name, arr in features.vectors.items():
        click.echo(f"  {name}: {arr.shape[1]} dims")
    click.echo(f"store: {cfg.output.cache_dir}/features/{source}")
    if export_path:
        click.echo(f"exported: {export_features(features, export_path)}")


@click.group("features")
def command() -> None:
    """Extract one feature source into the on-disk store (resumable; cached by dataset and config)."""


@command.command("backbone")
@_common
@_layers
@_dtype
@click.option("--attn-implementation", type=click.Choice(("sdpa", "eager", "flash_attention_2")), default=None, help="Attention kernel.")
@_batch
def backbone(layers: list[str] | None, dtype: str | None, attn_implementation: str | None, batch_size: int | None, **common: Any) -> None:
    """Qwen3-TTS layers (aliases such as decoder_block_08, text_encoder_out, pre_vocoder)."""
    _run("backbone", {"layers": layers, "dtype": dtype, "attn_implementation": attn_implementation, "batch_size": batch_size}, **common)


@command.command("ssl")
@_common
@_layers
@_dtype
@_batch
def ssl(layers: list[str] | None, dtype: str | None, batch_size: int | None, **common: Any) -> None:
    """WavLM / HuBERT / wav2vec2 hidden states (layer_00 … layer_NN, or 'all')."""
    _run("ssl", {"layers": "all" if layers == ["all"] else layers, "dtype": dtype, "batch_size": batch_size}, **common)


@command.command("ecapa")
@_common
@_batch
def ecapa(batch_size: int | None, **common: Any) -> None:
    """ECAPA-TDNN speaker embedding."""
    _run("ecapa", {"batch_size": batch_size}, **common)


@command.command("acoustic")
@_common
@_layers
def acoustic(layers: list[str] | None, **common: Any) -> None:
    """MFCC statistics and (with opensmile installed) eGeMAPS; --layers picks mfcc_stats / egemaps."""
    _run("acoustic", {"features": layers}, **common)
