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

import hashlib
import io
import os
import pickle
import shlex
import warnings
from pathlib import Path

import torch

from ranlib.engine.config import TrainConfig
from ranlib.engine.run_dir import (
    FINAL,
    PATTERN,
    checkpoint_path,  # noqa: F401  (notebooks and scripts import it from here)
    final_path,
)
from ranlib.engine.wording import nearest_checkpoints, retrain_command
from ranlib.model import RAN
from ranlib.model_config import ModelConfig

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


def _save_with_sidecar(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    _write_atomic(path, data)
    _write_atomic(path.with_name(path.name + ".sha256"), hashlib.sha256(data).hexdigest().encode())


def save_checkpoint(state: dict, path: Path, keep: int) -> Path:
    """Write ``state`` atomically with its sha256 sidecar, then delete all but the newest ``keep`` good ones (read
    back and hashed: the new one now, each older one once, ``_checked_intact``)."""
    _save_with_sidecar(state, path)
    good = [p for p in list_checkpoints(path.parent) if _checked_intact(p)]
    for old in good[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        _CHECKED.pop(old, None)
    return path


# What ``is_intact`` said of each checkpoint ``save_checkpoint`` looked at, with the (inode, size, mtime) of the file
# and of its sidecar then: a file is hashed again only when one of them has changed since.
_CHECKED: dict[Path, tuple[tuple, bool]] = {}


def _checked_intact(path: Path) -> bool:
    """``is_intact(path)``, hashing the file only when it is new or changed since it was last hashed here."""
    try:
        stamp = tuple((s.st_ino, s.st_size, s.st_mtime_ns)
                      for s in (path.stat(), path.with_name(path.name + ".sha256").stat()))
    except FileNotFoundError:  # gone, or without a sidecar (incomplete)
        return False
    if _CHECKED.get(path, (None,))[0] != stamp:
        _CHECKED[path] = stamp, is_intact(path)
    return _CHECKED[path][1]


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
