"""metadata.csv parsing: BOM, quoting, stray whitespace, unicode ids, CRLF; ids always stay strings."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from stage1_5.data.dataset import read_metadata
from stage1_5.data.validation import REQUIRED_COLUMNS

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


def test_not_utf8_is_a_problem():
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metadata.csv"
        path.write_bytes("utt_id,speaker,accent,text_id,rel_path\nJosé,s,x,t,p\n".encode("latin-1"))
        _, problems = read_metadata(path)
    assert "not UTF-8" in problems[0].message
