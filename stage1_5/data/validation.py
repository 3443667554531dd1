"""Dataset validation: one validator per rule, each problem naming the file and the row.

Validators are plain functions of a `DatasetView` returning `Problem`s, registered in the order they
run (lhotse `qa.py` style), so each rule is testable alone. The loader collects every problem and
raises one `DatasetValidationError`. Each problem is reported by exactly one validator: a file that is
missing is not also unreadable, a file with NaN samples is not also "silent".
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from stage1_5.config import DatasetConfig
from stage1_5.data.layout import (
    AUDIO_DIR,
    GROUP,
    METADATA,
    REQUIRED_COLUMNS,
    TEXTS,
    AudioLocation,
    MetadataRow,
    Problem,
)
from stage1_5.data.recording import RecordingStats
from stage1_5.errors import DatasetError

MAX_LISTED = 10


@dataclass(frozen=True)
class AudioScan:
    """What the loader measured for each row's audio file, keyed by row number."""

    stats: Mapping[int, RecordingStats]
    unreadable: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetView:
    """Everything validators look at. `locations`: where each row's rel_path leads (rows with a blank
    rel_path absent); `texts` is None without texts.json; `audio` is None when audio is not checked."""

    root: Path
    rows: Sequence[MetadataRow]
    config: DatasetConfig
    texts: Optional[Mapping[str, str]] = None
    locations: Mapping[int, AudioLocation] = field(default_factory=dict)
    audio: Optional[AudioScan] = None
    text_required: bool = False
    """A source that reads the text (the backbone) is enabled: an empty transcript is an error, not a warning."""
    long_audio_is_error: bool = False
    """`run`: audio longer than dataset.max_duration_s is an error, not a warning (as at `dataset validate`)."""


Validator = Callable[[DatasetView], list[Problem]]
METADATA_VALIDATORS: list[Validator] = []
AUDIO_VALIDATORS: list[Validator] = []


def _register(registry: list[Validator]) -> Callable[[Validator], Validator]:
    def add(fn: Validator) -> Validator:
        registry.append(fn)
        return fn

    return add


class DatasetValidationError(DatasetError):
    """All problems of one dataset: the first line names the first and says how many more there are.

    `listed` caps how many of the rest the message shows (None: all, as `dataset validate` prints them).
    """

    def __init__(self, problems: Sequence[str], listed: Optional[int] = MAX_LISTED):
        self.problems = list(problems)
        first, rest = self.problems[0], self.problems[1:]
        self.headline = first + (f" (and {len(rest)} more problem{'s' * (len(rest) > 1)})" if rest else "")
        shown = rest if listed is None else rest[:listed]
        lines = [self.headline] + [f"  {p}" for p in shown]
        if len(rest) > len(shown):
            lines.append(f"  ... {len(rest) - len(shown)} more not shown (stage1_5 dataset validate lists them all)")
        super().__init__("\n".join(lines))


def raise_if_problems(problems: Sequence[Problem]) -> None:
    if problems:
        ordered = sorted(problems, key=lambda p: p.row)  # stable: validator order within a row
        raise DatasetValidationError([p.message for p in ordered])


# ----------------------------------------------------------------------------- metadata rows


@_register(METADATA_VALIDATORS)
def validate_required_fields(view: DatasetView) -> list[Problem]:
    """No required field is blank; with a group column, no group is blank either (group folds would
    otherwise put a speaker in no group)."""
    problems = [
        Problem(r.row, f"{r.where}: empty {col}")
        for r in view.rows
        for col in REQUIRED_COLUMNS
        if not getattr(r, col)
    ]
    problems += [
        Problem(r.row, f"{r.where}: empty {GROUP} (with a {GROUP} column every row needs one)")
        for r in view.rows
        if r.group == ""
    ]
    return problems


CHECKED_FOR_CONTROL_CHARACTERS = ("utt_id", "speaker", "accent", "text_id", GROUP)


@_register(METADATA_VALIDATORS)
def validate_no_control_characters(view: DatasetView) -> list[Problem]:
    """Ids and labels hold no NUL byte or other control character: they key caches, name predictions
    and are printed in reports, where such a character hides or breaks the line."""
    problems = []
    for r in view.rows:
        for col in CHECKED_FOR_CONTROL_CHARACTERS:
            value = getattr(r, col) or ""
            bad = next((c for c in value if unicodedata.category(c) == "Cc"), None)
            if bad is not None:
                problems.append(Problem(r.row, f"{METADATA} row {r.row}: {col} {value!r} holds the control character {bad!r}"))
    return problems


