"""Content-addressed, chunked, resumable on-disk feature store.

Layout, one entry per (source, key, representation set)::

    <cache_dir>/features/<source>/<key>-<reps>/   (the store's root is `CachePaths.features`)
        meta.json                  key inputs, representations → file, utt_ids order, chunk size, dims, complete
        chunk_00000.npz ...        rows [i * chunk_size, (i + 1) * chunk_size), written atomically (tmp + rename)
        000_ssl__layer_00.npy ...  after completion: one (N, dim) array per representation, np.load(mmap_mode="r")

`<key>` hashes everything that changes the vectors: the source, the dataset content hash, the
utterance order, the extractor's config section, the code version and the storage dtype. A changed
config or dataset therefore lands in a new folder and never reads stale vectors. `<reps>` hashes the
representation set: a subset of layers is its own entry, and a complete entry whose set covers a
request also serves it (`FeatureStore.find_complete`). A chunk file exists only once fully written,
so a killed run resumes by computing the missing chunks, at most the one it was writing.
No pickle anywhere: JSON metadata, `.npz` / `.npy` loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence, get_args

import numpy as np

from stage1_5.config import FeatureDtype
from stage1_5.errors import FeatureError
from stage1_5.hashing import json_digest, text_digest
from stage1_5.io import atomic_open, atomic_write_json, naming
from stage1_5.locks import exclusive
from stage1_5.names import safe_file_name

STORE_FORMAT = 1
"""Bump when the on-disk layout changes; it is part of every key."""

STORE_DTYPES = get_args(FeatureDtype)
META = "meta.json"


def ids_digest(utt_ids: Sequence[str]) -> str:
    """Hash of the utterance order: the rows of every stored array follow it."""
    return text_digest("\n".join(utt_ids))


@dataclass(frozen=True)
class StoreKey:
    """Everything that determines the stored vectors, apart from which representations are stored."""

    source: str
    dataset_hash: str
    utt_ids_hash: str
    config: Mapping[str, Any] = field(default_factory=dict)
    code_version: str = ""
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in STORE_DTYPES:
            raise FeatureError(f"store dtype {self.dtype!r}: expected one of {', '.join(STORE_DTYPES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STORE_FORMAT,
            "source": self.source,
            "dataset_hash": self.dataset_hash,
            "utt_ids_hash": self.utt_ids_hash,
            "config": json.loads(json.dumps(dict(self.config), sort_keys=True)),
            "code_version": self.code_version,
            "dtype": self.dtype,
        }

    @property
    def digest(self) -> str:
        return json_digest(self.to_dict())


def _file_stem(index: int, name: str) -> str:
    return f"{index:03d}_{safe_file_name(name)}"


def _reserve(path: str) -> None:
    """Allocate every block of a freshly sized file now, so that a full disk is an `OSError` here rather
    than a SIGBUS when the memory map writes a page that has no room (tmpfs, and ext4 past its reserve).
    A file system that cannot preallocate keeps the sparse file."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


