"""LEACE erasure on planted features whose truth is known: speakers spread along their accent's axis
(leaky) against speakers orthogonal to every accent axis (clean)."""

from __future__ import annotations

import numpy as np
import pytest

from stage1_5.config import Stage2Config
from stage1_5.probes.planted import planted_dataset
from stage1_5.stage2 import ERASURE_COLUMNS, erasure_metrics
from stage1_5.stage2.erasure import (
    accent_erasure_folds,
    erase,
    fit_eraser,
    speaker_contrasts,
    speaker_erasure_folds,
)
from stage1_5.probes.stats import speaker_resamples

NAME = "backbone:decoder_block_08"
DESIGN = dict(n_accents=3, speakers_per_accent=8, n_texts=10, dim=32, name=NAME, random_state=1)
CFG = Stage2Config(bootstrap=300)


def erasure_row(**planted):
    data = planted_dataset(**DESIGN, **planted)
    frame, notes = erasure_metrics(data.features, data.meta, CFG, {NAME: 1.0})
    return frame.set_index("representation").loc[NAME], notes


@pytest.fixture(scope="module")
def leaky():
    return erasure_row(accent=2.0, leak=3.0)[0]


@pytest.fixture(scope="module")
def clean():
    return erasure_row(accent=2.0, speaker=0.5)[0]


def test_erasing_accent_costs_leaky_speakers_much_of_their_identification(leaky):
    assert leaky["erase_accent_speaker_acc"] - leaky["erase_accent_speaker_chance"] > 0.3  # identifiable before
    assert leaky["erase_accent_speaker_drop_ci_low"] > 0.1
    assert leaky["erase_accent_speaker_loss_ci_low"] > 0.2


def test_erasing_accent_leaves_clean_speakers_identifiable(clean):
    assert clean["erase_accent_speaker_acc"] - clean["erase_accent_speaker_chance"] > 0.3
    assert clean["erase_accent_speaker_drop_ci_low"] <= 0 <= clean["erase_accent_speaker_drop_ci_high"]
    assert abs(clean["erase_accent_speaker_loss"]) < 0.1


def test_the_accent_eraser_removes_accent_from_held_out_speakers(leaky, clean):
    constant_prediction_f1 = (2 / 3) / (1 + 1 / 3) / 3  # macro-F1 of always answering one of 3 balanced accents
    for row in (leaky, clean):
        assert row["erase_accent_residual_f1"] < constant_prediction_f1 + 0.1


def test_erasing_speaker_contrasts_takes_accent_away_when_speakers_spread_along_it(leaky):
    assert leaky["erase_speaker_accent_f1_drop_ci_low"] > 0.1
    assert leaky["erase_speaker_accent_f1"] < leaky["erase_speaker_accent_f1_base"] - 0.2


def test_accent_survives_erasing_speaker_contrasts_when_speakers_are_orthogonal_to_it(clean):
    assert clean["erase_speaker_accent_f1_ci_low"] > 0.9
    assert abs(clean["erase_speaker_accent_f1_drop"]) < 0.05


def test_no_identification_above_chance_gives_no_share_of_it():
    row, _ = erasure_row(accent=2.0)  # speakers differ by noise only
    assert np.isnan(row["erase_accent_speaker_loss"]) and not np.isnan(row["erase_accent_speaker_drop"])


def test_every_erasure_column_is_returned_keyed_by_representation(leaky):
    assert list(leaky.index) == ERASURE_COLUMNS


def test_too_few_speakers_for_the_accent_erasure_is_nan_with_a_note():
    data = planted_dataset(n_accents=3, speakers_per_accent=3, n_texts=6, dim=16, accent=2.0, name=NAME)
    frame, notes = erasure_metrics(data.features, data.meta, CFG, {NAME: 1.0})
    row = frame.iloc[0]
    assert np.isnan(row["erase_accent_speaker_drop"]) and not np.isnan(row["erase_speaker_accent_f1"])
    assert any("accent erasure needs ≥ 4 speakers in every accent" in n for n in notes)


def _speaker_sets(meta, folds):
    return [(set(meta["speaker"].iloc[tr]), set(meta["speaker"].iloc[te])) for tr, te in folds]


def test_accent_erasure_folds_hold_out_two_or_more_speakers_per_accent_never_seen_in_training():
    meta = planted_dataset(**DESIGN).meta
    accents, speakers = meta["accent"].to_numpy(), meta["speaker"].to_numpy()
    for seed_index in range(2):
        folds = accent_erasure_folds(accents, speakers, CFG, seed_index)
        assert len(folds) == CFG.erasure_folds
        for train, held in _speaker_sets(meta, folds):
            assert not train & held
            per_accent = meta[meta["speaker"].isin(held)].groupby("accent")["speaker"].nunique()
            assert (per_accent >= 2).all() and len(per_accent) == 3


def test_speaker_erasure_folds_hold_out_one_speaker_per_accent():
    meta = planted_dataset(**DESIGN).meta
    folds = speaker_erasure_folds(meta["accent"].to_numpy(), meta["speaker"].to_numpy(), CFG, 0)
    assert len(folds) == DESIGN["speakers_per_accent"]
    for train, held in _speaker_sets(meta, folds):
        assert not train & held and len(held) == 3


def test_speaker_contrasts_carry_no_accent_label():
    meta = planted_dataset(**DESIGN).meta.iloc[5:]  # unbalanced: one speaker lost utterances
    Z = speaker_contrasts(meta["speaker"].to_numpy(), meta["accent"].to_numpy())
    for accent in meta["accent"].unique():
        np.testing.assert_allclose(Z[meta["accent"].to_numpy() == accent].mean(0), 0, atol=1e-12)


def test_erasing_speaker_contrasts_sets_every_training_speakers_mean_to_its_accents():
    data = planted_dataset(**DESIGN, accent=1.0, speaker=1.0, leak=1.0)
    X, meta = data.features[NAME].astype(np.float64), data.meta
    speakers, accents = meta["speaker"].to_numpy(), meta["accent"].to_numpy()
    Xe = erase(fit_eraser(X, speaker_contrasts(speakers, accents)), X)
    for spk in np.unique(speakers):
        mine = speakers == spk
        np.testing.assert_allclose(Xe[mine].mean(0), Xe[accents == accents[mine][0]].mean(0), atol=1e-8)
    assert np.linalg.norm(Xe[accents == "acc0"].mean(0) - Xe[accents == "acc1"].mean(0)) > 0.1  # accents stay apart


def test_bootstrap_resamples_keep_every_accents_speaker_count():
    speaker_accent = np.array(["a", "a", "a", "b", "b"])
    w = speaker_resamples(speaker_accent, 200, np.random.default_rng(0))
    assert (w[:, :3].sum(1) == 3).all() and (w[:, 3:].sum(1) == 2).all()
    assert w.std(0).min() > 0  # speakers are actually redrawn
