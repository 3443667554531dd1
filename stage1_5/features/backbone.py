"""The Qwen3-TTS backbone as a feature source: `backbone:<alias>` through the backbone adapter.

A thin wrapper: `stage1_5.backbone.huggingface.HuggingFaceBackboneAdapter` does the teacher-forced
pass, hooks and pooling. This module names the representations from the config (no model load),
restricts the adapter to the requested layers and builds it on first use.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from stage1_5.features.base import FeatureBatch, select_names

if TYPE_CHECKING:
    import torch

    from stage1_5.backbone.runtime import BackboneRuntime
    from stage1_5.config import BackboneConfig
    from stage1_5.data.manifest import Utterance

PREFIX = "backbone:"
_NOT_IN_KEY = {"enabled", "layers", "batch_size", "device", "num_workers", "dtype", "attn_implementation"}
"""Settings that do not change a layer's vectors (the layer set is keyed by the store itself); dtype
and attention enter the key as resolved on this machine instead ('auto' differs between GPUs)."""


class BackboneExtractor:
    source = "backbone"
    version = "2"  # 2: dtype and attention keyed as resolved on the machine

    def __init__(self, cfg: "BackboneConfig", representations: Sequence[str] | None = None):
        available = [PREFIX + layer for layer in cfg.layers]
        self._names = select_names(available, representations, "sources.backbone.layers")
        self.cfg = cfg.model_copy(update={"layers": [name[len(PREFIX) :] for name in self._names]})

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        key = self.cfg.model_dump(mode="json", exclude=_NOT_IN_KEY)
        key["compute_dtype"] = self.runtime.dtype
        key["attention"] = self.runtime.attn_implementation
        return key

    @cached_property
    def runtime(self) -> "BackboneRuntime":
        """Device, dtype and attention as resolved on this machine (cheap: loads no model)."""
        from stage1_5.backbone.runtime import resolve_backbone_runtime

        return resolve_backbone_runtime(self.cfg)

    @property
    def device(self) -> "torch.device":
        import torch

        return torch.device(self.runtime.device)

    @cached_property
    def adapter(self) -> Any:
        from stage1_5.backbone.huggingface import HuggingFaceBackboneAdapter

        return HuggingFaceBackboneAdapter(self.cfg)

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        for batch in self.adapter.extract_batches(utterances, batch_size):
            vectors = {(k if k.startswith(PREFIX) else PREFIX + k): np.asarray(v, dtype=np.float32) for k, v in batch.vectors.items()}
            yield FeatureBatch(
                utt_ids=list(batch.utt_ids),
                vectors={name: vectors[name] for name in self._names if name in vectors},
                n_audio_seconds=float(batch.n_audio_seconds),
            )
