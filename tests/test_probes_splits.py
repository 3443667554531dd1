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
