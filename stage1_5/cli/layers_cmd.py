"""`stage1_5 layers` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from stage1_5.errors import Stage15Error


@click.command("layers", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def command() -> None:
    """Not built yet."""
    raise Stage15Error("stage 'layers' is not built yet")