@_register(METADATA_VALIDATORS)
def validate_unique_ids(view: DatasetView) -> list[Problem]:
    """Each utt_id names one utterance: every cache and prediction is keyed by it."""
    first: dict[str, int] = {}
    problems = []
    for r in view.rows:
        if r.utt_id in first:
            problems.append(Problem(r.row, f"{r.where}: duplicate utt_id {r.utt_id} (first in row {first[r.utt_id]})"))
        else:
            first[r.utt_id] = r.row
    return problems


def _one_value_per_speaker(view: DatasetView, attribute: str, what: str) -> list[Problem]:
    first: dict[str, MetadataRow] = {}
    reported: set[tuple[str, str]] = set()
    problems = []
    for r in view.rows:
        value = getattr(r, attribute)
        if not r.speaker or not value:
            continue
        seen = first.setdefault(r.speaker, r)
        if getattr(seen, attribute) != value and (r.speaker, value) not in reported:
            reported.add((r.speaker, value))
            problems.append(
                Problem(r.row, f"{r.where}: speaker {r.speaker} is listed under {what} {value} here "
                               f"but under {getattr(seen, attribute)} in row {seen.row}")
            )
    return problems


@_register(METADATA_VALIDATORS)
def validate_speaker_accents(view: DatasetView) -> list[Problem]:
    """Speakers are nested in accents: a speaker under two accents breaks speaker-level evidence."""
    return _one_value_per_speaker(view, "accent", "accent")


@_register(METADATA_VALIDATORS)
def validate_speaker_groups(view: DatasetView) -> list[Problem]:
    """A speaker belongs to one group: group folds keep whole groups, hence whole speakers, together."""
    return _one_value_per_speaker(view, "group", GROUP)


@_register(METADATA_VALIDATORS)
def validate_speaker_design(view: DatasetView) -> list[Problem]:
    """At least 2 accents, and 2 speakers in every accent: the speaker-disjoint probe cannot run with
    fewer, and finding out after extraction wastes the extraction."""
    speakers: dict[str, set[str]] = defaultdict(set)
    first_row: dict[str, int] = {}
    for r in view.rows:
        if r.accent and r.speaker:
            speakers[r.accent].add(r.speaker)
            first_row.setdefault(r.accent, r.row)
    if not speakers:
        return []
    problems = []
    if len(speakers) < 2:
        (accent,) = speakers
        problems.append(Problem(0, f"{METADATA}: only one accent ({accent}); the accent probe needs at least 2"))
    for accent, members in speakers.items():
        if len(members) < 2:
            row = first_row[accent]
            problems.append(
                Problem(row, f"{METADATA} row {row}: accent {accent} has only 1 speaker ({next(iter(members))}); "
                             "speaker-disjoint probes need at least 2 speakers per accent")
            )
    return problems


@_register(METADATA_VALIDATORS)
def validate_text_ids(view: DatasetView) -> list[Problem]:
    """With texts.json, every text_id must have a text (the backbone reads text and audio together)."""
    if view.texts is None:
        return []
    return [
        Problem(r.row, f"{r.where}: text_id {r.text_id} not found in {TEXTS}")
        for r in view.rows
        if r.text_id and r.text_id not in view.texts
    ]


def empty_texts(view: DatasetView) -> list[Problem]:
    """Rows whose transcript in texts.json is empty or only whitespace (one problem per text_id, at its
    first row): a teacher-forced pass over an empty text is meaningless."""
    if view.texts is None:
        return []
    problems, seen = [], set()
    for r in view.rows:
        text = view.texts.get(r.text_id)
        if text is not None and not text.strip() and r.text_id not in seen:
            seen.add(r.text_id)
            problems.append(Problem(r.row, f"{r.where}: text_id {r.text_id} has an empty transcript in {TEXTS}"))
    return problems


@_register(METADATA_VALIDATORS)
def validate_texts_not_empty(view: DatasetView) -> list[Problem]:
    """With a source that reads text enabled, every transcript a row uses holds some text (a warning otherwise)."""
    return empty_texts(view) if view.text_required else []


@_register(METADATA_VALIDATORS)
def validate_rel_paths(view: DatasetView) -> list[Problem]:
    """rel_path stays inside the dataset folder (no absolute paths, '..' or links leading out unless
    allowed) and names one file (not two different files under wav/ and the root)."""
    return [
        Problem(r.row, f"{r.where}: rel_path {r.rel_path} {loc.problem}")
        for r in view.rows
        if (loc := view.locations.get(r.row)) is not None and loc.problem
    ]


