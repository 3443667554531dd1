"""Bring-your-own features: an `.npz` or parquet file keyed by `utt_id` (DESIGN §3, `sources.external`).

- `.npz`: a string array `utt_id` plus one 2-D float array per representation; the key is the
  representation name (e.g. `mymodel:layer_03`). Read with `allow_pickle=False`: object arrays are refused.
- `.parquet`: a `utt_id` column plus one list / fixed-size-list column per representation.

Nothing is unpickled, and every problem is a `FeatureError` naming the file and the representation,
row or utt_id at fault.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from stage1_5.errors import ConfigError, FeatureError, Stage15Error
from stage1_5.features.base import check_feature_matrix
from stage1_5.names import unrepresentable

UTT_ID = "utt_id"


def representation_names(path: str | Path) -> list[str]:
    """Representation names in a `sources.external` file, read from its index (no arrays loaded)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"sources.external: feature file {path} not found")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as npz:
                names = [k for k in npz.files if k != UTT_ID]
        except (OSError, ValueError, zipfile.BadZipFile):
            raise ConfigError(f"sources.external: {_not_npz(path)}") from None
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            names = [c for c in pq.read_schema(path).names if c != UTT_ID]
        except (OSError, pa.ArrowException) as err:
            raise ConfigError(f"sources.external: {path}: not a readable parquet file ({err})") from None
    else:
        raise ConfigError(f"sources.external: {path}: expected a .npz or .parquet file")
    check_names(path, names, error=ConfigError)
    return names


def check_names(path: Path, names: Sequence[str], *, error: type[Stage15Error] = FeatureError) -> None:
    """Refuse, naming the array, a representation name that cannot become a file name (the confusion
    matrix and the feature store write one file per representation; `stage1_5.names`)."""
    for name in names:
        if (reason := unrepresentable(name)) is not None:
            raise error(f"{path}: array {name!r} cannot be used as a representation name: {reason}")


