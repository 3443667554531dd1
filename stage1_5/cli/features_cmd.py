"""`stage1_5 features` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from stage1_5.errors import Stage15Error


@click.command("features", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def command() -> None:
    """Not built yet."""
    raise Stage15Error("stage 'features' is not built yet")
