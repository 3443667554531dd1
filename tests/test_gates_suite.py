"""`pytest gates` on planted experiments, run in a subprocess (pytester): exit status = decision;
with several listed backbones, each backbone's own verdict test and `-k NAME`'s exit status.

Each case is an external `.npz` whose arrays are named like backbone layers (see fixtures.testing):
decoder_block_08 carries a strong planted accent direction, decoder_block_00 none.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from fixtures.testing import write_config, write_planted_case

GATES = Path(__file__).resolve().parents[1] / "gates"
B00 = "backbone:decoder_block_00"
B08 = "backbone:decoder_block_08"


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    go = write_planted_case(root / "go", {B00: 0.0, B08: 3.0, "ssl:layer_03": 3.0})
    return SimpleNamespace(
        root=root,
        go=go,
        # a weaker accent (F1 ≈ 0.85, p = 1/21) under a GO threshold of 0.9: conditional GO
        conditional=write_planted_case(root / "conditional", {B00: 0.0, B08: 0.7}, experiment={"min_f1_go": 0.9, "max_text_drop": 0.2}),
        nogo=write_planted_case(root / "nogo", {B00: 0.0, B08: 0.0}),
        crash=write_planted_case(root / "crash", {B00: 0.0, B08: 3.0}, nan_in=B08),
    )


@pytest.fixture(scope="module")
def _runs() -> dict:
    return {}


@pytest.fixture
def run_gates(pytester, monkeypatch, _runs):
    """Run gates/test_gates.py in a subprocess; identical runs are shared by the tests of this module."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")

    def run(config, *args):
        key = (str(config), args)
        if key not in _runs:
            _runs[key] = pytester.runpytest_subprocess(
                str(GATES / "test_gates.py"), "--stage1-5-config", str(config), "-p", "no:cacheprovider", "-rA", *args
            )
        return _runs[key]

    return run


@pytest.fixture
def go_run(cases, run_gates):
    """The GO case, every gate test, with Allure results."""
    return run_gates(cases.go, "--alluredir", str(cases.root / "allure-go"))


def _ids(result, outcome: str) -> set[str]:
    """Test ids with `outcome` (PASSED, FAILED, ERROR) in the -rA short summary."""
    prefix = f"{outcome} "
    return {
        line[len(prefix):].split(" - ")[0].split("::", 1)[1]
        for line in result.outlines
        if line.startswith(prefix) and "::" in line
    }


def test_go_exits_zero_although_a_weak_layer_misses_its_gates(go_run):
    assert go_run.ret == 0
    assert {"test_decision", "test_report", f"test_accent_f1[{B08}-go]"} <= _ids(go_run, "PASSED")
    assert f"test_accent_f1[{B00}-go]" in _ids(go_run, "FAILED")
    go_run.stdout.fnmatch_lines(["*decision: GO (accepting go)*", "*verdict: accepted at --gate-accept go*exit status 0*"])


def test_a_gate_miss_message_reads_like_the_rationale(go_run):
    go_run.stdout.fnmatch_lines(["E *GateMiss: F1 0.* < 0.55 (GO)", "E *GateMiss: F1 0.* < 0.45 (conditional)"])


def test_references_are_recorded_and_never_fail(go_run):
    assert "test_reference[ssl]" in _ids(go_run, "PASSED")


def test_nogo_exits_one_with_the_decision_and_every_layer_failing(cases, run_gates):
    result = run_gates(cases.nogo)
    assert result.ret == 1
    failed = _ids(result, "FAILED")
    expected = {"test_decision"} | {f"test_accent_f1[{rep}-{lv}]" for rep in (B00, B08) for lv in ("go", "conditional")}
    assert expected <= failed
    assert not _ids(result, "ERROR")
    result.stdout.fnmatch_lines(["*GateMiss: Decision NOGO: No backbone layer reaches conditional GO*"])


