"""The metrics.csv and predictions.csv contracts between probes, decision and report (column names
only: a low-level module, importable without torch)."""

METRIC_COLUMNS = [
    "representation",
    "source",
    "layer",
    "status",  # "ok", or "failed: <reason>" (the row's numbers are then NaN)
    "n_speakers",
    "n_utterances",
    "n_accents",
    "chance_f1",  # 1/K: macro-F1 of guessing
    "accent_f1",
    "accent_f1_sd",  # SD of the F1 over the fold seeds
    "accent_f1_seed_unstable",  # fold seeds disagree beyond one seed's standard error over the speakers (a fold-pairing nuisance)
    "accent_f1_ci_low",
    "accent_f1_ci_high",
    "p_value",  # this representation's own permutation p
    "family",  # the representations whose maximum the family-wise p accounts for (one source's layers)
    "family_size",
    "p_value_fwer",  # max-over-family permutation p: the p the decision gates
    "p_below_chance",  # family-wise (min-T) p of F1 below its permutation null (anti-learning)
    "n_permutations",
    "null_f1_mean",
    "null_f1_q95",
    "majority_f1",
    "text_f1_seen",
    "text_f1_unseen",
    "text_drop",
    "text_drop_ci_low",
    "text_drop_ci_high",
    "leak_acc",
    "leak_chance",
    "leak_excess_pp",
    "leak_excess_ci_low",
    "leak_excess_ci_high",
    "speaker_acc",
]
PREDICTION_COLUMNS = ["utt_id", "representation", "seed", "fold", "text_fold", "split", "y_true", "y_pred"]
