"""User-facing errors. The CLI turns any `Stage15Error` into one line on stderr and exit status 2."""

from __future__ import annotations


class Stage15Error(Exception):
    """Bad input or configuration that the user can fix; the message names the file, row or option."""

    exit_code = 2


class ConfigError(Stage15Error):
    """The config file has an unknown key, a wrong type or an out-of-range value."""


class DatasetError(Stage15Error):
    """The dataset (folder, zip, metadata.csv, texts.json or audio) is invalid."""


class FeatureError(Stage15Error):
    """Features cannot be extracted or loaded (unknown layer, checkpoint, missing utterances, NaN...)."""


class ProbeError(Stage15Error):
    """The probing protocol cannot run on this data (one accent, too few speakers...)."""


class Stage2Error(Stage15Error):
    """The Stage 2 handoff cannot run or load (no backbone layer, a missing or mismatched directions file...)."""
