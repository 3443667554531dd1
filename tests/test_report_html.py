"""report/stage1_5_report.html: one self-contained file, figures embedded (stage1_5.report.html)."""

from __future__ import annotations

import base64
import re

from stage1_5.report.html import render_html, write_html_report

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
REPORT = """# Stage 1.5 accent probing report — demo

## Summary

| | |
|---|---|
| **Decision** | **NOGO** |

![Accent F1 by layer](../artifacts/analysis/f1_by_layer.png)

![gone](../artifacts/analysis/missing.png)
"""


def test_figures_are_embedded_and_tables_rendered(tmp_path):
    (tmp_path / "artifacts" / "analysis").mkdir(parents=True)
    (tmp_path / "report").mkdir()
    (tmp_path / "artifacts" / "analysis" / "f1_by_layer.png").write_bytes(PNG)
    page = render_html(REPORT, tmp_path / "report")
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs[0] == "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert srcs[1] == "../artifacts/analysis/missing.png"  # still names the figure it wanted
    assert "<td><strong>Decision</strong></td>" in page and '<h2 id="summary">' in page
    assert "<title>Stage 1.5 accent probing report — demo</title>" in page


def test_raw_html_in_the_markdown_is_escaped(tmp_path):
    page = render_html("# r\n\n<script>alert(1)</script>\n", tmp_path)
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_the_file_is_written_beside_the_markdown(tmp_path):
    target = write_html_report(REPORT, tmp_path / "report" / "stage1_5_report.html")
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
