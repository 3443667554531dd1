"""CSV files with user text open safely in a spreadsheet and read back unchanged."""

import csv

import pandas as pd

from stage1_5.io import read_csv, write_csv

HOSTILE = ["=HYPERLINK(\"http://x\")", "+1", "-cmd", "@SUM(A1)", "\tx", "'=already marked", "plain", "'plain quote"]


def test_text_cells_a_spreadsheet_would_run_are_written_as_text(tmp_path):
    frame = pd.DataFrame({"utt_id": HOSTILE, "value": [-1.5] * len(HOSTILE)})
    write_csv(tmp_path / "m.csv", frame)
    with open(tmp_path / "m.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == ["'" + v if v[0] in "=+-@\t'" else v for v in HOSTILE]
    assert all(r[1] == "-1.5" for r in rows)  # numbers stay numbers, negative ones included


def test_what_write_csv_wrote_reads_back_unchanged(tmp_path):
    frame = pd.DataFrame({"utt_id": HOSTILE, "value": range(len(HOSTILE))})
    write_csv(tmp_path / "m.csv", frame)
    pd.testing.assert_frame_equal(read_csv(tmp_path / "m.csv"), frame)


def test_index_and_column_labels_are_protected_too(tmp_path):
    labels = ["=north", "south"]
    frame = pd.DataFrame([[1, 2], [3, 4]], index=labels, columns=labels)
    write_csv(tmp_path / "c.csv", frame, index=True)
    assert "'=north" in (tmp_path / "c.csv").read_text()
    back = read_csv(tmp_path / "c.csv", index_col=0)
    assert list(back.index) == labels and list(back.columns) == labels
