"""The dataset layout users bring (DESIGN §2): file names, metadata.csv columns, reading and writing
them, and where a row's `rel_path` leads.

One module holds these facts so that the loader, the validators, `dataset synth`, the demo and the
test factories agree on them. `rel_path` is read relative to `wav/` (the user guide's convention,
`spkNE01/t01.wav`) and, failing that, relative to the dataset folder (`wav/spkNE01/t01.wav`); both
resolve to the same file, manifest and content hash.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Mapping, Optional, Sequence

from stage1_5.data.safezip import safe_relative_path
from stage1_5.io import atomic_open, atomic_write_text

METADATA = "metadata.csv"
TEXTS = "texts.json"
AUDIO_DIR = "wav"
REQUIRED_COLUMNS = ("utt_id", "speaker", "accent", "text_id", "rel_path")
GROUP = "group"
"""Optional column: a nuisance factor (voice donor, gender, device, session); one value per speaker."""
OPTIONAL_COLUMNS = (GROUP,)

DEMO_DATA = Path(__file__).resolve().parent.parent / "demo_data"
"""The demo dataset shipped inside the package (`dataset.path: demo`)."""

LAYOUT = f"""\
  dataset.zip (or a folder)
  ├── {AUDIO_DIR}/spkNE01/t01.wav ...   audio, any format soundfile reads (wav, flac, ogg)
  ├── {METADATA}              {','.join(REQUIRED_COLUMNS)}[,{GROUP}]
  │                             spkNE01_t01,spkNE01,NE,t01,spkNE01/t01.wav
  └── {TEXTS}                optional: {{"t01": "the sentence", ...}}
  rel_path is relative to {AUDIO_DIR}/ (spkNE01/t01.wav) or to the dataset folder ({AUDIO_DIR}/spkNE01/t01.wav)."""
"""The layout as the user guide prints it; error messages that mean "wrong layout" show it."""


@dataclass(frozen=True)
class Problem:
    """One validation failure; `row` orders problems (0 = a whole-file problem)."""

    row: int
    message: str


@dataclass(frozen=True)
class MetadataRow:
    """One parsed metadata.csv row; `row` is its line number in the file (the header is row 1).

    `group` is None when the file has no group column ('' when the column is there but blank).
    """

    row: int
    utt_id: str
    speaker: str
    accent: str
    text_id: str
    rel_path: str
    group: Optional[str] = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{METADATA} row {self.row}" + (f" (utt_id={self.utt_id})" if self.utt_id else "")


# ----------------------------------------------------------------------------- metadata.csv


def _undecodable_byte(text: str) -> Optional[int]:
    """The first byte that was not UTF-8 (decoded with surrogateescape), or None."""
    for ch in text:
        if "\udc80" <= ch <= "\udcff":
            return ord(ch) - 0xDC00
    return None


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


def read_metadata(path: Path) -> tuple[list[MetadataRow], list[Problem]]:
    """Parse metadata.csv: UTF-8 (BOM allowed), any line ends, quoting; fields stripped, ids kept as strings.

    The optional `group` column fills `MetadataRow.group`; other extra columns are kept per row in
    `MetadataRow.extra`. Blank lines are skipped. A row with the wrong number of fields or a byte that
    is not UTF-8 is a problem naming its row (the line number; the header is row 1) and is left out.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        return [], [Problem(0, f"{METADATA}: cannot read: {err}")]
    text = data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    rows: list[MetadataRow] = []
    problems: list[Problem] = []
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header:
            return [], [Problem(0, f"{METADATA}: empty file (no header row)")]
        bad = _undecodable_byte("".join(header))
        if bad is not None:
            return [], [Problem(1, f"{METADATA} row 1 (header): byte 0x{bad:02x} is not UTF-8; save the file as UTF-8")]
        problems = validate_columns(header)
        if problems:
            return [], problems
        known = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
        extra_columns = [c for c in header if c not in known]
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            line = reader.line_num
            if len(fields) != len(header):
                problems.append(Problem(line, f"{METADATA} row {line}: {len(fields)} fields, the header has {len(header)}"))
                continue
            values = dict(zip(header, (f.strip() for f in fields)))
            undecodable = [(c, b) for c, v in values.items() if (b := _undecodable_byte(v)) is not None]
            if undecodable:
                column, byte = undecodable[0]
                problems.append(Problem(line, f"{METADATA} row {line}: {column}: byte 0x{byte:02x} is not UTF-8; "
                                              "save the file as UTF-8"))
                continue
            rows.append(
                MetadataRow(
                    row=line,
                    **{c: values[c] for c in REQUIRED_COLUMNS},
                    group=values.get(GROUP),
                    extra={c: values[c] for c in extra_columns},
                )
            )
    except csv.Error as err:
        problems.append(Problem(reader.line_num, f"{METADATA} row {reader.line_num}: {err}"))
    if not rows and not problems:
        problems.append(Problem(0, f"{METADATA}: no utterance rows under the header"))
    return rows, problems


