"""Accent directions per backbone layer: the frozen accent probe, class means and an LDA basis, in the
layer's own feature space, saved as safetensors + a JSON sidecar that a training hook can load.

The probe is refit on every speaker at the C that the speaker-grouped inner CV chooses most often
(`choose_c`: the protocol's inner CV, `probes.inner_folds` folds of whole speakers, repeated over
`probes.seeds` fold seeds, ties to the smaller C). The probes standardise features; here the
standardisation is folded into the weights (W' = W / scale, b' = b − W'·mean), so
`logits = x @ weight.T + bias` holds for raw pooled vectors x, the ones a hook sees.

    directions = load_directions("runs/demo")
    d = directions["decoder_block_02"]           # alias or "backbone:decoder_block_02"
    logits = d.logits(pooled)                    # [batch, K], columns in d.accents order
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler

from stage1_5.errors import Stage2Error
from stage1_5.hashing import file_sha256
from stage1_5.io import atomic_open, atomic_write_json
from stage1_5.paths import STAGE2_DIR
from stage1_5.probes.engine import BatchedLogisticRegression
from stage1_5.probes.splits import SpeakerPerAccentFold, speakers_by_accent

TENSORS_FILE = "directions.safetensors"
SIDECAR_FILE = "directions.json"
FORMAT = "stage1_5.stage2.directions"
FORMAT_VERSION = 2
"""2: a named backbone's layers are keyed by representation (several backbones); a version-1 file (one
backbone, keyed by alias) reads the same way."""
READABLE_VERSIONS = (1, FORMAT_VERSION)
TENSOR_NAMES = ("weight", "bias", "class_means", "lda_scalings", "accent_basis")


# ----------------------------------------------------------------------------- C choice


@dataclass(frozen=True)
class CChoice:
    """The C a layer's directions are refit at: the inner CV's most frequent choice over fold seeds."""

    C: float
    per_seed: tuple[float, ...]  # the C chosen with each fold seed ("most often" is over these)
    note: Optional[str] = None  # why no inner CV ran, when it could not


def fit_probe(X: np.ndarray, y: np.ndarray, C: float, device: str = "cpu") -> tuple[StandardScaler, BatchedLogisticRegression]:
    """The protocol's probe: StandardScaler on the fit rows, then balanced L2 logistic regression at C."""
    scaler = StandardScaler().fit(X)
    probe = BatchedLogisticRegression(C=float(C), class_weight="balanced", device=device).fit(scaler.transform(X), y)
    return scaler, probe


