"""The course's shared set-up: the mode, the data, the three variants' runs, load-or-train, where files land, and
the toy scenes of notebooks 03 and 05.

Every notebook starts with ``MODE, QUICK, DEVICE, SEED = course.setup()``; those that train or evaluate follow it
with ``DATA_ROOT, CLASSES, VAL_SPLIT, CONFIGS, RUNS = course.data_and_runs()``. Everything else comes from here
too, so a fix made here reaches all ten notebooks. Three modes, one configuration each (``MODES`` below):

- ``quick``: the embedded mixed-boundary dataset, ResNet-18 from scratch with a 1x1 head, 300 iterations of
  8 crops of 64 px (91-115 s per model on one thread at load about 2, docs/course.md). The default without
  CUDA, and what the tests run.
- ``colab``: sized for a free Colab T4: ImageNet ResNet-50 on VOC ``train_aug``, 321 px crops, 3,000 iterations
  of 10 crops, each variant at most about 30 minutes (estimated; see ``estimate``). The default with CUDA.
  It trains on ``train_aug`` and reports VOC ``val``, and tunes nothing: the three variants share DeepLab's lr
  2.5e-4, so its comparison is untuned (notebook 07 says why that matters). To tune on VOC, choose on
  ``train_aug_fit`` / ``train_aug_holdout`` (``ranlib.data.sbd.split_for_tuning``) and report ``val``.
- ``paper``: the DeepLab/RAN recipe, ImageNet ResNet-101, 20,000 iterations; for an A100/H100.

The environment chooses and shrinks, never the hardware under a test:

- ``RANLIB_MODE=quick|colab|paper`` picks the mode (``RANLIB_QUICK=1`` still means quick);
- ``RANLIB_MAX_ITERATIONS``, ``RANLIB_MAX_BATCH_SIZE``, ``RANLIB_MAX_CROP_SIZE``, ``RANLIB_MAX_VAL_IMAGES`` cap
  the budgets (a value above the mode's own is refused: they only shrink); capped runs get their own folder;
- ``RANLIB_DRIVE`` is the folder that stands for Google Drive (in Colab: ``/content/drive/MyDrive/ranlib``,
  mounted when first needed). Runs and the downloaded archives live there, so they survive the session.

Where files land: ``data/`` and ``runs/`` under the repository root when working in a clone of ranlib, else
under the current folder (Colab: ``/content``); with a Drive, runs and archives go to the Drive and the datasets
are extracted to local disk in each session. ``setup`` prints all of it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from ranlib.bench.gpu_specs import PEAK_TFLOPS
from ranlib.bench.throughput import RunConfig, count_train_flops
from ranlib.data import class_names, val_transforms, voc
from ranlib.data.download import SBD, VOC, download
from ranlib.data.mixed_boundary import ensure_mixed_boundary_dataset
from ranlib.data.sbd import sbd_mask_folder
from ranlib.engine.checkpoint import checkpoint_path, load_checkpoint
from ranlib.engine.config import RunDirConflict, TrainConfig, check_run_dir, train_command_line
from ranlib.engine.train import fit
from ranlib.evaluate import evaluate_regions
from ranlib.model_config import VARIANTS as MODEL_VARIANTS

MODE_NAMES = ("quick", "colab", "paper")
VARIANTS = tuple(reversed(MODEL_VARIANTS))  # the course's order, from the baseline up to RAN
# The two step-size controls of notebook 07 (as in scripts/ablation.py): the baseline with its backbone's lr x
# STEP_FACTOR and its heads' unchanged, and RAN with its three losses averaged instead of summed.
CONTROLS = ("baseline-step", "ran-mean")
STEP_FACTOR = 3.0
SEED = 0
COLAB_DRIVE = Path("/content/drive")

# One configuration per mode. data_root, run_dir, variant and amp are filled in by ``configs``.
MODES = {
    # The embedded dataset; evaluated on its first 50 validation scenes (split val_quick, written by data_root).
    # The main job's optimisation, shortened: the smallest of four measured recipes whose three models each predict
    # every class, score every class above 0 and show the course's problem (object IoU in mixed-boundary bands
    # below interiors); scripts/measure_course_models.py, tests/test_course_models.py. A 1x1 head, because 64 px
    # crops give an 8x8 feature map: a dilated head would train as 1x1 and evaluate with untrained taps.
    # Evaluated at iterations 100, 200 and 300 (50 scenes each, a few seconds), so notebook 08 can draw how the
    # attention opens or closes during the student's own training (ranlib.viz.plot_attention_over_training).
    "quick": TrainConfig.for_dataset("mixed_boundary", backbone="resnet18", val_split="val_quick", crop_size=64,
                                     batch_size=8, iterations=300, lr=1e-3, head_lr_mult=10.0, head_dilation=0,
                                     eval_every=100, checkpoint_every=100, log_every=10, num_workers=0, amp="off",
                                     seed=SEED),
    # A T4 (65 TFLOPS fp16 dense peak) at an assumed 8-15 % utilisation runs 5.2-9.8 TFLOP/s; one step of
    # RAN-ResNet-50 on 10 crops of 321 px counts 2.52 TFLOP (forward and backward), so 3,000 steps take
    # 13-24 min, plus two evaluations on VOC val (1,449 images, about 0.22 PFLOP each): 14-26 min per variant.
    # Checkpoints every 1,000 steps, only the newest kept: Drive holds one resumable file (~200 MB) per run.
    # VOC's preset (ranlib.engine.config.PRESETS) gives train_aug, 321-px crops in batches of 10, the dilation-12
    # head and evaluation one image at a time.
    "colab": TrainConfig.for_dataset("voc", backbone="resnet50", weights_backbone="IMAGENET1K_V1", iterations=3000,
                                     lr=2.5e-4, freeze_bn=True, checkpoint_every=1000, keep_checkpoints=1,
                                     eval_every=1500, log_every=20, num_workers=None, seed=SEED),
    # DeepLab-v2 / RAN: ImageNet ResNet-101, 20k iterations of 10 crops of 321 px, lr 2.5e-4, frozen BN.
    "paper": TrainConfig.for_dataset("voc", backbone="resnet101", weights_backbone="IMAGENET1K_V1",
                                     iterations=20_000, lr=2.5e-4, freeze_bn=True, checkpoint_every=1000,
                                     keep_checkpoints=1, eval_every=5000, log_every=50, num_workers=None, seed=SEED),
}
# Notebook 01 looks at one baseline before the course has explained RAN: in colab/paper mode a short preview
# run on VOC train (no SBD needed), never the long one. In quick mode the preview is the quick run itself.
PREVIEW_ITERATIONS = 300
# Evaluation on a 2-vCPU, 15 GB Colab runtime: VOC images differ in size, so one per batch; loader workers
# from os.cpu_count() (num_workers=None: 2 on Colab), which keeps the GPU fed without swapping.

CAPS = {"RANLIB_MAX_ITERATIONS": "iterations", "RANLIB_MAX_BATCH_SIZE": "batch_size",
        "RANLIB_MAX_CROP_SIZE": "crop_size", "RANLIB_MAX_VAL_IMAGES": "val_images"}
# Fields that say where or how fast a run trains, not what it learns: a finished run is reused across them.
VAL_IMAGES = 1449  # VOC 2012 val, for the estimate
VAL_PIXELS = 500 * 375  # a typical VOC image
# Model-FLOP utilisation assumed for the estimates (not measured: no GPU has run this code yet). A T4 is a
# 70 W card whose clocks drop under sustained load; the larger cards reach more of their peak.
ASSUMED_UTILISATION = {"T4": (0.08, 0.15), "default": (0.20, 0.40)}
# The CPU loader bounds a fast GPU: decoding a 500x375 JPEG and augmenting it to a 321 px crop took 29 ms on one
# thread of an Intel Xeon (2 cores, load 4: measured under load), about 34 images/s per vCPU. Colab gives a T4
# 2 vCPUs; the bigger cards are assumed to come with 8.
LOADER_IMAGES_PER_S_PER_CPU = 34
ASSUMED_CPUS = {"T4": 2, "default": 8}


class Setup(NamedTuple):
    mode: str  # quick | colab | paper
    quick: bool  # mode == "quick"
    device: torch.device
    seed: int


def detect_mode(environ: dict | None = None, cuda: bool | None = None) -> str:
    """``$RANLIB_MODE`` if set, quick under ``RANLIB_QUICK=1``, else colab with CUDA and quick without."""
    env = os.environ if environ is None else environ
    mode = env.get("RANLIB_MODE", "").strip().lower()
    if mode:
        if mode not in MODE_NAMES:
            raise ValueError(f"RANLIB_MODE={mode!r} is not a mode; choose one of {', '.join(MODE_NAMES)}")
        return mode
    if env.get("RANLIB_QUICK") == "1":
        return "quick"
    return "colab" if (torch.cuda.is_available() if cuda is None else cuda) else "quick"


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def home() -> Path:
    """The folder that receives ``data/`` and ``runs/``: the root of a ranlib clone around the current folder,
    else the current folder itself (Colab: ``/content``)."""
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "ranlib" / "course.py").is_file():
            return folder
    return cwd


def drive(mount: bool = True) -> Path | None:
    """The folder that stands for Google Drive: ``$RANLIB_DRIVE``, or in Colab ``/content/drive/MyDrive/ranlib``
    (mounted on first use when ``mount``); None elsewhere."""
    if os.environ.get("RANLIB_DRIVE"):
        return Path(os.environ["RANLIB_DRIVE"]).resolve()
    if "google.colab" not in sys.modules:
        return None
    if mount and not (COLAB_DRIVE / "MyDrive").is_dir():
        from google.colab import drive as colab_drive  # noqa: PLC0415 (exists only in Colab)

        colab_drive.mount(str(COLAB_DRIVE))
    return COLAB_DRIVE / "MyDrive" / "ranlib"


def caps(environ: dict | None = None) -> dict[str, int]:
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


def runs_dir(mode: str | None = None, mount: bool = True) -> Path:
    """Where this mode's runs live: ``<drive>/runs/course_<mode>`` with a Drive, else ``runs/course_<mode>``;
    capped budgets add a suffix, so a capped run never mixes with a real one."""
    mode = mode or detect_mode()
    found = caps()
    suffix = "".join(f"_{key}{value}" for key, value in sorted(found.items()))
    base = drive(mount) if mode != "quick" else None
    return (base / "runs" if base else home() / "runs") / f"course_{mode}{suffix}"


def data_dir() -> Path:
    """The local folder that datasets are generated or extracted into: ``<home>/data``."""
    return home() / "data"


def archive_cache(mount: bool = True) -> Path | None:
    """Where downloaded archives are kept across sessions: ``<drive>/archives``, or None (kept in data/)."""
    base = drive(mount)
    return base / "archives" if base else None


def data_root(mode: str | None = None, progress: bool = True) -> Path:
    """The VOC-layout root of this mode's dataset, prepared on first use.

    quick: the embedded dataset (generated into ``data/mixed_boundary``; split ``val_quick`` = its first 50
    validation ids). colab/paper: PASCAL VOC 2012, downloaded once (the archive cached on the Drive when there
    is one, checksum verified) and extracted to ``data/VOCdevkit/VOC2012``. ``RANLIB_MAX_VAL_IMAGES`` writes the
    shorter validation split that ``configs`` then uses.
    """
    mode = mode or detect_mode()
    if mode == "quick":
        root = ensure_mixed_boundary_dataset(data_dir() / "mixed_boundary")
        _write_split(root, "val", "val_quick", 50)
    else:
        root = download(VOC, data_dir(), cache=archive_cache(), progress=progress)
    val_images = caps().get("val_images")
    if val_images:
        _write_split(root, MODES[mode].val_split, f"val_first{val_images}", val_images)
    return root


def sbd_root(progress: bool = True) -> Path:
    """SBD's dataset folder beside VOC (``data/benchmark_RELEASE/dataset``), downloaded like VOC and its masks
    converted to PNG: what ``train_aug`` needs on top of VOC."""
    folder = download(SBD, data_dir(), cache=archive_cache(), progress=progress)
    sbd_mask_folder(folder, progress=progress)
    return folder


def _write_split(root: Path, source: str, name: str, count: int) -> None:
    """Write ``ImageSets/Segmentation/<name>.txt``: the first ``count`` ids of split ``source``."""
    splits = Path(root) / "ImageSets" / "Segmentation"
    ids = (splits / f"{source}.txt").read_text().split()[:count]
    target = splits / f"{name}.txt"
    text = "".join(f"{i}\n" for i in ids)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def configs(mode: str | None = None, preview: bool = False, data: Path | None = None,
            dev: torch.device | None = None) -> dict[str, TrainConfig]:
    """The mode's three runs, ``{variant: TrainConfig}``, with the budget caps applied.

    ``preview``: the short baseline-only look of notebook 01 (``PREVIEW_ITERATIONS`` on VOC train in
    colab/paper mode; the quick run itself in quick mode). ``data`` defaults to ``data_root(mode)``.
    """
    mode = mode or detect_mode()
    base = MODES[mode]
    found = caps()
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


def threads(environ: dict | None = None) -> int:
    """The torch threads the course's notebooks use: ``$RANLIB_THREADS`` if set (the tests set 1), else the cores
    this process may use minus the load already on them (the 1-minute load average), at least 1.

    Torch's default, one thread per core, collapses when another job shares the cores: two spinning OpenMP threads
    beside one busy core trained 10x slower than one thread (issue 31's measurement). Asking for the free cores
    keeps a notebook beside another job at one thread's speed instead."""
    env = os.environ if environ is None else environ
    if env.get("RANLIB_THREADS"):
        value = env["RANLIB_THREADS"]
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"RANLIB_THREADS={value!r} must be a whole number >= 1; unset it to use the free cores")
        return int(value)
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


