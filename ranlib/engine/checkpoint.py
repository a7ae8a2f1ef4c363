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
and its ``TrainConfig`` from one, after ``verify``: a file that does not match its sidecar is refused (for a
damaged ``final.pt`` the error names the command that retrains the run), one without a sidecar (written by an
older ranlib) is loaded with an ``UnverifiedCheckpointWarning``.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import pickle
import random
import shlex
import warnings
from pathlib import Path

import numpy as np
import torch

from ranlib.engine.config import TrainConfig, train_command_line
from ranlib.model import RAN
from ranlib.model_config import ModelConfig

PATTERN = "iter_*.pt"
FINAL = "final.pt"
WHAT_RANLIB_WRITES = ("a ranlib checkpoint holds model (the weights), config and model_config, as python -m ranlib "
                      "train writes them (a run's final.pt or checkpoints/iter_*.pt)")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used; the message names the file and what to do."""


class UnverifiedCheckpointWarning(UserWarning):
    """A checkpoint has no sha256 sidecar to check it against (older ranlib versions wrote none); it is used as is."""


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


def verify(path: Path) -> bool:
    """Check a checkpoint against its sha256 sidecar before it is used: True when it matches, False (with an
    ``UnverifiedCheckpointWarning``) when it has no sidecar; a mismatch raises ``CheckpointError`` naming the file
    and the fix, so a damaged file is never used."""
    path = Path(path)
    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.exists():
        warnings.warn(f"{path} has no sha256 sidecar (older ranlib versions wrote none), so it is used unverified; "
                      f"to verify it from now on: sha256sum {shlex.quote(str(path))} | cut -d' ' -f1 > "
                      f"{shlex.quote(str(sidecar))}", UnverifiedCheckpointWarning, stacklevel=2)
        return False
    if is_intact(path):
        return True
    if path.name == FINAL:
        fix = (f"to retrain the run on purpose (from iteration 0: its resumable checkpoints were removed when it "
               f"finished): {retrain_command(path.parent)}")
    else:
        fix = ("use an earlier checkpoint of that folder, or rerun the run's train command, which resumes from the "
               "newest intact one")
    raise CheckpointError(f"{path} does not match its sha256 sidecar {sidecar.name} (damaged or truncated), so it is "
                          f"not used; {fix}")


def retrain_command(run_dir: Path) -> str:
    """The shell command that removes ``run_dir``'s final.pt and trains the run again from its ``config.json``:
    ``python -m ranlib train`` with the run's flags, or a ``python -c`` call of ``fit`` when no flags express it."""
    run_dir = Path(run_dir)
    remove = shlex.join(["rm", str(final_path(run_dir)), str(final_path(run_dir)) + ".sha256"])
    saved = run_dir / "config.json"
    try:
        config = TrainConfig.from_dict(json.loads(saved.read_text()))
    except (OSError, ValueError, TypeError):
        return f"{remove}, then rerun the train command that made the run (its config.json is missing or unreadable)"
    command = train_command_line(config, run_dir)
    if command is None:
        code = f"import json, ranlib; ranlib.fit(ranlib.TrainConfig.from_dict(json.load(open({str(saved)!r}))))"
        command = shlex.join(["python", "-c", code])
    return f"{remove} && {command}"


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
        with warnings.catch_warnings():  # a plain pickle warns about its protocol before it fails below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), None)  # an import
        if blocked is None:
            raise CheckpointError(f"cannot read {path}: torch.load cannot unpickle it, so it is not a file that "
                                  f"torch.save wrote; {WHAT_RANLIB_WRITES}") from err
        raise CheckpointError(
            f"refusing to load {path}: it holds Python objects that would run code when unpickled ({blocked}). "
            "ranlib checkpoints hold only tensors and plain data; load files only from people you trust, and "
            "if you wrote this file yourself, save plain data (dataclasses.asdict) instead of objects.") from err
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, … for a cut or foreign file
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"cannot read checkpoint {path} ({type(err).__name__}: {reason}); it is truncated or "
                              f"not a checkpoint: use an earlier checkpoint from the same folder; "
                              f"{WHAT_RANLIB_WRITES}") from err


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[RAN, TrainConfig, dict]:
    """A trained model (in eval mode) with its TrainConfig and the raw checkpoint state. The file is checked
    against its sha256 sidecar first (``verify``); a file that is not a ranlib checkpoint is refused."""
    path = Path(path)
    if path.is_file() and (path.name == FINAL or path.match(PATTERN) or path.with_name(path.name + ".sha256").exists()):
        verify(path)  # ranlib writes a sidecar beside these; a file of another name is checked when it has one
    state = load_state(path)
    missing = [key for key in ("model", "config", "model_config") if not isinstance(state, dict) or key not in state]
    if missing:
        if not isinstance(state, dict):
            held = f"a {type(state).__name__}"
        else:
            keys = [str(key) for key in state]
            held = f"the keys {', '.join(keys[:4])}{', …' if len(keys) > 4 else ''}" if keys else "an empty dict"
        raise CheckpointError(f"{path} is not a ranlib checkpoint: it holds {held}, without {', '.join(missing)}; "
                              f"{WHAT_RANLIB_WRITES}")
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
