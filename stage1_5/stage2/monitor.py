"""Training-time accent monitor: the frozen Stage 1.5 probe read on a held-out batch while a model trains.

    monitor = AccentMonitor("runs/my_run", "decoder_block_08")
    reading = monitor.measure(tts, heldout_utterances)     # a Qwen3TTSModel, LoRA-wrapped or not
    reading.accent_f1, reading.leak_excess_pp, reading.direction_norm_ratio

`measure` runs the extraction's own teacher-forced pass (`HuggingFaceBackboneAdapter` with the
sidecar's pooling, positions, speaker slot and language) with the same hook on the same module, so a
reading of the untouched model reproduces the Stage 1.5 vectors. For any other model, hook the
layer yourself with `capture(module, module_path)` (the backbone's hook context manager), pool with
`pool`, and `score` the vectors. `AccentMonitorCallback` logs a reading every N optimiser steps of a
`transformers.Trainer`.

What a reading holds, on the held-out batch (use speakers outside the probing set: the probe was fit
on every Stage 1.5 speaker, so on those it reads optimistically):
- accent_f1: macro-F1 of the frozen probe (no refit);
- leak_acc / leak_chance / leak_excess_pp: the Stage 1.5 leakage question asked of the frozen probe:
  within each accent, are speakers told apart by the probe's (class-centred) logits? Nearest
  speaker centroid of one text fold, tested on the other texts;
  chance = the same with speaker labels shuffled within accent;
- direction_norm: how far the accents sit apart along the probe's decision space (in feature units;
  `directions.accent_direction_norm`), and its ratio to the Stage 1.5 value.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import numpy as np
import torch
from sklearn.metrics import f1_score
from sklearn.metrics import pairwise_distances_argmin
from transformers import TrainerCallback

from stage1_5.backbone.base import ActivationCache, attached_hooks, build_capture_hooks, single_capture
from stage1_5.errors import Stage2Error
from stage1_5.probes.splits import TextFold
from stage1_5.probes.stats import shuffled_within
from stage1_5.stage2.directions import LayerDirections, accent_direction_norm, load_directions
from stage1_5.torch_utils import masked_pool

if TYPE_CHECKING:
    from qwen_tts import Qwen3TTSModel

    from stage1_5.data.manifest import Utterance

log = logging.getLogger(__name__)

LEAK_CHANCE_PERMUTATIONS = 20
"""Within-accent speaker shuffles that estimate the leakage chance level."""


@dataclass(frozen=True)
class MonitorReading:
    """One look at the layer on the held-out batch (see the module docstring)."""

    layer: str
    n_utterances: int
    n_speakers: int
    accent_f1: float
    leak_acc: float
    leak_chance: float
    leak_excess_pp: float
    direction_norm: float
    direction_norm_ratio: float
    step: Optional[int] = None

    def as_log(self, prefix: str = "accent_monitor") -> dict[str, float]:
        """Flat `prefix/layer/metric` entries for a training log."""
        skip = {"layer", "step"}
        return {f"{prefix}/{self.layer}/{k}": v for k, v in asdict(self).items() if k not in skip}


def within_accent_leakage(
    projection: np.ndarray, speakers: np.ndarray, accents: np.ndarray, texts: np.ndarray, rng: np.random.Generator
) -> tuple[float, float]:
    """(accuracy, chance) of identifying the speaker within each accent from `projection` [n, k]:
    nearest speaker centroid fit on one half of the texts, tested on the other, both ways. NaN when
    no accent has two speakers or there are fewer than two texts."""

    def hits(labels: np.ndarray) -> tuple[int, int]:
        correct = total = 0
        for train, test in TextFold(2, random_state=0).split(projection, None, texts):
            for accent in np.unique(accents):
                tr, te = train[accents[train] == accent], test[accents[test] == accent]
                seen, codes = np.unique(labels[tr], return_inverse=True)
                if len(seen) < 2 or not len(te):
                    continue
                centroids = np.stack([projection[tr][codes == k].mean(0) for k in range(len(seen))])
                predicted = seen[pairwise_distances_argmin(projection[te], centroids)]
                correct += int((predicted == labels[te]).sum())
                total += len(te)
        return correct, total

    if len(np.unique(texts)) < 2:
        return float("nan"), float("nan")
    correct, total = hits(speakers)
    if total == 0:
        return float("nan"), float("nan")
    chance = []
    for _ in range(LEAK_CHANCE_PERMUTATIONS):
        chance.append(hits(shuffled_within(speakers, accents, rng))[0] / total)
    return correct / total, float(np.mean(chance))


def score_vectors(
    directions: LayerDirections,
    vectors: np.ndarray | torch.Tensor,
    accents: Sequence[str],
    speakers: Sequence[str],
    texts: Sequence[str],
    *,
    seed: int = 0,
) -> MonitorReading:
    """A reading of pooled vectors [n, d] (rows aligned with accents / speakers / texts)."""
    X = torch.as_tensor(np.asarray(vectors) if not isinstance(vectors, torch.Tensor) else vectors.detach().cpu()).to(torch.float64)
    if X.dim() != 2 or X.shape[1] != directions.dim:
        raise Stage2Error(f"layer {directions.layer!r}: vectors of shape {tuple(X.shape)}; the directions need [n, {directions.dim}]")
    accents, speakers, texts = (np.asarray(a).astype(str) for a in (accents, speakers, texts))
    unknown = sorted(set(accents) - set(directions.accents))
    if unknown:
        raise Stage2Error(f"held-out accents {unknown} are not among the probe's accents {list(directions.accents)}")
    d = directions.to(dtype=torch.float64)
    logits = d.logits(X).numpy()
    predicted = np.asarray(directions.accents)[logits.argmax(1)]
    projection = logits - logits.mean(1, keepdims=True)
    leak_acc, leak_chance = within_accent_leakage(projection, speakers, accents, texts, np.random.default_rng(seed))
    norm = accent_direction_norm(X.numpy(), accents, d.accent_basis.numpy())
    return MonitorReading(
        layer=directions.layer,
        n_utterances=len(X),
        n_speakers=len(np.unique(speakers)),
        accent_f1=float(f1_score(accents, predicted, average="macro")),
        leak_acc=leak_acc,
        leak_chance=leak_chance,
        leak_excess_pp=100 * (leak_acc - leak_chance),
        direction_norm=norm,
        direction_norm_ratio=norm / directions.direction_norm if directions.direction_norm > 0 else math.nan,
    )


class AccentMonitor:
    """The frozen accent probe of one layer of a run, ready to read a model in training."""

    def __init__(self, run_dir: str | Path, layer: str, *, seed: int = 0):
        found = load_directions(run_dir)
        self.directions = found[layer]
        self.meta = dict(found.meta)
        self.seed = seed
        self._adapters: dict[int, Any] = {}

    @property
    def layer(self) -> str:
        return self.directions.layer

    @property
    def module_path(self) -> Optional[str]:
        return self.directions.module_path

    # ------------------------------------------------------------------ any model

    @contextlib.contextmanager
    def capture(self, model: torch.nn.Module, module_path: Optional[str] = None) -> Iterator[ActivationCache]:
        """Hook `model`'s module at `module_path` (default: the sidecar's) for the block, with the
        backbone's capture hooks; the cache maps the layer name to the detached outputs."""
        path = module_path or self.module_path
        if path is None:
            raise Stage2Error(f"layer {self.layer!r}: the directions name no module path; pass module_path=")
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise Stage2Error(f"layer {self.layer!r}: {type(model).__name__} has no module {path!r}") from None
        cache, hooks = build_capture_hooks({self.layer: module})
        with attached_hooks(hooks):
            yield cache

    def pool(self, cache: ActivationCache, mask: torch.Tensor) -> torch.Tensor:
        """The captured output [batch, time, d] pooled over `mask` [batch, time] as the extraction pooled."""
        if self.meta.get("origins", {}).get(self.directions.representation) != "extracted":
            raise Stage2Error(f"layer {self.layer!r}: the directions came from external features (pooling unknown); pool yourself and call score()")
        return masked_pool(single_capture(cache, self.layer), mask, self.meta["pooling"])

    def score(self, vectors, accents: Sequence[str], speakers: Sequence[str], texts: Sequence[str]) -> MonitorReading:
        """A reading of pooled vectors you computed yourself."""
        return score_vectors(self.directions, vectors, accents, speakers, texts, seed=self.seed)

    # ------------------------------------------------------------------ Qwen3-TTS

    def _adapter(self, tts: "Qwen3TTSModel"):
        """The extraction adapter on `tts` (built once per model; its layer resolved against the live
        model, which must put it at the sidecar's module path)."""
        from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter
        from stage1_5.config import BackboneConfig

        adapter = self._adapters.get(id(tts))
        if adapter is not None:
            return adapter
        if self.meta.get("origins", {}).get(self.directions.representation) != "extracted":
            raise Stage2Error(f"layer {self.layer!r}: the directions came from external features; measure() cannot redo their extraction")
        device = next(tts.model.parameters()).device
        config = BackboneConfig(
            checkpoint=str(self.meta.get("checkpoint")),
            layers=[self.layer],
            device=str(device),
            pooling=self.meta["pooling"],
            positions=self.meta["positions"],
            speaker_slot=self.meta.get("speaker_slot") or "xvector",
            language=self.meta.get("language"),
            num_workers=0,
        )
        training = tts.model.training
        adapter = HuggingFaceBackboneAdapter(config, tts=tts)  # places the model in eval mode: restore
        tts.model.train(training)
        site = adapter.sites[0]
        if self.module_path is not None and site.module_path != self.module_path:
            raise Stage2Error(f"layer {self.layer!r} is {site.module_path!r} in this model but {self.module_path!r} in the directions")
        self._adapters[id(tts)] = adapter
        return adapter

    def vectors(self, tts: "Qwen3TTSModel", utterances: Sequence["Utterance"]) -> np.ndarray:
        """Pooled vectors [n, d] of `utterances` (in their order), by the extraction's own pass, with
        the model in eval mode for the pass and its mode restored after."""
        adapter = self._adapter(tts)
        training = tts.model.training
        tts.model.eval()
        try:
            by_id = {}
            for batch in adapter.extract_batches(list(utterances)):
                by_id.update(zip(batch.utt_ids, batch.vectors[self.layer]))
        finally:
            tts.model.train(training)
        return np.stack([by_id[u.id] for u in utterances])

    def measure(self, tts: "Qwen3TTSModel", utterances: Sequence["Utterance"]) -> MonitorReading:
        """A reading of the held-out `utterances` (with audio, accent, speaker and text_id) through `tts`."""
        utterances = list(utterances)
        return self.score(
            self.vectors(tts, utterances),
            [u.accent for u in utterances],
            [u.speaker for u in utterances],
            [u.text_id for u in utterances],
        )


