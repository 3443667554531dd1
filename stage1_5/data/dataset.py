"""Load a dataset folder or `dataset.zip` into a validated `Dataset` with a content hash (DESIGN §2).

The layout (`stage1_5.data.layout`): `metadata.csv`, optional `texts.json` and the audio under `wav/`.
Zips are unpacked safely into `work_dir/<zip sha>/` once. Every audio file is hashed and measured once
(recording statistics included); the results are cached in `work_dir/file_index.json` keyed by (path,
size, mtime), so reloading hundreds of hours only stats the files. The content hash keys every
downstream cache and does not depend on where the dataset lives or which rel_path convention it uses.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence

import soundfile as sf
from tqdm.auto import tqdm

from stage1_5.config import DEMO_DATASET, DatasetConfig, OutputConfig
from stage1_5.data.confounds import ConfoundReport, assess_confounds
from stage1_5.data.design import DatasetSummary, balance_warnings, minima_warnings, sample_rate_notes, summarize
from stage1_5.data.layout import (
    DEMO_DATA,
    LAYOUT,
    METADATA,
    TEXTS,
    AudioLocation,
    MetadataRow,
    locate_audio,
    read_metadata,
    read_texts,
    refuse_outside_links,
    under_audio_dir,
)
from stage1_5.data.manifest import Utterance, UtteranceSet
from stage1_5.data.recording import RecordingStats, measure_recording
from stage1_5.data.safezip import extract_zip, looks_like_zip
from stage1_5.data.validation import AudioScan, DatasetView, raise_if_problems, validate, validation_warnings
from stage1_5.errors import ConfigError, DatasetError
from stage1_5.hashing import file_sha256, json_digest
from stage1_5.io import atomic_write_json
from stage1_5.paths import cache_paths

log = logging.getLogger(__name__)

DEFAULT_WORK_DIR = cache_paths(OutputConfig()).datasets
FILE_INDEX = "file_index.json"
HASH_VERSION = "stage1_5-dataset-v2"


@dataclass(frozen=True)
class Dataset:
    root: Path
    utterances: UtteranceSet
    texts: dict[str, str]
    """text_id -> text; {} without texts.json."""
    content_hash: str
    summary: DatasetSummary
    notes: list[str]
    """Design minima, unbalanced accents, mixed sample rates, partial audio."""
    meets_minima: bool
    has_audio: bool
    confounds: ConfoundReport
    recordings: Mapping[str, RecordingStats] = field(default_factory=dict)
    """utt_id -> recording statistics of its audio file; {} for a features-only dataset."""

    @property
    def warnings(self) -> list[str]:
        """Everything the console and the report must show: notes, then confounds."""
        return list(self.notes) + self.confounds.warnings


# ----------------------------------------------------------------------------- file index (hash + stats cache)


class FileIndex:
    """sha256 and recording statistics per file, reused while (path, size, mtime) are unchanged.

    Persisted as JSON in the work folder; a damaged or older index is ignored and rebuilt, never trusted.
    """

    VERSION = 2

    def __init__(self, path: Path):
        self.path = path
        self._entries: dict[str, dict] = {}
        self._dirty = False
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") == self.VERSION:
                self._entries = dict(data["files"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass

    @staticmethod
    def _key(path: Path) -> tuple[str, int, int]:
        st = path.stat()
        return str(path), st.st_size, st.st_mtime_ns

    def _lookup(self, path: Path) -> tuple[tuple[str, int, int], Optional[dict]]:
        key = self._key(path)
        entry = self._entries.get(key[0])
        if entry is not None and (entry.get("size"), entry.get("mtime_ns")) == key[1:]:
            return key, entry
        return key, None

    def sha256(self, path: Path) -> str:
        key, entry = self._lookup(path)
        if entry is None:
            entry = {"size": key[1], "mtime_ns": key[2], "sha256": file_sha256(path)}
            self._entries[key[0]] = entry
            self._dirty = True
        return entry["sha256"]

    def cached_audio(self, path: Path) -> Optional[tuple[str, RecordingStats]]:
        _, entry = self._lookup(path)
        if entry is None or "audio" not in entry:
            return None
        try:
            return entry["sha256"], RecordingStats(**entry["audio"])
        except TypeError:  # fields changed: measure again
            return None

    def audio(self, path: Path) -> tuple[str, RecordingStats]:
        """(sha256, stats) of an audio file; soundfile's error propagates for unreadable files."""
        cached = self.cached_audio(path)
        if cached is not None:
            return cached
        key, _ = self._lookup(path)
        stats = measure_recording(path)
        entry = {"size": key[1], "mtime_ns": key[2], "sha256": file_sha256(path), "audio": asdict(stats)}
        self._entries[key[0]] = entry
        self._dirty = True
        return entry["sha256"], stats

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            atomic_write_json(self.path, {"version": self.VERSION, "files": self._entries})
            self._dirty = False
        except OSError as err:  # the index only saves time; a read-only work folder still loads
            log.warning("cannot write the file index %s: %s", self.path, err)


