"""The course's shared set-up: the mode, the data, the three variants' runs, load-or-train, where files land, and
the toy scenes of notebooks 03 and 05.

Every notebook starts with ``MODE, QUICK, DEVICE, SEED = course.setup()``; those that train or evaluate follow it
with ``DATA_ROOT, CLASSES, VAL_SPLIT, CONFIGS, RUNS = course.data_and_runs()``. Everything else comes from here
too, so a fix made here reaches all ten notebooks. Three modes, one configuration each (``MODES``):

- ``quick``: the embedded mixed-boundary dataset, ResNet-18 from scratch with a 1x1 head, 300 iterations of
  8 crops of 64 px (91-115 s per model on one thread at load about 2, docs/course.md). The default without
  CUDA, and what the tests run.
- ``colab``: sized for a free Colab T4: ImageNet ResNet-50 on VOC ``train_aug``, 321 px crops, 3,000 iterations
  of 10 crops, each variant at most about 30 minutes (estimated; see ``estimate``). The default with CUDA.
  It trains on ``train_aug`` and reports VOC ``val``, and tunes nothing: the three variants share DeepLab's lr
  2.5e-4, so its comparison is untuned (notebook 07 says why that matters). To tune on VOC, choose on
  ``train_aug_fit`` / ``train_aug_holdout`` (``ranlib.data.sbd.split_for_tuning``) and report ``val``.
- ``paper``: the DeepLab/RAN recipe, ImageNet ResNet-101, 20,000 iterations; for an A100/H100.

The environment chooses and shrinks, never the hardware under a test: ``RANLIB_MODE``, the ``RANLIB_MAX_*`` budget
caps, ``RANLIB_DRIVE`` and ``RANLIB_THREADS``, all read in ``ranlib.settings`` and listed in docs/course.md.

One module per concern, every name importable from ``ranlib.course``: ``modes`` (each mode's configuration, the
variants and controls, choosing the mode), ``paths`` (where data/, runs/ and the archives land; the datasets
prepared there), ``runs`` (each mode's run configurations, load-or-train, a model's report), ``estimates`` (GPU
time from counted FLOPs) and ``toys`` (the toy scenes). This file holds the notebooks' two opening calls.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

from ranlib import settings
from ranlib.course.estimates import (
    ASSUMED_CPUS,
    ASSUMED_UTILISATION,
    LOADER_IMAGES_PER_S_PER_CPU,
    VAL_IMAGES,
    VAL_PIXELS,
    Estimate,
    estimate,
    estimate_text,
    gpu_key,
    minutes_range,
    modes_table,
    train_tflop_per_step,
)
from ranlib.course.modes import (
    CONTROLS,
    MODES,
    PREVIEW_ITERATIONS,
    SEED,
    STEP_FACTOR,
    VARIANTS,
    detect_mode,
    device,
)
from ranlib.course.paths import (
    COLAB_DRIVE,
    archive_cache,
    data_dir,
    data_root,
    drive,
    home,
    runs_dir,
    sbd_root,
)
from ranlib.course.runs import (
    configs,
    control_configs,
    cores,
    finished_checkpoint,
    model_report,
    threads,
    trained_model,
    trained_models,
)
from ranlib.course.toys import TOY_CLASSES, TOY_COLOURS, toy_scenes
from ranlib.data import class_names
from ranlib.engine.config import TrainConfig
from ranlib.settings import CAPS, MODE_NAMES, caps

__all__ = [
    "ASSUMED_CPUS", "ASSUMED_UTILISATION", "CAPS", "COLAB_DRIVE", "CONTROLS", "LOADER_IMAGES_PER_S_PER_CPU",
    "MODES", "MODE_NAMES", "PREVIEW_ITERATIONS", "SEED", "STEP_FACTOR", "TOY_CLASSES", "TOY_COLOURS", "VAL_IMAGES",
    "VAL_PIXELS", "VARIANTS", "DataAndRuns", "Estimate", "Setup", "archive_cache", "caps", "configs",
    "control_configs", "cores", "data_and_runs", "data_dir", "data_root", "detect_mode", "device", "drive",
    "estimate", "estimate_text", "finished_checkpoint", "gpu_key", "home", "minutes_range", "model_report",
    "modes_table", "runs_dir", "sbd_root", "setup", "threads", "toy_scenes", "train_tflop_per_step",
    "trained_model", "trained_models",
]


class Setup(NamedTuple):
    mode: str  # quick | colab | paper
    quick: bool  # mode == "quick"
    device: torch.device
    seed: int


def setup(seed: int = SEED) -> Setup:
    """The first call of every notebook: pick the mode, work from ``home()`` (so every notebook shares data/
    and runs/), seed torch, and print the mode, the device and where data/ and runs/ land. A GPU mode on a CPU
    warns that training will be very slow."""
    mode = detect_mode()
    os.chdir(home())
    torch.manual_seed(seed)
    torch.set_num_threads(threads())
    dev = device()
    asked = settings.requested_mode()
    why = asked[1] if asked else "a GPU is present" if dev.type == "cuda" else "no GPU"
    print(f"mode {mode} ({why}), device {dev}, {torch.get_num_threads()} torch thread(s)")
    if mode != "quick" and dev.type != "cuda":
        warnings.warn(f"{mode} mode on a CPU: training will be very slow (set RANLIB_MODE=quick, or use a GPU)",
                      stacklevel=2)
    cache = archive_cache(mount=False)
    print(f"  data/ -> {data_dir()}" + (f" (archives kept in {cache})" if cache and mode != "quick" else ""))
    print(f"  runs/ -> {runs_dir(mode, mount=False)}")
    if caps():
        print(f"  budgets capped by the environment: {caps()}")
    return Setup(mode, mode == "quick", dev, seed)


class DataAndRuns(NamedTuple):
    root: Path  # the dataset folder, in VOC layout (data_root)
    classes: list[str]  # the class names, by label
    val_split: str  # the split the course's runs are evaluated on
    configs: dict[str, TrainConfig]  # {variant: its run's configuration} (configs)
    runs: Path  # the folder that holds the runs (runs_dir)


def data_and_runs(preview: bool = False) -> DataAndRuns:
    """The second call of the notebooks that train or evaluate (01 and 06-09), after ``setup``: the mode's dataset
    (generated in quick mode, downloaded once otherwise), its classes (printed) and the three runs' configurations
    (``preview``: notebook 01's short baseline, as in ``configs``)."""
    root = data_root()
    classes = class_names(root)
    print(f"{root}: {len(classes)} classes: {', '.join(classes)}")
    run_configs = configs(preview=preview, data=root)
    return DataAndRuns(root, classes, run_configs["ran"].val_split, run_configs, runs_dir())
