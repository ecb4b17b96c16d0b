"""Multi-process (DDP) training under ``torchrun``: process group, rank-0-only side effects, sharding.

``torchrun --nproc_per_node N -m wsbench run ...`` starts N processes with ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` in their environment. :func:`setup` joins them into one
process group (NCCL on CUDA, gloo on the CPU) and gives each rank its GPU. Every rank trains on its
share of each global batch; gradients are averaged by
:class:`~torch.nn.parallel.DistributedDataParallel`; rank 0 alone writes checkpoints, run records
and output, and evaluates. Without torchrun (``WORLD_SIZE`` unset or 1) everything here is a no-op.

Sharding keeps the single-process semantics: all ranks draw the same seeded permutation of the
training items per epoch and split every *global* batch into ``world`` equal contiguous parts, so
the union of the ranks' batches at each step is exactly the single-process batch. Items of a
:class:`~wsbench.data.torch_data.ClipDataset` are whole clips, so a clip is never split.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from .errors import UserError

__all__ = ["ShardSampler", "barrier", "broadcast", "cleanup", "is_main", "main_first", "mean_over_ranks",
           "rank", "setup", "world_size"]


def world_size() -> int:
    """Number of processes in the group (1 without torchrun)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join the torchrun process group if launched by torchrun; return this rank's device.

    Args:
        device: the device resolved from ``--device`` (``cuda`` means "this node's GPUs").

    Returns:
        ``cuda:LOCAL_RANK`` on CUDA under torchrun, else ``device`` unchanged.

    Raises:
        UserError: more processes on a node than it has GPUs.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun started local rank {local} but only {torch.cuda.device_count()} "
                            "CUDA device(s) are present; lower --nproc_per_node")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # long timeout: non-main ranks wait at barriers while rank 0 builds caches and flow
        dist.init_process_group(backend, timeout=datetime.timedelta(hours=2))
        atexit.register(cleanup)
    return device


def cleanup() -> None:
    """Leave the process group (no-op without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if world_size() > 1:
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the other ranks (which then find rank 0's caches)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (``obj`` itself in a single process)."""
    if world_size() == 1:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Average a (detached) tensor over ranks, e.g. the logged loss terms of each rank's share."""
    if world_size() == 1:
        return values
    values = values.detach().clone()
    dist.all_reduce(values)
    return values / world_size()


class ShardSampler(Sampler[int]):
    """This rank's items of every global batch of a seeded random permutation.

    Every rank draws the same permutation of ``range(length)`` from ``generator``; global batch
    ``k`` is ``perm[k·B:(k+1)·B]`` with ``B = per_rank × world``, and rank ``r`` gets its part
    ``perm[k·B + r·per_rank : k·B + (r+1)·per_rank]``. The incomplete last batch is dropped
    (unless the whole data set is smaller than one batch and there is one rank, which then takes it
    all). With one rank this is the order of ``RandomSampler(generator=generator)``.

    Args:
        length: number of items (whole clips for a clip dataset).
        per_rank: items per step on each rank.
        generator: seeded CPU generator, the same seed on every rank.
        rank: this rank.
        world: number of ranks.
    """

    def __init__(self, length: int, per_rank: int, generator: torch.Generator, rank: int = 0, world: int = 1) -> None:
        self.length, self.per_rank, self.generator = length, per_rank, generator
        self.rank, self.world = rank, world
        batch = per_rank * world
        if world > 1 and length < batch:
            raise UserError(f"{length} training samples cannot fill one global batch of {batch} "
                            f"on {world} processes; lower --batch-size")
        self.steps = length // batch if length >= batch else 1

    def __len__(self) -> int:
        if self.length < self.per_rank * self.world:
            return self.length
        return self.steps * self.per_rank

    def __iter__(self) -> Iterator[int]:
        perm = torch.randperm(self.length, generator=self.generator).tolist()
        if self.length < self.per_rank * self.world:
            yield from perm
            return
        batch = self.per_rank * self.world
        for k in range(self.steps):
            start = k * batch + self.rank * self.per_rank
            yield from perm[start:start + self.per_rank]
