"""The source registry: what each source is, and a toy source registered here alone flowing through
extraction, probes, gates and report."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from stage1_5.config import Stage15Config
from stage1_5.sources import (
    Role,
    all_sources,
    configured_layer_order,
    deciding_label,
    deciding_sources,
    random_weights_caveats,
    registered,
    role_of,
    source_sort_key,
    source_spec,
    source_style,
)

GATES = Path(__file__).resolve().parents[1] / "gates"

TOY_SOURCE = textwrap.dedent(
    '''
    """A toy reference source: one planted accent direction per accent plus per-utterance noise, read
    from the metadata (it needs no model). Registered by `registered(TOY)` or, as a pytest plugin
    (`-p toy_source`), for the session."""

    import contextlib

    import numpy as np
    from pydantic import BaseModel

    from stage1_5.features.base import FeatureBatch, select_names
    from stage1_5.hashing import text_digest
    from stage1_5.sources import Role, SourceSpec, registered

    NAME = "toy:accent_code"


    class ToySettings(BaseModel):
        enabled: bool = True
        batch_size: int = 5


    class ToyExtractor:
        source = "toy"
        version = "1"

        def __init__(self, settings, representations=None):
            self._names = select_names([NAME], representations, "toy")

        def representation_names(self):
            return list(self._names)

        def config_key(self):
            return {"planted": "accent direction x 3 + unit noise"}

        @staticmethod
        def _draw(tag, scale):
            return scale * np.random.default_rng(int(text_digest(tag, 8), 16)).standard_normal(8)

        def extract_batches(self, utterances, batch_size):
            utts = list(utterances)
            for start in range(0, len(utts), batch_size):
                batch = utts[start : start + batch_size]
                vectors = np.stack([self._draw(u.accent, 3.0) + self._draw(u.id, 1.0) for u in batch]).astype(np.float32)
                yield FeatureBatch([u.id for u in batch], {NAME: vectors}, float(sum(u.duration or 0 for u in batch)))


    class ToySpec(SourceSpec):
        def settings(self, cfg):
            return ToySettings()  # a real source has a section in stage1_5.config.SourcesConfig


    TOY = ToySpec(name="toy", title="Toy", extractor=ToyExtractor, role=Role.REFERENCE, order=5, colour="#ff00aa", marker="X")

    _session = contextlib.ExitStack()


    def pytest_configure(config):
        _session.enter_context(registered(TOY))


    def pytest_unconfigure(config):
        _session.close()
    '''
)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy source module, written once (the gate test loads the same file as a pytest plugin)."""
    folder = tmp_path_factory.mktemp("toy")
    (folder / "toy_source.py").write_text(TOY_SOURCE)
    spec = importlib.util.spec_from_file_location("toy_source", folder / "toy_source.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def toy_case(tmp_path_factory):
    """A 3 accents x 2 speakers x 4 texts synthetic set and a config where only acoustic features are on."""
    from stage1_5.data.synth import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("toy_case")
    data = synthesize(root / "data", SynthConfig(accents=3, speakers_per_accent=2, texts=4), progress=False)
    cfg = {
        "name": "toy",
        "dataset": {"path": str(data)},
        "sources": {"backbone": {"enabled": False}, "ssl": {"enabled": False}, "ecapa": {"enabled": False}},
        "probes": {"seeds": 1, "permutations": 0, "bootstrap": 0, "device": "cpu"},
        "output": {"dir": str(root / "run"), "cache_dir": str(root / "cache")},
    }
    path = root / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ----------------------------------------------------------------------------- the built-in table


def test_the_backbone_and_the_demos_planted_stand_in_decide_and_the_other_builtins_are_references():
    assert deciding_sources() == ["backbone", "planted"]
    assert [s.name for s in all_sources()] == ["backbone", "planted", "ssl", "ecapa", "ge2e", "acoustic"]
    assert {s.name: role_of(s.name) for s in all_sources()} == {
        "backbone": Role.DECIDES, "planted": Role.DECIDES, "ssl": Role.REFERENCE, "ecapa": Role.REFERENCE,
        "ge2e": Role.REFERENCE, "acoustic": Role.REFERENCE,
    }  # fmt: skip


def test_sentences_name_the_planted_stand_in_only_in_a_run_that_has_it():
    assert deciding_label() == "backbone"
    assert deciding_label(["planted:decoder_block_08", "acoustic:mfcc_stats"]) == "planted"
    assert deciding_label(["acoustic:mfcc_stats"]) == "backbone"


def test_the_planted_source_marks_the_run_not_scientific_and_names_itself():
    cfg = Stage15Config.model_validate({"sources": {"planted": {"enabled": True}}})
    assert any("planted source holds synthetic vectors" in c for c in random_weights_caveats(cfg))


def test_every_builtin_extractor_path_resolves_to_its_sources_extractor():
    for spec in all_sources():
        assert pkgutil.resolve_name(spec.extractor).source == spec.name


def test_an_unregistered_source_is_a_reference_after_the_registered_ones():
    assert role_of("mymodel") is Role.REFERENCE and source_spec("mymodel") is None
    assert sorted(["mymodel", "acoustic", "backbone"], key=source_sort_key) == ["backbone", "acoustic", "mymodel"]
    assert source_style("mymodel") != source_style("ssl")


def test_random_weights_caveats_name_the_deciding_source_and_the_references():
    cfg = Stage15Config.model_validate({"sources": {"backbone": {"checkpoint": "tiny-random"}, "ssl": {"model": "tiny-random"}, "ecapa": {"model": "tiny-random"}}})
    assert random_weights_caveats(cfg) == [
        "the backbone has randomly initialised weights (checkpoint 'tiny-random')",
        "reference source(s) ssl, ecapa have randomly initialised weights (model 'tiny-random')",
    ]


def test_disabled_or_real_weights_give_no_caveat():
    cfg = Stage15Config.model_validate({"sources": {"backbone": {"enabled": False, "checkpoint": "tiny-random"}}})
    assert random_weights_caveats(cfg) == []


def test_configured_layer_order_lists_each_sources_configured_layers():
    cfg = Stage15Config.model_validate({"sources": {"backbone": {"layers": ["pre_vocoder", "decoder_block_02"]}}})
    assert configured_layer_order(cfg)["backbone"] == ["pre_vocoder", "decoder_block_02"]


# ----------------------------------------------------------------------------- registration


def test_registration_lasts_for_the_block_only(toy):
    with registered(toy.TOY):
        assert source_spec("toy") is toy.TOY and [s.name for s in all_sources()][:2] == ["backbone", "toy"]
    assert source_spec("toy") is None


def test_a_registered_name_cannot_be_registered_again(toy):
    backbone = source_spec("backbone")
    with pytest.raises(ValueError, match="'backbone' is already registered"):
        with registered(toy.ToySpec(**{**toy.TOY.__dict__, "name": "backbone"})):
            pass
    assert source_spec("backbone") is backbone


# ----------------------------------------------------------------------------- a toy source end to end


def test_toy_reference_flows_through_extraction_probes_and_report(toy, toy_case, tmp_path):
    from stage1_5.config import load_config
    from stage1_5.pipeline import run_experiment

    with registered(toy.TOY):
        result = run_experiment(load_config(toy_case), out_dir=tmp_path / "run", progress=False, echo=lambda _m: None)
    cache = Path(load_config(toy_case).output.cache_dir)
    (entry,) = (cache / "features" / "toy").iterdir()
    assert json.loads((entry / "meta.json").read_text())["representations"] == ["toy:accent_code"]
    metrics = pd.read_csv(result.paths.analysis_dir / "metrics.csv").set_index("representation")
    assert set(metrics.index) == {"toy:accent_code", "acoustic:mfcc_stats"}
    assert metrics.loc["toy:accent_code", "accent_f1"] > 0.9  # the planted accent direction is found
    assert set(result.decision.references) == set(metrics.index)
    report = result.paths.report_md.read_text()
    toy_row, acoustic_row = report.index("| **toy** (reference) |"), report.index("| **acoustic** (reference) |")
    assert toy_row < acoustic_row  # registry order (toy 5, acoustic 30), not the alphabet
    assert result.decision.decision.value == "NOGO" and result.decision.diagnosis == "no_backbone"


def test_toy_reference_gets_its_gate(toy, toy_case, pytester, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    pytester.makepyfile(toy_source=TOY_SOURCE)
    run = pytester.runpytest_subprocess(
        str(GATES / "test_gates.py"), "--stage1-5-config", str(toy_case), "-p", "toy_source", "-p", "no:cacheprovider",
        "-k", "test_reference", "-rA",
    )  # fmt: skip
    run.stdout.fnmatch_lines(["PASSED *test_reference[[]toy[]]*", "PASSED *test_reference[[]acoustic[]]*"])
    assert source_spec("toy") is None  # the subprocess's registration never reached this process


def test_a_registered_source_gets_a_features_subcommand(toy, toy_case, tmp_path):
    from click.testing import CliRunner

    from stage1_5.cli import cli

    with registered(toy.TOY):
        result = CliRunner().invoke(cli, ["features", "toy", "-c", str(toy_case), "--no-progress", "-o", str(tmp_path / "toy.npz")])
    assert result.exit_code == 0, result.output
    assert "toy: 24 utterances, 1 representations" in result.output and (tmp_path / "toy.npz").is_file()


def test_the_planted_source_serves_the_demo_utterances_and_refuses_others():
    from stage1_5.config import PlantedConfig
    from stage1_5.data.manifest import Utterance
    from stage1_5.errors import FeatureError
    from stage1_5.features.external import load_external_features
    from stage1_5.planted_demo import PLANTED_BACKBONE, PlantedExtractor

    ids, arrays = load_external_features(PLANTED_BACKBONE)
    extractor = PlantedExtractor(PlantedConfig())
    assert extractor.representation_names() == ["planted:decoder_block_00", "planted:decoder_block_08"]
    utts = [Utterance(id=ids[i], speaker="s", accent="a", text_id="t") for i in (5, 0)]
    (batch,) = extractor.extract_batches(utts, 8)
    np.testing.assert_array_equal(batch.vectors["planted:decoder_block_08"], arrays["planted:decoder_block_08"][[5, 0]])
    with pytest.raises(FeatureError, match=r"sources.planted: utterance 'nope' has no planted features"):
        list(extractor.extract_batches([Utterance(id="nope", speaker="s", accent="a", text_id="t")], 8))
