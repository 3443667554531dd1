"""Load a dataset folder or `dataset.zip` into a validated `Dataset` with a content hash (DESIGN §2).

Layout: `metadata.csv` (utt_id,speaker,accent,text_id,rel_path), optional `texts.json`
(text_id -> text) and the audio files that `rel_path` names (any format soundfile reads). Zips are
unpacked safely into `work_dir/<zip sha>/` once. Every audio file is hashed and measured once; the
results are cached in `work_dir/file_index.json` keyed by (path, size, mtime), so reloading hundreds
of hours only stats the files. The content hash keys every downstream cache.
"""

from __future__ import annotations

import csv
import json
import logging
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import soundfile as sf
from tqdm.auto import tqdm

from stage1_5.config import DEMO_DATASET, DatasetConfig, OutputConfig
from stage1_5.data.audio import AudioStats, measure_audio
from stage1_5.data.manifest import Utterance, UtteranceSet
from stage1_5.data.safezip import extract_zip
from stage1_5.data.validation import (
    METADATA,
    REQUIRED_COLUMNS,
    TEXTS,
    AudioScan,
    DatasetView,
    MetadataRow,
    Problem,
    minima_warnings,
    raise_if_problems,
    resolve_audio_path,
    sample_rate_notes,
    validate,
    validate_columns,
)
from stage1_5.errors import DatasetError
from stage1_5.hashing import file_sha256, json_digest
from stage1_5.io import atomic_write_json
from stage1_5.paths import cache_paths

log = logging.getLogger(__name__)

DEFAULT_WORK_DIR = cache_paths(OutputConfig()).datasets
HASH_VERSION = "stage1_5-dataset-v1"


@dataclass(frozen=True)
class DatasetSummary:
    n_utterances: int
    n_speakers: int
    n_accents: int
    n_texts: int
    total_hours: float
    speakers_per_accent: dict[str, int]
    utterances_per_accent: dict[str, int]
    min_texts_per_speaker: int
    sample_rates: dict[int, int]
    """sample rate (Hz) -> number of utterances; empty without audio."""


@dataclass(frozen=True)
class Dataset:
    root: Path
    utterances: UtteranceSet
    texts: dict[str, str]
    """text_id -> text; {} without texts.json."""
    content_hash: str
    summary: DatasetSummary
    warnings: list[str]
    meets_minima: bool
    has_audio: bool


# ----------------------------------------------------------------------------- parsing


def read_metadata(path: Path) -> tuple[list[MetadataRow], list[Problem]]:
    """Parse metadata.csv: UTF-8 (BOM allowed), any line ends, quoting; fields stripped, ids kept as strings.

    Extra columns are kept per row in `MetadataRow.extra`. Blank lines are skipped; a row with the
    wrong number of fields is a problem naming its row (the line number; the header is row 1).
    """
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as err:
        return [], [Problem(0, f"{METADATA}: cannot read: {err}")]
    rows: list[MetadataRow] = []
    problems: list[Problem] = []
    with fh:
        reader = csv.reader(fh, skipinitialspace=True)
        try:
            header = [h.strip() for h in next(reader, [])]
            if not header:
                return [], [Problem(0, f"{METADATA}: empty file (no header row)")]
            problems = validate_columns(header)
            if problems:
                return [], problems
            extra_columns = [c for c in header if c not in REQUIRED_COLUMNS]
            for fields in reader:
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    problems.append(Problem(reader.line_num, f"{METADATA} row {reader.line_num}: "
                                                             f"{len(fields)} fields, the header has {len(header)}"))
                    continue
                values = dict(zip(header, (f.strip() for f in fields)))
                rows.append(
                    MetadataRow(
                        row=reader.line_num,
                        **{c: values[c] for c in REQUIRED_COLUMNS},
                        extra={c: values[c] for c in extra_columns},
                    )
                )
        except UnicodeDecodeError as err:
            problems.append(Problem(reader.line_num + 1, f"{METADATA} row {reader.line_num + 1}: not UTF-8 ({err.reason})"))
        except csv.Error as err:
            problems.append(Problem(reader.line_num, f"{METADATA} row {reader.line_num}: {err}"))
    if not rows and not problems:
        problems.append(Problem(0, f"{METADATA}: no utterance rows under the header"))
    return rows, problems


