"""File names made from names that users choose: representation names from feature files (`.npz` array
names, parquet columns) and the layers they name.

Every such file name goes through `safe_file_name`, which keeps it inside its folder (no `/`, no `..`,
no leading dot), unique (two names never share a file, even on a case-insensitive file system) and
bounded (well under the 255 bytes a file name may have, with room for the temporary twin an atomic
write makes). A plain lower-case name keeps its readable form (`backbone:decoder_block_03` →
`backbone__decoder_block_03`); any other name keeps a readable prefix and gains a digest of the whole
name (`../../x:y` → `x__y+3f0c…`). A name that no file name can stand for (empty, or with control
characters) is refused by `unrepresentable`, which callers check before any work, naming the array.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Optional

MAX_STEM_CHARS = 96
"""The longest stem `safe_file_name` returns (ASCII only, so also its length in bytes)."""

_PLAIN = re.compile(r"[a-z0-9][a-z0-9_.-]*(?::[a-z0-9][a-z0-9_.-]*)?")
_DIGEST_CHARS = 16


def unrepresentable(name: object) -> Optional[str]:
    """Why `name` cannot become a file name, or None if it can."""
    if not isinstance(name, str) or not name.strip():
        return "a name must be a non-empty string"
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Cs")), None)
    if bad is not None:
        return f"the name holds the control character {bad!r}"
    return None


def safe_file_name(name: str, suffix: str = "") -> str:
    """The file name (stem + `suffix`) that stands for `name` inside its folder; see the module docstring.
    `ValueError` for a name `unrepresentable` refuses."""
    reason = unrepresentable(name)
    if reason is not None:
        raise ValueError(f"{name!r} cannot name a file: {reason}")
    readable = name.replace(":", "__")
    if _PLAIN.fullmatch(name) and "__" not in name and len(readable) <= MAX_STEM_CHARS:
        return readable + suffix
    prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", readable).strip("._-")[: MAX_STEM_CHARS - _DIGEST_CHARS - 1]
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{prefix}+{digest}{suffix}"
