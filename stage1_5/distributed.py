"""Several processes (GPUs, machines) on torch.distributed: who this process is, and the shards.

    torchrun --nproc-per-node 4 -m stage1_5 features backbone --config config/stage1_5.yaml
    torchrun --nproc-per-node 4 -m stage1_5 run config/stage1_5.yaml

torchrun sets `RANK`, `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous variables; `session()` joins the
process group (NCCL when CUDA is present, else gloo) and each rank uses GPU `LOCAL_RANK`. Without
torchrun, `current()` is a single process of world size 1 and every collective is a no-op, so the
library code has one path. Extraction (`stage1_5.features.extract`) splits the store entry's missing
chunks into length-balanced shards (`length_balanced_shards`), one per rank; every rank writes its
chunks into the same content-addressed store, rank 0 consolidates, and `stage1_5 run` then goes on
to the probes, whose representations and permutation blocks the ranks share
(`probes.protocol.rank_share`, `block_share`); `finish()` then ends the group, so the report and
later stages are single-process.
"""

from __future__ import annotations

import contextlib
import datetime
import heapq
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from stage1_5.errors import Stage15Error

TIMEOUT_S = 4 * 3600
"""How long a rank waits at a collective for the others (a long extraction shard on a slow rank)."""


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank `rank` of `world_size` (1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True while a process group of more than one rank is up (collectives communicate)."""
        return self.world_size > 1 and _group_up()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def describe(self) -> str:
        return f"rank {self.rank}/{self.world_size}"

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (a picklable object)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (it fills a cache: the dataset's hashes and manifest), then the
        other ranks run it and find the cache filled."""
        if not self.is_main:
            self.barrier()
        try:
            yield
        finally:
            if self.is_main:
                self.barrier()


SINGLE = DistContext()
_current: DistContext = SINGLE


def _group_up() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def from_env(environ: Any = None) -> DistContext:
    """The rank torchrun gave this process (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`), or a single process."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise Stage15Error(f"torchrun environment: {err} (RANK, WORLD_SIZE and LOCAL_RANK must be integers)") from None
    if world < 1 or not 0 <= rank < world:
        raise Stage15Error(f"torchrun environment: RANK={rank} is outside WORLD_SIZE={world}")
    return DistContext(rank=rank, world_size=world, local_rank=local)


def current() -> DistContext:
    """The context `session()` set up (a single process outside one)."""
    return _current


@contextlib.contextmanager
def session(backend: str | None = None) -> Iterator[DistContext]:
    """Join the torchrun job for the block (a single process when not under torchrun) and leave it
    on exit. `backend` None: NCCL when CUDA is present, else gloo."""
    global _current
    ctx = from_env()
    if ctx.world_size == 1 or _group_up():
        _current = ctx
        try:
            yield ctx
        finally:
            _current = SINGLE
        return
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(ctx.local_rank % torch.cuda.device_count())
    dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"), timeout=datetime.timedelta(seconds=TIMEOUT_S))
    _current = ctx
    try:
        yield ctx
    finally:
        _current = SINGLE
        finish()


def finish() -> None:
    """End the process group (the distributed phase is over; what follows runs on one process)."""
    if _group_up():
        import torch.distributed as dist

        dist.destroy_process_group()


def length_balanced_shards(weights: Sequence[float], world_size: int, loads: Sequence[float] = ()) -> list[list[int]]:
    """Split items of cost `weights` (audio seconds) into `world_size` shards of nearly equal total:
    longest first, each to the least loaded shard (LPT: within 4/3 of the best split). `loads`: work
    each shard already has (default none), counted when choosing the least loaded. Returns the item
    indices of each shard, ascending; deterministic, so every rank computes the same split."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if loads and len(loads) != world_size:
        raise ValueError(f"loads has {len(loads)} entries for world_size {world_size}")
    heap = [(float(loads[r]) if loads else 0.0, r) for r in range(world_size)]
    heapq.heapify(heap)
    shards: list[list[int]] = [[] for _ in range(world_size)]
    for index in sorted(range(len(weights)), key=lambda i: (-float(weights[i]), i)):
        load, rank = heapq.heappop(heap)
        shards[rank].append(index)
        heapq.heappush(heap, (load + float(weights[index]), rank))
    return [sorted(shard) for shard in shards]
