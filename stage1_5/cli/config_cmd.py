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
    for line in significance_lines(cfg):
        click.echo(f"# {line}")


def significance_lines(cfg) -> list[str]:
    """What the permutation settings allow, before any data is read (the dataset's speakers may
    limit p further: the run log and the report give the design's own smallest reachable p)."""
    B, alpha = cfg.probes.permutations, cfg.experiment.alpha
    if B == 0:
        return ["probes.permutations is 0: no p-value, so neither GO nor conditional GO can be reached"]
    smallest = 1 / (1 + B)
    line = f"smallest reachable p from {B} permutations: {smallest:.3g} (alpha {alpha:g})"
    if smallest >= alpha:
        return [line + f": neither GO nor conditional GO can be reached; set probes.permutations >= {max(199, int(1 / alpha))}"]
    return [line + "; with 2 accents each needs enough speakers too (2 × 4 speakers give only 16 labellings, p ≥ 0.0625)"]
