"""`stage1_5 probes` (placeholder until its issue lands)."""

from __future__ import annotations

import click

from stage1_5.errors import Stage15Error


@click.command("probes", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def command() -> None:
    """Not built yet."""
    raise Stage15Error("stage 'probes' is not built yet")