@lru_cache(maxsize=32)
def train_tflop_per_step(backbone: str, head: str, variant: str, crop_size: int, batch_size: int) -> float:
    """Counted TFLOP of one training step (forward and backward), on the meta device: seconds, any machine."""
    model = "baseline" if variant == "baseline" else "ran"  # subtract has RAN's two heads, hence its FLOPs
    run = RunConfig(model=model, backbone=backbone, head=head, crop=crop_size, batch_size=batch_size,
                    precision="fp32", channels_last=False)
    return count_train_flops(run) / 1e12


class Estimate(NamedTuple):
    gpu: str  # the key of ranlib.bench.gpu_specs.PEAK_TFLOPS
    precision: str  # fp16 | bf16
    minutes: tuple[float, float]  # (fast, slow) at the high and low assumed utilisation
    tflop: float  # counted: training steps plus evaluations


def estimate(config: TrainConfig, gpu: str) -> Estimate:
    """How long ``config`` trains on ``gpu`` (a ``PEAK_TFLOPS`` key such as "T4"): counted FLOPs over the
    datasheet peak at ``ASSUMED_UTILISATION``, or the CPU loader's time if longer. An estimate, not a measurement."""
    precision = "fp16" if gpu == "T4" else "bf16"  # the T4 is compute capability 7.5: no native bf16
    peak = PEAK_TFLOPS[gpu][precision]
    step = train_tflop_per_step(config.backbone, config.head, config.variant, config.crop_size, config.batch_size)
    evaluations = config.iterations // config.eval_every if config.eval_every else 0
    evaluations += config.eval_every == 0 or config.iterations % config.eval_every != 0  # the final one
    forward_per_image = step / 3 / config.batch_size * VAL_PIXELS / config.crop_size ** 2  # backward ~ 2x forward
    tflop = step * config.iterations + evaluations * VAL_IMAGES * forward_per_image
    low, high = ASSUMED_UTILISATION.get(gpu, ASSUMED_UTILISATION["default"])
    cpus = ASSUMED_CPUS.get(gpu, ASSUMED_CPUS["default"])
    loader_s = config.iterations * config.batch_size / (LOADER_IMAGES_PER_S_PER_CPU * cpus)
    fast, slow = (max(tflop / (peak * u), loader_s) / 60 for u in (high, low))
    return Estimate(gpu, precision, (fast, slow), tflop)


