"""`stage1_5 layers`: list the backbone layer names a config may ask for (aliases and module paths)."""

from __future__ import annotations

from typing import Optional

import click


@click.command("layers")
@click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False), default=None, help="Experiment config: its sources.backbone, or the --backbone of its sources.backbones (default: the built-in defaults).")
@click.option("--backbone", "backbone_name", default=None, help="Which of the config's sources.backbones (by name; default: the first).")
@click.option("--checkpoint", default=None, help="Hub name, local folder, or 'tiny-random' (overrides the config's).")
@click.option("--modules", "show_modules", is_flag=True, help="Also list every hookable raw module path (loads the weights).")
@click.option("--device", default=None, help="Where to load the model for --modules (overrides the config's: auto, cpu, cuda...).")
@click.option("--family", default=None, help="Backbone family (qwen3_tts, csm); default: the one config.json's model_type names.")
def command(
    config_file: Optional[str], backbone_name: Optional[str], checkpoint: Optional[str], show_modules: bool, device: Optional[str], family: Optional[str]
) -> None:
    """List the layer aliases of a backbone checkpoint and the module each one hooks.

    The aliases come from the checkpoint's config.json alone; --modules loads the model."""
    from stage1_5.backbone.checkpoint import check_backbone, inspect_checkpoint, load_backbone
    from stage1_5.backbone.family import LayerSite, family_named
    from stage1_5.config import Stage15Config, load_config

    from stage1_5.errors import ConfigError

    listed = (load_config(config_file) if config_file else Stage15Config()).sources.backbone_list()
    chosen = [b for b in listed if backbone_name in (None, b.name)]
    if not chosen:
        raise ConfigError(f"--backbone: {backbone_name!r} is not among the config's backbones: {', '.join(b.name for b in listed)}")
    cfg = chosen[0]
    updates = {k: v for k, v in {"checkpoint": checkpoint, "device": device, "family": family}.items() if v is not None}
    cfg = cfg.model_copy(update=updates)
    info = inspect_checkpoint(cfg.checkpoint, cfg.family)
    backbone_family = family_named(info.family)
    aliases = list(backbone_family.alias_sites(info.n_layers).values())
    modules: list[LayerSite] = []
    if show_modules:
        tts = load_backbone(check_backbone(cfg, layers=False), seed=cfg.seed)
        modules = backbone_family.resolve_layers(tts, backbone_family.hookable_module_paths(tts))
    width = max(len(site.name) for site in aliases)
    note = "" if show_modules else " (--modules lists raw module paths)"
    click.echo(f"# {backbone_family.title}: {info.summary()}: {len(aliases)} aliases{note}")
    for site in aliases:
        click.echo(f"{site.name:<{width}}  {site.axis:<8}  -> {site.module_path}")
    for site in modules:
        click.echo(f"{site.name}  {site.axis}")