def choose_c(
    X: np.ndarray,
    accents: np.ndarray,
    speakers: np.ndarray,
    *,
    c_grid: Sequence[float],
    inner_folds: int,
    seeds: Sequence[int],
    device: str = "cpu",
) -> CChoice:
    """Best C per fold seed by macro-F1 pooled over speaker-grouped folds of all speakers, then the most
    frequent of those (ties → the smaller C). One C in the grid: that C. Fewer than 2 speakers in some
    accent: the middle of the sorted grid, as the protocol does, with a note."""
    grid = sorted(float(c) for c in c_grid)
    accents = np.asarray(accents).astype(str)
    if len(grid) == 1:
        return CChoice(grid[0], (grid[0],) * len(seeds))
    smallest = min(len(s) for s in speakers_by_accent(accents, speakers).values())
    k = min(inner_folds, smallest)
    if k < 2:
        middle = grid[len(grid) // 2]
        return CChoice(middle, (), f"inner CV impossible (an accent has < 2 speakers): C = {middle:g}")
    chosen = []
    for seed in seeds:
        predictions = {c: np.empty(len(accents), dtype=accents.dtype) for c in grid}
        for train, test in SpeakerPerAccentFold(k, random_state=seed).split(X, accents, speakers):
            for c in grid:
                scaler, probe = fit_probe(X[train], accents[train], c, device)
                predictions[c][test] = probe.predict(scaler.transform(X[test]))
        scores = [f1_score(accents, predictions[c], average="macro") for c in grid]
        chosen.append(grid[int(np.argmax(scores))])  # argmax takes the first maximum: the smaller C
    values, counts = np.unique(chosen, return_counts=True)
    return CChoice(float(values[int(np.argmax(counts))]), tuple(chosen))


# ----------------------------------------------------------------------------- one layer


@dataclass(frozen=True)
class LayerDirections:
    """A layer's accent geometry in its raw pooled feature space (d = the layer's vector size).

    weight [K, d], bias [K]: the frozen accent probe, `logits = x @ weight.T + bias` (columns in
    `accents` order; two accents are stored as ±half the binomial logit, so softmax = sigmoid).
    class_means [K, d]: per-accent means over the Stage 1.5 utterances. lda_scalings [d, m]: the
    discriminant directions of scikit-learn's LinearDiscriminantAnalysis (eigen solver, Ledoit-Wolf
    shrinkage), `lda.transform(x) = x @ lda_scalings`. accent_basis [K−1, d]: orthonormal rows spanning
    the probe's decision space (its class-centred weights). direction_norm: the accent-direction norm
    (`accent_direction_norm`) of the Stage 1.5 utterances: the baseline a monitor compares against.
    """

    layer: str
    representation: str
    accents: tuple[str, ...]
    weight: torch.Tensor
    bias: torch.Tensor
    class_means: torch.Tensor
    lda_scalings: torch.Tensor
    accent_basis: torch.Tensor
    C: float
    direction_norm: float
    module_path: Optional[str] = None
    axis: Optional[str] = None
    info: Mapping[str, Any] = field(default_factory=dict)  # the rest of the sidecar's entry

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen-probe logits [batch, K] of raw pooled vectors x [batch, d]."""
        return x.to(self.weight.dtype) @ self.weight.T + self.bias

    def lda(self, x: torch.Tensor) -> torch.Tensor:
        """LDA coordinates [batch, m] of raw pooled vectors x [batch, d]."""
        return x.to(self.lda_scalings.dtype) @ self.lda_scalings

    def to(self, device: Any = None, dtype: Optional[torch.dtype] = None) -> "LayerDirections":
        """The same directions with every tensor on `device` / in `dtype` (for a hook on a GPU model)."""
        return replace(self, **{name: getattr(self, name).to(device=device, dtype=dtype) for name in TENSOR_NAMES})

    def tensors(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name) for name in TENSOR_NAMES}


def accent_direction_norm(X: np.ndarray, accents: np.ndarray, basis: np.ndarray) -> float:
    """How far the accents sit apart along the probe's decision space: sqrt(Σ_a p_a ‖B(μ_a − μ)‖²),
    with p_a the accents' shares of the rows, μ_a their means and B [K−1, d] `accent_basis`; in the
    layer's feature units."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(0)
    total = 0.0
    for a in np.unique(accents):
        rows = accents == a
        total += rows.mean() * float(np.sum((basis @ (X[rows].mean(0) - mu)) ** 2))
    return float(np.sqrt(total))


def _raw_space_probe(scaler: StandardScaler, probe: BatchedLogisticRegression) -> tuple[np.ndarray, np.ndarray]:
    """The probe's (weight [K, d], bias [K]) on raw features: W' = W / scale, b' = b − W'·mean."""
    W, b = np.asarray(probe.coef_, dtype=np.float64), np.asarray(probe.intercept_, dtype=np.float64)
    if W.shape[0] == 1:  # binomial: logit z for classes_[1]; as two classes, ±z/2 keeps softmax = sigmoid(z)
        W, b = np.concatenate([-W / 2, W / 2]), np.concatenate([-b / 2, b / 2])
    W = W / scaler.scale_
    return W, b - W @ scaler.mean_


def fit_layer_directions(
    X: np.ndarray,
    accents: np.ndarray,
    choice: CChoice,
    *,
    layer: str,
    representation: str,
    device: str = "cpu",
    module_path: Optional[str] = None,
    axis: Optional[str] = None,
) -> LayerDirections:
    """Refit the accent probe on every row at `choice.C`, fold the standardisation in, and add the class
    means, the LDA basis and the decision-space basis."""
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(accents).astype(str)
    scaler, probe = fit_probe(X, labels, choice.C, device)
    order = [str(c) for c in probe.classes_]
    W, b = _raw_space_probe(scaler, probe)
    means = np.stack([X[labels == a].mean(0) for a in order])
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto").fit(X, labels)
    m = min(len(order) - 1, X.shape[1])
    scalings = np.asarray(lda.scalings_, dtype=np.float64)[:, :m]
    basis = np.linalg.svd(W - W.mean(0, keepdims=True), full_matrices=False)[2][: len(order) - 1]  # rows span the K−1 logit contrasts
    train_f1 = f1_score(labels, probe.predict(scaler.transform(X)), average="macro")
    as_tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)  # noqa: E731
    return LayerDirections(
        layer=layer,
        representation=representation,
        accents=tuple(order),
        weight=as_tensor(W),
        bias=as_tensor(b),
        class_means=as_tensor(means),
        lda_scalings=as_tensor(scalings),
        accent_basis=as_tensor(basis),
        C=choice.C,
        direction_norm=accent_direction_norm(X, labels, basis),
        module_path=module_path,
        axis=axis,
        info={
            "c_per_seed": list(choice.per_seed),
            "c_note": choice.note,
            "n_utterances": int(len(X)),
            "train_f1": float(train_f1),
            "converged": bool(probe.converged_),
        },
    )


