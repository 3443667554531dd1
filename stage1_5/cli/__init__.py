"""`stage1_5` command line: a thin click layer; each command parses paths and calls one library function."""

from __future__ import annotations

import sys

import click

from stage1_5 import __version__
from stage1_5.errors import Stage15Error, os_error_line


class _Group(click.Group):
    """Turns user errors and file-system faults (permissions, a read-only or full disk) into one line
    on stderr and exit status 2, never a stack trace."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
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
