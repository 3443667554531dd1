"""Content hashes that key every cache: one implementation, so equal inputs give equal keys everywhere.

All digests are sha256; short ones keep the first `n` hex digits (16 = 64 bits, ample for cache keys).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

_CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Full sha256 hex digest of a file's bytes, read in 1 MiB blocks (flat memory for large files)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def text_digest(text: str, n: int = 16) -> str:
    """Digest of a UTF-8 string."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def json_digest(obj: Any, n: int = 16) -> str:
    """Digest of a JSON-serialisable object in canonical form (sorted keys, compact separators;
    anything JSON cannot encode, such as a Path, is hashed as its str())."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return text_digest(blob, n)
