"""AccentMonitor on the tiny random Qwen3-TTS: the extraction's own hooks and pooling, the frozen probe's
readings, the model left as it was found, and the documented LoRA example under a Trainer."""

from __future__ import annotations

import runpy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
from stage1_5.backbone.families.qwen3_tts import encode_utterances, get_module, teacher_forced_pass
from stage1_5.backbone.synthetic import build_tiny_qwen3_tts
from stage1_5.config import DEMO_DATASET, BackboneConfig, DatasetConfig
from stage1_5.data.dataset import load_dataset
from stage1_5.data.manifest import Utterance
from stage1_5.errors import Stage2Error
from stage1_5.paths import STAGE2_DIR
from stage1_5.stage2 import AccentMonitor
from stage1_5.stage2.directions import CChoice, fit_layer_directions, save_directions
from stage1_5.stage2.monitor import within_accent_leakage

torch.set_num_threads(1)

LAYER = "decoder_block_02"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "stage2_lora_monitor.py"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The embedded demo set through the data layer (audio paths resolved, transcripts attached)."""
    return load_dataset(DEMO_DATASET, DatasetConfig(), work_dir=tmp_path_factory.mktemp("datasets"), progress=False).utterances


def pick(demo, speakers: tuple[str, ...], texts: tuple[str, ...]) -> list[Utterance]:
    """The demo utterances of speaker numbers (`_s01`) and text ids (`t01`)."""
    return [u for u in demo if u.speaker.endswith(speakers) and u.text_id in texts]


@pytest.fixture(scope="module")
def tts():
    return build_tiny_qwen3_tts(0)


@pytest.fixture(scope="module")
def heldout(demo):
    return pick(demo, ("_s03", "_s04"), ("t01", "t02"))


def extraction_vectors(tts, utterances) -> np.ndarray:
    adapter = HuggingFaceBackboneAdapter(BackboneConfig(checkpoint="tiny-random", layers=[LAYER], device="cpu", num_workers=0), tts=tts)
    by_id = {uid: v for batch in adapter.extract_batches(utterances) for uid, v in zip(batch.utt_ids, batch.vectors[LAYER])}
    return np.stack([by_id[u.id] for u in utterances])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tts, demo):
    """A run folder holding directions fit on speakers s01, s02 of every demo accent (texts t01..t04)."""
    fit = pick(demo, ("_s01", "_s02"), ("t01", "t02", "t03", "t04"))
    X = extraction_vectors(tts, fit).astype(np.float64)
    accents = np.array([u.accent for u in fit])
    d = fit_layer_directions(X, accents, CChoice(1.0, (1.0,)), layer=LAYER, representation=f"backbone:{LAYER}", module_path="talker.model.layers.2", axis="talker")
    root = tmp_path_factory.mktemp("run")
    meta = {
        "accents": list(d.accents), "checkpoint": "tiny-random", "pooling": "mean", "positions": "audio", "speaker_slot": "xvector",
        "language": None, "origins": {d.representation: "extracted"},
    }  # fmt: skip
    save_directions([d], root / STAGE2_DIR, meta)
    return root


@pytest.fixture(scope="module")
def monitor(run_dir):
    return AccentMonitor(run_dir, LAYER)


def test_a_reading_of_the_untouched_model_sees_the_extraction_vectors(monitor, tts, heldout):
    expected = extraction_vectors(tts, heldout)
    np.testing.assert_allclose(monitor.vectors(tts, heldout), expected, atol=1e-6)
    reading = monitor.measure(tts, heldout)
    predicted = np.asarray(monitor.directions.accents)[monitor.directions.logits(torch.as_tensor(expected)).argmax(1).numpy()]
    assert reading.accent_f1 == pytest.approx(f1_score([u.accent for u in heldout], predicted, average="macro"))
    assert reading.n_utterances == 12 and reading.n_speakers == 6
    assert np.isfinite([reading.leak_acc, reading.leak_chance, reading.direction_norm_ratio]).all()


def test_capture_and_pool_on_a_plain_module_give_the_same_vectors(monitor, tts, heldout):
    wavs = [u.load_audio(24000) for u in heldout]
    encoded = encode_utterances(tts, wavs, [u.text for u in heldout])
    with torch.no_grad(), monitor.capture(tts.model) as cache:  # the model's own module tree, sidecar module path
        inputs = teacher_forced_pass(tts, encoded, run_codec=False)
    pooled = monitor.pool(cache, inputs.position_masks["audio"])
    np.testing.assert_allclose(pooled.numpy(), extraction_vectors(tts, heldout), atol=1e-5)


def test_no_hook_is_left_on_the_model(monitor, tts, heldout):
    module = get_module(tts, "talker.model.layers.2")
    monitor.measure(tts, heldout[:6])
    with monitor.capture(tts.model):
        assert len(module._forward_hooks) == 1
    assert len(module._forward_hooks) == 0


def test_measuring_leaves_a_training_model_in_training_mode(monitor, tts, heldout):
    tts.model.train()
    try:
        monitor.measure(tts, heldout[:6])
        assert tts.model.training and tts.model.talker.model.layers[2].training
    finally:
        tts.model.eval()


def test_a_layer_at_another_module_path_is_refused(run_dir, tts, heldout):
    moved = AccentMonitor(run_dir, LAYER)
    moved.directions = replace(moved.directions, module_path="talker.model.layers.1")
    with pytest.raises(Stage2Error, match="is 'talker.model.layers.2' in this model but 'talker.model.layers.1' in the directions"):
        moved.measure(tts, heldout[:3])


def test_directions_from_external_features_cannot_be_measured_through_a_model(run_dir, tts, heldout):
    external = AccentMonitor(run_dir, LAYER)
    external.meta["origins"] = {external.directions.representation: "external"}
    with pytest.raises(Stage2Error, match="came from external features; measure"):
        external.measure(tts, heldout[:3])


def test_vectors_of_another_width_are_a_clear_error(monitor):
    with pytest.raises(Stage2Error, match=r"vectors of shape \(2, 5\); the directions need \[n, 64\]"):
        monitor.score(np.zeros((2, 5)), ["a", "b"], ["s1", "s2"], ["t1", "t2"])


def test_leakage_finds_speakers_that_the_projection_separates_and_not_shuffled_ones():
    rng = np.random.default_rng(0)
    speakers = np.repeat([f"s{i}" for i in range(6)], 40)  # 3 speakers per accent, 40 texts each
    accents = np.repeat(["a", "b"], 120)
    texts = np.tile([f"t{i}" for i in range(40)], 6)
    offsets = {s: rng.normal(size=2) * 3 for s in np.unique(speakers)}
    leaky = np.stack([offsets[s] for s in speakers]) + rng.normal(size=(240, 2)) * 0.3
    acc, chance = within_accent_leakage(leaky, speakers, accents, texts, rng)
    assert acc > 0.9 and abs(chance - 1 / 3) < 0.1
    acc, chance = within_accent_leakage(rng.normal(size=(240, 2)), speakers, accents, texts, rng)
    assert abs(acc - chance) < 0.12


def test_the_documented_lora_example_logs_a_reading_every_n_steps(run_dir, demo, heldout, tmp_path):
    example = runpy.run_path(str(EXAMPLE))
    tts = build_tiny_qwen3_tts(0)  # its own model: the LoRA adapters are injected in place
    base = {n: p.detach().clone() for n, p in tts.model.talker.named_parameters()}
    train = pick(demo, ("_s01", "_s02"), ("t01", "t02"))
    trainer, callback = example["train_with_monitor"](tts, run_dir, LAYER, train, heldout, steps=2, every_n_steps=1, output_dir=tmp_path)
    assert [r.step for r in callback.history] == [0, 1, 2]
    logged = [e for e in trainer.state.log_history if f"accent_monitor/{LAYER}/accent_f1" in e]
    assert [e["step"] for e in logged] == [0, 1, 2]
    lora = {n: p for n, p in tts.model.talker.named_parameters() if "lora_B" in n}
    assert lora and all(p.abs().sum() > 0 for p in lora.values())  # B starts at zero: the optimiser stepped
    frozen = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in tts.model.talker.named_parameters() if "lora_" not in n}
    assert all(torch.equal(frozen[n], base[n]) for n in base if n in frozen)
    assert callback.history[0].accent_f1 != callback.history[-1].accent_f1 or callback.history[0].direction_norm != callback.history[-1].direction_norm
