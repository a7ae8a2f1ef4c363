"""What the step-size probe costs: the training step with and without it, and against an earlier train_step.

    python scripts/measure_step_probe.py                    # the main job's step, 40 rounds, one thread
    python scripts/measure_step_probe.py --against 672939a  # also the train_step of that git revision

``fit`` passes ``probe=model`` to ``ranlib.engine.train.train_step`` only at log steps (every ``log_every``
iterations); the other steps run without it. This times, interleaved round by round on the same model and batch
(so that a change in the machine's load hits every arm alike): the step without the probe, the step with it, and,
with ``--against``, the ``train_step`` of another revision of ``ranlib/engine/train.py`` (read with ``git show``).
It prints the median milliseconds per step and the ratios to the step without the probe.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ranlib import RANLoss, TrainConfig
from ranlib.engine.train import StepSetup, build_optimizer, train_step
from ranlib.model import RAN
from ranlib.results_doc import cpu_model

ROOT = Path(__file__).resolve().parent.parent


def train_step_at(revision: str):
    """``train_step`` as ``ranlib/engine/train.py`` defines it at git ``revision``."""
    source = subprocess.run(["git", "show", f"{revision}:ranlib/engine/train.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"train_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module.train_step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variant", default="ran", choices=("ran", "subtract", "baseline"))
    parser.add_argument("--against", metavar="REV", help="also time train_step of this git revision")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = TrainConfig(variant=args.variant)  # the main job: ResNet-18, 8 crops of 64 px, 1x1 heads
    model = RAN.from_config(config.model_config).train()
    optimizer, _ = build_optimizer(model, config)
    scaler, cpu = torch.amp.GradScaler("cpu", enabled=False), torch.device("cpu")
    images = torch.randn(config.batch_size, 3, config.crop_size, config.crop_size)
    masks = torch.randint(0, model.num_classes, (config.batch_size, config.crop_size, config.crop_size))
    setup = StepSetup(model, RANLoss(), optimizer, scaler, cpu)
    arms = {"without probe": lambda: train_step(setup, iter([(images, masks)])),
            "with probe": lambda: train_step(setup, iter([(images, masks)]), probe=model)}
    if args.against:
        old = train_step_at(args.against)
        arms[f"train_step at {args.against}"] = lambda: old(model, RANLoss(), optimizer, scaler,
                                                            iter([(images, masks)]), cpu)
    for step in arms.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, step in arms.items():
            tic = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - tic)
    base = statistics.median(times["without probe"])
    print(f"{cpu_model()}, {args.threads} torch thread(s), {args.variant}, {config.batch_size} crops of "
          f"{config.crop_size} px, {args.rounds} interleaved rounds")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:28s} {1000 * median:8.1f} ms/step   ratio {median / base:.3f}")
    log_every = config.log_every
    with_probe = statistics.median(times["with probe"])
    print(f"fit with log_every {log_every}: one probed step in {log_every}, "
          f"{100 * (with_probe - base) / base / log_every:+.2f}% on the mean step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
