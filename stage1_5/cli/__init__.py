"""`stage1_5` command line: a thin click layer; each command parses paths and calls one library function."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

import click

from stage1_5 import __version__
from stage1_5.errors import Stage15Error, os_error_line


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so that locks and temporary files are released on the
    way out, as for Ctrl-C's KeyboardInterrupt."""


STOPPED = "error: stopped by {signal}; the run can be resumed: run the same command again (finished work is kept)"
"""The one line a command stopped by Ctrl-C or SIGTERM prints (exit status 128 + the signal's number)."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Group(click.Group):
    """Turns user errors and file-system faults (permissions, a read-only or full disk) into one line
    on stderr and exit status 2, never a stack trace; Ctrl-C and SIGTERM into one line saying the run
    can be resumed and exit status 130 / 143."""

    def invoke(self, ctx: click.Context):
        try:
            with _sigterm_raises():
                return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo(STOPPED.format(signal="Ctrl-C (SIGINT)"), err=True)
            sys.exit(128 + signal.SIGINT)
        except Terminated:
            click.echo(STOPPED.format(signal="SIGTERM"), err=True)
            sys.exit(128 + signal.SIGTERM)
        except Stage15Error as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(err.exit_code)
        except OSError as err:
            click.echo(f"error: {os_error_line(err)}", err=True)
            sys.exit(Stage15Error.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="stage1_5")
def cli() -> None:
    """Probe a TTS backbone for regional accent before you spend GPU-days on LoRA."""


def _register() -> None:
    from stage1_5.cli import config_cmd, dataset_cmd, features_cmd, layers_cmd, preflight_cmd, probes_cmd, run_cmd

    for module in (dataset_cmd, features_cmd, probes_cmd, preflight_cmd, run_cmd, layers_cmd, config_cmd):
        cli.add_command(module.command)


_register()


def main() -> None:
    cli(prog_name="stage1_5")