def gpu_key(dev: torch.device | None = None) -> str | None:
    """The ``PEAK_TFLOPS`` key of this machine's GPU, None on a CPU or an unlisted GPU."""
    dev = dev or device()
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((key for key in PEAK_TFLOPS if key in name), None)


def estimate_text(config: TrainConfig, dev: torch.device | None = None) -> str:
    """One line for the notebook before a run starts: how long it will take on this GPU (estimated)."""
    what = f"training {config.variant}: {config.iterations} iterations of {config.batch_size} x {config.crop_size} px"
    key = gpu_key(dev)
    if key is None:
        return f"{what} on {dev or device()} (no estimate for this device; quick mode takes minutes on a CPU)"
    est = estimate(config, key)
    return (f"{what}: about {est.minutes[0]:.0f}-{est.minutes[1]:.0f} min on this {key} (estimated from "
            f"{est.tflop / 1e3:.1f} counted PFLOP at an assumed utilisation, not measured)")


def setup(seed: int = SEED) -> Setup:
    """The first call of every notebook: pick the mode, work from ``home()`` (so every notebook shares data/
    and runs/), seed torch, and print the mode, the device and where data/ and runs/ land."""
    mode = detect_mode()
    os.chdir(home())
    torch.manual_seed(seed)
    torch.set_num_threads(threads())
    dev = device()
    why = ("RANLIB_MODE" if os.environ.get("RANLIB_MODE") else "RANLIB_QUICK=1" if os.environ.get("RANLIB_QUICK")
           == "1" else "a GPU is present" if dev.type == "cuda" else "no GPU")
    print(f"mode {mode} ({why}), device {dev}, {torch.get_num_threads()} torch thread(s)")
    if mode != "quick" and dev.type != "cuda":
        print(f"  {mode} mode on a CPU: training will be very slow (set RANLIB_MODE=quick, or use a GPU)")
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


