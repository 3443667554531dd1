"""`stage1_5 config show FILE [--describe]`."""

from __future__ import annotations

import click
import yaml
from pydantic import BaseModel

from stage1_5.config import load_config


@click.group("config")
def command() -> None:
    """Inspect experiment configs."""


@command.command("show")
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option("--describe", is_flag=True, help="Put each option's description above it, as a YAML comment.")
def show(config_file: str, describe: bool) -> None:
    """Print the resolved config (defaults filled in) as YAML."""
    cfg = load_config(config_file)
    click.echo(f"# resolved from {config_file} (config hash {cfg.config_hash()})")
    if describe:
        click.echo("\n".join(described_yaml(cfg)))
    else:
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


def described_yaml(model: BaseModel, indent: int = 0) -> list[str]:
    """`model` as YAML lines in field order, each option preceded by its `Field(description=...)` (and a
    section by its class docstring's first line) as a comment; it loads back to `model_dump(mode="json")`."""
    pad, values, out = " " * indent, model.model_dump(mode="json"), []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        about = field.description or (_summary(type(value).__doc__) if isinstance(value, BaseModel) else None)
        if about:
            out.append(f"{pad}# {about}")
        if isinstance(value, BaseModel):
            out += [f"{pad}{name}:", *described_yaml(value, indent + 2)]
        else:
            flow = None if isinstance(values[name], (list, dict)) else False  # lists inline, as the configs write them
            dumped = yaml.safe_dump({name: values[name]}, default_flow_style=flow, sort_keys=False, allow_unicode=True, width=2**16)
            out += [pad + line for line in dumped.rstrip("\n").splitlines()]
    return out


def _summary(doc: str | None) -> str | None:
    """A docstring's first paragraph on one line."""
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc and doc.strip() else None
