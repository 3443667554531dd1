"""Small torch helpers shared by the model providers (`backbone/`) and the feature sources (`features/`).

It sits below both, so neither imports the other for a tensor helper: device and dtype resolution
and masked pooling over time.
"""

from __future__ import annotations

import torch

from stage1_5 import runtime
from stage1_5.config import Pooling
from stage1_5.errors import FeatureError


def resolve_device(device: str, option: str = "device") -> torch.device:
    """The extractors' device ('auto' → CUDA when present); a bad one is a FeatureError naming `option`."""
    return runtime.resolve_device(device, option=option, error=FeatureError)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Model compute dtype: 'auto' is float32 on CPU and bfloat16 on a CUDA GPU that supports it."""
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def masked_pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool `hidden [batch, pos, d]` over the positions where `mask [batch, pos]` is true, in fp32.

    `mean_std` concatenates the mean and the population standard deviation (d -> 2d).
    """
    if hidden.dim() != 3 or hidden.shape[:2] != mask.shape:
        raise FeatureError(f"cannot pool an output of shape {tuple(hidden.shape)} with a mask of shape {tuple(mask.shape)}")
    x = hidden.float()
    w = mask.to(dtype=x.dtype, device=x.device).unsqueeze(-1)  # [batch, pos, 1]
    count = w.sum(dim=1)
    if bool((count == 0).any()):
        raise FeatureError("pooling over zero positions (an utterance has no frames or no text tokens)")
    mean = (x * w).sum(dim=1) / count
    if pooling == "mean":
        return mean
    if pooling == "mean_std":
        var = (((x - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / count
        return torch.cat([mean, var.sqrt()], dim=-1)
    raise FeatureError(f"unknown pooling {pooling!r}; valid: mean, mean_std")
