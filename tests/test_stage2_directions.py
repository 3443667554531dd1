"""Accent directions: the frozen probe in the layer's raw feature space, its C, the file pair and its loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from stage1_5.errors import Stage2Error
from stage1_5.probes.planted import planted_dataset
from stage1_5.stage2 import load_directions
from stage1_5.stage2.directions import (
    SIDECAR_FILE,
    TENSORS_FILE,
    CChoice,
    alias_site,
    choose_c,
    fit_layer_directions,
    fit_probe,
    save_directions,
)

REP = "backbone:decoder_block_02"


def planted(n_accents=3, **kw):
    data = planted_dataset(n_accents=n_accents, speakers_per_accent=4, n_texts=6, dim=12, accent=2.0, speaker=0.5, name=REP, **kw)
    X = data.features[REP].astype(np.float64) * 3.0 + 5.0  # off-centre and scaled: the folding must undo both
    return X, data.meta["accent"].to_numpy(), data.meta["speaker"].to_numpy()


@pytest.fixture(scope="module")
def fitted():
    X, accents, speakers = planted()
    d = fit_layer_directions(X, accents, CChoice(0.1, (0.1,)), layer="decoder_block_02", representation=REP, module_path="talker.model.layers.2", axis="talker")
    return X, accents, d


def test_folded_weights_give_the_standardised_probes_logits_on_raw_vectors(fitted):
    X, accents, d = fitted
    scaler, probe = fit_probe(X, accents.astype(str), 0.1)
    expected = probe.decision_function(scaler.transform(X))
    np.testing.assert_allclose(d.logits(torch.as_tensor(X)).numpy(), expected, atol=1e-4)
    assert d.accents == tuple(probe.classes_)


def test_two_accents_are_two_logits_whose_softmax_is_the_probes_sigmoid():
    X, accents, _ = planted(n_accents=2)
    d = fit_layer_directions(X, accents, CChoice(1.0, (1.0,)), layer="l", representation="backbone:l")
    scaler, probe = fit_probe(X, accents.astype(str), 1.0)
    p = torch.softmax(d.logits(torch.as_tensor(X)).double(), 1)[:, 1].numpy()
    np.testing.assert_allclose(p, probe.predict_proba(scaler.transform(X))[:, 1], atol=1e-5)
    assert d.weight.shape == (2, X.shape[1])


def test_class_means_are_the_per_accent_means(fitted):
    X, accents, d = fitted
    for k, accent in enumerate(d.accents):
        np.testing.assert_allclose(d.class_means[k].numpy(), X[accents == accent].mean(0), rtol=1e-5)


def test_lda_basis_reproduces_scikit_learns_transform(fitted):
    X, accents, d = fitted
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(X, accents.astype(str))
    np.testing.assert_allclose(d.lda(torch.as_tensor(X)).numpy(), lda.transform(X), rtol=1e-4, atol=1e-4)


def test_accent_basis_is_orthonormal_and_spans_the_logit_contrasts(fitted):
    _, _, d = fitted
    B = d.accent_basis.double()
    np.testing.assert_allclose((B @ B.T).numpy(), np.eye(len(d.accents) - 1), atol=1e-5)
    W = d.weight.double() - d.weight.double().mean(0)
    np.testing.assert_allclose((W @ B.T @ B).numpy(), W.numpy(), atol=1e-4)  # projecting onto the basis keeps every contrast


def test_direction_norm_grows_with_the_planted_accent_strength():
    def norm(strength):
        data = planted_dataset(n_accents=3, speakers_per_accent=4, n_texts=6, dim=12, accent=strength, name=REP)
        X, accents = data.features[REP].astype(np.float64), data.meta["accent"].to_numpy()
        return fit_layer_directions(X, accents, CChoice(1.0, (1.0,)), layer="l", representation=REP).direction_norm

    assert norm(3.0) > 2 * norm(1.0) > 0


def test_a_single_c_is_taken_without_an_inner_cv():
    X, accents, speakers = planted()
    assert choose_c(X, accents, speakers, c_grid=[0.5], inner_folds=3, seeds=[0, 1]) == CChoice(0.5, (0.5, 0.5))


def test_the_chosen_c_is_the_one_most_fold_seeds_choose(monkeypatch):
    X, accents, speakers = planted()
    # pooled inner-CV F1 per C (grid sorted: 0.1, 1, 10), one row per fold seed: bests are 1, 10, 1
    scripted = iter([0.5, 0.9, 0.8, 0.5, 0.6, 0.7, 0.4, 0.9, 0.2])
    monkeypatch.setattr("stage1_5.stage2.directions.f1_score", lambda *a, **k: next(scripted))
    choice = choose_c(X, accents, speakers, c_grid=[10.0, 0.1, 1.0], inner_folds=2, seeds=[0, 1, 2])
    assert choice == CChoice(1.0, (1.0, 10.0, 1.0))


def test_ties_go_to_the_smaller_c():
    X, accents, speakers = planted()  # a strong planted accent: every C separates the held-out speakers perfectly
    choice = choose_c(X, accents, speakers, c_grid=[10.0, 0.001, 1.0], inner_folds=2, seeds=[0, 1])
    assert choice == CChoice(0.001, (0.001, 0.001))


def test_too_few_speakers_for_an_inner_cv_take_the_middle_c_with_a_note():
    X, accents, speakers = planted()
    one_per_accent = np.isin(speakers, [s for a in np.unique(accents) for s in sorted(set(speakers[accents == a]))[:1]])
    choice = choose_c(X[one_per_accent], accents[one_per_accent], speakers[one_per_accent], c_grid=[0.01, 0.1, 1.0], inner_folds=3, seeds=[0])
    assert choice.C == 0.1 and "inner CV impossible" in choice.note


def test_aliases_map_to_the_backbones_module_paths_without_a_model():
    assert alias_site("decoder_block_08") == ("talker.model.layers.8", "talker")
    assert alias_site("text_encoder_out") == ("talker.text_projection", "text")
    assert alias_site("pre_vocoder") == ("speech_tokenizer.model.decoder.pre_transformer", "frames")
    assert alias_site("talker.model.layers.3.mlp") == ("talker.model.layers.3.mlp", None)


def test_saved_directions_load_as_tensors_with_the_sidecars_facts(fitted, tmp_path):
    _, _, d = fitted
    save_directions([d], tmp_path / "artifacts" / "stage2", {"accents": list(d.accents), "pooling": "mean", "checkpoint": "tiny-random"})
    loaded = load_directions(tmp_path, dtype=torch.float64)
    got = loaded["decoder_block_02"]
    assert loaded[REP] is got and loaded.meta["pooling"] == "mean" and loaded.accents == list(d.accents)
    assert got.module_path == "talker.model.layers.2" and got.C == 0.1 and got.weight.dtype == torch.float64
    for name, tensor in d.tensors().items():
        np.testing.assert_array_equal(getattr(got, name).float().numpy(), tensor.numpy())


def test_two_backbones_blocks_of_the_same_depth_keep_their_own_directions(fitted, tmp_path):
    from dataclasses import replace

    _, _, d = fitted
    other = replace(d, representation="csm1b:decoder_block_02", **{**{n: t.clone() for n, t in d.tensors().items()}, "weight": d.weight * 2})
    mine = replace(d, representation="qwen17:decoder_block_02")
    save_directions([mine, other], tmp_path, {"accents": list(d.accents)})
    loaded = load_directions(tmp_path, dtype=torch.float64)
    assert sorted(loaded.layers) == ["csm1b:decoder_block_02", "qwen17:decoder_block_02"]
    assert loaded["csm1b:decoder_block_02"].layer == "decoder_block_02"
    np.testing.assert_array_equal(loaded["csm1b:decoder_block_02"].weight.numpy(), 2 * loaded["qwen17:decoder_block_02"].weight.numpy())


def test_a_replaced_tensors_file_is_refused(fitted, tmp_path):
    _, _, d = fitted
    save_directions([d], tmp_path, {"accents": list(d.accents)})
    (tmp_path / TENSORS_FILE).write_bytes((tmp_path / TENSORS_FILE).read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(Stage2Error, match="sha256 does not match"):
        load_directions(tmp_path)


def test_a_sidecar_of_another_format_is_refused(fitted, tmp_path):
    _, _, d = fitted
    save_directions([d], tmp_path, {"accents": list(d.accents)})
    sidecar = json.loads((tmp_path / SIDECAR_FILE).read_text())
    (tmp_path / SIDECAR_FILE).write_text(json.dumps({**sidecar, "version": 99}))
    with pytest.raises(Stage2Error, match="format version 99"):
        load_directions(tmp_path)


def test_a_run_without_directions_names_the_folder(tmp_path):
    with pytest.raises(Stage2Error, match=f"{tmp_path}: no accent directions"):
        load_directions(tmp_path)


def test_an_unknown_layer_lists_the_layers_in_the_file(fitted, tmp_path):
    _, _, d = fitted
    save_directions([d], tmp_path, {"accents": list(d.accents)})
    with pytest.raises(Stage2Error, match="no accent directions for layer 'decoder_block_09'; the file has decoder_block_02"):
        load_directions(tmp_path)["decoder_block_09"]


def test_a_version_1_sidecar_of_one_backbone_still_loads(fitted, tmp_path):
    _, _, d = fitted
    save_directions([d], tmp_path, {"accents": list(d.accents)})
    sidecar = json.loads((tmp_path / SIDECAR_FILE).read_text())
    (tmp_path / SIDECAR_FILE).write_text(json.dumps({**sidecar, "version": 1}))
    assert load_directions(tmp_path)["decoder_block_02"].representation == REP
