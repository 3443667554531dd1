"""The Allure HTML report of a gate run shows the decision on its first screen, and a failing gate's page
its numbers, threshold and figure (headless Chromium).

Needs Debian `chromium`, node and Java 17, and the Allure 2 generator that scripts/gates.sh installs
into .tools/node_modules (npm allure-commandline); skipped with the reason when one is missing.
"""

import base64
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fixtures.allure_files import CATEGORIES
from fixtures.testing import write_planted_case
from stage1_5.config import ExperimentConfig
from stage1_5.decision import decide
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row

ROOT = Path(__file__).resolve().parents[1]
ALLURE_JS = ROOT / ".tools" / "node_modules" / "allure-commandline" / "bin" / "allure"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=5000",
]


def _require_tools() -> str:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (apt-get install -y chromium)")
    for tool in ("node", "java"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: the Allure 2 generator needs node and Java 17")
    if not ALLURE_JS.exists():
        pytest.skip(f"{ALLURE_JS.relative_to(ROOT)} missing: run scripts/gates.sh once (npm allure-commandline@2.46.1)")
    return chromium


@pytest.fixture(scope="module")
def allure_report(tmp_path_factory):
    """A gate run on a planted GO case (the decision and one weak layer's gates), as an Allure 2 single-file report."""
    chromium = _require_tools()
    root = tmp_path_factory.mktemp("allure")
    config = write_planted_case(root / "case", {"backbone:decoder_block_00": 0.0, "backbone:decoder_block_08": 3.0})
    results, report = root / "allure-results", root / "allure-report"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", str(ROOT / "gates" / "test_gates.py"), "--stage1-5-config", str(config),
         "--alluredir", str(results), "-p", "no:cacheprovider", "-q", "-k", "test_decision or decoder_block_00"],
        capture_output=True, text=True, timeout=600, cwd=root, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    subprocess.run(
        ["node", str(ALLURE_JS), "generate", "--single-file", str(results), "-o", str(report), "--clean"],
        check=True, capture_output=True, timeout=120, env={**os.environ, "ALLURE_NO_ANALYTICS": "true"},
    )  # fmt: skip
    return SimpleNamespace(chromium=chromium, index=report / "index.html", root=root)


def _dom(report, fragment: str = "") -> str:
    """The rendered page (`#fragment`: a route of the single-page report) as headless Chromium sees it."""
    url = report.index.as_uri() + (f"#{fragment}" if fragment else "")
    profile = report.root / f"chromium-{len(fragment)}"
    return subprocess.run(
        [report.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip


def _visible_text(dom: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)))


def _test_case_uid(index: Path, name: str) -> str:
    """The report's uid of a test case, read from the data the single-file report embeds."""
    page = index.read_text(encoding="utf-8")
    for match in re.finditer(r"d\('data/test-cases/([0-9a-f]+)\.json','([^']*)'\)", page):
        if json.loads(base64.b64decode(match.group(2)))["name"] == name:
            return match.group(1)
    raise AssertionError(f"no test case named {name!r} in {index}")


def _category(message: str) -> str:
    """The Allure category a failed test with this message lands in (first match wins, as in Allure:
    the Java regex must match the whole message)."""
    for category in CATEGORIES:
        if "failed" in category["matchedStatuses"] and "messageRegex" in category and re.fullmatch(category["messageRegex"], message):
            return category["name"]
    return "Product defects"


def test_every_gate_miss_of_the_decision_module_lands_in_a_named_category():
    rows = [row(f"backbone:decoder_block_{i:02d}", accent_f1=f1, leak_excess_pp=leak, text_drop=drop, p_value=p, p_value_fwer=p)
            for i, (f1, leak, drop, p) in enumerate([(0.3, 20.0, 0.3, 0.4), (0.5, 9.0, 0.05, 0.2), (0.7, 1.0, 0.0, float("nan"))])]  # fmt: skip
    misses = [(c.metric, c.level, c.message) for a in decide(dummy_metrics(rows), ExperimentConfig()).assessments.values() for c in a.checks if not c.passed]
    assert {(metric, level) for metric, level, _ in misses} >= {("p_value", "go"), ("leakage", "go"), ("accent_f1", "conditional")}
    for metric, level, message in misses:
        expected = "Significance" if metric == "p_value" else {"go": "GO gate", "conditional": "Conditional gate"}[level]
        assert _category(f"fixtures.gating.GateMiss: {message}").startswith(expected), message


def test_decision_misses_and_real_failures_keep_their_own_categories():
    assert _category("GateMiss: Decision NOGO: No backbone layer reaches conditional GO (family-wise p 0.2)") == "Decision NOGO"
    assert _category("AssertionError: assert 3 == 4") == "Product defects"


def test_the_report_overview_leads_with_the_decision(allure_report):
    dom = _dom(allure_report)
    assert re.search(r'class="widget__title">Decision GO · backbone:decoder_block_08 · stage1_5 planted', dom)
    assert "GO gate missed (layer evidence)" in dom  # the categories widget names the weak layer's misses


def test_the_categories_page_names_every_miss_and_no_product_defect(allure_report):
    text = _visible_text(_dom(allure_report, "categories"))
    assert "Significance: family-wise p not below alpha (layer evidence)" in text  # decoder_block_00's p misses
    assert "GO gate missed (layer evidence)" in text and "Conditional gate missed (layer evidence)" in text
    assert "Product defects" not in text


def test_a_failing_gates_page_shows_the_numbers_the_threshold_and_the_metrics_figure(allure_report):
    uid = _test_case_uid(allure_report.index, "evidence · accent F1 · decoder_block_00 · go gate")
    text = _visible_text(_dom(allure_report, f"testresult/{uid}"))
    assert re.search(r"GateMiss: F1 0\.\d\d < 0\.55 \(GO\)", text)
    assert re.search(r"measured 0\.\d+, threshold >= 0\.55 at the go level", text)
    assert "Tags: per-layer evidence (informational)" in text and "Severity: minor" in text
    assert "f1_by_layer.png (accent F1)" in text  # the figure of that metric, in the test body