def minutes_range(fast: float, slow: float) -> str:
    """Estimated minutes as printed: "3-6", or "2" when both ends round to the same minute."""
    low, high = f"{fast:.0f}", f"{slow:.0f}"
    return low if low == high else f"{low}-{high}"


def modes_table() -> str:
    """The modes as a Markdown table: each one's budget and estimated minutes per variant on each listed GPU."""
    gpus = ("T4", "L4", "A100", "H100")
    lines = ["| mode | backbone | data | crop x batch | iterations | " + " | ".join(
        f"{g} min/variant (est.)" for g in gpus) + " |", "|---" * (5 + len(gpus)) + "|"]
    for mode in ("colab", "paper"):
        config = replace(MODES[mode], variant="ran")
        cells = [minutes_range(*estimate(config, g).minutes) for g in gpus]
        lines.append(f"| {mode} | {config.backbone} ({config.weights_backbone}) | VOC {config.train_split} | "
                     f"{config.crop_size} x {config.batch_size} | {config.iterations:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


# Notebooks 03 and 05 train a branch on toy scenes before any real data: a red disc and a blue square that overlaps
# the disc's lower right, so two objects share a boundary, on grey background with pixel noise.
TOY_CLASSES = ("background", "disc", "square")
TOY_COLOURS = torch.tensor([[0.5, 0.5, 0.5], [0.85, 0.2, 0.2], [0.2, 0.3, 0.85]])  # RGB in [0, 1], by class


def toy_scenes(n: int, size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy toy images (n, 3, size, size) in [0, 1] and their masks (n, size, size): background 0, a disc 1
    and a square 2 drawn over the disc's lower right (``TOY_CLASSES``, coloured ``TOY_COLOURS``); the same scenes
    for the same ``seed``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, masks = [], []
    for _ in range(n):
        radius = size * (0.18 + 0.08 * torch.rand(1, generator=g))
        cy, cx = (size * (0.3 + 0.25 * torch.rand(2, generator=g))).tolist()
        side = int(size * (0.25 + 0.15 * torch.rand(1, generator=g)))
        mask = torch.zeros(size, size, dtype=torch.long)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = 1
        mask[int(cy):int(cy) + side, int(cx):int(cx) + side] = 2
        image = TOY_COLOURS[mask].permute(2, 0, 1) + 0.15 * torch.randn(3, size, size, generator=g)  # (3, H, W)
        images.append(image.clamp(0, 1))
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)


if __name__ == "__main__":
    print(modes_table())

