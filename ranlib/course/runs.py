"""The course's runs: each mode's configurations (``configs``, and notebook 07's ``control_configs``), where a
finished run's weights are, and load-or-train (``trained_model``, ``trained_models``): the finished run if it
exists, else ``ranlib.engine.train.fit``, which resumes; several unfinished runs train side by side on a CPU."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ranlib import settings
from ranlib.course.estimates import VAL_IMAGES, estimate_text
from ranlib.course.modes import MODES, PREVIEW_ITERATIONS, STEP_FACTOR, VARIANTS, detect_mode, device
from ranlib.course.paths import data_root, runs_dir, sbd_root
from ranlib.data import class_names, val_transforms, voc
from ranlib.engine.checkpoint import load_checkpoint
from ranlib.engine.config import TrainConfig
from ranlib.engine.run_dir import RunDirConflict, check_run_dir, checkpoint_path
from ranlib.engine.train import fit
from ranlib.engine.wording import train_command_line
from ranlib.evaluate import evaluate_regions
from ranlib.file_lock import exclusive


def configs(mode: str | None = None, preview: bool = False, data: Path | None = None) -> dict[str, TrainConfig]:
    """The mode's three runs, ``{variant: TrainConfig}``, with the budget caps applied.

    ``preview``: the short baseline-only look of notebook 01 (``PREVIEW_ITERATIONS`` on VOC train in
    colab/paper mode; the quick run itself in quick mode). ``data`` defaults to ``data_root(mode)``.
    """
    mode = mode or detect_mode()
    base = MODES[mode]
    found = settings.caps()
    for key in ("iterations", "batch_size", "crop_size"):
        if key in found and found[key] > getattr(base, key):
            raise ValueError(f"RANLIB_MAX_{key.upper()}={found[key]} is above {mode} mode's {getattr(base, key)}: "
                             "the caps only shrink a budget; unset it or choose a smaller value")
    if found.get("val_images", 0) > VAL_IMAGES:
        raise ValueError(f"RANLIB_MAX_VAL_IMAGES={found['val_images']} is above VOC val's {VAL_IMAGES} images")
    root = Path(data) if data is not None else data_root(mode)
    runs = runs_dir(mode)
    # quick mode keeps fp32 everywhere (its checked outputs must not depend on the machine); the GPU modes store
    # "auto", which fit resolves to the device's native precision (ranlib.precision: bf16 from compute capability
    # 8.0, fp16 with a loss scale below), so a run started on a T4 resumes on an L4 or A100.
    amp = base.amp if mode == "quick" else "auto"
    config = replace(base, data_root=str(root), amp=amp)
    if preview and mode != "quick":
        config = replace(config, train_split="train", iterations=min(PREVIEW_ITERATIONS, config.iterations),
                         eval_every=0, checkpoint_every=PREVIEW_ITERATIONS)
    config = replace(config, iterations=min(config.iterations, found.get("iterations", config.iterations)),
                     batch_size=min(config.batch_size, found.get("batch_size", config.batch_size)),
                     crop_size=min(config.crop_size, found.get("crop_size", config.crop_size)))
    config = replace(config, checkpoint_every=min(config.checkpoint_every, config.iterations),
                     eval_every=config.eval_every if config.eval_every < config.iterations else 0)
    if "val_images" in found:
        config = replace(config, val_split=f"val_first{found['val_images']}")
    preview_dir = preview and mode != "quick"
    return {v: replace(config, variant=v, run_dir=str(runs / (f"{v}_preview" if preview_dir else v)))
            for v in VARIANTS}


def control_configs(mode: str | None = None, data: Path | None = None) -> dict[str, TrainConfig]:
    """Notebook 07's two controls at the mode's budget, ``{arm: TrainConfig}`` (``CONTROLS``): ``baseline-step``
    is the baseline with its backbone's lr times ``STEP_FACTOR`` and its heads' lr unchanged (the step that RAN's
    summed losses give its backbone); ``ran-mean`` is RAN with its three losses averaged (the baseline's scale)."""
    runs = configs(mode, data=data)
    baseline, ran = runs["baseline"], runs["ran"]
    folder = Path(ran.run_dir).parent
    return {"baseline-step": replace(baseline, lr=baseline.lr * STEP_FACTOR,
                                     head_lr_mult=baseline.head_lr_mult / STEP_FACTOR,
                                     run_dir=str(folder / "baseline-step")),
            "ran-mean": replace(ran, loss_weights=(1 / 3, 1 / 3, 1 / 3), run_dir=str(folder / "ran-mean"))}


def finished_checkpoint(config: TrainConfig) -> Path | None:
    """The finished run's weights: ``final.pt`` if written, else the last iteration's checkpoint, else None."""
    run_dir = Path(config.run_dir)
    for path in (run_dir / "final.pt", checkpoint_path(run_dir, config.iterations)):
        if path.is_file():
            return path
    return None


def run_lock(config: TrainConfig):
    """The run folder's lock (``ranlib.file_lock.exclusive``): one process at a time trains a run; another one that
    needs it waits, then loads what the first one finished."""
    return exclusive(config.run_dir, f"training {config.run_dir}")


def threads(environ: dict | None = None) -> int:
    """The torch threads the course's notebooks use: ``$RANLIB_THREADS`` if set (notebooks/conftest.py sets 1),
    else the cores this process may use minus the load already on them (the 1-minute load average), at least 1.

    Torch's default, one thread per core, collapses when another job shares the cores: two spinning OpenMP threads
    beside one busy core trained 10x slower than one thread (issue 31's measurement). Asking for the free cores
    keeps a notebook beside another job at one thread's speed instead."""
    asked = settings.torch_threads(environ)
    if asked:
        return asked
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores() - busy)


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def trained_models(run_configs: dict[str, TrainConfig], dev: torch.device | None = None) -> dict:
    """``{name: trained model}`` for several runs: ``trained_model`` for each, after training the unfinished ones.

    On a CPU with two or more cores, unfinished runs train side by side, one per core and one torch thread each, as
    ``python -m ranlib train`` processes (output in ``<run_dir>/train.out``): on the course's 2-core machines two
    quick models take about the time of one, and single-threaded processes do not collapse beside other work as
    multi-threaded ones do. The result is the same model as training here on one thread. On a GPU, or with one
    core, they train one after the other in this process."""
    dev = dev or device()
    for config in run_configs.values():  # refuse a folder holding another configuration before any training
        check_run_dir(config, finished=finished_checkpoint(config) is not None)
    with ExitStack() as held:  # each run's lock, in one order, so that two processes cannot wait on each other
        for config in sorted(run_configs.values(), key=lambda c: c.run_dir):
            held.enter_context(run_lock(config))
        todo = {name: config for name, config in run_configs.items() if finished_checkpoint(config) is None}
        if any(config.train_split == "train_aug" for config in todo.values()):
            sbd_root()  # what train_aug needs beside VOC, fetched once here rather than by each process
        jobs = min(len(todo), cores()) if dev.type == "cpu" else 1
        command_lines = {name: train_command_line(config) for name, config in todo.items()}
        if jobs > 1 and all(command_lines.values()):
            print(f"training {', '.join(todo)} side by side, {jobs} at a time, one thread each")
            _train_side_by_side(todo, command_lines, jobs)
    return {name: trained_model(name, config=config, dev=dev) for name, config in run_configs.items()}


