"""Dataset validation: one validator per rule, each problem naming the file and the row.

Validators are plain functions of a `DatasetView` returning `Problem`s, registered in the order they
run (lhotse `qa.py` style), so each rule is testable alone. The loader collects every problem and
raises one `DatasetValidationError`. Design minima and mixed sample rates are warnings, not problems.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence

from stage1_5.config import DatasetConfig
from stage1_5.data.audio import AudioStats
from stage1_5.data.safezip import safe_relative_path
from stage1_5.errors import DatasetError

if TYPE_CHECKING:
    from stage1_5.data.dataset import DatasetSummary

METADATA = "metadata.csv"
TEXTS = "texts.json"
REQUIRED_COLUMNS = ("utt_id", "speaker", "accent", "text_id", "rel_path")
MAX_LISTED = 10


@dataclass(frozen=True)
class Problem:
    """One validation failure; `row` orders problems (0 = a whole-file problem)."""

    row: int
    message: str


@dataclass(frozen=True)
class MetadataRow:
    """One parsed metadata.csv row; `row` is its line number in the file (the header is row 1)."""

    row: int
    utt_id: str
    speaker: str
    accent: str
    text_id: str
    rel_path: str
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{METADATA} row {self.row}" + (f" (utt_id={self.utt_id})" if self.utt_id else "")


@dataclass(frozen=True)
class AudioScan:
    """What the loader found for each row's audio file, keyed by row number."""

    stats: Mapping[int, AudioStats]
    missing: frozenset[int] = frozenset()
    unreadable: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetView:
    """Everything validators look at; `texts` is None without texts.json, `audio` None when not checked."""

    root: Path
    rows: Sequence[MetadataRow]
    config: DatasetConfig
    texts: Optional[Mapping[str, str]] = None
    audio: Optional[AudioScan] = None


Validator = Callable[[DatasetView], list[Problem]]
METADATA_VALIDATORS: list[Validator] = []
AUDIO_VALIDATORS: list[Validator] = []


def _register(registry: list[Validator]) -> Callable[[Validator], Validator]:
    def add(fn: Validator) -> Validator:
        registry.append(fn)
        return fn

    return add


class DatasetValidationError(DatasetError):
    """All problems of one dataset: the first line names the first and says how many more there are."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        first, rest = self.problems[0], self.problems[1:]
        self.headline = first + (f" (and {len(rest)} more problem{'s' * (len(rest) > 1)})" if rest else "")
        lines = [self.headline] + [f"  {p}" for p in rest[:MAX_LISTED]]
        if len(rest) > MAX_LISTED:
            lines.append(f"  ... {len(rest) - MAX_LISTED} more not shown (stage1_5 dataset validate lists them all)")
        super().__init__("\n".join(lines))


def raise_if_problems(problems: Sequence[Problem]) -> None:
    if problems:
        ordered = sorted(problems, key=lambda p: p.row)  # stable: validator order within a row
        raise DatasetValidationError([p.message for p in ordered])


def resolve_audio_path(root: Path, rel_path: str) -> Path:
    """Absolute path of a row's audio file; ValueError if it escapes `root` (also through symlinks)."""
    path = (root / safe_relative_path(rel_path)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError("a symbolic link leads outside the dataset folder")
    return path


# ----------------------------------------------------------------------------- metadata.csv header


def validate_columns(header: Sequence[str]) -> list[Problem]:
    """Every required column present, no column named twice or left unnamed."""
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        problems.append(
            Problem(1, f"{METADATA} row 1 (header): missing column{'s' * (len(missing) > 1)} "
                       f"{', '.join(missing)} (need {','.join(REQUIRED_COLUMNS)}; found {','.join(header)})")
        )
    for name, count in Counter(header).items():
        if count > 1:
            problems.append(Problem(1, f"{METADATA} row 1 (header): column {name or '<empty>'} appears {count} times"))
    return problems


# ----------------------------------------------------------------------------- metadata rows


@_register(METADATA_VALIDATORS)
def validate_required_fields(view: DatasetView) -> list[Problem]:
    """No required field is blank."""
    return [
        Problem(r.row, f"{r.where}: empty {col}")
        for r in view.rows
        for col in REQUIRED_COLUMNS
        if not getattr(r, col)
    ]


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


@_register(METADATA_VALIDATORS)
def validate_speaker_accents(view: DatasetView) -> list[Problem]:
    """Speakers are nested in accents: a speaker under two accents breaks speaker-level evidence."""
    first: dict[str, MetadataRow] = {}
    reported: set[tuple[str, str]] = set()
    problems = []
    for r in view.rows:
        seen = first.setdefault(r.speaker, r)
        if seen.accent != r.accent and (r.speaker, r.accent) not in reported:
            reported.add((r.speaker, r.accent))
            problems.append(
                Problem(r.row, f"{r.where}: speaker {r.speaker} is listed under accent {r.accent} here "
                               f"but under {seen.accent} in row {seen.row}")
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


@_register(METADATA_VALIDATORS)
def validate_rel_paths(view: DatasetView) -> list[Problem]:
    """rel_path stays inside the dataset folder (no absolute paths, '..' or links leading out)."""
    problems = []
    for r in view.rows:
        if not r.rel_path:
            continue
        try:
            resolve_audio_path(view.root, r.rel_path)
        except ValueError as err:
            problems.append(Problem(r.row, f"{r.where}: rel_path {r.rel_path} escapes the dataset root ({err})"))
    return problems


# ----------------------------------------------------------------------------- audio


def _audio_rows(view: DatasetView):
    if view.audio is None:
        return
    for r in view.rows:
        stats = view.audio.stats.get(r.row)
        if stats is not None:
            yield r, stats


@_register(AUDIO_VALIDATORS)
def validate_audio_present(view: DatasetView) -> list[Problem]:
    if view.audio is None:
        return []
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} not found")
        for r in view.rows
        if r.row in view.audio.missing
    ]


