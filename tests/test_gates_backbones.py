"""`pytest gates` with several listed backbones: each gets its own verdict test, `-k NAME` exits with
that backbone's verdict, and `test_decision` stays the recommended backbone's.

Planted external features named after two listed backbones (fixtures.testing): `good`'s
decoder_block_08 carries a strong accent direction, `weak` carries none; no model is extracted.
"""

from pathlib import Path

import pytest
import yaml

from fixtures.testing import write_planted_case

GATES = Path(__file__).resolve().parents[1] / "gates"


@pytest.fixture(scope="module")
def two_backbones(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two")
    path = write_planted_case(root, {"good:decoder_block_00": 0.0, "good:decoder_block_08": 3.0, "weak:decoder_block_00": 0.0, "weak:decoder_block_08": 0.0})
    cfg = yaml.safe_load(path.read_text())
    del cfg["sources"]["backbone"]
    cfg["sources"]["backbones"] = [{"name": "good", "enabled": False}, {"name": "weak", "enabled": False}]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def _runs() -> dict:
    return {}


@pytest.fixture
def run_gates(pytester, monkeypatch, _runs):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")

    def run(config, *args):
        key = (str(config), args)
        if key not in _runs:
            _runs[key] = pytester.runpytest_subprocess(str(GATES / "test_gates.py"), "--stage1-5-config", str(config), "-p", "no:cacheprovider", "-rA", *args)
        return _runs[key]

    return run


def _ids(result, outcome: str) -> set[str]:
    prefix = f"{outcome} "
    return {line[len(prefix):].split(" - ")[0].split("::", 1)[1] for line in result.outlines if line.startswith(prefix) and "::" in line}


def test_each_listed_backbone_has_its_own_verdict_and_test_decision_is_the_recommended_one(two_backbones, run_gates):
    result = run_gates(two_backbones, "-k", "decision")
    assert result.ret == 0  # the recommended backbone (good) is GO: the run has a backbone worth Stage 2
    assert {"test_decision", "test_backbone_decision[good]"} <= _ids(result, "PASSED")
    assert _ids(result, "FAILED") == {"test_backbone_decision[weak]"}
    result.stdout.fnmatch_lines(["*GateMiss: Backbone weak: Decision NOGO*"])


def test_k_one_backbone_exits_with_that_backbones_verdict(two_backbones, run_gates):
    weak = run_gates(two_backbones, "-k", "weak")
    assert weak.ret == 1
    assert "test_backbone_decision[weak]" in _ids(weak, "FAILED")
    assert not any("good" in test for test in _ids(weak, "PASSED") | _ids(weak, "FAILED"))

    good = run_gates(two_backbones, "-k", "good and not decoder_block_00")
    assert good.ret == 0
    assert {"test_backbone_decision[good]", "test_accent_f1[good:decoder_block_08-go]"} <= _ids(good, "PASSED")
