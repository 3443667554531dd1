"""Process-level runtime settings for CPU work.

On a machine shared with other processes, torch's OpenMP threads that spin while they wait at a
barrier burn the CPU time the other threads of the same call need: `stage1_5 probes` on a 2-core
machine at load ≈ 8 took 28× longer with libgomp's default wait policy than with threads that sleep
(`OPENMP_DEFAULTS`, measured by `benchmarks/bench_probes.py --contended`). The package sets these
defaults when it is imported (`prepare_openmp`): they only take effect if torch is imported later.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator

from stage1_5.errors import Stage15Error

if TYPE_CHECKING:
    import torch


OPENMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""Environment defaults read by OpenMP when torch loads; a value the user set wins."""


def prepare_openmp(environ=None) -> None:
    """Put `OPENMP_DEFAULTS` into the environment where unset (before torch is imported)."""
    env = os.environ if environ is None else environ
    for key, value in OPENMP_DEFAULTS.items():
        env.setdefault(key, value)


def configure_torch_threads() -> int:
    """Use one intra-op thread per physical core, capped at 8 (small forwards on CPU slow down a lot
    when torch oversubscribes); `STAGE1_5_THREADS` overrides. Returns the number set."""
    import torch

    wanted = int(os.environ.get("STAGE1_5_THREADS", "0")) or min(8, os.cpu_count() or 1)
    torch.set_num_threads(wanted)
    return wanted


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op threads and restore the previous number after: small solves
    (a few hundred rows) gain nothing from threads, and on a loaded CPU two threads were measured
    30x slower than one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_device(device: str, *, option: str, error: type[Stage15Error]) -> "torch.device":
    """'auto' → CUDA when present, else CPU; anything else is passed to torch. An unknown or
    unavailable device raises `error` naming the config `option`."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise error(f"{option}: unknown device {device!r} ({err})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise error(f"{option}: {device!r} requested but CUDA is not available on this machine")
    return resolved
