"""Planted-truth data: features whose accent, speaker, text and leakage structure is known exactly.

Each utterance (speaker s of accent a, text t) is the sum of independent parts:

    accent · u_a                                  accent signal shared by the accent's speakers
  + speaker · o_s                                 speaker identity, orthogonal to every u_a, centred within accent
  + leak · c_s · u_a                              speakers spread along their own accent axis (c_s ∈ [−1, 1], centred)
  + text · q_t                                    text content, the same for every accent
  + accent_x_text · v_(a,t)                       accent cue that exists only per (accent, text) pair
  + noise · ε                                     utterance noise

optionally seen through a fixed random linear map (`mixed=True`: a Gaussian matrix, so correlated,
unequally scaled coordinates, as a network's hidden states are). The map is invertible, so a clean code
stays clean (a speaker-free linear accent readout exists); what changes is which readout a penalised
probe prefers.

with u_a orthonormal, and o_s, q_t, v_(a,t), ε Gaussian with unit expected norm (per-dimension
variance 1/dim), so every strength is relative to the utterance noise's norm. `random_speaker_accents=True` ignores the
nominal accent structure and deals accent labels to speakers at random (the speaker-confound trap).

With `center_speakers` (default) the speaker parts sum to zero within each accent, so they carry no
accent information at all. A consequence worth knowing: a held-out speaker's offset is then the
negative of the training speakers' mean offset, so with speaker ≫ accent the speaker-disjoint F1
falls *below* chance (a finite-population effect of exact centring, not a probe bug); pass
`center_speakers=False` for independently drawn speakers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class PlantedData:
    meta: pd.DataFrame  # utt_id, speaker, accent, text_id
    features: dict[str, np.ndarray]  # name -> [N, dim] float32


def planted_dataset(
    *,
    n_accents: int = 3,
    speakers_per_accent: int = 6,
    n_texts: int = 10,
    dim: int = 32,
    accent: float = 0.0,
    speaker: float = 0.0,
    leak: float = 0.0,
    text: float = 0.0,
    accent_x_text: float = 0.0,
    noise: float = 1.0,
    random_speaker_accents: bool = False,
    center_speakers: bool = True,
    mixed: bool = False,
    name: str = "planted:layer_00",
    random_state: int = 0,
) -> PlantedData:
    """Draw one planted representation (see module docstring) over a full speakers × texts design."""
    if dim < n_accents + 1:
        raise ValueError(f"dim must exceed n_accents ({n_accents}), got {dim}")
    rng = np.random.default_rng(random_state)
    basis = np.linalg.qr(rng.normal(size=(dim, dim)))[0]
    u = basis[:, :n_accents].T  # [A, dim] accent axes
    off_axis = np.eye(dim) - u.T @ u  # projector onto the complement of the accent axes

    n_spk = n_accents * speakers_per_accent
    spk_accent = np.repeat(np.arange(n_accents), speakers_per_accent)
    o = rng.normal(size=(n_spk, dim)) @ off_axis / np.sqrt(dim)
    c = np.tile(np.linspace(-1.0, 1.0, speakers_per_accent), n_accents)
    if center_speakers:  # speaker parts carry exactly no accent information
        for a in range(n_accents):
            o[spk_accent == a] -= o[spk_accent == a].mean(0)
    q = rng.normal(size=(n_texts, dim)) / np.sqrt(dim)
    v = rng.normal(size=(n_accents, n_texts, dim)) / np.sqrt(dim)

    spk_idx = np.repeat(np.arange(n_spk), n_texts)
    text_idx = np.tile(np.arange(n_texts), n_spk)
    acc_idx = spk_accent[spk_idx]
    X = (
        accent * u[acc_idx]
        + speaker * o[spk_idx]
        + leak * c[spk_idx, None] * u[acc_idx]
        + text * q[text_idx]
        + accent_x_text * v[acc_idx, text_idx]
        + noise * rng.normal(size=(len(spk_idx), dim)) / np.sqrt(dim)
    )
    if mixed:
        X = X @ rng.normal(size=(dim, dim))
    labels = rng.permutation(spk_accent) if random_speaker_accents else spk_accent
    meta = pd.DataFrame(
        {
            "utt_id": [f"s{s:02d}_t{t:02d}" for s, t in zip(spk_idx, text_idx)],
            "speaker": [f"s{s:02d}" for s in spk_idx],
            "accent": [f"acc{labels[s]}" for s in spk_idx],
            "text_id": [f"t{t:02d}" for t in text_idx],
        }
    )
    return PlantedData(meta=meta, features={name: X.astype(np.float32)})