class AccentMonitorCallback(TrainerCallback):
    """Logs an `AccentMonitor` reading of a held-out batch before training and every `every_n_steps`
    optimiser steps: into `state.log_history` (so `trainer_state.json` keeps it), the Python log,
    and `history` (the `MonitorReading`s, with their step)."""

    def __init__(self, monitor: AccentMonitor, tts: "Qwen3TTSModel", heldout: Sequence["Utterance"], *, every_n_steps: int = 50, prefix: str = "accent_monitor"):
        if every_n_steps < 1:
            raise Stage2Error(f"every_n_steps must be ≥ 1, got {every_n_steps}")
        self.monitor, self.tts, self.heldout = monitor, tts, list(heldout)
        self.every_n_steps, self.prefix = every_n_steps, prefix
        self.history: list[MonitorReading] = []

    def _record(self, state, step: int) -> None:
        if not state.is_world_process_zero:
            return
        reading = self.monitor.measure(self.tts, self.heldout)
        reading = MonitorReading(**{**asdict(reading), "step": step})
        self.history.append(reading)
        state.log_history.append({**reading.as_log(self.prefix), "step": step})
        log.info(
            "step %d %s: accent F1 %.3f, leakage excess %+.1f pp, direction norm ×%.2f",
            step, reading.layer, reading.accent_f1, reading.leak_excess_pp, reading.direction_norm_ratio,
        )  # fmt: skip

    def on_train_begin(self, args, state, control, **kwargs):
        self._record(state, state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every_n_steps == 0:
            self._record(state, state.global_step)
