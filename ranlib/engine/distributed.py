"""Distributed data parallel through ``torchrun``: NCCL on GPUs, gloo on CPU; only rank 0 writes files.

``torchrun --nproc_per_node=N -m ranlib train …`` sets RANK, LOCAL_RANK and WORLD_SIZE; ``setup()`` reads them
and starts the process group. Without them everything runs as a single process and these helpers are no-ops.
This module imports only torch, so that ``ranlib.metrics`` and ``ranlib.fusion_changes`` can sum their counts
with ``all_reduce_sum``.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def setup(device: str | torch.device) -> torch.device:
    """Start the process group when launched by torchrun; return this process's device."""
    device = torch.device(device)
    if "RANK" in os.environ and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if device.type == "cuda" and dist.is_initialized():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return device


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that writes logs and checkpoints (rank 0)."""
    return rank() == 0


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum each tensor in place over all processes (every metric's counts after evaluation under DDP); a no-op in
    a single process. Like torchvision's ``reduce_across_processes``, the one place metrics talk to each other."""
    if dist.is_available() and dist.is_initialized():
        for tensor in tensors:
            dist.all_reduce(tensor)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model
