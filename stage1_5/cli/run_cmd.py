"""`stage1_5 run CONFIG [-o OUTDIR] [--force STAGE]`."""

from __future__ import annotations

import time

import click

from stage1_5.pipeline import STAGES


@click.command("run")
@click.argument("config_file", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Run folder (default: output.dir of the config).")
@click.option("--force", type=click.Choice(STAGES), default=None, help="Redo this stage and every stage after it.")
@click.option("--no-progress", is_flag=True, help="Hide progress bars (logs stay).")
@click.option("--wait", is_flag=True, help="If another run is using the run folder, wait for it instead of stopping with exit 2.")
def command(config_file: str, out_dir: str | None, force: str | None, no_progress: bool, wait: bool) -> None:
    """Run dataset → features → probes → decision → stage2 → report → bundle, resuming finished stages.

    Under `torchrun --nproc-per-node N` the ranks share the feature extraction; rank 0 runs the rest."""
    from stage1_5 import distributed
    from stage1_5.config import load_config
    from stage1_5.pipeline import run_experiment
    from stage1_5.runtime import configure_torch_threads

    cfg = load_config(config_file)
    configure_torch_threads()
    started = time.perf_counter()
    with distributed.session():  # under torchrun: every rank extracts features, rank 0 does the rest
        result = run_experiment(cfg, out_dir=out_dir, force=force, progress=not no_progress, echo=lambda m: click.echo(m, err=True), wait=wait)
    if result is None:  # a torchrun rank other than 0: its shard is in the store
        return
    d = result.decision
    click.echo("")
    click.echo(f"Decision: {d.decision.label}")
    click.echo(f"Best representation: {d.best_representation}")
    click.echo(f"Rationale: {d.rationale}")
    if d.diagnosis:
        click.echo(f"Diagnosis: {d.diagnosis.value}")
    if d.facts.significance_limit:
        click.echo(f"WARNING: {d.facts.significance_limit}.")
    if not d.scientific:
        click.echo(f"NOTE: not a scientific result: {'; '.join(d.caveats)}.")
    click.echo("")
    click.echo(f"Report:   {result.paths.report_md}")
    click.echo(f"Analysis: {result.paths.analysis_dir}")
    if result.paths.stage2_dir.is_dir():
        click.echo(f"Stage 2:  {result.paths.stage2_dir}")
    click.echo(f"Bundle:   {result.paths.bundle}")
    click.echo(f"Wall time: {time.perf_counter() - started:.1f}s{_stage_summary(result.stage_times, result.skipped)}")


def _stage_summary(times: dict[str, float], skipped: list[str]) -> str:
    """The tail of the wall-time line, e.g. ` [features 1.2s, probes 0.4s] (skipped, up to date: dataset)`;
    each part only when it has entries (a run that skipped everything prints no empty brackets)."""
    ran = f" [{', '.join(f'{stage} {secs:.1f}s' for stage, secs in times.items())}]" if times else ""
    return ran + (f" (skipped, up to date: {', '.join(skipped)})" if skipped else "")
