"""Planted truth: each metric recovers a structure put into the data, and misses what isn't there."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from stage1_5.config import ProbeConfig
from stage1_5.probes import METRIC_COLUMNS, evaluate_representations, macro_f1
from stage1_5.probes.engine import BatchedLogisticRegression
from stage1_5.probes.planted import planted_dataset

torch.set_num_threads(1)
CONFIG = ProbeConfig(seeds=2, permutations=19, bootstrap=200, device="cpu")
SCENARIOS = {  # 3 accents × 6 speakers × 10 texts
    "planted:strong": dict(accent=1.0),
    "planted:text_only_cue": dict(accent_x_text=2.0, dim=64),
    "planted:text_free_cue": dict(accent=0.5, dim=64),
    "planted:leaky": dict(accent=1.0, leak=2.0),
    "planted:orthogonal_speakers": dict(accent=1.0, speaker=2.0),
}


@pytest.fixture(scope="module")
def results():
    features, meta = {}, None
    for name, kw in SCENARIOS.items():
        data = planted_dataset(name=name, random_state=0, **kw)
        features.update(data.features)
        meta = data.meta
    return evaluate_representations(features, meta, CONFIG, progress=False)


@pytest.fixture(scope="module")
def metrics(results):
    return results.metrics.set_index("representation")


@pytest.fixture(scope="module")
def confound():
    data = planted_dataset(speaker=3.0, random_speaker_accents=True, random_state=0)
    return data, evaluate_representations(data.features, data.meta, CONFIG, progress=False)


def test_metrics_have_the_public_columns_in_order(results):
    assert list(results.metrics.columns) == METRIC_COLUMNS
    row = results.metrics.iloc[0]
    assert (row.source, row.layer, row.n_speakers, row.n_utterances) == ("planted", "strong", 18, 180)


def test_strong_accent_signal_gives_f1_near_one_and_small_p(metrics):
    m = metrics.loc["planted:strong"]
    assert m.accent_f1 >= 0.95 and m.accent_f1_ci_low >= 0.9
    assert m.p_value == pytest.approx(1 / 20) and m.p_value_fwer == pytest.approx(1 / 20)
    assert m.majority_f1 == pytest.approx(1 / 6)


def test_speaker_confound_is_chance_under_speaker_folds_but_high_under_utterance_split(confound):
    data, res = confound
    m = res.metrics.iloc[0]
    assert m.accent_f1 < 0.45 and m.p_value > 0.2
    assert m.speaker_acc > 0.9  # the speakers are there, the accent is not
    # the trap: an utterance-level split puts every speaker on both sides and "finds" the accent
    X, y = data.features["planted:layer_00"], data.meta["accent"].to_numpy()
    probe = make_pipeline(StandardScaler(), BatchedLogisticRegression(C=1.0, class_weight="balanced"))
    pred = cross_val_predict(probe, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0))
    assert macro_f1(y, pred) > 0.9


def test_accent_cue_that_exists_only_per_text_gives_a_large_text_drop(metrics):
    m = metrics.loc["planted:text_only_cue"]
    assert m.text_f1_seen > 0.9 and m.text_f1_unseen < 0.5
    assert m.text_drop > 0.4


def test_text_independent_cue_gives_no_text_drop(metrics):
    assert abs(metrics.loc["planted:text_free_cue"].text_drop) < 0.05


def test_speakers_spread_along_the_accent_axis_leak(metrics):
    m = metrics.loc["planted:leaky"]
    assert m.leak_excess_pp > 15
    assert m.leak_chance == pytest.approx(1 / 6, abs=0.03)  # 1/speakers-per-accent, not 1/18


def test_speaker_variation_orthogonal_to_accent_does_not_leak(metrics):
    m = metrics.loc["planted:orthogonal_speakers"]
    assert -5 <= m.leak_excess_pp <= 7
    assert m.leak_chance == pytest.approx(1 / 6, abs=0.03)
    assert m.speaker_acc > 0.9  # strong speaker identity in the full representation


def test_mixed_coordinates_are_an_invertible_linear_view_of_the_same_code():
    """`mixed` changes the coordinates, not the code: the unmixed features are an exact linear
    function of the mixed ones, so a speaker-free accent readout still exists."""
    plain = planted_dataset(speaker=2.0, random_state=3).features["planted:layer_00"].astype(float)
    mixed = planted_dataset(speaker=2.0, mixed=True, random_state=3).features["planted:layer_00"].astype(float)
    back, *_ = np.linalg.lstsq(mixed, plain, rcond=None)
    assert np.abs(mixed @ back - plain).max() < 1e-3 * np.abs(plain).max()
    assert not np.allclose(mixed, plain, atol=0.1)  # other coordinates


def test_predictions_are_out_of_fold_for_every_seed_and_split(results):
    p = results.predictions
    cv = p[(p.split == "speaker_cv") & (p.representation == "planted:strong")]
    assert len(cv) == 180 * CONFIG.seeds and cv.groupby("seed").utt_id.nunique().eq(180).all()
    assert set(p.split) == {"speaker_cv", "text_seen", "text_unseen"}
    labels, conf = results.confusion["planted:strong"]
    assert labels == ["acc0", "acc1", "acc2"] and conf.sum() == 180 * CONFIG.seeds
    assert results.label_map == {"acc0": 0, "acc1": 1, "acc2": 2}


def test_the_jackknife_replicate_without_a_misplaced_speaker_is_the_only_one_free_of_its_errors():
    # replicate i reruns every fold seed's CV without speaker i (neither trained on nor scored): a
    # speaker labelled accent 0 with an accent-1 voice costs every replicate F1 but its own
    from stage1_5.probes.design import build_design
    from stage1_5.probes.engine import TorchBackend
    from stage1_5.probes.protocol import _phase_b, _refit_f1

    data = planted_dataset(n_accents=3, speakers_per_accent=4, n_texts=6, accent=1.5, random_state=2)
    X = data.features["planted:layer_00"].copy()
    speaker = data.meta.speaker.to_numpy()
    X[speaker == "s00"] = X[speaker == "s04"]  # s00 (accent 0) speaks with s04's (accent 1) voice
    cfg = ProbeConfig(seeds=2, permutations=0, bootstrap=200, c_grid=[1.0], device="cpu")  # 12 speakers: one per unit
    design = build_design(data.meta, cfg)
    replicates = _refit_f1(design, cfg, *_phase_b(X, design, cfg, TorchBackend("cpu")))
    misplaced = design.jackknife_units[design.speakers.index("s00")]
    assert replicates.shape == (2, 12)
    assert (replicates[:, misplaced] == 1.0).all()  # nor scored: every remaining speaker is right
    assert (np.delete(replicates, misplaced, 1) < 0.95).all()
    m = evaluate_representations({"planted:layer_00": X}, data.meta, cfg, progress=False).metrics.iloc[0]
    assert m.accent_f1_ci_low < m.accent_f1 < m.accent_f1_ci_high


def test_permutations_zero_gives_nan_p_values():
    data = planted_dataset(accent=1.0, speakers_per_accent=3, n_texts=4, dim=8)
    cfg = ProbeConfig(seeds=1, permutations=0, bootstrap=0, c_grid=[1.0], device="cpu")
    m = evaluate_representations(data.features, data.meta, cfg, progress=False).metrics.iloc[0]
    assert np.isnan(m.p_value) and np.isnan(m.p_value_fwer) and np.isnan(m.accent_f1_ci_low)


@pytest.fixture(scope="module")
def null_and_signal_families():
    features = {}
    for i, accent in enumerate([0.0, 0.0, 0.3]):
        family = "null" if accent == 0 else "signal"
        data = planted_dataset(speakers_per_accent=6, n_texts=8, dim=32, accent=accent, speaker=0.4, name=f"{family}:layer_{i}", random_state=i)
        features.update(data.features)
    # two fold seeds: the continuation of an unsettled family must rebuild the same seed-averaged null
    cfg = ProbeConfig(seeds=2, permutations=199, bootstrap=0, c_grid=[0.1, 1.0], device="cpu")
    full = evaluate_representations(features, data.meta, cfg, progress=False)
    sequential = evaluate_representations(features, data.meta, cfg, alpha=0.05, progress=False)
    return full.metrics.set_index("representation"), sequential


def test_sequential_stop_ends_a_settled_null_family_after_the_first_look(null_and_signal_families):
    full, sequential = null_and_signal_families
    m = sequential.metrics.set_index("representation")
    assert (m.loc[["null:layer_0", "null:layer_1"], "n_permutations"] == 40).all()  # 4 · h, h = ⌈0.05 · 200⌉
    assert m.loc["signal:layer_2", "n_permutations"] == 199
    assert any("null: family-wise p ≥ alpha settled after 40 of 199" in note for note in sequential.notes)
    assert (full["n_permutations"] == 199).all()


def test_sequential_stop_keeps_every_decision_and_every_significant_p(null_and_signal_families):
    full, sequential = null_and_signal_families
    m = sequential.metrics.set_index("representation")
    np.testing.assert_array_equal(m["p_value_fwer"] < 0.05, full["p_value_fwer"] < 0.05)
    assert m.loc["signal:layer_2", "p_value_fwer"] == full.loc["signal:layer_2", "p_value_fwer"] < 0.05
    assert (m.loc[["null:layer_0", "null:layer_1"], "p_value_fwer"] >= 0.05).all()
    np.testing.assert_array_equal(m["accent_f1"], full["accent_f1"])
    assert m.loc["signal:layer_2", "null_f1_mean"] == pytest.approx(full.loc["signal:layer_2", "null_f1_mean"])