def write_metadata(path: Path, rows: Sequence[Mapping[str, str]], columns: Sequence[str] = REQUIRED_COLUMNS) -> None:
    """Write metadata.csv (csv quoting, UTF-8, header first); keys outside `columns` are ignored."""
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_texts(path: Path) -> tuple[Optional[dict[str, str]], list[Problem]]:
    """texts.json as {text_id: text}; (None, []) when the file does not exist."""
    if not path.is_file():
        return None, []
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, [Problem(0, f"{TEXTS}: cannot read: {err}")]
    if not isinstance(data, dict):
        return None, [Problem(0, f"{TEXTS}: must be an object mapping text_id to text, got {type(data).__name__}")]
    bad = [k for k, v in data.items() if not isinstance(v, str)]
    if bad:
        return None, [Problem(0, f"{TEXTS}: text_id {bad[0]}: the text must be a string ({len(bad)} such entries)")]
    return {k.strip(): v for k, v in data.items()}, []


# ----------------------------------------------------------------------------- file index (hash + stats cache)


class FileIndex:
    """sha256 and audio statistics per file, reused while (path, size, mtime) are unchanged.

    Persisted as JSON in the work folder; a damaged index is ignored and rebuilt, never trusted.
    """

    VERSION = 1

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

    def cached_audio(self, path: Path) -> Optional[tuple[str, AudioStats]]:
        _, entry = self._lookup(path)
        if entry is None or "audio" not in entry:
            return None
        return entry["sha256"], AudioStats(**entry["audio"])

    def audio(self, path: Path) -> tuple[str, AudioStats]:
        """(sha256, stats) of an audio file; soundfile's error propagates for unreadable files."""
        cached = self.cached_audio(path)
        if cached is not None:
            return cached
        key, _ = self._lookup(path)
        stats = measure_audio(path)
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
    """The folder holding metadata.csv: the embedded demo, a folder, or a zip unpacked into `work_dir`."""
    if str(path) == DEMO_DATASET:
        from stage1_5.data.demo import demo_dataset_path

        return demo_dataset_path()
    source = Path(path)
    if not source.exists():
        raise DatasetError(f"dataset {source}: not found (give a folder, a .zip file or '{DEMO_DATASET}')")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise DatasetError(f"dataset {source}: a file but not a zip (give a folder, a .zip file or '{DEMO_DATASET}')")
        target = work_dir / index.sha256(source.resolve())[:16]
        root = extract_zip(source, target, max_uncompressed_bytes=config.max_zip_uncompressed_bytes)
        if not (root / METADATA).is_file():  # zipped "the folder" rather than its contents
            inner = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
            if len(inner) == 1:
                root = inner[0]
        where = f"{source} (unpacked in {root})"
    else:
        root, where = source, str(source)
    if not (root / METADATA).is_file():
        raise DatasetError(f"dataset {where}: {METADATA} not found")
    return root.resolve()


# ----------------------------------------------------------------------------- audio scan


def scan_audio(
    rows: Sequence[MetadataRow], audio_files: Sequence[Optional[Path]], index: FileIndex, progress: bool = True
) -> tuple[AudioScan, dict[int, str]]:
    """Measure and hash each row's audio file once (cached); also returns row -> sha256.

    `audio_files[i]` is row i's resolved audio path, None where rel_path is blank or escapes the
    root (validators report those).
    """
    stats: dict[int, AudioStats] = {}
    hashes: dict[int, str] = {}
    missing: set[int] = set()
    unreadable: dict[int, str] = {}
    todo: list[tuple[int, Path]] = []
    for r, path in zip(rows, audio_files):
        if path is None:
            continue
        if not path.is_file():
            missing.add(r.row)
            continue
        cached = index.cached_audio(path)
        if cached is None:
            todo.append((r.row, path))
        else:
            hashes[r.row], stats[r.row] = cached
    for row, path in tqdm(todo, desc="checking audio", unit="file", disable=not progress or not todo):
        try:
            hashes[row], stats[row] = index.audio(path)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as err:
            unreadable[row] = str(err).strip() or type(err).__name__
    return AudioScan(stats=stats, missing=frozenset(missing), unreadable=unreadable), hashes


# ----------------------------------------------------------------------------- hash and summary


