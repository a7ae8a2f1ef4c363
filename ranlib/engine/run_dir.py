"""The run directory: where a run's files go, the one check before a run starts in it, and its ``config.json``.

A run directory holds::

    config.json  metrics.json  log.csv  tb/ (TensorBoard)  *.png (plots)
    checkpoints/iter_*.pt   while it runs: the newest resumable checkpoints (with .sha256 sidecars)
    final.pt                when it has finished: the weights only (with its .sha256 sidecar)

It is a contract: ``config.json`` is the configuration that made the run, written with its first checkpoint (so a
run that fails before that can be started again with corrected values). ``check_run_dir`` refuses, before anything
is written, a path that cannot be a folder and a folder whose ``config.json`` says another configuration; once the
configuration is checked, ``make_run_dir`` makes the folder and proves it takes a checkpoint's worth of bytes.
Torch-free, like ``ranlib.engine.config``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from ranlib.engine.config import RESUMABLE_CHANGES, ConfigError, TrainConfig

PATTERN = "iter_*.pt"
FINAL = "final.pt"


class RunDirConflict(ValueError):
    """The run directory holds a run with another configuration (see ``check_run_dir``)."""


class UnwritableRunDir(OSError):
    """The run directory cannot take a checkpoint; the message says what to do."""


def checkpoint_path(run_dir: Path, iteration: int) -> Path:
    """Where the resumable checkpoint of ``iteration`` goes: ``<run_dir>/checkpoints/iter_0001000.pt``."""
    return Path(run_dir) / "checkpoints" / f"iter_{iteration:07d}.pt"


def final_path(run_dir: Path) -> Path:
    """Where a finished run keeps its weights: ``<run_dir>/final.pt``."""
    return Path(run_dir) / FINAL


def config_differences(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """The fields, as ``name: old -> new``, in which ``config`` differs from a run's ``saved`` configuration,
    leaving out those that may change on resume (``RESUMABLE_CHANGES``; the data root is compared as a resolved
    path)."""
    changed = []
    for name, old in asdict(saved).items():
        new = getattr(config, name)
        if name == "data_root" and Path(old).resolve() != Path(new).resolve():
            changed.append(f"{name}: {old} -> {new}")
        elif name not in RESUMABLE_CHANGES and old != new:
            changed.append(f"{name}: {old} -> {new}")
    return changed


def check_run_dir(config: TrainConfig, finished: bool, allow_config_change: bool = False) -> bool:
    """Refuse, without writing anything, to run ``config`` in ``config.run_dir``: a path that is a file or below
    one (``ConfigError``, ``UnwritableRunDir``), or a folder whose ``config.json`` holds another configuration
    (``RunDirConflict``, unless ``allow_config_change`` on a run that is not ``finished``).

    Returns True when ``config.json`` should be (re)written: a new run, or a change made on purpose with
    ``allow_config_change``. A finished run is never changed: its ``config.json`` stays as it is."""
    run_dir = Path(config.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("run_dir", str(run_dir), "a folder, not a file: choose a new folder or a run's folder")
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise UnwritableRunDir(f"run directory {run_dir} is not writable ({existing} is a file); choose another "
                               "--run-dir")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnwritableRunDir(f"run directory {run_dir} is not writable (no write permission on {existing}); "
                               "choose another --run-dir or fix its permissions")
    saved_path = run_dir / "config.json"
    if not saved_path.exists():
        return True
    try:
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text()))
    except (ValueError, TypeError) as err:
        raise RunDirConflict(f"{saved_path} cannot be read as a TrainConfig ({err}); choose another --run-dir "
                             "or remove that folder") from err
    changed = config_differences(saved, config)
    if not changed:
        return False
    listed = "; ".join(changed)
    if finished:
        raise RunDirConflict(f"{run_dir} holds a finished run with another configuration ({listed}); a finished "
                             "run is never changed: choose another --run-dir for this configuration")
    if not allow_config_change:
        raise RunDirConflict(f"{run_dir} holds a run with another configuration ({listed}). Choose another "
                             "--run-dir, or pass --allow-config-change to continue this run with the new values")
    return True


def make_run_dir(run_dir: Path) -> None:
    """Make ``run_dir`` and write (then remove) a 1 MiB file in it, so that a folder that cannot take a checkpoint
    (read-only, missing rights, full) fails before training rather than at the first checkpoint."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        with open(probe, "wb") as f:
            f.write(b"\0" * (1 << 20))
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as err:
        raise UnwritableRunDir(f"run directory {run_dir} is not writable ({err.strerror or err}); choose another "
                               "--run-dir, fix its permissions or free some space before training") from err


def save_config(config: TrainConfig) -> None:
    """Write ``config.json`` into ``config.run_dir``: the configuration ``check_run_dir`` holds the run to."""
    (Path(config.run_dir) / "config.json").write_text(json.dumps(asdict(config), indent=2))
