"""Generic hook capture and masked pooling (stage1_5.backbone.base, stage1_5.torch_utils), on plain modules and tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from stage1_5.backbone.base import (
    attached_hooks,
    build_capture_hooks,
    make_capture_hook,
    primary_output,
    single_capture,
)
from stage1_5.errors import FeatureError
from stage1_5.torch_utils import masked_pool

torch.set_num_threads(1)


class _TupleOut(nn.Module):
    def forward(self, x):
        return (x * 2, "extra")


def test_building_hooks_attaches_nothing():
    lin = nn.Linear(3, 3)
    cache, hooks = build_capture_hooks({"lin": lin})
    assert cache == {} and len(hooks) == 1
    assert len(lin._forward_hooks) == 0


def test_hook_fn_detaches_the_primary_output_into_the_cache_under_the_layer_name():
    cache = {}
    hook = make_capture_hook("blk", cache)
    out = torch.ones(2, 3, requires_grad=True) * 3
    hook(nn.Identity(), (), (out, None))
    assert list(cache) == ["blk"] and cache["blk"][0].requires_grad is False
    assert torch.equal(cache["blk"][0], out.detach())


def test_attached_hooks_capture_and_are_removed_after_the_block():
    mod = _TupleOut()
    cache, hooks = build_capture_hooks({"t": mod})
    with attached_hooks(hooks):
        assert len(mod._forward_hooks) == 1
        mod(torch.arange(3.0))
    assert len(mod._forward_hooks) == 0
    assert torch.equal(single_capture(cache, "t"), torch.arange(3.0) * 2)


def test_attached_hooks_are_removed_when_the_block_raises():
    mods = [nn.Linear(2, 2), nn.Linear(2, 2)]
    _, hooks = build_capture_hooks({"a": mods[0], "b": mods[1]})
    with pytest.raises(RuntimeError), attached_hooks(hooks):
        raise RuntimeError("boom")
    assert all(len(m._forward_hooks) == 0 for m in mods)


def test_a_module_that_ran_twice_or_never_is_an_error():
    with pytest.raises(FeatureError, match="ran 2 times"):
        single_capture({"x": [torch.zeros(1), torch.zeros(1)]}, "x")
    with pytest.raises(FeatureError, match="ran 0 times"):
        single_capture({}, "x")


def test_primary_output_takes_element_zero_of_tuples():
    t = torch.zeros(1)
    assert primary_output(t) is t and primary_output((t, 1)) is t


def test_masked_mean_ignores_padded_positions():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.allclose(masked_pool(hidden, mask, "mean"), torch.tensor([[2.0, 3.0]]))


def test_masked_mean_std_concatenates_mean_and_population_std():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    out = masked_pool(torch.from_numpy(x), torch.from_numpy(mask), "mean_std").numpy()
    assert out.shape == (2, 6) and out.dtype == np.float32
    for i in range(2):
        valid = x[i][mask[i]]
        np.testing.assert_allclose(out[i], np.concatenate([valid.mean(0), valid.std(0)]), rtol=1e-5, atol=1e-6)


def test_pooling_returns_fp32_from_bf16():
    out = masked_pool(torch.ones(1, 2, 4, dtype=torch.bfloat16), torch.ones(1, 2, dtype=torch.bool), "mean")
    assert out.dtype == torch.float32


def test_pooling_over_no_positions_is_an_error():
    with pytest.raises(FeatureError, match="zero positions"):
        masked_pool(torch.ones(1, 2, 4), torch.zeros(1, 2, dtype=torch.bool), "mean")