def write_metadata(path: Path, rows: Sequence[Mapping[str, str]], columns: Optional[Sequence[str]] = None) -> None:
    """Write metadata.csv atomically (csv quoting, UTF-8, header first); keys outside `columns` are ignored.

    Default columns: the required ones, plus `group` when any row has one.
    """
    if columns is None:
        columns = REQUIRED_COLUMNS + ((GROUP,) if any(GROUP in r for r in rows) else ())
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


# ----------------------------------------------------------------------------- texts.json


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


def write_texts(path: Path, texts: Mapping[str, str]) -> None:
    """texts.json, atomically: one entry a line, unicode kept."""
    atomic_write_text(path, json.dumps(dict(texts), ensure_ascii=False, indent=1) + "\n")


# ----------------------------------------------------------------------------- rel_path -> audio file


@dataclass(frozen=True)
class AudioLocation:
    """Where one row's rel_path leads.

    Found: `path` is the audio file (symbolic links resolved) and `rel` its place under the dataset
    folder as hashed (`wav/spkNE01/t01.wav`, whichever convention the row used). Not found: `tried`
    lists the candidates. Refused: `problem` completes "rel_path X ..." (escapes the root, ambiguous).
    """

    rel: Optional[str] = None
    path: Optional[Path] = None
    tried: tuple[str, ...] = ()
    problem: Optional[str] = None


def audio_candidates(rel_path: str) -> tuple[PurePosixPath, PurePosixPath]:
    """The two places a rel_path may name, relative to the dataset folder: under wav/ first, then as
    written. ValueError when the path is absolute or climbs out with '..'."""
    rel = safe_relative_path(rel_path)
    return PurePosixPath(AUDIO_DIR, *rel.parts), rel


def under_audio_dir(rel_path: str) -> PurePosixPath:
    """Where a rel_path points when no existing file decides: read from the dataset folder when it
    already starts with wav/, under wav/ otherwise. ValueError when unsafe."""
    rel = safe_relative_path(rel_path)
    return rel if rel.parts[0] == AUDIO_DIR else PurePosixPath(AUDIO_DIR, *rel.parts)


def link_escape(path: Path, root: Path, link_roots: Sequence[Path] = ()) -> Optional[str]:
    """None when `path`, with its symbolic links resolved, stays inside the dataset folder `root` or one
    of `link_roots` (both resolved); otherwise what is wrong, naming where the link leads."""
    real = path.resolve()
    if any(real.is_relative_to(folder) for folder in (root, *link_roots)):
        return None
    return (f"a symbolic link leads outside the dataset folder, to {real}; "
            "name that folder in dataset.allow_symlinks_into to allow it")


def refuse_outside_links(root: Path, link_roots: Sequence[Path] = ()) -> list[Problem]:
    """metadata.csv and texts.json that are symbolic links leading out of the dataset, refused before
    they are read (their content would otherwise end up in error messages and the content hash)."""
    return [
        Problem(0, f"{name}: {escape}")
        for name in (METADATA, TEXTS)
        if (root / name).exists() and (escape := link_escape(root / name, root, link_roots)) is not None
    ]


def locate_audio(
    root: Path,
    rel_path: str,
    *,
    link_roots: Sequence[Path] = (),
    same_content: Callable[[Path, Path], bool],
) -> AudioLocation:
    """Resolve a rel_path against wav/ and the dataset folder `root` (already resolved).

    A file reached through a symbolic link must stay inside `root` or one of `link_roots` (resolved
    folders the user allowed). Two existing candidates are fine when they are the same file or have
    the same content (`same_content`), and an error otherwise.
    """
    try:
        candidates = audio_candidates(rel_path)
    except ValueError as err:
        return AudioLocation(problem=f"escapes the dataset root ({err})")
    found: list[tuple[PurePosixPath, Path]] = []
    for rel in candidates:
        path = root.joinpath(*rel.parts)
        if not path.is_file():
            continue
        real = path.resolve()
        if (escape := link_escape(path, root, link_roots)) is not None:
            return AudioLocation(problem=f"escapes the dataset root ({escape})")
        found.append((rel, real))
    if not found:
        return AudioLocation(tried=tuple(rel.as_posix() for rel in candidates))
    (rel, real), *others = found
    for other_rel, other_real in others:
        if other_real != real and not same_content(real, other_real):
            return AudioLocation(
                problem=f"is ambiguous: {rel.as_posix()} and {other_rel.as_posix()} both exist and differ "
                        f"(rel_path is read relative to {AUDIO_DIR}/ or to the dataset folder; remove one)"
            )
    return AudioLocation(rel=rel.as_posix(), path=real)
