"""`stage1_5 preflight CONFIG`: check everything on a few batches and print the plan (exit 2 on a problem)."""

from __future__ import annotations

import click


@click.command("preflight")
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option("--progress/--no-progress", default=False, help="Progress bars while the dataset is hashed.")
def command(config_file: str, progress: bool) -> None:
    """Validate the dataset, check the options against the checkpoint, load every model, time a few
    batches per source and the probes on the dataset's folds, and print device, dtype, throughput,
    projected extraction and probe time, memory and disk."""
    from stage1_5.config import load_config
    from stage1_5.preflight import run_preflight
    from stage1_5.runtime import configure_torch_threads

    cfg = load_config(config_file)
    configure_torch_threads()
    plan = run_preflight(cfg, config_name=config_file, echo=lambda m: click.echo(m, err=True), progress=progress)
    click.echo("\n".join(plan.lines()))