def load_external_features(path: str | Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Read (utt_ids, {representation: [N, d] float32}) from an .npz or .parquet file."""
    path = Path(path)
    if not path.is_file():
        raise FeatureError(f"{path}: external feature file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        ids, arrays = _read_npz(path)
    elif suffix in (".parquet", ".pq"):
        ids, arrays = _read_parquet(path)
    else:
        raise FeatureError(f"{path}: external features must be .npz or .parquet, got {suffix or 'no extension'!r}")
    if not arrays:
        raise FeatureError(f"{path}: no representation arrays besides {UTT_ID!r}")
    check_names(path, list(arrays))
    out = {}
    for name, arr in arrays.items():
        arr = check_feature_matrix(name, arr, ids, error=FeatureError, where=str(path)).astype(np.float32, copy=False)
        out[name] = arr
    seen: set[str] = set()
    for i, utt in enumerate(ids):
        if utt in seen:
            raise FeatureError(f"{path}: duplicate utt_id {utt!r} (row {i})")
        seen.add(utt)
    return ids, out


def _not_npz(path: Path) -> str:
    """What a file that `np.load` cannot open is, in our words: numpy's own message for such bytes
    suggests unpickling them, which this tool never does."""
    return f"{path}: not a readable .npz file (expected a zip archive of .npy arrays written by np.savez; the file is damaged or another format)"


def _read_npz(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if UTT_ID not in npz.files:
                raise FeatureError(f"{path}: no {UTT_ID!r} array (keys: {', '.join(npz.files) or 'none'})")
            arrays = {}
            for key in npz.files:
                try:
                    arrays[key] = npz[key]
                except ValueError:
                    raise FeatureError(
                        f"{path}: array {key!r} has object dtype; store utt_id as a string array (np.str_) "
                        "and features as float arrays (pickled objects are never loaded)"
                    ) from None
    except FeatureError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile):
        raise FeatureError(_not_npz(path)) from None
    ids = arrays.pop(UTT_ID)
    if ids.ndim != 1 or ids.dtype.kind not in "US":
        raise FeatureError(f"{path}: {UTT_ID!r} must be a 1-D string array, got dtype {ids.dtype} shape {ids.shape}")
    return [str(x) for x in ids], arrays


def _read_parquet(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise FeatureError(f"{path}: not a readable parquet file ({err})") from None
    if UTT_ID not in table.column_names:
        raise FeatureError(f"{path}: no {UTT_ID!r} column (columns: {', '.join(table.column_names)})")
    ids_col = table.column(UTT_ID)
    if not (pa.types.is_string(ids_col.type) or pa.types.is_large_string(ids_col.type)):
        raise FeatureError(f"{path}: column {UTT_ID!r} must hold strings, got {ids_col.type}")
    if ids_col.null_count:
        raise FeatureError(f"{path}: column {UTT_ID!r} has {ids_col.null_count} empty value(s)")
    ids = [str(x) for x in ids_col.to_pylist()]
    arrays = {}
    for name in table.column_names:
        if name == UTT_ID:
            continue
        col = table.column(name).combine_chunks()
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
            raise FeatureError(f"{path}: column {name!r} must be a list/array column (one vector per row), got {col.type}")
        if col.null_count:
            row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
            raise FeatureError(f"{path}: representation {name!r} is empty in row {row} (utt_id {ids[row]!r})")
        lengths = np.asarray(col.value_lengths()) if not pa.types.is_fixed_size_list(col.type) else None
        if lengths is not None and len(lengths) and (lengths != lengths[0]).any():
            row = int(np.flatnonzero(lengths != lengths[0])[0])
            raise FeatureError(
                f"{path}: representation {name!r} has vectors of different lengths ({lengths[0]} in row 0, "
                f"{lengths[row]} in row {row}, utt_id {ids[row]!r})"
            )
        width = col.type.list_size if lengths is None else (int(lengths[0]) if len(lengths) else 0)
        values = col.flatten().to_numpy(zero_copy_only=False)
        if values.dtype == object:
            raise FeatureError(f"{path}: representation {name!r} must hold numbers, got {col.type}")
        arrays[name] = values.reshape(len(ids), width)
    return ids, arrays


def align_features(
    utt_ids: Sequence[str],
    vectors: Mapping[str, np.ndarray],
    wanted_ids: Sequence[str],
    *,
    source: str | Path = "<features>",
) -> dict[str, np.ndarray]:
    """Reorder every [N, d] array to `wanted_ids` (the dataset's order).

    Ids the dataset does not know and dataset ids without a vector are both errors (naming a few of
    them), as are non-2-D arrays and NaN/inf values (naming representation, row and utt_id)."""
    utt_ids = [str(u) for u in utt_ids]
    index = {u: i for i, u in enumerate(utt_ids)}
    if len(index) != len(utt_ids):
        dup = next(u for i, u in enumerate(utt_ids) if index[u] != i)
        raise FeatureError(f"{source}: duplicate utt_id {dup!r}")
    wanted = [str(u) for u in wanted_ids]
    wanted_set = set(wanted)
    unknown = [u for u in utt_ids if u not in wanted_set]
    if unknown:
        raise FeatureError(f"{source}: {len(unknown)} utt_id(s) not in the dataset, e.g. {_few(unknown)}")
    missing = [u for u in wanted if u not in index]
    if missing:
        raise FeatureError(f"{source}: no features for {len(missing)} utterance(s) of the dataset, e.g. {_few(missing)}")
    order = np.fromiter((index[u] for u in wanted), dtype=np.int64, count=len(wanted))
    out = {}
    for name, arr in vectors.items():
        arr = np.asarray(arr)
        if arr.ndim != 2 or arr.shape[0] != len(utt_ids):
            raise FeatureError(
                f"{source}: representation {name!r} must be 2-D with {len(utt_ids)} rows (one per utt_id), got shape {arr.shape}"
            )
        bad = ~np.isfinite(arr).all(1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise FeatureError(f"{source}: representation {name!r} has NaN or infinite values in row {row} (utt_id {utt_ids[row]!r})")
        out[name] = arr[order]
    return out


def _few(items: Sequence[str], k: int = 3) -> str:
    shown = ", ".join(repr(x) for x in items[:k])
    return shown + (", ..." if len(items) > k else "")
