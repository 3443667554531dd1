"""`report/stage1_5_report.html`: the Markdown report as one self-contained HTML file.

Figures are embedded as base64 `data:` URIs and the style sheet is inline, so the file opens the same
in a browser, in a notebook's output cell and from a mail attachment, with nothing beside it. The
Markdown is rendered by markdown-it-py (CommonMark plus tables); `render_html` is pure and
`write_html_report` writes it atomically.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from stage1_5.io import atomic_write_text

HTML_NAME = "stage1_5_report.html"
"""File name beside `stage1_5_report.md` under report/."""

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; vertical-align: top; }
th { background: #f3f5f7; }
blockquote { margin: 1em 0; padding: .6em 1em; background: #fff4e5; border-left: 5px solid #e65100; }
img { max-width: 100%; height: auto; display: block; margin: .6em 0 .2em; }
code { background: #f3f5f7; padding: 0 .25em; border-radius: 3px; }
thead tr:not(:has(th:not(:empty))) { display: none; }
h2#summary + table { font-size: 1.05em; border: 2px solid #1f4e9c; }
h2#summary + table td:first-child { white-space: nowrap; background: #eef3fb; }
"""


def _parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _data_uri(path: Path) -> str:
    kind = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def render_html(markdown: str, base_dir: str | Path) -> str:
    """The report as an HTML page; every image link is read relative to `base_dir` and embedded (a
    link to a missing file is left as it is, so the page still says which figure it wanted)."""
    md = _parser()
    tokens = md.parse(markdown)
    base = Path(base_dir)
    title = "Stage 1.5 accent probing report"
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and i + 1 < len(tokens):
            title = tokens[i + 1].content
        if token.type == "heading_open" and token.tag == "h2" and i + 1 < len(tokens):
            token.attrSet("id", tokens[i + 1].content.strip().lower().replace(" ", "-"))
        for child in token.children or ():
            if child.type == "image":
                src = Path(str(child.attrGet("src") or ""))
                target = src if src.is_absolute() else base / src
                if target.is_file():
                    child.attrSet("src", _data_uri(target))
    body = md.renderer.render(tokens, md.options, {})
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def write_html_report(markdown: str, target: str | Path) -> Path:
    """Write `render_html(markdown)` to `target`, images read relative to its folder."""
    target = Path(target)
    atomic_write_text(target, render_html(markdown, target.parent))
    return target
