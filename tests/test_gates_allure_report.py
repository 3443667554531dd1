"""The Allure HTML report of a gate run shows the decision on its first screen (headless Chromium).

Needs Debian `chromium`, node and Java 17, and the Allure 2 generator that scripts/gates.sh installs
into .tools/node_modules (npm allure-commandline); skipped with the reason when one is missing.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fixtures.testing import write_planted_case

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


def test_the_report_overview_shows_the_decision(pytester, monkeypatch, tmp_path):
    chromium = _require_tools()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = write_planted_case(tmp_path / "case", {"backbone:decoder_block_00": 0.0, "backbone:decoder_block_08": 3.0})
    results, report = tmp_path / "allure-results", tmp_path / "allure-report"
    run = pytester.runpytest_subprocess(
        str(ROOT / "gates" / "test_gates.py"),
        "--stage1-5-config", str(config),
        "--alluredir", str(results),
        "-p", "no:cacheprovider",
        "-k", "test_decision or decoder_block_00",
    )  # fmt: skip
    assert run.ret == 0

    subprocess.run(
        ["node", str(ALLURE_JS), "generate", "--single-file", str(results), "-o", str(report), "--clean"],
        check=True, capture_output=True, timeout=120, env={**os.environ, "ALLURE_NO_ANALYTICS": "true"},
    )  # fmt: skip
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom", (report / "index.html").as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip

    assert re.search(r'class="widget__title">stage1_5 planted: GO \(backbone:decoder_block_08\)', dom)
    assert "Layer misses a GO gate" in dom  # the categories widget names the weak layer's misses
