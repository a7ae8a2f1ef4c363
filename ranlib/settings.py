"""Every environment variable ranlib reads, read here and nowhere else (docs/course.md lists them too).

None of them is needed: without any, the course picks its mode from the hardware, trains each mode's full budget
and keeps its files under the working folder, and the downloads use their built-in mirrors.

- ``RANLIB_MODE=quick|colab|paper``: the course's mode (``ranlib.course.detect_mode``); ``RANLIB_QUICK=1`` also
  means quick, and an explicit ``RANLIB_MODE`` wins over it.
- ``RANLIB_MAX_ITERATIONS``, ``RANLIB_MAX_BATCH_SIZE``, ``RANLIB_MAX_CROP_SIZE``, ``RANLIB_MAX_VAL_IMAGES``: budget
  caps, whole numbers >= 1, that only shrink a mode's budget (``ranlib.course.configs`` refuses a larger one);
  capped runs get their own folder.
- ``RANLIB_DRIVE``: the folder that stands for Google Drive, where the course keeps runs and downloaded archives.
- ``RANLIB_THREADS``: the torch threads of a notebook (``ranlib.course.threads``; unset: the free cores).
- ``RANLIB_MIRRORS_FILE``: a JSON file replacing the download mirrors and/or MD5s (``ranlib.data.download``).

Each reader takes ``environ`` (default ``os.environ``), so a test passes a dict instead of changing the process's
environment. Torch-free and free of ranlib imports: the data package reads the mirrors file through it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

MODE = "RANLIB_MODE"
QUICK = "RANLIB_QUICK"
DRIVE = "RANLIB_DRIVE"
THREADS = "RANLIB_THREADS"
MIRRORS_FILE = "RANLIB_MIRRORS_FILE"
MODE_NAMES = ("quick", "colab", "paper")  # the values of RANLIB_MODE
# The budget caps: variable -> the TrainConfig field it caps (val_images: the first N images of the validation split).
CAPS = {"RANLIB_MAX_ITERATIONS": "iterations", "RANLIB_MAX_BATCH_SIZE": "batch_size",
        "RANLIB_MAX_CROP_SIZE": "crop_size", "RANLIB_MAX_VAL_IMAGES": "val_images"}


def requested_mode(environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The mode the environment asks for and why, ``(mode, "RANLIB_MODE")`` or ``("quick", "RANLIB_QUICK=1")``;
    None when it asks for none (the hardware decides)."""
    env = os.environ if environ is None else environ
    mode = env.get(MODE, "").strip().lower()
    if mode:
        if mode not in MODE_NAMES:
            raise ValueError(f"{MODE}={mode!r} is not a mode; choose one of {', '.join(MODE_NAMES)}")
        return mode, MODE
    if env.get(QUICK) == "1":
        return "quick", f"{QUICK}=1"
    return None


def caps(environ: Mapping[str, str] | None = None) -> dict[str, int]:
    """The budget caps set in the environment, by TrainConfig field (plus ``val_images``)."""
    env = os.environ if environ is None else environ
    found = {}
    for name, key in CAPS.items():
        if env.get(name):
            try:
                found[key] = int(env[name])
            except ValueError:
                raise ValueError(f"{name}={env[name]!r} is not a whole number") from None
            if found[key] < 1:
                raise ValueError(f"{name}={found[key]} must be at least 1")
    return found


def drive_folder(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$RANLIB_DRIVE`` as an absolute path, None when unset."""
    env = os.environ if environ is None else environ
    return Path(env[DRIVE]).resolve() if env.get(DRIVE) else None


def torch_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """``$RANLIB_THREADS``, a whole number >= 1; None when unset."""
    env = os.environ if environ is None else environ
    value = env.get(THREADS)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{THREADS}={value!r} must be a whole number >= 1; unset it to use the free cores")
    return int(value)


def mirrors_file(environ: Mapping[str, str] | None = None) -> str | None:
    """``$RANLIB_MIRRORS_FILE``: the JSON file of mirror and MD5 overrides, None when unset."""
    env = os.environ if environ is None else environ
    return env.get(MIRRORS_FILE) or None
