"""Where the leakage excess of a clean code comes from (issue 22, item 4): the same planted codes as
`calibrate.py leakage`, with the accent readout fitted in other ways (scikit-learn, C fixed, 2 text
folds, the protocol's nearest-centroid identification and within-accent shuffle chance).

    python benchmarks/leakage_readouts.py --replicates 30 [--texts 10] [--C 1.0]
    python benchmarks/leakage_readouts.py --erasure --replicates 10

Readouts: `raw` (ridge logistic regression on the raw coordinates), `standardised` (what the probes
do), `within-accent whitened` (standardised, then whitened by the training rows' Ledoit–Wolf
within-accent covariance, so the penalty no longer prefers directions for their variance: the readout
avoids where speakers vary). Prints the mean excess (pp) and its SE per code and readout.
`--erasure`: instead, Stage 2's accent F1 on held-out speakers before and after LEACE erases the
within-accent speaker contrasts (`erase_speaker_accent_f1_base` / `erase_speaker_accent_f1`), per code.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.linear_model import LogisticRegression

from stage1_5.config import Stage2Config
from stage1_5.probes.planted import planted_dataset
from stage1_5.probes.protocol import _nearest_centroid_hits
from stage1_5.probes.stats import shuffled_within

CODES = {
    "clean": dict(speaker=2.0),
    "leak 0.5": dict(speaker=2.0, leak=0.5),
    "leaky": dict(speaker=2.0, leak=2.0),
    "clean, mixed coordinates": dict(speaker=2.0, mixed=True),
    "leak 0.5, mixed coordinates": dict(speaker=2.0, leak=0.5, mixed=True),
    "leaky, mixed coordinates": dict(speaker=2.0, leak=2.0, mixed=True),
}
READOUTS = ("raw", "standardised", "within-accent whitened")


def _coordinates(X: np.ndarray, accent: np.ndarray, train: np.ndarray, readout: str) -> np.ndarray:
    if readout == "raw":
        return X
    Z = (X - X[train].mean(0)) / X[train].std(0)
    if readout == "standardised":
        return Z
    means = np.stack([Z[train][accent[train] == a].mean(0) for a in range(accent.max() + 1)])
    cov = LedoitWolf(assume_centered=True).fit(Z[train] - means[accent[train]]).covariance_
    values, vectors = np.linalg.eigh(cov)
    return Z @ (vectors / np.sqrt(values))


def _excess(z: np.ndarray, speaker: np.ndarray, accent: np.ndarray, train, test, rng, shuffles: int = 20) -> float:
    n = speaker.max() + 1
    hits = _nearest_centroid_hits(z, speaker, accent, train, test, n).mean()
    chance = [_nearest_centroid_hits(z, shuffled_within(speaker, accent, rng), accent, train, test, n).mean() for _ in range(shuffles)]
    return 100 * (hits - np.mean(chance))


def replicate(r: int, texts: int, C: float, code: dict) -> list[float]:
    data = planted_dataset(n_accents=3, speakers_per_accent=8, n_texts=texts, accent=1.0, random_state=r, **code)
    X = next(iter(data.features.values())).astype(float)
    speaker, accent, text = (data.meta[c].factorize()[0] for c in ("speaker", "accent", "text_id"))
    out = []
    for readout in READOUTS:
        rng, excess = np.random.default_rng(r), []
        for fold in (0, 1):
            train, test = np.flatnonzero(text % 2 != fold), np.flatnonzero(text % 2 == fold)
            Z = _coordinates(X, accent, train, readout)
            z = LogisticRegression(C=C, max_iter=5000).fit(Z[train], accent[train]).decision_function(Z)
            excess.append(_excess(z - z.mean(1, keepdims=True), speaker, accent, train, test, rng))
        out.append(float(np.mean(excess)))
    return out


def erasure(replicates: int, texts: int, C: float) -> None:
    from stage1_5.stage2.erasure import erasure_metrics

    print(f"3 accents × 8 speakers × {texts} texts, C={C}, {replicates} replicates: accent F1 on held-out speakers, before → after erasing speakers")
    for name, code in CODES.items():
        rows = []
        for r in range(replicates):
            data = planted_dataset(n_accents=3, speakers_per_accent=8, n_texts=texts, accent=1.0, random_state=r, **code)
            m, _ = erasure_metrics(data.features, data.meta, Stage2Config(bootstrap=0), {k: C for k in data.features})
            rows.append((m.erase_speaker_accent_f1_base.iloc[0], m.erase_speaker_accent_f1.iloc[0]))
        base, erased = np.mean(rows, 0)
        print(f"{name:28s} {base:.3f} → {erased:.3f} ({erased - base:+.3f})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicates", type=int, default=30)
    parser.add_argument("--texts", type=int, default=10)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--erasure", action="store_true", help="Stage 2's speaker-erasure accent F1 instead of the leakage readouts")
    args = parser.parse_args()
    if args.erasure:
        return erasure(args.replicates, args.texts, args.C)
    print(f"3 accents × 8 speakers × {args.texts} texts, C={args.C}, {args.replicates} replicates: mean leakage excess pp (SE)")
    for name, code in CODES.items():
        res = np.array([replicate(r, args.texts, args.C, code) for r in range(args.replicates)])
        se = res.std(0, ddof=1) / np.sqrt(len(res))
        print(f"{name:28s} " + " | ".join(f"{k}: {m:+.1f} ({s:.1f})" for k, m, s in zip(READOUTS, res.mean(0), se)), flush=True)


if __name__ == "__main__":
    main()
