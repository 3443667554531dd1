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


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
"""Config spelling -> torch dtype of the model compute dtypes (`dtype:` options; 'auto' resolves below)."""

BF16_MIN_CAPABILITY = (8, 0)
"""Ampere and later run bfloat16 natively; on older GPUs (T4: 7.5) it is emulated, several times slower."""


def compute_capability(device: torch.device) -> tuple[int, int] | None:
    """(major, minor) of a CUDA device; None on CPU."""
    return tuple(torch.cuda.get_device_capability(device)) if device.type == "cuda" else None  # type: ignore[return-value]


def choose_dtype(dtype: str, device: torch.device) -> tuple[torch.dtype, str]:
    """Model compute dtype and why. 'auto': float32 on CPU; bfloat16 on a GPU of compute capability
    >= 8.0; float16 below (bfloat16 is only emulated there). An explicit name is taken as given."""
    if dtype != "auto":
        return DTYPES[dtype], "set in the config"
    capability = compute_capability(device)
    if capability is None:
        return torch.float32, "auto: float32 on CPU"
    cc = "{}.{}".format(*capability)
    if capability >= BF16_MIN_CAPABILITY:
        return torch.bfloat16, f"auto: bfloat16 on compute capability {cc} (>= 8.0)"
    return torch.float16, f"auto: float16 on compute capability {cc} (< 8.0, where bfloat16 is only emulated)"


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Model compute dtype (see `choose_dtype`)."""
    return choose_dtype(dtype, device)[0]


def non_native_dtype(dtype: torch.dtype, device: torch.device) -> str | None:
    """Why `dtype` is emulated (slow) on `device`, or None when the hardware runs it natively."""
    capability = compute_capability(device)
    if capability is not None and dtype == torch.bfloat16 and capability < BF16_MIN_CAPABILITY:
        name = torch.cuda.get_device_name(device)
        return f"bfloat16 is only emulated on {name} (compute capability {capability[0]}.{capability[1]} < 8.0)"
    if capability is None and dtype == torch.float16:
        return "float16 matrix products are not native on a CPU"
    return None


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