@_register(AUDIO_VALIDATORS)
def validate_audio_readable(view: DatasetView) -> list[Problem]:
    if view.audio is None:
        return []
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is unreadable ({view.audio.unreadable[r.row]})")
        for r in view.rows
        if r.row in view.audio.unreadable
    ]


def _is_empty(stats: AudioStats, config: DatasetConfig) -> bool:
    return stats.duration < config.min_duration_s


@_register(AUDIO_VALIDATORS)
def validate_not_empty(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is empty "
                       f"({s.duration:.3f} s < dataset.min_duration_s={cfg.min_duration_s:g} s)")
        for r, s in _audio_rows(view)
        if _is_empty(s, cfg)
    ]


@_register(AUDIO_VALIDATORS)
def validate_not_silent(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is silent "
                       f"(RMS {s.rms_dbfs:.1f} dBFS < dataset.silence_dbfs={cfg.silence_dbfs:g})")
        for r, s in _audio_rows(view)
        if not _is_empty(s, cfg) and s.rms_dbfs < cfg.silence_dbfs
    ]


@_register(AUDIO_VALIDATORS)
def validate_not_clipped(view: DatasetView) -> list[Problem]:
    cfg = view.config
    return [
        Problem(r.row, f"{r.where}: audio file {r.rel_path} is clipped ({s.clipped_fraction:.2%} of samples "
                       f"at full scale > dataset.clipped_fraction={cfg.clipped_fraction:g})")
        for r, s in _audio_rows(view)
        if not _is_empty(s, cfg) and s.clipped_fraction > cfg.clipped_fraction
    ]


def validate(view: DatasetView) -> list[Problem]:
    """Run every metadata validator, and every audio validator when the view carries an audio scan."""
    validators = METADATA_VALIDATORS + (AUDIO_VALIDATORS if view.audio is not None else [])
    return [p for validator in validators for p in validator(view)]


# ----------------------------------------------------------------------------- warnings


def sample_rate_notes(sample_rates: Mapping[int, int]) -> list[str]:
    """Mixed sample rates are allowed: each extractor resamples to its own rate."""
    if len(sample_rates) <= 1:
        return []
    counts = ", ".join(f"{sr} Hz: {n} files" for sr, n in sorted(sample_rates.items()))
    return [f"mixed sample rates ({counts}); audio is resampled to each extractor's rate"]


def minima_warnings(summary: "DatasetSummary", config: DatasetConfig) -> list[str]:
    """Loud warnings for a dataset under the design minima; the report marks it 'not a scientific result'."""
    short = []
    if summary.n_accents < config.min_accents:
        short.append(f"{summary.n_accents} accent(s) < dataset.min_accents={config.min_accents}")
    few = {a: n for a, n in summary.speakers_per_accent.items() if n < config.min_speakers_per_accent}
    if few:
        listed = ", ".join(f"{a}: {n}" for a, n in sorted(few.items()))
        short.append(f"speakers per accent ({listed}) < dataset.min_speakers_per_accent={config.min_speakers_per_accent}")
    if summary.min_texts_per_speaker < config.min_texts_per_speaker:
        short.append(
            f"a speaker reads only {summary.min_texts_per_speaker} text(s) < "
            f"dataset.min_texts_per_speaker={config.min_texts_per_speaker}"
        )
    return [f"DATASET BELOW DESIGN MINIMA, NOT A SCIENTIFIC RESULT: {s}" for s in short]

