"""Generic forward-hook capture (TransformerLens style); pooling is `stage1_5.torch_utils.masked_pool`.

Hooks are global state on a module, so they are built separately from being attached
(`build_capture_hooks` returns the cache and the hook functions without touching any module) and
attached only inside `attached_hooks`, whose `finally` removes every handle. Hook bodies only
`detach()` the module's primary output into a list keyed by the layer name; everything else
(checking, pooling) happens afterwards on the typed cache.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from stage1_5.errors import FeatureError

HookFn = Callable[[nn.Module, tuple, object], None]
ActivationCache = dict[str, list[torch.Tensor]]
"""layer name -> one detached output per call of the hooked module during the pass."""


def primary_output(output: object) -> torch.Tensor:
    """The hidden-state tensor of a module's output: the tensor itself, or element 0 of a tuple /
    `ModelOutput` (decoder layers return `(hidden_states, ...)`, transformer bodies return
    `BaseModelOutput(last_hidden_state, ...)`)."""
    if isinstance(output, torch.Tensor):
        return output
    first = output[0]  # tuple, list and transformers.ModelOutput all index the primary tensor at 0
    if not isinstance(first, torch.Tensor):
        raise FeatureError(f"hooked module returned {type(output).__name__} without a leading tensor")
    return first


def make_capture_hook(name: str, cache: ActivationCache) -> HookFn:
    def hook(module: nn.Module, args: tuple, output: object) -> None:
        cache.setdefault(name, []).append(primary_output(output).detach())  # [batch, pos, d]

    return hook


def build_capture_hooks(modules: Mapping[str, nn.Module]) -> tuple[ActivationCache, list[tuple[nn.Module, HookFn]]]:
    """`(cache, [(module, hook_fn)])` for layer name -> module; attaches nothing."""
    cache: ActivationCache = {}
    return cache, [(module, make_capture_hook(name, cache)) for name, module in modules.items()]


@contextlib.contextmanager
def attached_hooks(hooks: Sequence[tuple[nn.Module, HookFn]]) -> Iterator[None]:
    """Register forward hooks for the duration of the block; every handle is removed in `finally`."""
    handles = []
    try:
        for module, fn in hooks:
            handles.append(module.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def single_capture(cache: ActivationCache, name: str) -> torch.Tensor:
    """The one output captured for `name`; a module that ran zero or several times is an error."""
    outputs = cache.get(name, [])
    if len(outputs) != 1:
        raise FeatureError(
            f"layer {name!r}: the hooked module ran {len(outputs)} times in one teacher-forced pass "
            "(expected once); choose an alias or a module listed by `stage1_5 layers`"
        )
    return outputs[0]