class StoreEntry:
    """One folder of the store: chunked while being written, consolidated `.npy` files once complete."""

    def __init__(self, path: Path, meta: dict[str, Any]):
        self.path = path
        self.meta = meta

    # -- description -------------------------------------------------------------------------
    @property
    def representations(self) -> list[str]:
        return list(self.meta["representations"])

    @property
    def utt_ids(self) -> list[str]:
        return list(self.meta["utt_ids"])

    @property
    def chunk_size(self) -> int:
        return int(self.meta["chunk_size"])

    @property
    def n_chunks(self) -> int:
        n = len(self.meta["utt_ids"])
        return (n + self.chunk_size - 1) // self.chunk_size

    @property
    def complete(self) -> bool:
        return bool(self.meta.get("complete", False))

    @property
    def dtype(self) -> str:
        return str(self.meta["key"]["dtype"])

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk_{index:05d}.npz"

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, len(self.meta["utt_ids"]))

    @contextlib.contextmanager
    def lock(self) -> Iterator["StoreEntry"]:
        """Hold an exclusive lock on the entry while computing it, so that two runs sharing the cache
        (a `stage1_5 run` and a gate session) never write one entry at once; the second waits, then
        finds it complete. The lock file of a killed holder is detected as stale and cleared
        (`stage1_5.locks`); temporary files a killed writer left behind are removed."""
        with exclusive(self.path / ".lock", what=f"feature store entry {self.path}"):
            for tmp in self.path.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
            self.meta = json.loads((self.path / META).read_text(encoding="utf-8"))
            yield self

    def missing_chunks(self) -> list[int]:
        if self.complete:
            return []
        return [i for i in range(self.n_chunks) if not self.chunk_path(i).exists()]

    # -- writing ------------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop every computed chunk and array (a forced recompute); the key and layout stay."""
        for path in [*self.path.glob("chunk_*.npz"), *self.path.glob("*.npy")]:
            path.unlink()
        self.meta = {k: v for k, v in self.meta.items() if k not in ("complete", "dims", "stats")}
        atomic_write_json(self.path / META, self.meta)

    def write_chunk(self, index: int, vectors: Mapping[str, np.ndarray]) -> None:
        """Store rows `chunk_range(index)` for every representation, atomically."""
        start, stop = self.chunk_range(index)
        if set(vectors) != set(self.representations):
            raise ValueError(f"chunk {index}: got {sorted(vectors)}, expected {sorted(self.representations)}")
        arrays: dict[str, np.ndarray] = {"utt_ids": np.array(self.meta["utt_ids"][start:stop], dtype=str)}
        for name, stem in self.meta["files"].items():
            arr = np.asarray(vectors[name])
            if arr.ndim != 2 or arr.shape[0] != stop - start:
                raise ValueError(f"chunk {index}: {name} has shape {arr.shape}, expected ({stop - start}, dim)")
            with np.errstate(over="ignore"):  # overflow is reported below, with the fix
                stored = arr.astype(self.dtype)
            if not np.isfinite(stored).all():
                raise FeatureError(
                    f"{name}: values overflow the store dtype {self.dtype} (largest |x| = {np.abs(arr).max():.3g}); "
                    "store as float32"
                )
            arrays[stem] = stored
        with atomic_open(self.chunk_path(index), "wb") as fh:
            np.savez(fh, **arrays)

    def consolidate(self, extra_meta: Mapping[str, Any] | None = None) -> None:
        """Stream the chunks into one memory-mapped `.npy` per representation, then mark complete.

        Only one chunk is in memory at a time, so N x layers never has to fit in RAM. Each file is
        written under a temporary name and renamed; `meta.json` says complete only after all are in
        place, and the chunks are deleted last.
        """
        missing = self.missing_chunks()
        if missing:
            raise ValueError(f"{self.path}: cannot consolidate, chunks {missing[:5]} missing")
        n = len(self.meta["utt_ids"])
        files: dict[str, str] = self.meta["files"]
        outputs: dict[str, np.memmap] = {}
        tmp_paths: dict[str, str] = {}
        dims: dict[str, int] = {}
        try:
            for index in range(self.n_chunks):
                start, stop = self.chunk_range(index)
                with np.load(self.chunk_path(index), allow_pickle=False) as chunk:
                    if list(chunk["utt_ids"]) != self.meta["utt_ids"][start:stop]:
                        raise FeatureError(f"{self.chunk_path(index)}: utterance ids do not match {self.path / META}")
                    for name, stem in files.items():
                        block = chunk[stem]
                        if name not in outputs:
                            dims[name] = int(block.shape[1])
                            try:
                                fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".npy.tmp", dir=self.path)
                                os.close(fd)
                                tmp_paths[name] = tmp
                                outputs[name] = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=(n, dims[name]))
                                _reserve(tmp)
                            except OSError as err:
                                raise naming(err, self.path / f"{stem}.npy") from err
                        if block.shape[1] != dims[name]:
                            raise FeatureError(f"{self.chunk_path(index)}: {name} has dim {block.shape[1]}, expected {dims[name]}")
                        outputs[name][start:stop] = block
            for name, arr in outputs.items():
                try:
                    arr.flush()
                except OSError as err:
                    raise naming(err, self.path / f"{files[name]}.npy") from err
            outputs.clear()  # drops the last references: the memmaps close before the rename
            for name, tmp in tmp_paths.items():
                os.replace(tmp, self.path / f"{files[name]}.npy")
            tmp_paths.clear()
        finally:
            outputs.clear()
            for tmp in tmp_paths.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        self.meta = {**self.meta, **dict(extra_meta or {}), "dims": dims, "complete": True}
        atomic_write_json(self.path / META, self.meta)
        for index in range(self.n_chunks):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.chunk_path(index))

    # -- reading ------------------------------------------------------------------------------
    def load(self, representations: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Memory-mapped `(N, dim)` arrays of a complete entry. Copy-on-write: pages load on demand,
        and a caller writing into an array (or torch wrapping it) changes its memory, never the file."""
        if not self.complete:
            raise ValueError(f"{self.path}: entry is not complete")
        names = self.representations if representations is None else list(representations)
        out: dict[str, np.ndarray] = {}
        n = len(self.meta["utt_ids"])
        for name in names:
            if name not in self.meta["files"]:
                raise FeatureError(f"{self.path}: no representation {name!r} in this entry")
            path = self.path / f"{self.meta['files'][name]}.npy"
            try:
                arr = np.load(path, mmap_mode="c", allow_pickle=False)
            except (OSError, ValueError) as err:
                raise FeatureError(f"{path}: unreadable feature file ({err}); delete {self.path} to recompute") from None
            if arr.shape != (n, self.meta["dims"][name]):
                raise FeatureError(f"{path}: shape {arr.shape}, expected {(n, self.meta['dims'][name])}; delete {self.path}")
            out[name] = arr
        return out


class FeatureStore:
    """The `features/` folder under the cache dir; hands out entries by key."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def _entry_dir(self, key: StoreKey, representations: Sequence[str]) -> Path:
        return self.root / key.source / f"{key.digest}-{json_digest(sorted(representations), 8)}"

    def _read(self, path: Path) -> StoreEntry | None:
        try:
            meta = json.loads((path / META).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as err:
            raise FeatureError(f"{path / META}: unreadable store metadata ({err}); delete {path} to recompute") from None
        return StoreEntry(path, meta)

    def open_existing(self, path: str | os.PathLike) -> StoreEntry:
        """The entry at `path`, which another process created (a torchrun rank reading rank 0's entry)."""
        entry = self._read(Path(path))
        if entry is None:
            raise FeatureError(f"{Path(path) / META}: no feature-store entry there")
        return entry

    def find_complete(self, key: StoreKey, representations: Sequence[str]) -> StoreEntry | None:
        """A complete entry for `key` holding all of `representations` (the exact set first)."""
        exact = self._read(self._entry_dir(key, representations))
        if exact is not None and exact.complete:
            return exact
        wanted = set(representations)
        for meta_path in sorted((self.root / key.source).glob(f"{key.digest}-*/{META}")):
            entry = self._read(meta_path.parent)
            if entry is not None and entry.complete and wanted <= set(entry.representations):
                return entry
        return None

    def open(
        self,
        key: StoreKey,
        representations: Sequence[str],
        utt_ids: Sequence[str],
        chunk_size: int,
    ) -> StoreEntry:
        """The entry for exactly `representations`: resumed if it exists (keeping its chunk size), else created."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if ids_digest(utt_ids) != key.utt_ids_hash:
            raise ValueError("utt_ids do not match key.utt_ids_hash")
        path = self._entry_dir(key, representations)
        entry = self._read(path)
        if entry is not None:
            if entry.meta.get("key") != key.to_dict() or sorted(entry.representations) != sorted(representations):
                raise FeatureError(f"{path / META}: metadata does not match its key; delete {path} to recompute")
            return entry
        meta = {
            "key": key.to_dict(),
            "representations": list(representations),
            "files": {name: _file_stem(i, name) for i, name in enumerate(representations)},
            "utt_ids": list(utt_ids),
            "chunk_size": int(chunk_size),
            "complete": False,
        }
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / META, meta)
        return StoreEntry(path, meta)
