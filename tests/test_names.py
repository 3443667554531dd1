"""User-chosen names become file names that stay inside their folder, never collide and stay short."""

import pytest

from stage1_5.names import MAX_STEM_CHARS, safe_file_name, unrepresentable


def test_a_plain_representation_name_keeps_its_readable_file_name():
    assert safe_file_name("backbone:decoder_block_03", ".csv") == "backbone__decoder_block_03.csv"


@pytest.mark.parametrize("name", ["/abs/path/x", "../../x:y", "..", ".hidden", "a/b\\c", "x:y:z", "é:ü"])
def test_a_name_with_path_characters_becomes_one_plain_file_name(tmp_path, name):
    file_name = safe_file_name(name, ".csv")
    assert "/" not in file_name and "\\" not in file_name and not file_name.startswith(".")
    assert (tmp_path / file_name).resolve().parent == tmp_path.resolve()
    (tmp_path / file_name).write_text("x")  # a real file system accepts it


def test_a_300_character_name_is_bounded_and_still_writable(tmp_path):
    file_name = safe_file_name("m:" + "x" * 300, ".csv")
    assert len(file_name.encode()) <= MAX_STEM_CHARS + len(".csv")
    (tmp_path / f".{file_name}.abcdefgh.tmp").write_text("x")  # room for the atomic write's temporary twin


def test_names_that_would_collide_get_different_file_names():
    names = ["a:b", "a__b", "A:b", "a:B", "../a:b", "/a:b", "a_b", "m:" + "x" * 300, "m:" + "x" * 299 + "y"]
    file_names = [safe_file_name(n).lower() for n in names]  # lower(): case-insensitive file systems too
    assert len(set(file_names)) == len(names)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "line\nbreak", "bell\x07"])
def test_an_empty_name_or_one_with_control_characters_cannot_be_represented(name):
    assert unrepresentable(name) is not None
    with pytest.raises(ValueError, match="cannot name a file"):
        safe_file_name(name)
