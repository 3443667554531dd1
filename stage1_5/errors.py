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


class LockBusy(Stage15Error):
    """A run folder (or another locked folder) is in use by another live process."""


def os_error_line(err: OSError) -> str:
    """One line for a file-system fault that names the path: "/runs/x/report.md: No space left on device"."""
    reason = err.strerror or str(err)
    if err.filename is None:
        return reason
    target = f"{err.filename} -> {err.filename2}" if err.filename2 is not None else str(err.filename)
    return f"{target}: {reason}"
