"""A backbone (any family) as a feature source: `<name>:<alias>` through the backbone adapter.

A thin wrapper: `stage1_5.backbone.huggingface.HuggingFaceBackboneAdapter` does the teacher-forced
pass, hooks and pooling. This module names the representations from the config (no model load;
the prefix is the backbone's `name`, 'backbone' for `sources.backbone`), restricts the adapter to
the requested layers and builds it on first use. The store keys each backbone by its settings,
checkpoint included.
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

_NOT_IN_KEY = {"enabled", "name", "layers", "batch_size", "device", "num_workers", "dtype", "attn_implementation"}
"""Settings that do not change a layer's vectors (the layer set is keyed by the store itself); dtype
and attention enter the key as resolved on this machine instead ('auto' differs between GPUs)."""


class BackboneExtractor:
    version = "2"  # 2: dtype and attention keyed as resolved on the machine

    def __init__(self, cfg: "BackboneConfig", representations: Sequence[str] | None = None):
        from stage1_5.config import DEFAULT_BACKBONE_NAME

        self.source: str = getattr(cfg, "name", DEFAULT_BACKBONE_NAME)
        self._prefix = self.source + ":"
        available = [self._prefix + layer for layer in cfg.layers]
        option = "sources.backbone.layers" if self.source == DEFAULT_BACKBONE_NAME else f"sources.backbones[{self.source}].layers"
        self._names = select_names(available, representations, option)
        self.cfg = cfg.model_copy(update={"layers": [name[len(self._prefix) :] for name in self._names]})

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
            vectors = {self._prefix + k: np.asarray(v, dtype=np.float32) for k, v in batch.vectors.items()}
            yield FeatureBatch(
                utt_ids=list(batch.utt_ids),
                vectors={name: vectors[name] for name in self._names if name in vectors},
                n_audio_seconds=float(batch.n_audio_seconds),
            )