def test_conditional_go_fails_unless_gate_accept_conditional(cases, run_gates):
    strict = run_gates(cases.conditional, "-k", "test_decision or test_accent_f1")
    assert strict.ret == 1
    strict.stdout.fnmatch_lines(["*Decision GO_CONDITIONAL, not accepted (--gate-accept go)*"])
    assert f"test_accent_f1[{B08}-go]" in _ids(strict, "FAILED")

    accepting = run_gates(cases.conditional, "-k", "test_decision or test_accent_f1", "--gate-accept", "conditional")
    assert accepting.ret == 0
    assert "test_decision" in _ids(accepting, "PASSED")


def test_an_extraction_crash_is_an_error_never_a_nogo(cases, run_gates):
    result = run_gates(cases.crash)
    assert result.ret == 3  # an error: CI can tell a broken run from a NOGO (1)
    assert "test_decision" in _ids(result, "ERROR")
    assert not _ids(result, "FAILED")
    assert "Decision NOGO" not in result.stdout.str()
    result.stdout.fnmatch_lines([f"*FeatureError: *{B08}*", "*crashed (errors, not a NOGO)*"])


def test_k_selects_one_layer_and_probes_only_it(cases, run_gates):
    result = run_gates(cases.go, "-k", "decoder_block_08")
    assert result.ret == 0
    ran = _ids(result, "PASSED") | _ids(result, "FAILED") | _ids(result, "ERROR")
    gated = ("test_accent_f1", "test_leakage", "test_text_drop", "test_significance")
    assert ran == {f"{t}[{B08}-{lv}]" for t in gated for lv in ("go", "conditional")}
    result.stdout.fnmatch_lines([f"representations evaluated: {B08}"])


def test_a_missing_config_stops_the_run_before_any_gate(run_gates, tmp_path):
    result = run_gates(tmp_path / "nope.yaml")
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*--stage1-5-config: *nope.yaml: config file not found*"])


def test_k_matching_no_configured_layer_names_the_layers_and_exits_3(cases, run_gates):
    result = run_gates(cases.go, "-k", "decoder_block_12")
    assert result.ret == 3
    result.stdout.fnmatch_lines([f"*-k 'decoder_block_12' selects no gate test; the configured backbone layers are: {B00}, {B08}*"])


def _allure_results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in folder.glob("*-result.json")]


def test_allure_results_read_as_the_decision(cases, go_run):
    alluredir = cases.root / "allure-go"
    results = _allure_results(alluredir)
    miss = next(
        r for r in results
        if r["fullName"].endswith("test_accent_f1") and {"name": "layer", "value": "'decoder_block_00'"} in r["parameters"]
        and {"name": "level", "value": "'go'"} in r["parameters"]
    )  # fmt: skip
    labels = {(lab["name"], lab["value"]) for lab in miss["labels"]}
    assert {("epic", "stage1_5 go/no-go"), ("feature", "backbone"), ("story", "accent F1")} <= labels
    assert miss["status"] == "failed"
    assert {p["name"] for p in miss["parameters"]} >= {"layer", "level", "threshold", "value"}
    env = (alluredir / "environment.properties").read_text()
    assert env.startswith("decision=GO\n") and "dataset.hash=" in env
    categories = [c["name"] for c in json.loads((alluredir / "categories.json").read_text())]
    assert "Decision NOGO" in categories and "Broken: crash in dataset, extraction or probing (not a NOGO)" in categories
    assert json.loads((alluredir / "executor.json").read_text())["reportName"] == f"Decision GO · {B08} · stage1_5 planted"


def test_the_report_and_figures_are_attached(cases, go_run):
    """Fixtures attach them: Allure shows them in the test's set-up section (containers' befores)."""
    containers = [json.loads(p.read_text()) for p in (cases.root / "allure-go").glob("*-container.json")]
    attached = {a["name"] for c in containers for before in c.get("befores", []) for a in before.get("attachments", [])}
    assert {"stage1_5_report.md", "metrics.csv"} <= attached
    assert any(name.endswith(".png") for name in attached)


def _result(results: list[dict], test: str, **params: str) -> dict:
    wanted = [{"name": k, "value": repr(v)} for k, v in params.items()]
    return next(r for r in results if r["fullName"].endswith(test) and all(p in r.get("parameters", []) for p in wanted))


