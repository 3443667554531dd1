"""`stage1_5 config show FILE`."""

from __future__ import annotations

import click

from stage1_5.config import load_config


@click.group("config")
def command() -> None:
    """Inspect experiment configs."""


@command.command("show")
@click.argument("config_file", type=click.Path(dir_okay=False))
def show(config_file: str) -> None:
    """Print the resolved config (defaults filled in) as YAML."""
    cfg = load_config(config_file)
    click.echo(f"# resolved from {config_file} (config hash {cfg.config_hash()})")
    click.echo(cfg.to_yaml(), nl=False)
