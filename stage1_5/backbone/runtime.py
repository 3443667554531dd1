"""What the backbone runs with on this machine: device, compute dtype and attention kernel, and why.

`dtype: auto` and `attn_implementation: auto` resolve here, once, for the adapter, the feature
store key, `stage1_5 preflight` and the run's report:

- dtype: float32 on CPU; bfloat16 on a GPU of compute capability >= 8.0; float16 below (a T4 only
  emulates bfloat16). The speech tokenizer always runs in float32 (its codes are an argmin over
  codebooks, which half precision would flip).
- attention: flash_attention_2 when flash-attn is importable and the GPU can run it (CUDA, compute
  capability >= 8.0, half precision); sdpa otherwise.

A setting that cannot work or would run emulated raises a `FeatureError` naming the option and the fix.
`BackboneRuntime` is a plain record (no torch at import): the report renders it from
`artifacts/analysis/backbone_runtime.json`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, Optional

from stage1_5.errors import FeatureError

if TYPE_CHECKING:
    import torch

    from stage1_5.config import BackboneConfig

SPEECH_TOKENIZER_DTYPE = "float32"
OPTION = "sources.backbone"


@dataclass(frozen=True)
class BackboneRuntime:
    """The resolved runtime of the backbone, with the reason for every 'auto' choice."""

    device: str  # "cuda:0" / "cpu"
    device_name: str  # "NVIDIA L4" / "8 threads"
    compute_capability: Optional[str]  # "8.9"; None on CPU
    dtype: str  # talker / speaker encoder compute dtype
    dtype_reason: str
    attn_implementation: str
    attn_reason: str
    speech_tokenizer_dtype: str
    torch_version: str
    cuda_version: Optional[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BackboneRuntime":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def summary(self) -> str:
        """One line for the report and the preflight plan."""
        cc = f", compute capability {self.compute_capability}" if self.compute_capability else ""
        return (
            f"{self.device} ({self.device_name}{cc}); {self.dtype} ({self.dtype_reason}); "
            f"attention {self.attn_implementation} ({self.attn_reason}); speech tokenizer {self.speech_tokenizer_dtype}"
        )


def flash_attn_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def choose_attention(requested: str, device: "torch.device", dtype: "torch.dtype") -> tuple[str, str]:
    """The attention implementation and why; an explicit flash_attention_2 that cannot run is an error."""
    import torch

    from stage1_5.torch_utils import BF16_MIN_CAPABILITY, compute_capability

    half = dtype in (torch.float16, torch.bfloat16)
    if requested == "flash_attention_2":
        option = f"{OPTION}.attn_implementation: flash_attention_2"
        if not flash_attn_installed():
            raise FeatureError(f"{option} needs the flash-attn package, which is not installed; use sdpa (the default) or `pip install flash-attn`")
        capability = compute_capability(device)
        if capability is None:
            raise FeatureError(f"{option} needs a CUDA device; use sdpa")
        if capability < BF16_MIN_CAPABILITY:
            raise FeatureError(f"{option} needs compute capability >= 8.0 (this GPU has {capability[0]}.{capability[1]}); use sdpa")
        if not half:
            raise FeatureError(f"{option} needs float16 or bfloat16 (dtype is {str(dtype).replace('torch.', '')}); use dtype: auto or sdpa")
        return requested, "set in the config"
    if requested != "auto":
        return requested, "set in the config"
    if not flash_attn_installed():
        return "sdpa", "auto: flash-attn is not installed"
    capability = compute_capability(device)
    if capability is None or capability < BF16_MIN_CAPABILITY or not half:
        return "sdpa", "auto: flash-attn needs a CUDA GPU of compute capability >= 8.0 in half precision"
    return "flash_attention_2", "auto: flash-attn is installed"


def resolve_backbone_runtime(cfg: "BackboneConfig") -> BackboneRuntime:
    """Resolve device, dtype and attention for `cfg` on this machine (cheap: loads no model)."""
    from stage1_5.torch_utils import choose_dtype, non_native_dtype, resolve_device

    device = resolve_device(cfg.device, f"{OPTION}.device")
    dtype, dtype_reason = choose_dtype(cfg.dtype, device)
    slow = non_native_dtype(dtype, device)
    if slow:
        raise FeatureError(f"{OPTION}.dtype: {cfg.dtype}: {slow}; use dtype: auto (it picks the fastest native dtype) or another dtype")
    attn, attn_reason = choose_attention(cfg.attn_implementation, device, dtype)
    return describe_runtime(device, dtype, dtype_reason, attn, attn_reason)


def describe_runtime(device: "torch.device", dtype: "torch.dtype", dtype_reason: str, attn: str, attn_reason: str) -> BackboneRuntime:
    """The record for an already chosen device / dtype / attention (e.g. a model built elsewhere)."""
    import torch

    from stage1_5.torch_utils import compute_capability

    capability = compute_capability(device)
    if capability is None:
        name = f"{torch.get_num_threads()} threads"
        device_str = "cpu"
    else:
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = torch.cuda.get_device_name(index)
        device_str = f"cuda:{index}"
    return BackboneRuntime(
        device=device_str,
        device_name=name,
        compute_capability=None if capability is None else f"{capability[0]}.{capability[1]}",
        dtype=str(dtype).replace("torch.", ""),
        dtype_reason=dtype_reason,
        attn_implementation=attn,
        attn_reason=attn_reason,
        speech_tokenizer_dtype=SPEECH_TOKENIZER_DTYPE,
        torch_version=torch.__version__,
        cuda_version=torch.version.cuda,
    )