# ----------------------------------------------------------------------------- audio


def _measured(view: DatasetView) -> Iterator[tuple[MetadataRow, RecordingStats]]:
    """Rows whose audio was measured and holds only finite samples (the level checks' input)."""
    if view.audio is None:
        return
    for r in view.rows:
        stats = view.audio.stats.get(r.row)
        if stats is not None and not stats.nonfinite_samples:
            yield r, stats


@_register(AUDIO_VALIDATORS)
def validate_audio_present(view: DatasetView) -> list[Problem]:
    problems = []
    for r in view.rows:
        loc = view.locations.get(r.row)
        if loc is not None and loc.tried:
            where = " and ".join(loc.tried)
            problems.append(Problem(r.row, f"{r.where}: audio file {r.rel_path} not found (looked for {where})"))
    if problems and len(problems) == len(view.rows):
        problems.append(
            Problem(0, f"none of the {len(problems)} audio files was found under {view.root}: rel_path is read "
                       f"relative to {AUDIO_DIR}/ (spkNE01/t01.wav) or to the dataset folder ({AUDIO_DIR}/spkNE01/t01.wav)")
        )
    return problems


@_register(AUDIO_VALIDATORS)
def validate_audio_readable(view: DatasetView) -> list[Problem]:
    if view.audio is None:
        return []
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is unreadable ({view.audio.unreadable[r.row]})")
        for r in view.rows
        if r.row in view.audio.unreadable
    ]


@_register(AUDIO_VALIDATORS)
def validate_finite(view: DatasetView) -> list[Problem]:
    """NaN or infinite samples (a float file from a broken export) poison every feature downstream."""
    if view.audio is None:
        return []
    problems = []
    for r in view.rows:
        s = view.audio.stats.get(r.row)
        if s is not None and s.nonfinite_samples:
            total = s.frames * s.channels
            problems.append(
                Problem(r.row, f"{r.where}: audio file {r.rel_path} contains NaN or infinite samples "
                               f"({s.nonfinite_samples} of {total})")
            )
    return problems


def _is_empty(stats: RecordingStats, config: DatasetConfig) -> bool:
    return stats.duration < config.min_duration_s


@_register(AUDIO_VALIDATORS)
def validate_not_empty(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is empty "
                       f"({s.duration:.3f} s < dataset.min_duration_s={cfg.min_duration_s:g} s)")
        for r, s in _measured(view)
        if _is_empty(s, cfg)
    ]


@_register(AUDIO_VALIDATORS)
def validate_not_silent(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is silent "
                       f"(RMS {s.rms_dbfs:.1f} dBFS < dataset.silence_dbfs={cfg.silence_dbfs:g})")
        for r, s in _measured(view)
        if not _is_empty(s, cfg) and s.rms_dbfs < cfg.silence_dbfs
    ]


@_register(AUDIO_VALIDATORS)
def validate_not_clipped(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is clipped ({s.clipped_fraction:.2%} of samples "
                       f"at full scale > dataset.clipped_fraction={cfg.clipped_fraction:g})")
        for r, s in _measured(view)
        if not _is_empty(s, cfg) and s.clipped_fraction > cfg.clipped_fraction
    ]


def long_recordings(view: DatasetView) -> list[Problem]:
    """Audio longer than dataset.max_duration_s: utterance-level probing expects utterances, and one
    hour-long file would pad a whole extraction batch to its length."""
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is {s.duration:.1f} s long "
                       f"(> dataset.max_duration_s={cfg.max_duration_s:g} s; cut it into utterances, or raise the option)")
        for r, s in _measured(view)
        if s.duration > cfg.max_duration_s
    ]


@_register(AUDIO_VALIDATORS)
def validate_not_too_long(view: DatasetView) -> list[Problem]:
    """`run` refuses audio longer than dataset.max_duration_s; `dataset validate` warns (`validation_warnings`)."""
    return long_recordings(view) if view.long_audio_is_error else []


def validation_warnings(view: DatasetView) -> list[str]:
    """The rules that only warn for this view: empty transcripts without a text-reading source, long
    recordings outside `run`."""
    soft = [] if view.text_required else empty_texts(view)
    if view.audio is not None and not view.long_audio_is_error:
        soft += long_recordings(view)
    return [p.message for p in soft]


def validate(view: DatasetView) -> list[Problem]:
    """Run every metadata validator, and every audio validator when the view carries an audio scan."""
    validators = METADATA_VALIDATORS + (AUDIO_VALIDATORS if view.audio is not None else [])
    return [p for validator in validators for p in validator(view)]
