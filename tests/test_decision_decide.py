"""The run's decision (DESIGN §5): best level over backbone layers, references only diagnose."""

import json

import pytest

from stage1_5.config import ExperimentConfig, SourcesConfig
from stage1_5.decision import Level, RunFacts, decide
from stage1_5.sources import random_weights_caveats, random_weights_deciding
from stage1_5.decision.dummies import dummy_metrics, dummy_metrics_row as row
from stage1_5.errors import Stage15Error

T = ExperimentConfig()
NAN = float("nan")


def run(*rows, too_small=False, thresholds=T, **facts):
    return decide(dummy_metrics(rows), thresholds, facts=RunFacts(dataset_too_small=too_small, **facts))


def test_decision_is_best_backbone_level():
    d = run(row("backbone:decoder_block_02", accent_f1=0.30), row("backbone:decoder_block_08", accent_f1=0.50))
    assert d.decision == Level.CONDITIONAL
    assert d.best_representation == "backbone:decoder_block_08"


def test_best_representation_is_highest_f1_at_the_best_level():
    d = run(
        row("backbone:decoder_block_04", accent_f1=0.60),
        row("backbone:decoder_block_08", accent_f1=0.68),
        row("backbone:decoder_block_12", accent_f1=0.90, leak_excess_pp=30.0),  # higher F1 but NOGO
    )
    assert d.decision == Level.GO
    assert d.best_representation == "backbone:decoder_block_08"


def test_nogo_best_representation_is_highest_f1_backbone_layer():
    d = run(row("backbone:decoder_block_02", accent_f1=0.20), row("backbone:pre_vocoder", accent_f1=0.35))
    assert d.decision == Level.NOGO
    assert d.best_representation == "backbone:pre_vocoder"


def test_reference_never_decides():
    d = run(row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.99))
    assert d.decision == Level.NOGO
    assert d.best_representation == "backbone:decoder_block_08"
    assert d.levels["ssl:layer_06"] == Level.GO
    assert d.roles == {"backbone:decoder_block_08": "backbone", "ssl:layer_06": "reference"}


def test_rationale_names_the_numbers_of_a_go():
    d = run(row("backbone:decoder_block_08", accent_f1=0.72, accent_f1_ci_low=0.65, accent_f1_ci_high=0.80))
    assert d.rationale == (
        "Layer decoder_block_08 passes GO thresholds "
        "(F1=0.72 [0.65, 0.80], leakage excess=+2.1 pp, text_drop=0.05, family-wise p=0.004)."
    )


def test_rationale_of_conditional_names_the_missed_gate():
    d = run(row("backbone:decoder_block_08", accent_f1=0.50))
    assert "passes conditional-GO thresholds" in d.rationale
    assert "F1 0.50 < 0.55 (GO)" in d.rationale


def test_rationale_of_nogo_names_failed_gate_and_borderline():
    d = run(row("backbone:decoder_block_08", accent_f1=0.41))
    assert "F1 0.41 < 0.45 (conditional)" in d.rationale
    assert "borderline" in d.rationale and "more speakers may lift it" in d.rationale
    assert d.borderline == ["backbone:decoder_block_08"]


def test_borderline_only_when_the_layer_is_significant():
    d = run(row("backbone:decoder_block_08", accent_f1=0.41, p_value_fwer=0.6))
    assert d.borderline == [] and "borderline" not in d.rationale and "more speakers" not in d.rationale
    assert "Nothing distinguishes its F1 from chance (family-wise p 0.600" in d.rationale
    assert any(r.startswith("not significant") for r in d.assessments["backbone:decoder_block_08"].reasons)


def test_clear_nogo_sentence_tells_value_and_threshold_apart():
    d = run(row("backbone:decoder_block_08", accent_f1=0.3996))
    assert "F1 0.400 < 0.400" not in d.rationale and "F1 0.3996 < 0.4000: a clear NOGO" in d.rationale
    assert "clear NOGO: F1 0.3996 < 0.4000 (nogo_f1)" in d.assessments["backbone:decoder_block_08"].reasons


def test_below_chance_needs_the_deciding_source_and_an_f1_under_chance():
    reference_only = run(row("backbone:decoder_block_08", accent_f1=0.30), row("acoustic:mfcc_stats", accent_f1=0.20, p_below_chance=0.01))
    above_chance = run(row("backbone:decoder_block_08", accent_f1=0.36, p_below_chance=0.01))
    assert reference_only.diagnosis != "balanced_nuisance" and above_chance.diagnosis != "balanced_nuisance"


def test_balanced_nuisance_sentence_gives_the_family_wise_p():
    d = run(row("backbone:decoder_block_08", accent_f1=0.20, p_below_chance=0.01))
    assert "family-wise p below the null 0.010" in d.diagnosis_text


def test_a_reference_cited_as_evidence_is_significant_and_its_p_is_given():
    d = run(row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80, p_value_fwer=0.004), row("ecapa:embedding", accent_f1=0.90, p_value_fwer=0.2))
    assert "ssl:layer_06 F1=0.80 (family-wise p=0.004)" in d.diagnosis_text and "ecapa" not in d.diagnosis_text


def test_rationale_of_clear_nogo():
    d = run(row("backbone:decoder_block_08", accent_f1=0.31))
    assert "a clear NOGO" in d.rationale and d.borderline == []


def test_diagnosis_only_for_nogo():
    assert run(row("backbone:decoder_block_08")).diagnosis is None


