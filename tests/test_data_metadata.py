"""metadata.csv parsing: BOM, quoting, stray whitespace, unicode ids, CRLF; ids always stay strings."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stage1_5.data.layout import REQUIRED_COLUMNS, read_metadata

# Field values as users write them: any printable unicode (commas and quotes included), or digit
# strings that a careless parser turns into numbers ("007" -> 7). Surrounding whitespace is not part
# of a value (it is stripped), so values are generated without it.
printable = st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"))
words = st.lists(st.text(printable, min_size=1, max_size=8), min_size=1, max_size=3).map(" ".join)
numeric_like = st.sampled_from(["007", "0", "1e3", "NaN", "NA", "null", "True", "-0", "1,000", "00"])
value = st.one_of(words, numeric_like)
row = st.fixed_dictionaries({c: value for c in REQUIRED_COLUMNS})


def render_field(text: str, quote: bool, pad_left: int, pad_right: int) -> str:
    needs_quotes = quote or any(ch in text for ch in ',"')
    body = '"' + text.replace('"', '""') + '"' if needs_quotes else text
    return " " * pad_left + body + " " * pad_right


@st.composite
def csv_file(draw):
    rows = draw(st.lists(row, min_size=1, max_size=5))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.booleans())
    pads = st.integers(0, 2)
    lines = [",".join(render_field(c, draw(st.booleans()), draw(pads), draw(pads)) for c in REQUIRED_COLUMNS)]
    for r in rows:
        lines.append(",".join(render_field(r[c], draw(st.booleans()), draw(pads), draw(pads)) for c in REQUIRED_COLUMNS))
    text = ("\ufeff" if bom else "") + newline.join(lines) + draw(st.sampled_from(["", newline]))
    return text, rows


def parse(text: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metadata.csv"
        path.write_bytes(text.encode("utf-8"))
        return read_metadata(path)


@settings(max_examples=150, deadline=None)
@given(csv_file())
def test_parsed_rows_equal_the_written_values_as_strings(case):
    text, rows = case
    parsed, problems = parse(text)
    assert problems == []
    assert [{c: getattr(p, c) for c in REQUIRED_COLUMNS} for p in parsed] == rows
    assert [p.row for p in parsed] == list(range(2, len(rows) + 2))


def test_numeric_looking_ids_stay_strings():
    parsed, _ = parse("utt_id,speaker,accent,text_id,rel_path\n007,0012,1,1e3,wav/a.wav\n")
    assert (parsed[0].utt_id, parsed[0].speaker, parsed[0].accent, parsed[0].text_id) == ("007", "0012", "1", "1e3")


def test_bom_crlf_and_padded_header_are_accepted():
    parsed, problems = parse("\ufeff utt_id , speaker,accent ,text_id,rel_path\r\n a ,s,x,t, wav/a.wav \r\n")
    assert problems == [] and parsed[0].utt_id == "a" and parsed[0].rel_path == "wav/a.wav"


def test_blank_lines_are_skipped_and_row_numbers_stay_line_numbers():
    parsed, _ = parse("utt_id,speaker,accent,text_id,rel_path\n\na,s,x,t,p\n\nb,s,x,t,q\n")
    assert [(p.utt_id, p.row) for p in parsed] == [("a", 3), ("b", 5)]


def test_extra_columns_are_kept_per_row():
    parsed, _ = parse("utt_id,gender,speaker,accent,text_id,rel_path\na,f,s,x,t,p\n")
    assert parsed[0].extra == {"gender": "f"} and parsed[0].speaker == "s"


def test_header_only_is_a_problem():
    parsed, problems = parse("utt_id,speaker,accent,text_id,rel_path\n")
    assert parsed == [] and "no utterance rows" in problems[0].message


def test_duplicate_header_column_is_a_problem():
    _, problems = parse("utt_id,speaker,accent,text_id,rel_path,speaker\na,s,x,t,p,s\n")
    assert any("column speaker appears 2 times" in p.message for p in problems)


def _parse_bytes(data: bytes):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metadata.csv"
        path.write_bytes(data)
        return read_metadata(path)


def test_not_utf8_byte_is_reported_on_the_row_and_column_that_hold_it():
    lines = ["utt_id,speaker,accent,text_id,rel_path"] + [f"u{i},s{i % 4},a{i % 2},t,s/{i}.wav" for i in range(600)]
    data = "\n".join(lines).encode() + b"\n"
    data = data.replace(b"s1,a1,t,s/401.wav", "Jos\u00e9,a1,t,s/401.wav".encode("latin-1"))  # row 403 (header = row 1)
    rows, problems = _parse_bytes(data)
    assert [p.message for p in problems] == ["metadata.csv row 403: speaker: byte 0xe9 is not UTF-8; save the file as UTF-8"]
    assert len(rows) == 599 and "u401" not in {r.utt_id for r in rows}


def test_not_utf8_header_is_a_problem_on_row_1():
    _, problems = _parse_bytes("utt_id,speaker,accent,text_id,rel_path,g\u00e9nero\na,s,x,t,p,m\n".encode("latin-1"))
    assert problems[0].row == 1 and "byte 0xe9 is not UTF-8" in problems[0].message


def test_group_column_fills_group_and_is_not_an_extra_column():
    parsed, _ = parse("utt_id,speaker,accent,text_id,rel_path,group,mic\na,s,x,t,p,donor1,usb\n")
    assert parsed[0].group == "donor1" and parsed[0].extra == {"mic": "usb"}


def test_without_group_column_group_is_none_and_blank_group_is_empty():
    plain, _ = parse("utt_id,speaker,accent,text_id,rel_path\na,s,x,t,p\n")
    blank, _ = parse("utt_id,speaker,accent,text_id,rel_path,group\na,s,x,t,p, \n")
    assert plain[0].group is None and blank[0].group == ""
