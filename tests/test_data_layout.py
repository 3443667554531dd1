"""The user guide's layout works as printed: rel_path under wav/ or under the dataset folder, folders
and zips (also one folder deeper), all giving one manifest and one content hash."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stage1_5.config import DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.layout import LAYOUT, write_metadata
from stage1_5.data.testing import dataset_rows, write_dataset, zip_folder
from stage1_5.errors import DatasetError


def load(path, work):
    return load_dataset(path, DatasetConfig(), work_dir=work, progress=False)


def as_root_relative(rows, which):
    """The same rows with rel_path written relative to the dataset folder where `which` says so."""
    return [{**r, "rel_path": f"wav/{r['rel_path']}"} if w else dict(r) for r, w in zip(rows, which)]


names = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=6)


@st.composite
def designs(draw):
    accents = draw(st.lists(names, min_size=2, max_size=3, unique_by=str.lower))
    rows = dataset_rows(accents, draw(st.integers(2, 3)), draw(st.integers(1, 3)))
    return rows, draw(st.lists(st.booleans(), min_size=len(rows), max_size=len(rows)))


@settings(max_examples=15, deadline=None)
@given(designs())
def test_both_rel_path_conventions_give_the_same_manifest_and_content_hash(design):
    rows, which = design
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "ds", rows, duration_s=0.15)
        guide = load(root, Path(tmp) / "work")
        write_metadata(root / "metadata.csv", as_root_relative(rows, which))
        mixed = load(root, Path(tmp) / "work")
    assert mixed.utterances == guide.utterances
    assert mixed.content_hash == guide.content_hash


def test_the_guide_layout_zipped_as_printed_or_one_folder_deeper_loads_like_the_folder(tmp_path):
    root = write_dataset(tmp_path / "dataset", dataset_rows(("NE", "SE"), 2, 2))
    assert (root / "wav" / "NE_s01" / "t01.wav").is_file()  # wav/spkNE01/t01.wav ...
    flat = zip_folder(root, tmp_path / "dataset.zip")
    deeper = zip_folder(root, tmp_path / "deeper.zip", prefix="dataset/")
    loaded = [load(p, tmp_path / "work") for p in (root, flat, deeper)]
    assert len({d.content_hash for d in loaded}) == 1
    assert [u.id for u in loaded[2].utterances] == [r["utt_id"] for r in dataset_rows(("NE", "SE"), 2, 2)]


def test_the_tools_own_convention_zipped_loads_like_the_guides(tmp_path):
    rows = dataset_rows(("NE", "SE"), 2, 2)
    guide = write_dataset(tmp_path / "guide", rows)
    own = write_dataset(tmp_path / "own", as_root_relative(rows, [True] * len(rows)))
    hashes = {load(zip_folder(f, tmp_path / f"{f.name}.zip"), tmp_path / "work").content_hash for f in (guide, own)}
    assert len(hashes) == 1


def test_missing_metadata_shows_the_expected_layout(tmp_path):
    (tmp_path / "ds" / "wav").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        load(tmp_path / "ds", tmp_path / "work")
    first, *rest = str(info.value).splitlines()
    assert first.endswith("metadata.csv not found; the expected layout is")
    assert "\n".join(rest) == LAYOUT and "spkNE01_t01,spkNE01,NE,t01,spkNE01/t01.wav" in LAYOUT
