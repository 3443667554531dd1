"""The README guides a new user: it opens with the two commands the Makefile runs, stays short,
shows one committed picture, and links every page under docs/ (and the Portuguese quickstart)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
PT_BR = (REPO / "docs" / "pt-BR" / "README.md").read_text()


def _first_code_block(text: str) -> list[str]:
    return text.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()


def test_the_readme_opens_with_make_demo_and_make_test_which_the_makefile_defines():
    assert README.index("```bash") < README.index("\n## ")  # before any section
    assert [line.split("#")[0].strip() for line in _first_code_block(README)] == ["make demo", "make test"]
    targets = re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), flags=re.M)
    assert {"demo", "test"} <= set(targets)


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 120


def test_the_readme_picture_is_committed_and_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert pictures and all((REPO / p).is_file() and (REPO / p).stat().st_size < 200_000 for p in pictures)


def test_the_readme_links_every_docs_page():
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", README))
    pages = {p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md")}
    assert pages <= linked, sorted(pages - linked)


def test_the_portuguese_quickstart_gives_the_two_commands_own_data_colab_and_the_decision():
    assert [line.split("#")[0].strip() for line in _first_code_block(PT_BR)] == ["make demo", "make test"]
    for heading in ("## Seus próprios dados", "## Colab", "## Como ler a decisão"):
        assert heading in PT_BR
    for target in re.findall(r"\]\(((?:\.\./)+[^)#]+)", PT_BR):
        assert (REPO / "docs" / "pt-BR" / target).resolve().exists(), target