@pytest.mark.parametrize(
    "rows, too_small, diagnosis",
    [
        ([row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80)], False, "backbone_inadequate"),
        ([row("backbone:decoder_block_08", accent_f1=0.30), row("ecapa:embedding", accent_f1=0.30)], False, "accents_not_separable"),
        ([row("backbone:decoder_block_08", accent_f1=0.30)], False, "accents_not_separable"),
        ([row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80)], True, "dataset_too_small"),
        ([row("backbone:decoder_block_08", leak_excess_pp=25.0), row("ssl:layer_06")], False, "accent_entangled"),
        ([row("ssl:layer_06"), row("acoustic:mfcc_stats")], False, "no_backbone"),
        ([row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80, p_value_fwer=0.3)], False, "accents_not_separable"),
        ([row("backbone:decoder_block_08", accent_f1=0.20, p_below_chance=0.01), row("acoustic:mfcc_stats", accent_f1=0.30)], False, "balanced_nuisance"),
        ([row("backbone:decoder_block_08", leak_excess_pp=25.0, p_value_fwer=0.4), row("ssl:layer_06", accent_f1=0.3)], False, "accents_not_separable"),
    ],
    ids=[
        "refs_high_backbone_low", "everything_low", "backbone_low_no_refs", "dataset_small_first", "leaky_backbone", "no_backbone",
        "reference_not_significant_supports_nothing", "below_chance_is_anti_learning", "leaky_but_not_significant_is_not_entangled",
    ],  # fmt: skip
)
def test_diagnosis(rows, too_small, diagnosis):
    d = run(*rows, too_small=too_small)
    assert d.decision == Level.NOGO
    assert d.diagnosis == diagnosis
    assert d.diagnosis_text and len(d.diagnosis_text) > 40


def test_an_entanglement_found_by_leakage_points_to_the_speaker_erasure_check():
    d = run(row("backbone:decoder_block_08", leak_excess_pp=25.0))
    assert d.diagnosis == "accent_entangled" and "erase_speaker_accent_f1" in d.diagnosis_text


def test_an_entanglement_found_by_text_drop_alone_carries_no_leakage_caveat():
    d = run(row("backbone:decoder_block_08", text_drop=0.3))
    assert d.diagnosis == "accent_entangled" and "erase_speaker_accent_f1" not in d.diagnosis_text


def test_backbone_inadequate_sentence_names_the_reference():
    d = run(row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80))
    assert "ssl:layer_06 F1=0.80" in d.diagnosis_text


def test_random_weights_backbone_is_diagnosed_as_such():
    d = run(row("backbone:decoder_block_08", accent_f1=0.30), row("ssl:layer_06", accent_f1=0.80), random_weights=True, too_small=True)
    assert d.diagnosis == "random_weights"
    assert "randomly initialised" in d.diagnosis_text and "ssl:layer_06" in d.diagnosis_text


def test_unreachable_significance_is_diagnosed_and_said_in_caveats():
    limit = "the smallest reachable p is 0.0625"
    d = run(row("backbone:decoder_block_08", p_value_fwer=0.0625), significance_limit=limit)
    assert d.decision == Level.NOGO and d.diagnosis == "significance_unreachable"
    assert limit in d.diagnosis_text and limit in d.caveats


def test_rationale_says_the_best_layer_was_selected_among_many():
    d = run(row("backbone:decoder_block_08"), row("backbone:decoder_block_04", accent_f1=0.6))
    assert "the best of 2 backbone layers" in d.rationale


def test_no_backbone_gives_nogo_without_best_representation():
    d = run(row("ssl:layer_06", accent_f1=0.99))
    assert (d.decision, d.best_representation) == (Level.NOGO, None)
    assert "No backbone" in d.rationale


def test_strict_mode_can_flip_the_decision():
    r = row("backbone:decoder_block_08", accent_f1=0.72, accent_f1_ci_low=0.50)
    assert run(r).decision == Level.GO
    d = run(r, thresholds=ExperimentConfig(strict=True))
    assert d.decision == Level.CONDITIONAL
    assert "strict" in d.rationale


def test_dataset_too_small_makes_result_not_scientific_with_caveat():
    d = run(row(), too_small=True)
    assert not d.scientific
    assert any("design minima" in c for c in d.caveats)


def test_to_json_has_contract_keys_and_is_strict_json():
    d = run(row("backbone:decoder_block_08", accent_f1=0.5), row("ssl:layer_06"))
    j = d.to_json()
    for key in ("decision", "best_representation", "rationale", "diagnosis", "levels", "thresholds", "scientific"):
        assert key in j
    assert j["levels"] == {"backbone:decoder_block_08": "GO_CONDITIONAL", "ssl:layer_06": "GO"}
    assert j["references"] == ["ssl:layer_06"]
    assert j["thresholds"]["min_f1_go"] == 0.55
    json.dumps(j, allow_nan=False)  # NaN p-value became null


def test_missing_column_is_a_clear_error():
    df = dummy_metrics([row()]).drop(columns=["leak_excess_pp"])
    with pytest.raises(Stage15Error, match="missing column.*leak_excess_pp"):
        decide(df, T)


def test_duplicate_representation_is_a_clear_error():
    with pytest.raises(Stage15Error, match="appears more than once"):
        run(row(), row())


def test_random_weights_of_the_deciding_source_are_a_caveat_and_a_fact():
    from stage1_5.config import Stage15Config

    cfg = Stage15Config.model_validate({"sources": {"backbone": {"checkpoint": "tiny-random"}, "ssl": {"model": "tiny-random"}}})
    caveats = random_weights_caveats(cfg)
    assert len(caveats) == 2 and "randomly initialised" in caveats[0] and "ssl" in caveats[1]
    assert random_weights_deciding(cfg)
    assert not random_weights_deciding(Stage15Config())


def test_empty_metrics_is_a_nogo_without_backbone():
    d = decide(dummy_metrics([]), T)
    assert (d.decision, d.diagnosis) == (Level.NOGO, "no_backbone")