# ----------------------------------------------------------------------------- module paths


def alias_site(layer: str, family: Optional[str] = None) -> tuple[Optional[str], Optional[str]]:
    """(module path, time axis) of a backbone layer name, from its family's alias table
    (`BackboneFamily.alias_sites`; default: the Qwen3-TTS family), without loading a model: any depth
    past the layer's trailing number gives the same entry. A raw module path is its own module path;
    its axis is known only once a model is loaded (None here)."""
    from stage1_5.backbone.family import DEFAULT_FAMILY, family_named

    digits = re.search(r"(\d+)$", layer)
    site = family_named(family or DEFAULT_FAMILY).alias_sites(int(digits.group(1)) + 1 if digits else 1).get(layer)
    return (site.module_path, site.axis) if site is not None else (layer, None)


# ----------------------------------------------------------------------------- the file pair


@dataclass(frozen=True)
class AccentDirections:
    """Every layer's directions plus what produced them (checkpoint, pooling, positions, dataset hash,
    label map). Index by alias (`"decoder_block_02"`) or representation (`"backbone:decoder_block_02"`)."""

    layers: Mapping[str, LayerDirections]
    meta: Mapping[str, Any]

    def __getitem__(self, name: str) -> LayerDirections:
        for d in self.layers.values():
            if name in (d.layer, d.representation):
                return d
        raise Stage2Error(f"no accent directions for layer {name!r}; the file has {', '.join(self.layers) or 'none'}")

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def accents(self) -> list[str]:
        return list(self.meta.get("accents", []))


def _key(d: LayerDirections) -> str:
    """The layer's key in the file pair: its alias for the single backbone ('decoder_block_08'), its
    representation for a named one of several ('csm1b:decoder_block_08'), so two backbones' blocks
    of the same depth never share tensors."""
    from stage1_5.config import DEFAULT_BACKBONE_NAME

    return d.layer if d.representation.partition(":")[0] in (DEFAULT_BACKBONE_NAME, d.representation) else d.representation


def _layer_entry(d: LayerDirections) -> dict[str, Any]:
    return {
        "representation": d.representation,
        "alias": d.layer,
        "module_path": d.module_path,
        "axis": d.axis,
        "dim": d.dim,
        "C": d.C,
        "direction_norm": d.direction_norm,
        "tensors": {name: f"{_key(d)}/{name}" for name in TENSOR_NAMES},
        **dict(d.info),
    }


