"""Speaker-disjoint, accent-stratified folds and crossed speaker × text folds."""

import numpy as np
import pytest

from stage1_5.errors import ProbeError
from stage1_5.probes.splits import SpeakerPerAccentFold, TextFold, crossed_splits

# 3 accents with 3, 4 and 5 speakers; 4 texts each
SPK_PER_ACC = [3, 4, 5]
speakers = np.array([f"{a}{i}" for a, n in zip("abc", SPK_PER_ACC) for i in range(n) for _ in range(4)])
accents = np.array([s[0] for s in speakers])
texts = np.tile([f"t{i}" for i in range(4)], len(speakers) // 4)
X = np.zeros((len(speakers), 1))


def test_speaker_per_accent_holds_out_one_speaker_per_accent_per_fold():
    folds = list(SpeakerPerAccentFold(random_state=0).split(X, accents, speakers))
    assert len(folds) == min(SPK_PER_ACC)
    for train, test in folds:
        assert not set(speakers[train]) & set(speakers[test])
        held = {a: len(set(speakers[test][accents[test] == a])) for a in "abc"}
        assert min(held.values()) >= 1 and held["a"] == 1
    all_test = np.concatenate([t for _, t in folds])
    assert sorted(all_test) == list(range(len(X)))


def test_different_seeds_give_different_speaker_assignments():
    a = SpeakerPerAccentFold(random_state=0).fold_of_speaker(accents, speakers)
    b = SpeakerPerAccentFold(random_state=1).fold_of_speaker(accents, speakers)
    assert a != b and sorted(a) == sorted(b)


def test_too_many_folds_for_the_smallest_accent_is_an_error():
    with pytest.raises(ProbeError, match="speakers in every accent"):
        list(SpeakerPerAccentFold(4).split(X, accents, speakers))


def test_crossed_folds_never_leak_held_out_speakers_or_unseen_texts():
    sp = list(SpeakerPerAccentFold(random_state=0).split(X, accents, speakers))
    tx = list(TextFold(2, random_state=0).split(X, None, texts))
    n = 0
    for f, g, train, seen, unseen in crossed_splits(sp, tx):
        n += 1
        assert not set(speakers[train]) & (set(speakers[seen]) | set(speakers[unseen]))
        assert set(texts[seen]) <= set(texts[train]) and not set(texts[unseen]) & set(texts[train])
        assert sorted(np.concatenate([seen, unseen])) == sorted(sp[f][1])
    assert n == len(sp) * 2


def test_text_fold_needs_enough_texts():
    with pytest.raises(ProbeError, match="distinct text_id"):
        list(TextFold(5).split(X, None, texts))


# --------------------------------------------------------------------------- fold design by size


def _meta(speakers_per_accent):
    """3 accents × `speakers_per_accent` speakers × 2 texts."""
    from stage1_5.probes.planted import planted_dataset

    return planted_dataset(speakers_per_accent=speakers_per_accent, n_texts=2, dim=4).meta


def test_a_design_beyond_the_speaker_fold_limit_gets_grouped_folds_balanced_over_accents():
    from stage1_5.config import ProbeConfig
    from stage1_5.probes.design import build_design

    cfg = ProbeConfig(seeds=2, permutations=0, bootstrap=0, speaker_fold_limit=6, large_design_folds=3)
    design = build_design(_meta(7), cfg)
    assert (design.folds.kind, design.folds.folds, design.folds.large) == ("grouped", 3, True)
    assert "beyond 6 speakers" in design.folds.describe()
    for seed in range(2):
        assert len(design.outer[seed]) == 3
        held = np.concatenate([te for _, te in design.outer[seed]])
        assert sorted(held) == list(range(len(design.y)))  # every row held out exactly once
        for train, test in design.outer[seed]:
            assert not set(design.spk[train]) & set(design.spk[test])  # speakers never split
            per_accent = np.bincount(design.speaker_accent[np.unique(design.spk[test])], minlength=3)
            assert set(per_accent) <= {2, 3}  # 7 speakers over 3 folds: 2 or 3 of every accent
    assert design.outer[0][0][1].tolist() != design.outer[1][0][1].tolist()  # fold seeds reshuffle speakers


def test_a_design_at_the_speaker_fold_limit_keeps_one_speaker_per_accent_per_fold():
    from stage1_5.config import ProbeConfig
    from stage1_5.probes.design import build_design

    cfg = ProbeConfig(seeds=1, permutations=0, bootstrap=0, speaker_fold_limit=6, large_design_folds=3)
    design = build_design(_meta(6), cfg)
    assert (design.folds.kind, design.folds.folds, design.folds.large) == ("speaker_per_accent", 6, False)
    assert all(len(np.unique(design.spk[te])) == 3 for _, te in design.outer[0])


def test_more_large_design_folds_than_the_limit_is_a_config_error():
    from pydantic import ValidationError

    from stage1_5.config import ProbeConfig

    with pytest.raises(ValidationError, match="large_design_folds"):
        ProbeConfig(speaker_fold_limit=4, large_design_folds=5)


def test_the_speaker_id_probe_is_capped_to_a_subsample_spread_over_the_accents():
    from stage1_5.config import ProbeConfig
    from stage1_5.probes.design import build_design

    cfg = ProbeConfig(seeds=1, permutations=0, bootstrap=0, speaker_id_max_speakers=7)
    design = build_design(_meta(5), cfg)
    plan = design.speaker_id
    assert (plan.n_classes, plan.total_speakers, plan.capped) == (7, 15, True)
    chosen = np.unique(design.spk[plan.rows])
    assert sorted(np.bincount(design.speaker_accent[chosen], minlength=3)) == [2, 2, 3]
    assert sorted(np.unique(plan.labels[plan.rows])) == list(range(7)) and (plan.labels[plan.labels < 0] == -1).all()
    assert set(plan.rows) == set(np.flatnonzero(np.isin(design.spk, chosen)))
    for inner in design.spk_inner[0]:
        assert set(inner.rows) <= set(plan.rows)
    assert "7 of 15 speakers" in plan.describe()
    assert not build_design(_meta(2), cfg).speaker_id.capped
