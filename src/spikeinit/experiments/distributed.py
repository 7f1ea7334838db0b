"""DistributedDataParallel plumbing: process group from ``torchrun``'s environment, reductions.

``spikeinit train`` runs unchanged as one process or under ``torchrun --nproc_per_node N``:
:func:`setup_distributed` reads ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` and, when there is more
than one process, starts a process group (``gloo`` on CPU, ``nccl`` on CUDA).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from spikeinit._validation import check_choice
from spikeinit.errors import InvalidArgumentError

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether gradients and metrics are reduced across processes."""
        return self.world_size > 1


def default_device() -> str:
    """``"cuda"`` when a GPU is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def setup_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group ``torchrun`` describes (no-op for a single process).

    Args:
        device: ``"cpu"`` or ``"cuda"`` (default: cuda when available). Under torchrun with
            CUDA, each process uses GPU ``LOCAL_RANK``.

    Raises:
        ValueError: unknown ``device``, or ``"cuda"`` without an available GPU.
    """
    device = default_device() if device is None else check_choice("device", device, DEVICES)
    if device == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError(
            "device must be 'cpu' on this machine (no CUDA GPU is available)")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if world_size <= 1:
        return DistributedContext(device=device)
    initialized_here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        initialized_here = True
    return DistributedContext(rank, world_size, local_rank, device, initialized_here)


def cleanup_distributed(context: DistributedContext) -> None:
    """Destroy the process group if :func:`setup_distributed` created it, after a barrier: a
    rank that tears the group down while another still talks to it aborts that one (seen under
    load as a rank exiting with SIGABRT)."""
    if context.initialized_here and dist.is_initialized():
        if context.distributed:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum ``values`` (float64 recommended) over all processes; identity for one process."""
    if context.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op for one process)."""
    if context.distributed:
        dist.barrier()