# ----------------------------------------------------------------------------- locating the dataset


def resolve_root(path: str | Path, config: DatasetConfig, work_dir: Path, index: FileIndex) -> Path:
    """The folder holding metadata.csv: the embedded demo, a folder, or a zip unpacked into `work_dir`
    (also when the zip holds the dataset folder rather than its contents)."""
    if str(path) == DEMO_DATASET:
        return DEMO_DATA
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"dataset {source}: not found (give a folder, a .zip file or '{DEMO_DATASET}')")
    if source.is_file():
        if not zipfile.is_zipfile(source) and not looks_like_zip(source):
            raise DatasetError(f"dataset {source}: a file but not a zip (give a folder, a .zip file or '{DEMO_DATASET}')")
        target = work_dir / index.sha256(source.resolve())[:16]
        root = extract_zip(
            source,
            target,
            max_uncompressed_bytes=config.max_zip_uncompressed_bytes,
            max_inflation_ratio=config.max_zip_inflation_ratio,
        )
        if not (root / METADATA).is_file():  # zipped "the folder" rather than its contents
            inner = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
            if len(inner) == 1:
                root = inner[0]
        where = f"{source} (unpacked in {root})"
    else:
        root, where = source, str(source)
    if not (root / METADATA).is_file():
        raise DatasetError(f"dataset {where}: {METADATA} not found; the expected layout is\n{LAYOUT}")
    return root.resolve()


def _link_roots(config: DatasetConfig) -> list[Path]:
    """`dataset.allow_symlinks_into`, resolved; a folder that does not exist is a config error."""
    roots = []
    for folder in config.allow_symlinks_into:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ConfigError(f"dataset.allow_symlinks_into: {folder} is not a folder")
        roots.append(path.resolve())
    return roots


# ----------------------------------------------------------------------------- audio scan


def scan_audio(
    rows: Sequence[MetadataRow], locations: Mapping[int, AudioLocation], index: FileIndex, progress: bool = True
) -> tuple[AudioScan, dict[int, str]]:
    """Measure and hash each found audio file once (cached); also returns row -> sha256."""
    stats: dict[int, RecordingStats] = {}
    hashes: dict[int, str] = {}
    unreadable: dict[int, str] = {}
    todo: list[tuple[int, Path]] = []
    for r in rows:
        loc = locations.get(r.row)
        if loc is None or loc.path is None:
            continue
        cached = index.cached_audio(loc.path)
        if cached is None:
            todo.append((r.row, loc.path))
        else:
            hashes[r.row], stats[r.row] = cached
    for row, path in tqdm(todo, desc="checking audio", unit="file", disable=not progress or not todo):
        try:
            hashes[row], stats[row] = index.audio(path)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
            unreadable[row] = str(err).strip() or type(err).__name__
    return AudioScan(stats=stats, unreadable=unreadable), hashes


# ----------------------------------------------------------------------------- hash


def _hashed_path(row: MetadataRow, location: Optional[AudioLocation]) -> str:
    """Where the row's audio sits under the dataset folder, the same for both rel_path conventions:
    the found file's place, or (audio absent) the rel_path read under wav/."""
    if location is not None and location.rel is not None:
        return location.rel
    try:
        return under_audio_dir(row.rel_path).as_posix()
    except ValueError:
        return row.rel_path


