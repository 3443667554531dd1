"""`stage1_5 run CONFIG [-o OUTDIR] [--force STAGE]`; every run appends its DEBUG log to `<run folder>/run.log`."""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click

from stage1_5.pipeline import STAGES

if TYPE_CHECKING:
    from stage1_5.config import Language
    from stage1_5.pipeline import RunResult

log = logging.getLogger("stage1_5.run")


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
    from stage1_5.pipeline import run_experiment, run_paths
    from stage1_5.runtime import configure_torch_threads

    cfg = load_config(config_file)
    configure_torch_threads()
    started = time.perf_counter()

    def echo(message: str) -> None:
        click.echo(message, err=True)
        log.info(message)

    with distributed.session(), run_log(run_paths(cfg, out_dir).log, main=distributed.current().is_main):
        log.debug("command: %s", " ".join(sys.argv))
        log.debug("config %s (hash %s), resolved:\n%s", config_file, cfg.config_hash(), cfg.to_yaml())
        result = run_experiment(cfg, out_dir=out_dir, force=force, progress=not no_progress, echo=echo, wait=wait)
        if result is not None:
            log.info("decision %s, best %s; stage times %s; skipped %s", result.decision.decision.value, result.decision.best_representation, result.stage_times, result.skipped)
    if result is None:  # a torchrun rank other than 0: its shard is in the store
        return
    for line in closing_summary(result, cfg.report.language, time.perf_counter() - started):
        click.echo(line)


def closing_summary(result: RunResult, lang: Language, seconds: float) -> list[str]:
    """The lines `stage1_5 run` ends with (decision, rationale, where the outputs are, wall time), in the
    report's language."""
    from stage1_5.report.i18n import level_label, text
    from stage1_5.report.sentences import rationale

    d, paths = result.decision, result.paths
    lines = [
        "",
        text("cli.decision", lang, level=level_label(d.decision, lang)),
        text("cli.best", lang, best=d.best_representation),
        text("cli.rationale", lang, rationale=rationale(d, lang)),
    ]
    if d.diagnosis:
        lines.append(text("cli.diagnosis", lang, code=d.diagnosis.value))
    if d.facts.significance_limit:
        lines.append(text("cli.warning", lang, text=d.facts.significance_limit))
    if not d.scientific:
        lines.append(text("cli.not_scientific", lang, caveats="; ".join(d.caveats)))
    lines += ["", text("cli.report", lang, path=paths.report_md), text("cli.analysis", lang, path=paths.analysis_dir)]
    if paths.stage2_dir.is_dir():
        lines.append(text("cli.stage2", lang, path=paths.stage2_dir))
    lines.append(text("cli.bundle", lang, path=paths.bundle))
    lines.append(text("cli.wall_time", lang, seconds=f"{seconds:.1f}", stages=_stage_summary(result.stage_times, result.skipped)))
    return lines


def _stage_summary(times: dict[str, float], skipped: list[str]) -> str:
    """The tail of the wall-time line, e.g. ` [features 1.2s, probes 0.4s] (skipped, up to date: dataset)`;
    each part only when it has entries (a run that skipped everything prints no empty brackets)."""
    ran = f" [{', '.join(f'{stage} {secs:.1f}s' for stage, secs in times.items())}]" if times else ""
    return ran + (f" (skipped, up to date: {', '.join(skipped)})" if skipped else "")


@contextlib.contextmanager
def run_log(path: Path, main: bool = True) -> Iterator[None]:
    """Append this run's log to `path` for the duration of the block: the package's records at DEBUG,
    other libraries' from WARNING (the root logger's level), the versions and the machine first, and
    a failure's traceback last. Under torchrun only rank 0 writes it. The console keeps what it
    showed: WARNING and above still reach stderr."""
    if not main:
        yield
        return
    import torch

    from stage1_5 import __version__
    from stage1_5.pipeline import machine_description

    handler = _RunFolderLog(path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root, package = logging.getLogger(), logging.getLogger("stage1_5")
    console = None if root.handlers else logging.StreamHandler()  # what logging's last resort printed
    if console is not None:
        console.setLevel(logging.WARNING)
        root.addHandler(console)
    root.addHandler(handler)
    level = package.level
    package.setLevel(logging.DEBUG)
    try:
        log.info("stage1_5 %s run started", __version__)
        log.debug("python %s, torch %s, %s, %s", platform.python_version(), torch.__version__, platform.platform(), machine_description())
        yield
    except BaseException as exc:  # to the file alone: the console gets the CLI's one error line
        quiet = isinstance(exc, (click.exceptions.Exit, SystemExit))
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, "run failed: %s", (exc,), None if quiet else sys.exc_info()))
        raise
    finally:
        package.setLevel(level)
        root.removeHandler(handler)
        handler.close()
        if console is not None:
            root.removeHandler(console)


class _RunFolderLog(logging.Handler):
    """Appends to `path` (a resumed run appends) once its folder exists, holding the records until then:
    the log never creates the run folder, so a run that fails before writing anything leaves none."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self.held, self.file = path, [], None

    def _open_when_the_folder_exists(self) -> None:
        if self.file is None and self.path.parent.is_dir():
            self.file = logging.FileHandler(self.path, encoding="utf-8")
            self.file.setFormatter(self.formatter)
            for held in self.held:
                self.file.emit(held)
            self.held = []

    def emit(self, record: logging.LogRecord) -> None:
        self._open_when_the_folder_exists()
        if self.file is not None:
            self.file.emit(record)
        else:
            self.held.append(record)

    def close(self) -> None:
        self._open_when_the_folder_exists()
        if self.file is not None:
            self.file.close()
        super().close()
