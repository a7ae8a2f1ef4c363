"""Checkpoints that survive a disconnect: atomic writes, integrity checks, the last K kept, safe loading.

A checkpoint ``checkpoints/iter_0001000.pt`` is written to a temporary file, flushed, fsynced and renamed, and
only then gets its ``.sha256`` sidecar (written the same way). A checkpoint without a matching sidecar is
incomplete or corrupt: resuming skips it with a warning and takes the newest good one. Older checkpoints are
deleted only after a newer one is complete; during a run the newest intact checkpoint and the one before it are
kept (the fallback when the newest is cut off). A finished run keeps ``final.pt`` instead: weights, configuration
and iteration only (no optimiser, scheduler, loss-scaler or RNG state), written the same way, after which the
resumable ``iter_*.pt`` files are removed. Loading always uses ``torch.load(weights_only=True)``, so a file
whose pickle would run code is refused; checkpoints therefore hold only tensors and plain Python data (the
configuration as a dict, RNG states as tensors, lists and ints). ``load_checkpoint`` rebuilds the trained model
and its ``TrainConfig`` from one.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import pickle
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from ranlib.engine.config import TrainConfig
from ranlib.model import RAN
from ranlib.model_config import ModelConfig

PATTERN = "iter_*.pt"
FINAL = "final.pt"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass  # some filesystems (e.g. network mounts) cannot fsync a directory


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"iter_{iteration:07d}.pt"


def final_path(run_dir: Path) -> Path:
    """Where a finished run keeps its weights: ``<run_dir>/final.pt``."""
    return Path(run_dir) / FINAL


def _save_with_sidecar(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    _write_atomic(path, data)
    _write_atomic(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())


def save_checkpoint(state: dict, path: Path, keep: int) -> Path:
    """Write ``state`` atomically with its sha256 sidecar, then delete all but the newest ``keep`` good ones."""
    _save_with_sidecar(state, path)
    good = [p for p in list_checkpoints(path.parent) if is_intact(p)]
    for old in good[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
    return path


def save_final(state: dict, run_dir: Path) -> Path:
    """Write ``final.pt`` (atomically, with its sidecar), then remove the run's resumable ``iter_*.pt`` files."""
    path = final_path(run_dir)
    _save_with_sidecar(state, path)
    folder = Path(run_dir) / "checkpoints"
    for old in [*folder.glob(PATTERN), *folder.glob(PATTERN + ".sha256"), *folder.glob(PATTERN + ".tmp")]:
        old.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return path


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint files in ``folder``, oldest first."""
    return sorted(Path(folder).glob(PATTERN)) if Path(folder).is_dir() else []


def is_intact(path: Path) -> bool:
    """True when the file's sha256 matches its sidecar (written only after the file was complete)."""
    sidecar = path.with_name(path.name + ".sha256")
    if not path.exists() or not sidecar.exists():
        return False
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest == sidecar.read_text().strip()


def latest_intact(folder: Path) -> Path | None:
    """The newest intact checkpoint in ``folder``, warning about each newer one that is not."""
    for path in reversed(list_checkpoints(folder)):
        if is_intact(path):
            return path
        warnings.warn(f"checkpoint {path} is incomplete or corrupt (sha256 does not match {path.name}.sha256); "
                      "resuming from the previous good checkpoint instead", stacklevel=2)
    return None


def load_state(path: Path, map_location="cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``), with a clear error for missing, unsafe or broken files."""
    path = Path(path)
    if not path.is_file():
        found = nearest_checkpoints(path)
        hint = f"the nearest that exist: {', '.join(map(str, found))}" if found else (
            "no checkpoint exists near it or under runs/; train first (python -m ranlib train --run-dir …)")
        raise CheckpointError(f"no checkpoint file at {path}; {hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects that would run code when unpickled ({err}). "
            "ranlib checkpoints hold only tensors and plain data; load files only from people you trust, and "
            "if you wrote this file yourself, save plain data (dataclasses.asdict) instead of objects.") from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"cannot read checkpoint {path} ({err}); it is truncated or not a checkpoint. "
                              "Use an earlier checkpoint from the same folder.") from err


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[RAN, TrainConfig, dict]:
    """A trained model (in eval mode) with its TrainConfig and the raw checkpoint state."""
    state = load_state(Path(path))
    config = TrainConfig.from_dict(state["config"])
    model = RAN.from_config(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config, state


def nearest_checkpoints(path: Path, limit: int = 5) -> list[Path]:
    """Checkpoints that exist near a missing ``path``: under its closest existing ancestor folder and under
    ``runs/``, most similar name first."""
    path = Path(path)
    folder = next((p for p in path.parents if p.is_dir()), Path("."))
    found = set()
    for base in {folder, Path("runs")}:
        if base.is_dir():
            for depth in ("", "*/", "*/*/"):
                found.update(base.glob(f"{depth}{FINAL}"))
                found.update(base.glob(f"{depth}checkpoints/{PATTERN}"))
    return sorted(found, key=lambda p: -difflib.SequenceMatcher(None, str(path), str(p)).ratio())[:limit]


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
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