def save_directions(directions: Sequence[LayerDirections], folder: str | Path, meta: Mapping[str, Any]) -> Path:
    """Write directions.safetensors and its sidecar directions.json (atomically, tensors first: the
    sidecar names the tensors file's sha256, so a half-replaced pair is detected on load). Returns the
    sidecar's path. `meta`: checkpoint, pooling, positions, dataset_hash, label_map, ..."""
    from safetensors.torch import save

    folder = Path(folder)
    tensors = {f"{_key(d)}/{name}": t.detach().cpu().contiguous() for d in directions for name, t in d.tensors().items()}
    with atomic_open(folder / TENSORS_FILE, "wb") as fh:
        fh.write(save(tensors, metadata={"format": FORMAT}))
    sidecar = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tensors_file": TENSORS_FILE,
        "tensors_sha256": file_sha256(folder / TENSORS_FILE),
        **dict(meta),
        "layers": {_key(d): _layer_entry(d) for d in directions},
    }
    atomic_write_json(folder / SIDECAR_FILE, sidecar)
    return folder / SIDECAR_FILE


def _sidecar_path(path: Path) -> Path:
    for candidate in (path / STAGE2_DIR / SIDECAR_FILE, path / SIDECAR_FILE, path):
        if candidate.is_file():
            return candidate
    raise Stage2Error(f"{path}: no accent directions ({STAGE2_DIR}/{SIDECAR_FILE}); run `stage1_5 run` with stage2.enabled")


def load_directions(run_dir: str | Path, *, device: Any = None, dtype: torch.dtype = torch.float32) -> AccentDirections:
    """Read a run's accent directions (the run folder, its artifacts/stage2/ or the sidecar itself),
    check the pair is whole and consistent, and return float tensors on `device`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    sidecar = _sidecar_path(Path(run_dir))
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise Stage2Error(f"{sidecar}: unreadable directions sidecar: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise Stage2Error(f"{sidecar}: not a stage1_5 directions sidecar (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") not in READABLE_VERSIONS:
        raise Stage2Error(f"{sidecar}: directions format version {meta.get('version')!r}; this stage1_5 reads {FORMAT_VERSION}")
    tensors_path = sidecar.parent / Path(str(meta.get("tensors_file", TENSORS_FILE))).name  # never outside the folder
    if not tensors_path.is_file():
        raise Stage2Error(f"{tensors_path}: missing (named by {sidecar.name})")
    if file_sha256(tensors_path) != meta.get("tensors_sha256"):
        raise Stage2Error(f"{tensors_path}: sha256 does not match {sidecar.name} (a half-written or replaced pair); rerun the stage2 stage")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError) as err:
        raise Stage2Error(f"{tensors_path}: unreadable safetensors file: {err}") from None
    accents = tuple(meta.get("accents", ()))
    layers = {}
    for alias, entry in meta.get("layers", {}).items():
        try:
            found = {name: tensors[entry["tensors"][name]].to(device=device, dtype=dtype) for name in TENSOR_NAMES}
        except KeyError as err:
            raise Stage2Error(f"{tensors_path}: layer {alias!r} lacks tensor {err}") from None
        if found["weight"].shape != (len(accents), entry["dim"]) or found["class_means"].shape != found["weight"].shape:
            raise Stage2Error(f"{sidecar}: layer {alias!r}: weight {tuple(found['weight'].shape)} does not match {len(accents)} accents × dim {entry['dim']}")
        known = {"representation", "alias", "module_path", "axis", "dim", "C", "direction_norm", "tensors"}
        layers[alias] = LayerDirections(
            layer=str(entry.get("alias", alias)),
            representation=entry["representation"],
            accents=accents,
            C=float(entry["C"]),
            direction_norm=float(entry["direction_norm"]),
            module_path=entry.get("module_path"),
            axis=entry.get("axis"),
            info={k: v for k, v in entry.items() if k not in known},
            **found,
        )
    return AccentDirections(layers=layers, meta={k: v for k, v in meta.items() if k != "layers"})
