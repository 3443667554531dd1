"""`stage1_5 features SOURCE --config FILE [options]`: extract one source into the store.

One subcommand per registered source (`stage1_5.sources`): the built-in ones have their own options,
any other registered source gets the common ones. Options override that source's config section
(and enable it) or the `output:` store settings; left out, the config's values hold. The vectors land
in the feature store under `output.cache_dir`, where `stage1_5 run` and the gates find them; `-o`
also exports an `.npz` or `.parquet`. Under `torchrun --nproc-per-node N` the ranks share the
work (length-balanced shards of the store's chunks, see `stage1_5.distributed`) and rank 0 reports.
"""

from __future__ import annotations

from typing import Any, Callable, get_args

import click

from stage1_5.config import AttnImplementation, FeatureDtype, ModelDtype


def _split_layers(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[str] | None:
    """`--layers a,b --layers c` → ['a', 'b', 'c']; None when not given."""
    names = [name.strip() for chunk in value for name in chunk.split(",") if name.strip()]
    return names or None


def _common(fn: Callable) -> Callable:
    options = [
        click.option("-c", "--config", "config_file", required=True, type=click.Path(dir_okay=False), help="Experiment config (YAML)."),
        click.option("-o", "--output", "export_path", type=click.Path(dir_okay=False), default=None, help="Also export the vectors to this .npz or .parquet (utt_id + one array per representation)."),
        click.option("--store-dtype", type=click.Choice(get_args(FeatureDtype)), default=None, help="Dtype of the stored vectors [default: output.feature_dtype]."),
        click.option("--chunk-size", type=click.IntRange(min=1), default=None, help="Utterances per store chunk, the most a killed run recomputes [default: output.feature_chunk_size]."),
        click.option("--force", is_flag=True, help="Recompute even if the store holds these vectors."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


_layers = click.option("--layers", multiple=True, callback=_split_layers, help="Comma-separated layer names (repeatable) [default: the config's].")
_batch = click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Utterances per forward pass [default: the config's].")
_dtype = click.option("--dtype", type=click.Choice(get_args(ModelDtype)), default=None, help="Model compute dtype [default: the config's].")


def _run(
    source: str,
    overrides: dict[str, Any],
    config_file: str,
    export_path: str | None,
    store_dtype: str | None,
    chunk_size: int | None,
    force: bool,
    no_progress: bool,
    backbone_name: str | None = None,
) -> None:
    """Extract `source` (for 'backbone' with a `sources.backbones` list: the one called `backbone_name`,
    default the first) with the command line's `overrides` of its settings."""
    from stage1_5.config import load_config
    from stage1_5.errors import ConfigError

    from stage1_5.sources import configured_backbones

    cfg = load_config(config_file)
    with configured_backbones(cfg) as backbones:
        if source == "backbone" and cfg.sources.backbones:
            source = backbone_name or backbones[0]
            if source not in backbones:
                raise ConfigError(f"--name: {source!r} is not among the config's backbones: {', '.join(backbones)}")
        _extract(source, cfg, overrides, export_path, store_dtype, chunk_size, force, no_progress)


def _extract(source: str, cfg: Any, overrides: dict[str, Any], export_path: str | None, store_dtype: str | None, chunk_size: int | None, force: bool, no_progress: bool) -> None:
    from stage1_5 import distributed
    from stage1_5.cli.overrides import override
    from stage1_5.features.extract import export_features, extract_features
    from stage1_5.paths import cache_paths
    from stage1_5.pipeline import dataset_stage
    from stage1_5.runtime import configure_torch_threads
    from stage1_5.sources import source_spec

    spec = source_spec(source)
    section = override(spec.settings(cfg), {"enabled": True, **overrides}, key=spec.key, options={"features": "--layers"})
    output = override(
        cfg.output,
        {"feature_dtype": store_dtype, "feature_chunk_size": chunk_size},
        key="output",
        options={"feature_dtype": "--store-dtype", "feature_chunk_size": "--chunk-size"},
    )
    if any(b.name == source for b in cfg.sources.backbones or ()):
        listed = [section if b.name == source else b for b in cfg.sources.backbones]
        sources = cfg.sources.model_copy(update={"backbones": listed})
    else:
        sources = cfg.sources.model_copy(update={spec.section or spec.name: section})
    cfg = cfg.model_copy(update={"sources": sources, "output": output})
    configure_torch_threads()
    with distributed.session() as ctx:  # torchrun: every rank extracts a shard, rank 0 consolidates
        with ctx.main_first():  # rank 0 fills the dataset cache, the other ranks read it
            dataset = dataset_stage(cfg, progress=not no_progress and ctx.is_main)
        features = extract_features(cfg, dataset, sources=[source], progress=not no_progress, force=force)
    if not ctx.is_main:
        return
    stats = features.stats[source]
    origin = "from cache" if stats.from_cache else "computed"
    ranks = f" on {ctx.world_size} ranks" if ctx.world_size > 1 else ""
    click.echo(
        f"{source}: {len(features.utt_ids)} utterances, {len(features.vectors)} representations ({origin}{ranks}); "
        f"{stats.utterances_per_s:.1f} utt/s, {stats.audio_seconds_per_s:.1f} audio-s/s, "
        f"peak memory {stats.peak_memory_bytes / 2**20:.0f} MiB ({stats.peak_memory_kind})"
    )
    for name, arr in features.vectors.items():
        click.echo(f"  {name}: {arr.shape[1]} dims")
    click.echo(f"store: {cache_paths(cfg.output).features / source}")
    if export_path:
        click.echo(f"exported: {export_features(features, export_path)}")


class _SourceGroup(click.Group):
    """Subcommands for the built-in sources, plus one with the common options for any other registered source."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from stage1_5.sources import all_sources

        return list(dict.fromkeys([*super().list_commands(ctx), *(spec.name for spec in all_sources())]))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        from stage1_5.sources import source_spec

        command = super().get_command(ctx, name)
        if command is not None or source_spec(name) is None:
            return command

        def generic(**common: Any) -> None:
            _run(name, {}, **common)

        return click.command(name, help=f"The registered source {name!r}; its other settings come from the config.")(_common(generic))


@click.group("features", cls=_SourceGroup)
def command() -> None:
    """Extract one feature source into the on-disk store (resumable; cached by dataset and config)."""


@command.command("backbone")
@_common
@_layers
@_dtype
@click.option("--attn-implementation", type=click.Choice(get_args(AttnImplementation)), default=None, help="Attention kernel [default: the config's].")
@_batch
@click.option("--name", "backbone_name", default=None, help="Which of the config's sources.backbones (default: the first).")
def backbone(layers: list[str] | None, dtype: str | None, attn_implementation: str | None, batch_size: int | None, backbone_name: str | None, **common: Any) -> None:
    """Backbone layers (aliases such as decoder_block_08, text_encoder_out, pre_vocoder; any family)."""
    overrides = {"layers": layers, "dtype": dtype, "attn_implementation": attn_implementation, "batch_size": batch_size}
    _run("backbone", overrides, backbone_name=backbone_name, **common)


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
@_batch
def acoustic(layers: list[str] | None, batch_size: int | None, **common: Any) -> None:
    """MFCC statistics and (with opensmile installed) eGeMAPS; --layers picks mfcc_stats / egemaps."""
    _run("acoustic", {"features": layers, "batch_size": batch_size}, **common)
