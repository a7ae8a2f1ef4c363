"""What the core needs to know about distributed data parallel: which process this is, and how to sum counts.

Under ``torchrun`` every process evaluates its share of the data, and the metrics (``ranlib.metrics``,
``ranlib.fusion_changes``) sum their counts with ``all_reduce_sum``; ``ranlib.evaluate`` looks through DDP and
``torch.compile`` wrappers with ``unwrap``. Starting and stopping the process group is the engine's job
(``ranlib.engine.distributed``). Without a process group every helper here is a no-op: rank 0 of a world of 1.
This module imports only torch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


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
    if dist.is_available() and dist.is_initialized():
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
