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
from stage1_5.torch_utils import resolve_device

if TYPE_CHECKING:
    import torch

    from stage1_5.config import BackboneConfig
    from stage1_5.data.manifest import Utterance

PREFIX = "backbone:"
_NOT_IN_KEY = {"enabled", "layers", "batch_size", "device"}
"""Settings that do not change a layer's vectors (the layer set is keyed by the store itself)."""


class BackboneExtractor:
    source = "backbone"
    version = "1"

    def __init__(self, cfg: "BackboneConfig", representations: Sequence[str] | None = None):
        available = [PREFIX + layer for layer in cfg.layers]
        self._names = select_names(available, representations, "sources.backbone.layers")
        self.cfg = cfg.model_copy(update={"layers": [name[len(PREFIX) :] for name in self._names]})

    def representation_names(self) -> list[str]:
        return list(self._names)

    def config_key(self) -> dict[str, Any]:
        key = self.cfg.model_dump(mode="json", exclude=_NOT_IN_KEY)
        if self.cfg.dtype == "auto":
            key["device_type"] = self.device.type  # 'auto' means bfloat16 on a GPU, float32 on a CPU
        return key

    @cached_property
    def device(self) -> "torch.device":
        return resolve_device(self.cfg.device, "sources.backbone.device")

    @cached_property
    def adapter(self) -> Any:
        from stage1_5.backbone.huggingface import HFAttachConfig, HuggingFaceBackboneAdapter

        return HuggingFaceBackboneAdapter(HFAttachConfig.from_backbone_config(self.cfg))

    def extract_batches(self, utterances: Sequence["Utterance"], batch_size: int) -> Iterator[FeatureBatch]:
        for batch in self.adapter.extract_batches(utterances, batch_size):
            vectors = {(k if k.startswith(PREFIX) else PREFIX + k): np.asarray(v, dtype=np.float32) for k, v in batch.vectors.items()}
            yield FeatureBatch(
                utt_ids=list(batch.utt_ids),
                vectors={name: vectors[name] for name in self._names if name in vectors},
                n_audio_seconds=float(batch.n_audio_seconds),
            )
