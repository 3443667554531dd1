"""Command-line options override the typed config, never replace its defaults.

Every option that stands for a config setting defaults to None ("keep the config's value"); the
config (`stage1_5.config`) stays the only place defaults live. `override` applies the given ones to
a config section and re-validates it, so an option gets the same checks as the YAML key.
"""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from pydantic import BaseModel, ValidationError

from stage1_5.config import error_text
from stage1_5.errors import ConfigError

Section = TypeVar("Section", bound=BaseModel)


def option_name(field: str) -> str:
    """The option a config field is set by: `batch_size` → `--batch-size`."""
    return "--" + field.replace("_", "-")


def override(
    section: Section,
    updates: Mapping[str, Any],
    *,
    key: str,
    options: Mapping[str, str] | None = None,
) -> Section:
    """`section` with the non-None `updates` applied and validated.

    A bad value is a `ConfigError` naming the option and its value ("--layers ['prosody']: ...");
    a problem in a setting no option touched names its dotted config key (`key` is the section's,
    e.g. "probes"; "" for settings that are all options). `options` maps a field to its option where they differ (`features` → `--layers`).
    """
    given = {field: value for field, value in updates.items() if value is not None}
    try:
        return type(section).model_validate({**section.model_dump(), **given})
    except ValidationError as err:
        first = err.errors()[0]
        if not first["loc"]:  # a check across settings: its message names them
            raise ConfigError(f"{key}: {error_text(first)}" if key else error_text(first)) from None
        field = str(first["loc"][0])
        if field in given:
            where = f"{(options or {}).get(field, option_name(field))} {given[field]!r}"
        else:
            where = f"{key}.{field}" if key else field
        raise ConfigError(f"{where}: {error_text(first)}") from None
