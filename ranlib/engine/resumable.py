"""A resumable checkpoint: what a run holds between two steps, saved by every process at once and loaded to resume.

It holds the ``TrainingState`` (weights, optimiser, learning-rate schedule, loss scale), the RNG states of every
process and the position in the data (``ranlib.engine.data_order.ResumableBatches``), so a run resumed from it on
CPU with ``deterministic`` ends bit-identical to one never stopped. The file itself is written and checked by
``ranlib.engine.checkpoint`` (atomic, with its sha256 sidecar, the newest ``keep_checkpoints`` kept).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ranlib.engine import distributed
from ranlib.engine.checkpoint import latest_intact, load_state, save_checkpoint
from ranlib.engine.config import TrainConfig
from ranlib.engine.data_order import ResumableBatches
from ranlib.engine.run_dir import checkpoint_path
from ranlib.model import RAN
from ranlib.progress import tqdm


class TrainingState(NamedTuple):
    """What training changes: a resumable checkpoint holds these, the RNG states and the data position."""

    model: RAN  # unwrapped: what is saved and evaluated
    optimizer: torch.optim.SGD
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler


def save_resumable(config: TrainConfig, state: TrainingState, batches: ResumableBatches, iteration: int) -> None:
    """The resumable checkpoint of ``iteration`` in ``config.run_dir``: ``state``, every process's RNG state and the
    position of ``batches``. Every process calls it (the RNG states are gathered); rank 0 writes."""
    states = [rng_state()]
    if distributed.world_size() > 1:
        states = [None] * distributed.world_size()
        torch.distributed.all_gather_object(states, rng_state())
    if distributed.is_main():
        save_checkpoint({**{name: part.state_dict() for name, part in state._asdict().items()}, "rng": states,
                         "iteration": iteration, "epoch": batches.epoch, "position": batches.position,
                         "config": asdict(config), "model_config": asdict(config.model_config)},
                        checkpoint_path(Path(config.run_dir), iteration), config.keep_checkpoints)


def resume(run_dir: Path, state: TrainingState) -> tuple[int, int, int]:
    """Load the newest intact resumable checkpoint of ``run_dir`` into ``state`` and this process's RNGs; return
    where it stopped, ``(iteration, epoch, position)`` (zeros for a new run)."""
    resume_from = latest_intact(run_dir / "checkpoints")
    if resume_from is None:
        return 0, 0, 0
    saved = load_state(resume_from)
    for name, part in state._asdict().items():
        part.load_state_dict(saved[name])
    rank = distributed.rank()
    set_rng_state(saved["rng"][rank] if rank < len(saved["rng"]) else saved["rng"][0])
    if distributed.is_main():
        tqdm.write(f"resuming {run_dir} from {resume_from.name} (iteration {saved['iteration']})")
    return saved["iteration"], saved["epoch"], saved["position"]


def rng_state() -> dict:
    """Every RNG the training touches, as data that ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": list(random.getstate()[1]), "python_gauss": random.getstate()[2],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put every RNG back where ``rng_state`` found it."""
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