def test_the_decision_runs_first_and_carries_the_report_and_figures(cases, go_run):
    results = _allure_results(cases.root / "allure-go")
    decision = _result(results, "test_decision")
    assert decision["name"] == f"DECISION GO · {B08} (accepting go)"
    assert ("severity", "blocker") in {(lab["name"], lab["value"]) for lab in decision["labels"]}
    attached = {a["name"] for a in decision["attachments"]}  # in the test's own body, not a collapsed set-up
    assert {"decision.json", "stage1_5_report.md", "metrics.csv", "f1_by_layer.png", "leakage_vs_f1.png"} <= attached
    gates = [r for r in results if "evidence ·" in r["name"]]
    assert gates and decision["start"] <= min(r["start"] for r in gates)


def test_a_failing_gate_shows_its_numbers_threshold_and_figure_and_is_marked_informational(cases, go_run):
    miss = _result(_allure_results(cases.root / "allure-go"), "test_accent_f1", layer="decoder_block_00", level="go")
    assert miss["status"] == "failed" and miss["name"] == "evidence · accent F1 · decoder_block_00 · go gate"
    assert "measured" in miss["description"] and "threshold >= 0.55 at the go level" in miss["description"]
    assert "f1_by_layer.png (accent F1)" in {a["name"] for a in miss["attachments"]}
    labels = {(lab["name"], lab["value"]) for lab in miss["labels"]}
    assert {("tag", "per-layer evidence (informational)"), ("severity", "minor")} <= labels


def test_an_invalid_dataset_is_its_one_line_message_and_exit_3(run_gates, tmp_path):
    config = write_planted_case(tmp_path / "invalid", {B00: 0.0, B08: 3.0})
    metadata = tmp_path / "invalid" / "dataset" / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[3] = lines[3].replace(",", "\x00x,", 2)  # a NUL byte in row 4's speaker
    metadata.write_text("\n".join(lines) + "\n")
    result = run_gates(config)
    assert result.ret == 3
    result.stdout.fnmatch_lines(["*Exit: --stage1-5-config: metadata.csv row 4: * holds the control character '\\x00'*"])
    assert "Traceback" not in result.stdout.str() and "ERROR gates" not in result.stdout.str()


# ------------------------------------------------------------- several backbones: one verdict each


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory) -> Path:
    """Planted features of two listed backbones: `good`'s decoder_block_08 carries the accent, `weak` none."""
    root = tmp_path_factory.mktemp("two")
    path = write_planted_case(root, {"good:decoder_block_00": 0.0, "good:decoder_block_08": 3.0, "weak:decoder_block_00": 0.0, "weak:decoder_block_08": 0.0})
    cfg = yaml.safe_load(path.read_text())
    del cfg["sources"]["backbone"]
    cfg["sources"]["backbones"] = [{"name": "good", "enabled": False}, {"name": "weak", "enabled": False}]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_each_listed_backbone_has_its_own_verdict_and_test_decision_is_the_recommended_one(two_backbones, run_gates):
    result = run_gates(two_backbones, "-k", "decision")
    assert result.ret == 0  # the recommended backbone (good) is GO: the run has a backbone worth Stage 2
    assert {"test_decision", "test_backbone_decision[good]"} <= _ids(result, "PASSED")
    assert _ids(result, "FAILED") == {"test_backbone_decision[weak]"}
    result.stdout.fnmatch_lines(["*GateMiss: Backbone weak: Decision NOGO*", "backbone good: GO (its own decision, accepting go)", "backbone weak: NOGO*"])


def test_k_one_backbone_exits_with_that_backbones_verdict(two_backbones, run_gates):
    weak = run_gates(two_backbones, "-k", "weak")
    assert weak.ret == 1
    assert "test_backbone_decision[weak]" in _ids(weak, "FAILED")
    assert not any("good" in test for test in _ids(weak, "PASSED") | _ids(weak, "FAILED"))

    good = run_gates(two_backbones, "-k", "good and not decoder_block_00")
    assert good.ret == 0
    assert {"test_backbone_decision[good]", "test_accent_f1[good:decoder_block_08-go]"} <= _ids(good, "PASSED")