def content_hash(rows: Sequence[MetadataRow], texts: Optional[dict[str, str]], audio_hashes: Optional[dict[int, str]]) -> str:
    """sha256 over normalised metadata rows, texts.json and each audio file's bytes (first 16 hex digits).

    Independent of where the dataset lives (folder or zip, any absolute path), so it keys caches.
    """
    fields = [[r.utt_id, r.speaker, r.accent, r.text_id, r.rel_path.replace("\\", "/"), sorted(r.extra.items())] for r in rows]
    audio = None if audio_hashes is None else [audio_hashes[r.row] for r in rows]
    return json_digest([HASH_VERSION, fields, texts, audio])


def summarize(utterances: UtteranceSet) -> DatasetSummary:
    speakers: dict[str, set[str]] = defaultdict(set)
    texts_of: dict[str, set[str]] = defaultdict(set)
    for u in utterances:
        speakers[u.accent].add(u.speaker)
        texts_of[u.speaker].add(u.text_id)
    return DatasetSummary(
        n_utterances=len(utterances),
        n_speakers=len(texts_of),
        n_accents=len(speakers),
        n_texts=len({u.text_id for u in utterances}),
        total_hours=sum(u.duration or 0.0 for u in utterances) / 3600.0,
        speakers_per_accent={a: len(s) for a, s in sorted(speakers.items())},
        utterances_per_accent=dict(sorted(Counter(u.accent for u in utterances).items())),
        min_texts_per_speaker=min((len(t) for t in texts_of.values()), default=0),
        sample_rates=dict(sorted(Counter(u.sample_rate for u in utterances if u.sample_rate).items())),
    )


# ----------------------------------------------------------------------------- entry point


def _audio_file(root: Path, row: MetadataRow) -> Optional[Path]:
    try:
        return resolve_audio_path(root, row.rel_path)
    except ValueError:  # blank or escaping rel_path: reported by the validators
        return None


def load_dataset(
    path: str | Path,
    config: DatasetConfig = DatasetConfig(),
    *,
    work_dir: Path | None = None,
    progress: bool = True,
) -> Dataset:
    """Load, validate and hash a dataset folder, `dataset.zip` or 'demo'.

    Raises one `DatasetError` listing every problem; design minima and mixed sample rates only warn.
    With `config.audio_required=False` a dataset whose audio is absent is valid (features only).
    """
    work_dir = Path(work_dir) if work_dir is not None else DEFAULT_WORK_DIR
    index = FileIndex(work_dir / "file_index.json")
    root = resolve_root(path, config, work_dir, index)

    rows, problems = read_metadata(root / METADATA)
    texts, text_problems = read_texts(root / TEXTS)
    problems += text_problems
    if not rows:
        raise_if_problems(problems)

    notes: list[str] = []
    audio_files = [_audio_file(root, r) for r in rows]
    n_present = sum(1 for p in audio_files if p is not None and p.is_file())
    has_audio = config.audio_required or n_present == len(rows)
    if not has_audio and n_present:
        notes.append(f"only {n_present} of {len(rows)} audio files are present: treating the dataset as features-only")

    audio_scan, audio_hashes = scan_audio(rows, audio_files, index, progress) if has_audio else (None, None)
    index.save()  # before validation fails: a re-check after fixing metadata.csv reads no audio again
    view = DatasetView(root=root, rows=rows, config=config, texts=texts, audio=audio_scan)
    raise_if_problems(problems + validate(view))

    utterances = UtteranceSet(
        Utterance(
            id=r.utt_id,
            speaker=r.speaker,
            accent=r.accent,
            text_id=r.text_id,
            audio_path=str(audio) if has_audio else None,
            text=texts.get(r.text_id) if texts is not None else None,
            duration=audio_scan.stats[r.row].duration if audio_scan else None,
            sample_rate=audio_scan.stats[r.row].sample_rate if audio_scan else None,
            custom=dict(r.extra) or None,
        )
        for r, audio in zip(rows, audio_files)
    )
    summary = summarize(utterances)
    minima = minima_warnings(summary, config)
    warnings = minima + sample_rate_notes(summary.sample_rates) + notes
    return Dataset(
        root=root,
        utterances=utterances,
        texts=texts or {},
        content_hash=content_hash(rows, texts, audio_hashes),
        summary=summary,
        warnings=warnings,
        meets_minima=not minima,
        has_audio=has_audio,
    )

