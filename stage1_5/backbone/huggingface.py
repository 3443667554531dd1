"""The generic backbone adapter for a Hugging Face-style TTS checkpoint of any family: hooks + teacher forcing.

    adapter = HuggingFaceBackboneAdapter(cfg.sources.backbone)   # the typed BackboneConfig
    for batch in adapter.extract_batches(utterances):
        batch.utt_ids, batch.vectors["decoder_block_08"], batch.n_audio_seconds

Construction checks everything that needs no weights first (`checkpoint.check_backbone`: checkpoint
location and config.json, its family, the family's options, layer aliases, device / dtype /
attention), so a misconfiguration fails in seconds, before a real checkpoint spends minutes loading.
The family (`family.py`, one file under `families/`) builds the teacher-forced pass; this module
keeps what every family shares: every requested layer is captured by forward hooks during ONE pass
per batch (stopped after the deepest requested decoder block) and pooled to one fp32 vector per
utterance. Batches are length-bucketed (sorted by duration) and
padded; audio is decoded and resampled ahead by DataLoader workers or a background thread
(`stage1_5.data.loading`) while the model works; a CUDA
out-of-memory error halves the batch and retries the same utterances.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from pydantic import Field

from stage1_5.backbone.base import ActivationCache, attached_hooks, build_capture_hooks, single_capture
from stage1_5.backbone.checkpoint import check_backbone, load_backbone
from stage1_5.backbone.family import DEFAULT_FAMILY, BackboneFamily, LayerSite, family_named
from stage1_5.backbone.runtime import BackboneRuntime, describe_runtime
from stage1_5.data.loading import prefetched_batches
from stage1_5.data.manifest import Utterance
from stage1_5.errors import FeatureError
from stage1_5.torch_utils import masked_pool, resolve_device

from stage1_5.config import BackboneConfig

log = logging.getLogger(__name__)


class HFAttachConfig(BackboneConfig):
    """The user guide's spelling for attaching to a checkpoint to look at its modules:

        adapter = HuggingFaceBackboneAdapter(HFAttachConfig(checkpoint="Qwen/Qwen3-TTS-12Hz-1.7B-Base"))
        print(list(dict(adapter.model.named_modules()).keys())[:20])

    The backbone settings (`BackboneConfig`, every field and check the same) with one layer by
    default, `text_encoder_out`, which every family and depth has; name `layers` to extract more."""

    layers: list[str] = Field(default_factory=lambda: ["text_encoder_out"], min_length=1)


def default_num_workers(device: torch.device) -> int:
    """Background audio-decoding processes when `num_workers` is not set: 2 on CUDA, 0 on CPU."""
    return 2 if device.type == "cuda" else 0


@dataclass
class BatchResult:
    """Pooled vectors of one batch: `vectors[layer]` is `(len(utt_ids), d)` float32, rows in `utt_ids` order."""

    utt_ids: list[str]
    vectors: dict[str, np.ndarray]
    n_audio_seconds: float

    @property
    def n_utterances(self) -> int:
        return len(self.utt_ids)


class HuggingFaceBackboneAdapter:
    """Loads the backbone once; `extract_batches` yields pooled vectors for every requested layer."""

    def __init__(
        self,
        config: BackboneConfig,
        *,
        tts: Optional[Any] = None,
        early_exit: bool = True,
        batch_speaker: bool = True,
        prefetch: bool = True,
    ):
        """`tts`: an already built model handle of `config.family` (default qwen3_tts: a
        `Qwen3TTSModel`; benchmarks, tests, Stage 2 monitors; its dtype and attention are kept,
        `checkpoint` is ignored); otherwise `config.checkpoint` is checked, then loaded by its family.
        `early_exit`: stop the talker after the deepest requested block (`blocks_needed`); False runs
        every block; `batch_speaker`: x-vectors in one padded batch (`stage1_5.backbone.speaker`);
        False: one utterance at a time through the package; `prefetch`: decode audio ahead while the
        model runs (False: in this thread, when needed). The False settings are the reference
        the benchmark and the equality tests compare against."""
        self.config = config
        if tts is None:
            check = check_backbone(config)  # before any weight loads
            self.runtime: BackboneRuntime = check.runtime
            self.family: BackboneFamily = family_named(check.checkpoint.family)
            tts = load_backbone(check, seed=config.seed)
        else:
            self.family = family_named(config.family or DEFAULT_FAMILY)
            device = resolve_device(config.device, "sources.backbone.device")
            model = self.family.torch_model(tts)
            dtype = next(model.parameters()).dtype
            attn = str(model.config._attn_implementation or "sdpa")
            self.runtime = describe_runtime(device, dtype, "as built", attn, "as built")
            tts = self.family.adopt(tts, device)
        self.device = torch.device(self.runtime.device)
        self.tts = tts
        """The family's handle of the loaded model (Qwen3-TTS: the `Qwen3TTSModel` wrapper)."""
        self.model = self.family.torch_model(tts)
        self.sites = self.family.resolve_layers(tts, config.layers)  # unknown names fail here, before any compute
        self._batch_size = config.batch_size
        self.early_exit = early_exit
        self.batch_speaker = batch_speaker
        self.prefetch = prefetch
        self.oom_halvings = 0
        """How often a CUDA out-of-memory error halved the batch (the back-off keeps the smaller size)."""

    @property
    def batch_size(self) -> int:
        """The batch size in use: the requested one, or less after an out-of-memory back-off."""
        return self._batch_size

    def representation_names(self) -> list[str]:
        """The configured layer names, in config order (the store prefixes them with 'backbone:')."""
        return [s.name for s in self.sites]

    @contextlib.contextmanager
    def capture(self, layers: Optional[Sequence[str]] = None) -> Iterator[ActivationCache]:
        """Attach capture hooks for `layers` (default: the configured ones) for the block; the cache
        maps layer name -> list of detached outputs. Every hook is removed on exit, even on error."""
        sites = self.sites if layers is None else self.family.resolve_layers(self.tts, layers)
        cache, hooks = build_capture_hooks({s.name: self.family.get_module(self.tts, s.module_path) for s in sites})
        with attached_hooks(hooks):
            yield cache

    def extract_batches(
        self,
        utterances: Sequence[Utterance],
        batch_size: Optional[int] = None,
        *,
        layers: Optional[Sequence[str]] = None,
    ) -> Iterator[BatchResult]:
        """Yield one `BatchResult` per processed batch, longest utterances first (not input order).

        Each utterance needs audio; its text is `Utterance.text`, or `text_id` when there is none.
        """
        sites = self.sites if layers is None else self.family.resolve_layers(self.tts, layers)
        self._batch_size = batch_size or self.config.batch_size
        workers = self.config.num_workers
        if workers is None:
            workers = default_num_workers(self.device)
        batches = prefetched_batches(
            utterances, self._batch_size, sample_rate=self.family.sample_rate, num_workers=workers, depth=2 if self.prefetch else 0, error=FeatureError
        )
        for batch in batches:
            yield from self._process(list(zip(batch.utterances, batch.wavs)), sites)

    def _process(self, loaded: list[tuple[Utterance, np.ndarray]], sites: list[LayerSite]) -> Iterator[BatchResult]:
        """Run `loaded` in chunks of the current batch size; on CUDA OOM halve it and retry."""
        pending = [loaded[i : i + self._batch_size] for i in range(0, len(loaded), self._batch_size)]
        while pending:
            chunk = pending.pop(0)
            try:
                result = self._forward(chunk, sites)
            except torch.OutOfMemoryError:
                if len(chunk) == 1:
                    raise FeatureError(
                        f"utterance {chunk[0][0].id}: CUDA out of memory even alone "
                        f"({len(chunk[0][1]) / self.family.sample_rate:.1f} s); use a smaller dtype or a bigger GPU"
                    ) from None
                torch.cuda.empty_cache()
                half = len(chunk) // 2
                self._batch_size = half
                self.oom_halvings += 1
                log.warning("CUDA out of memory with %d utterances; retrying as batches of %d", len(chunk), half)
                pending[:0] = [chunk[:half], chunk[half:]]
                continue
            yield result

    @torch.inference_mode()
    def _forward(self, chunk: list[tuple[Utterance, np.ndarray]], sites: list[LayerSite]) -> BatchResult:
        cfg = self.config
        wavs = [wav for _, wav in chunk]
        texts = [utt.text or utt.text_id for utt, _ in chunk]
        with self.capture([s.name for s in sites]) as cache:
            masks = self.family.forward(
                self.tts,
                wavs,
                texts,
                sites,
                cfg,
                n_blocks=self.family.blocks_needed(sites) if self.early_exit else None,
                batch_speaker=self.batch_speaker,
            )
        vectors = {}
        for site in sites:
            hidden = self.family.arrange(site, single_capture(cache, site.name), masks)
            mask = masks[site.axis]
            if hidden.dim() != 3 or hidden.shape[:2] != mask.shape:
                raise FeatureError(
                    f"layer {site.name!r}: output shape {tuple(hidden.shape)} is not [batch, time, features] on the "
                    f"{site.axis} axis {tuple(mask.shape)}; choose an alias or another module"
                )
            vectors[site.name] = np.ascontiguousarray(masked_pool(hidden, mask, cfg.pooling).cpu().numpy(), dtype=np.float32)
        return BatchResult(
            utt_ids=[utt.id for utt, _ in chunk],
            vectors=vectors,
            n_audio_seconds=float(sum(len(w) for w in wavs)) / self.family.sample_rate,
        )
