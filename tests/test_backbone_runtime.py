"""`dtype: auto` and `attn_implementation: auto` on the GPUs users have (L4, T4, A100), and the errors
for settings that cannot run natively. No GPU here: torch's CUDA queries are replaced by the answers
a given card gives."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from stage1_5.backbone.runtime import BackboneRuntime, choose_attention, resolve_backbone_runtime
from stage1_5.config import BackboneConfig
from stage1_5.errors import FeatureError
from stage1_5.torch_utils import choose_dtype

CUDA = torch.device("cuda:0")


@pytest.fixture
def gpu(monkeypatch):
    """Pretend one CUDA card is attached; call with (name, (major, minor))."""

    def attach(name: str, capability: tuple[int, int]) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    return attach


@pytest.fixture
def flash_attn(monkeypatch):
    """Make `flash_attn` look installed (or not)."""
    real = importlib.util.find_spec

    def install(present: bool) -> None:
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: (object() if present else None) if name == "flash_attn" else real(name, *a))

    return install


def test_auto_dtype_is_bfloat16_on_compute_capability_8_and_above(gpu):
    gpu("NVIDIA L4", (8, 9))
    dtype, reason = choose_dtype("auto", CUDA)
    assert dtype == torch.bfloat16 and "8.9" in reason


def test_auto_dtype_is_float16_below_compute_capability_8(gpu):
    gpu("Tesla T4", (7, 5))
    dtype, reason = choose_dtype("auto", CUDA)
    assert dtype == torch.float16 and "7.5" in reason and "emulated" in reason


def test_auto_dtype_is_float32_on_cpu():
    assert choose_dtype("auto", torch.device("cpu"))[0] == torch.float32


def test_explicit_bfloat16_on_a_t4_fails_naming_the_option_and_the_fix(gpu):
    gpu("Tesla T4", (7, 5))
    with pytest.raises(FeatureError, match=r"^sources\.backbone\.dtype: bfloat16: bfloat16 is only emulated on Tesla T4 .*use dtype: auto"):
        resolve_backbone_runtime(BackboneConfig(device="cuda", dtype="bfloat16"))


def test_explicit_float16_on_cpu_fails_naming_the_option():
    with pytest.raises(FeatureError, match=r"^sources\.backbone\.dtype: float16: .*not native on a CPU"):
        resolve_backbone_runtime(BackboneConfig(device="cpu", dtype="float16"))


def test_auto_attention_is_flash_attention_when_flash_attn_is_importable_on_ampere(gpu, flash_attn):
    gpu("NVIDIA A100", (8, 0))
    flash_attn(True)
    assert choose_attention("auto", CUDA, torch.bfloat16)[0] == "flash_attention_2"


def test_auto_attention_is_sdpa_without_flash_attn(gpu, flash_attn):
    gpu("NVIDIA L4", (8, 9))
    flash_attn(False)
    assert choose_attention("auto", CUDA, torch.bfloat16) == ("sdpa", "auto: flash-attn is not installed")


def test_auto_attention_is_sdpa_on_a_t4_even_with_flash_attn(gpu, flash_attn):
    gpu("Tesla T4", (7, 5))
    flash_attn(True)
    assert choose_attention("auto", CUDA, torch.float16)[0] == "sdpa"


def test_flash_attention_on_a_t4_is_one_line_naming_the_option(gpu, flash_attn):
    gpu("Tesla T4", (7, 5))
    flash_attn(True)
    with pytest.raises(FeatureError, match=r"^sources\.backbone\.attn_implementation: flash_attention_2 needs compute capability >= 8\.0 .*use sdpa"):
        choose_attention("flash_attention_2", CUDA, torch.float16)


def test_runtime_on_an_l4_records_device_dtype_attention_and_why(gpu, flash_attn):
    gpu("NVIDIA L4", (8, 9))
    flash_attn(False)
    runtime = resolve_backbone_runtime(BackboneConfig(device="cuda"))
    assert (runtime.device, runtime.device_name, runtime.compute_capability) == ("cuda:0", "NVIDIA L4", "8.9")
    assert (runtime.dtype, runtime.attn_implementation, runtime.speech_tokenizer_dtype) == ("bfloat16", "sdpa", "float32")
    assert "bfloat16 (auto: bfloat16 on compute capability 8.9" in runtime.summary()


def test_runtime_record_round_trips_through_json():
    runtime = resolve_backbone_runtime(BackboneConfig(device="cpu"))
    assert BackboneRuntime.from_dict(runtime.to_dict()) == runtime
