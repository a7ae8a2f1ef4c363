"""Distributed data parallel through ``torchrun``: NCCL on GPUs, gloo on CPU; only rank 0 writes files.

``torchrun --nproc_per_node=N -m ranlib train …`` sets RANK, LOCAL_RANK and WORLD_SIZE, which only this module
reads: ``launched_rank`` and ``launched_world_size`` before the process group exists, ``setup()`` to start it
(``cleanup()`` ends it). Without them everything runs as a single process. The helpers that the metrics and the
evaluation use as well (``rank``, ``is_main``, ``all_reduce_sum``, ``unwrap``…) live in ``ranlib.distributed``,
below the engine, and are re-exported here for the engine's code.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ranlib.distributed import all_reduce_sum, barrier, is_main, rank, unwrap, world_size

__all__ = ["all_reduce_sum", "barrier", "cleanup", "is_main", "launched_rank", "launched_world_size", "rank", "setup",
           "unwrap", "world_size"]


def launched_rank() -> int:
    """This process's rank as torchrun set it (RANK), known before the process group starts; 0 without torchrun."""
    return int(os.environ.get("RANK", 0))


def launched_world_size() -> int:
    """The number of processes torchrun started (WORLD_SIZE), known before the process group starts; 1 without."""
    return int(os.environ.get("WORLD_SIZE", 1))


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
