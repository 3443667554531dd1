"""Planted worlds whose true answer is known, for measuring the decision's error rates (issue 9).

A `World` draws fresh *populations* (new speakers every replicate, independent of one another), so
that a replicate study estimates what a user would see on a new corpus: the false-GO rate under a
null, the power on a weak real accent, the coverage of the F1 interval, and the effect of a nuisance
factor balanced across accents. Used by benchmarks/calibrate.py and tests/test_probes_calibration.py.

Utterance of speaker s (accent a, optional donor voice g) reading text t, in `dim` dimensions:

    accent · u_a + speaker · o_s + donor · w_g + text · q_t + noise · ε

with u_a orthonormal accent axes and o_s, w_g, q_t, ε Gaussian of unit expected norm; the speaker and
donor parts are drawn off the accent axes, so a real accent is a clean accent code (no speaker leakage by
construction). With accent = 0 the labels are exchangeable across speakers: every decision other than
NOGO is a false GO.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class World:
    n_accents: int = 3
    speakers_per_accent: int = 8
    n_texts: int = 6
    dim: int = 16
    accent: float = 0.0
    speaker: float = 1.0
    donor: float = 0.0  # a voice shared by one speaker of every accent (speaker of rank j ↔ donor j)
    donors: int = 0  # distinct donor voices (0: one per rank); 2 gives a gender-like factor balanced within accents
    text: float = 0.5
    noise: float = 1.0
    shuffle_names: bool = True  # speaker IDs not aligned with donors (rank pairing cannot help)

    def draw(self, rng: np.random.Generator, layers: int = 1) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """meta (with a `group` = donor column when donor > 0) and `layers` independent representations."""
        K, P, T, d = self.n_accents, self.speakers_per_accent, self.n_texts, self.dim
        spk_accent = np.repeat(np.arange(K), P)
        n_donors = self.donors or P
        spk_donor = np.tile(np.arange(P) % n_donors, K)
        names = np.array([f"spk{a}_{j:02d}" for a, j in zip(spk_accent, np.tile(np.arange(P), K))])
        if self.shuffle_names:
            for a in range(K):  # rename within accent so that rank ≠ donor
                members = np.flatnonzero(spk_accent == a)
                names[members] = names[rng.permutation(members)]
        spk_idx = np.repeat(np.arange(K * P), T)
        text_idx = np.tile(np.arange(T), K * P)
        meta = pd.DataFrame(
            {
                "utt_id": [f"{names[s]}_t{t:02d}" for s, t in zip(spk_idx, text_idx)],
                "speaker": names[spk_idx],
                "accent": [f"acc{spk_accent[s]}" for s in spk_idx],
                "text_id": [f"t{t:02d}" for t in text_idx],
            }
        )
        if self.donor:
            meta["group"] = [f"donor{spk_donor[s]}" for s in spk_idx]
        features = {}
        for layer in range(layers):
            u = np.linalg.qr(rng.normal(size=(d, d)))[0][:, :K].T
            off_axes = np.eye(d) - u.T @ u
            parts = (
                self.accent * u[spk_accent[spk_idx]]
                + self.speaker * (rng.normal(size=(K * P, d)) @ off_axes)[spk_idx] / np.sqrt(d)
                + self.donor * (rng.normal(size=(n_donors, d)) @ off_axes)[spk_donor[spk_idx]] / np.sqrt(d)
                + self.text * rng.normal(size=(T, d))[text_idx] / np.sqrt(d)
                + self.noise * rng.normal(size=(len(spk_idx), d)) / np.sqrt(d)
            )
            features[f"backbone:layer_{layer:02d}"] = parts.astype(np.float32)
        return meta, features


def balanced_share(perm_labels: np.ndarray, labels: np.ndarray, factor: np.ndarray) -> float:
    """Share of the permuted labellings [B, N] under which every accent holds exactly the factor values it
    holds under the real `labels` [N] (the same accent × factor counts over the N utterances).

    Why it matters: under a factor balanced across accents by design (a donor, a gender), no accent and
    speakers otherwise exchangeable (as in `World`), the data's likelihood is the same under every such
    labelling, so the real one is exchangeable with them and no exact test of label exchangeability on
    these permutations fires on more than alpha / share of such draws (Neyman–Pearson), whatever its
    statistic."""
    codes = np.unique(np.asarray(factor), return_inverse=True)[1]
    n_factor = int(codes.max()) + 1
    cells = (int(np.max(labels)) + 1) * n_factor

    def counts(lab: np.ndarray) -> np.ndarray:
        return np.bincount(np.asarray(lab) * n_factor + codes, minlength=cells)

    real = counts(labels)
    return float(np.mean([np.array_equal(counts(p), real) for p in perm_labels]))