def _train_side_by_side(todo: dict[str, TrainConfig], command_lines: dict[str, str], jobs: int) -> None:
    """Run each ``python -m ranlib train`` command line with one thread, ``jobs`` at a time, output to
    ``<run_dir>/train.out``; raise naming the run and its output file when one fails."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def one(name: str) -> None:
        run_dir = Path(todo[name].run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, *shlex.split(command_lines[name])[1:], "--threads", "1"]
        with open(run_dir / "train.out", "a") as out:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if code:
            raise RuntimeError(f"training {name} failed (exit {code}); its output is in {run_dir / 'train.out'}")

    with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(todo), desc="runs", unit="run") as bar:
        for _ in pool.map(one, todo):
            bar.update()


def trained_model(variant: str, preview: bool = False, config: TrainConfig | None = None,
                  dev: torch.device | None = None):
    """The variant's trained model (eval mode): loaded when its run is finished, else trained or resumed first.

    A run that is not finished is trained by ``ranlib.engine.train.fit`` (which resumes from its newest checkpoint);
    the estimate of how long it takes on this GPU is printed before it starts. A run folder holding another
    configuration is refused with the fields that differ (``RunDirConflict``, as ``fit`` refuses it), before
    anything is loaded or trained. ``preview``: notebook 01's short baseline.
    """
    config = config or configs(preview=preview)[variant]
    dev = dev or device()
    # Another kernel (notebook 07 beside 08, say) may be training this run: wait for it, then load its result.
    with run_lock(config):
        path = finished_checkpoint(config)
        try:
            check_run_dir(config, finished=path is not None)
        except RunDirConflict as err:
            raise RunDirConflict(f"{err}. In the course: delete that folder to train this configuration, or point "
                                 "RANLIB_DRIVE (Colab) or the working folder elsewhere") from err
        if path is None:
            if config.train_split == "train_aug":
                sbd_root()
            print(estimate_text(config, dev))
            fit(config)
            path = finished_checkpoint(config)
    model, _, _ = load_checkpoint(path, device=str(dev))
    return model


def model_report(model, root: Path, split: str, width: int = 4) -> dict:
    """What makes a course model worth comparing, on ``split``: per-class IoU, the classes it predicts, mIoU,
    boundary and mixed-boundary mIoU, and object-class IoU in ``width``-px mixed-boundary bands and in object
    interiors (labelled pixels farther than ``width`` px from any boundary): ``ranlib.evaluate.evaluate_regions``."""
    names = class_names(root)
    regions = evaluate_regions(model, voc(root, split, val_transforms()), width, batch_size=10)
    overall = regions["all"]
    predicted = overall["confusion"].sum(0).tolist()
    return {"classes": names, "iou": overall["iou"], "miou": overall["miou"], "predicted_pixels": predicted,
            "missing_predictions": [n for n, c in zip(names, predicted, strict=True) if c == 0],
            "zero_iou": [n for n, v in zip(names, overall["iou"], strict=True) if not v > 0],
            "boundary_miou": regions["boundary"]["miou"], "mixed_miou": regions["mixed"]["miou"],
            "mixed_object_iou": regions["mixed"]["object_miou"],
            "interior_object_iou": regions["interior"]["object_miou"]}