def content_hash(
    rows: Sequence[MetadataRow],
    locations: Mapping[int, AudioLocation],
    texts: Optional[dict[str, str]],
    audio_hashes: Optional[dict[int, str]],
) -> str:
    """sha256 over normalised metadata rows (group included), texts.json and each audio file's bytes
    (first 16 hex digits). Independent of where the dataset lives (folder or zip, any absolute path)
    and of the rel_path convention, so it keys caches."""
    fields = [
        [r.utt_id, r.speaker, r.accent, r.text_id, _hashed_path(r, locations.get(r.row)), r.group, sorted(r.extra.items())]
        for r in rows
    ]
    audio = None if audio_hashes is None else [audio_hashes[r.row] for r in rows]
    return json_digest([HASH_VERSION, fields, texts, audio])


# ----------------------------------------------------------------------------- entry point


def load_dataset(
    path: str | Path,
    config: DatasetConfig = DatasetConfig(),
    *,
    work_dir: Path | None = None,
    progress: bool = True,
    text_required: bool = False,
    long_audio_is_error: bool = False,
) -> Dataset:
    """Load, validate and hash a dataset folder, `dataset.zip` or 'demo'.

    Raises one `DatasetError` listing every problem; design minima, imbalance, mixed sample rates and
    confounds only warn here (the recording probe and `dataset.confounds: error` are applied by
    `stage1_5.probes.confounds.check_confounds`). With `config.audio_required=False` a dataset whose
    audio is absent is valid (features only). `text_required` (a source reading the text is enabled) makes
    an empty transcript an error; `long_audio_is_error` (at `run`) makes audio longer than
    `dataset.max_duration_s` one; both only warn otherwise.
    """
    work_dir = Path(work_dir) if work_dir is not None else DEFAULT_WORK_DIR
    index = FileIndex(work_dir / FILE_INDEX)
    root = resolve_root(path, config, work_dir, index)
    link_roots = _link_roots(config)
    raise_if_problems(refuse_outside_links(root, link_roots))
    rows, problems = read_metadata(root / METADATA)
    texts, text_problems = read_texts(root / TEXTS)
    problems += text_problems
    if not rows:
        raise_if_problems(problems)

    def same_content(a: Path, b: Path) -> bool:
        return index.sha256(a) == index.sha256(b)

    locations = {
        r.row: locate_audio(root, r.rel_path, link_roots=link_roots, same_content=same_content) for r in rows if r.rel_path
    }
    n_present = sum(1 for loc in locations.values() if loc.path is not None)
    has_audio = config.audio_required or n_present == len(rows)
    notes: list[str] = []
    if not has_audio and n_present:
        notes.append(f"only {n_present} of {len(rows)} audio files are present: treating the dataset as features-only")

    audio_scan, audio_hashes = scan_audio(rows, locations, index, progress) if has_audio else (None, None)
    index.save()  # before validation fails: a re-check after fixing metadata.csv reads no audio again
    view = DatasetView(
        root=root, rows=rows, config=config, texts=texts, locations=locations, audio=audio_scan,
        text_required=text_required, long_audio_is_error=long_audio_is_error,
    )
    raise_if_problems(problems + validate(view))
    notes += validation_warnings(view)

    utterances = UtteranceSet(
        Utterance(
            id=r.utt_id,
            speaker=r.speaker,
            accent=r.accent,
            text_id=r.text_id,
            audio_path=str(locations[r.row].path) if has_audio else None,
            text=texts.get(r.text_id) if texts is not None else None,
            duration=audio_scan.stats[r.row].duration if audio_scan else None,
            sample_rate=audio_scan.stats[r.row].sample_rate if audio_scan else None,
            group=r.group,
            custom=dict(r.extra) or None,
        )
        for r in rows
    )
    recordings = {r.utt_id: audio_scan.stats[r.row] for r in rows} if audio_scan else {}
    summary = summarize(utterances)
    minima = minima_warnings(summary, config)
    return Dataset(
        root=root,
        utterances=utterances,
        texts=texts or {},
        content_hash=content_hash(rows, locations, texts, audio_hashes),
        summary=summary,
        notes=minima + balance_warnings(summary, config) + sample_rate_notes(summary.sample_rates) + notes,
        meets_minima=not minima,
        has_audio=has_audio,
        confounds=assess_confounds(utterances, recordings, config),
        recordings=recordings,
    )
