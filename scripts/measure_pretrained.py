"""The ImageNet-pretrained EfficientNet-Lite0 against ResNet-18 from scratch on the embedded data, on the CPU.

    python scripts/measure_pretrained.py                      # speed, then the runs that are missing, then the table
    python scripts/measure_pretrained.py --speed-only
    python scripts/measure_pretrained.py --arms effnet-imagenet-ran resnet18-ran --seeds 0 1 2
    python scripts/measure_pretrained.py --no-speed --no-train --instruments --write-results docs/results.md

Two measurements, both at the main job's settings (batch 8, 64-px crops, 1000 iterations, its recipe untouched):

1. Training speed: images/s of one SGD step (forward, the three RAN losses, backward, update: ``fit``'s own
   ``ranlib.engine.train.train_step``) on random tensors, the backbones taking turns step by step in one process
   so that a machine shared with other work slows them alike; the ratio is the figure to compare. ``--threads``
   sets torch's threads (default 2).
2. Accuracy: each arm is ``ranlib.engine.train.fit`` of the main job's ``TrainConfig`` with only the backbone (and its
   weights) changed, in ``runs/pretrained/<arm>-seed<seed>``. A finished run is read, not trained again.
   The table gives validation mIoU, boundary-band and mixed-boundary-band mIoU at 4 px, and the median
   training images/s from the run's ``log.csv``.

``--write-results FILE`` also writes the speed and the mean ± sd table between FILE's ``pretrained`` markers, and
with ``--instruments`` what the fusion does between its ``pretrained-instruments`` markers.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from pathlib import Path

import torch

from ranlib import RANLoss, build_model
from ranlib.engine.train import StepSetup, train_step
from ranlib.results_doc import header, write_section
from ranlib.seed_tables import cpu_and_load, instruments, instruments_table, seed_table, sweep

ARMS = {  # name: TrainConfig fields changed from the main job
    "resnet18-ran": {},
    "resnet18-baseline": {"variant": "baseline"},
    "effnet-imagenet-ran": {"backbone": "efficientnet_lite0", "weights_backbone": "IMAGENET1K"},
    "effnet-imagenet-baseline": {"backbone": "efficientnet_lite0", "weights_backbone": "IMAGENET1K",
                                 "variant": "baseline"},
    "effnet-imagenet-subtract": {"backbone": "efficientnet_lite0", "weights_backbone": "IMAGENET1K",
                                 "variant": "subtract"},
    "effnet-scratch-ran": {"backbone": "efficientnet_lite0"},
}
DEFAULT_ARMS = ("resnet18-ran", "effnet-imagenet-ran", "effnet-imagenet-baseline")


def training_speed(backbones: list[str], batch: int, crop: int, steps: int, warmup: int = 3) -> dict[str, float]:
    """Median images/s of a RAN training step per backbone, the backbones interleaved step by step."""
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    models = {b: build_model(b, num_classes=6).train() for b in backbones}
    optims = {b: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for b, m in models.items()}
    batches = itertools.repeat((torch.randn(batch, 3, crop, crop), torch.randint(0, 6, (batch, crop, crop))))
    no_scaling = torch.amp.GradScaler("cpu", enabled=False)  # fp32: the scaler only calls the optimiser's step
    loss_fn, times = RANLoss(), {b: [] for b in backbones}
    for step in range(warmup + steps):
        for b, model in models.items():
            start = time.perf_counter()
            train_step(StepSetup(model, loss_fn, optims[b], no_scaling, cpu), batches)
            if step >= warmup:
                times[b].append(time.perf_counter() - start)
    return {b: batch / statistics.median(t) for b, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(DEFAULT_ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/pretrained"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per backbone")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--no-train", action="store_true", help="only read finished runs")
    parser.add_argument("--instruments", action="store_true", help="what the fusion does in the ran/subtract runs")
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the tables between FILE's <!-- pretrained:begin/end --> markers (and "
                             "<!-- pretrained-instruments:begin/end --> with --instruments)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    speed_lines = []
    if not args.no_speed:
        print(f"training speed, batch 8, RAN, {args.threads} threads ({cpu_and_load()} before):")
        for crop in (64, 128):
            speed = training_speed(["resnet18", "efficientnet_lite0"], batch=8, crop=crop, steps=args.steps)
            ratio = speed["efficientnet_lite0"] / speed["resnet18"]
            speed_lines.append(f"crop {crop}: resnet18 {speed['resnet18']:.1f} images/s, efficientnet_lite0 "
                               f"{speed['efficientnet_lite0']:.1f} images/s, ratio {ratio:.2f}")
            print(f"  {speed_lines[-1]} (load after: {cpu_and_load()})")
    if args.speed_only:
        return 0
    rows = [(run.arm, run.seed, run.scores)
            for run in sweep({arm: ARMS[arm] for arm in args.arms}, args.seeds, args.runs, train=not args.no_train)]
    print("| arm | seed | mIoU | boundary-band mIoU (4 px) | mixed-boundary-band mIoU (4 px) | train images/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for arm, seed, s in rows:
        print(f"| `{arm}` | {seed} | {s['miou']:.1f} | {s['boundary']:.1f} | {s['mixed']:.1f} | "
              f"{s['images_per_s']:.0f} |")
    by_arm: dict[str, dict[int, dict[str, float]]] = {}
    for arm, seed, s in rows:
        by_arm.setdefault(arm, {})[seed] = s
    print("\nmean ± sample sd over the seeds (per-seed values):")
    print(seed_table(by_arm))
    top = header("measure_pretrained.py", argv, args.threads)
    if args.write_results:
        speed_text = "".join(f"Training speed, batch 8, one step of each backbone in turn, {line}.\n\n"
                             for line in speed_lines)
        text = (f"{speed_text}Validation, mean ± sample sd over the seeds (the seeds' values):\n\n"
                f"{seed_table(by_arm)}")
        write_section(args.write_results, "pretrained", top + text, title="An ImageNet-pretrained backbone")
    if args.instruments:
        found = [(arm, seed, instruments(args.runs / f"{arm}-seed{seed}")) for arm, seed, _ in rows
                 if "baseline" not in arm]
        print("\nwhat the fusion does (as scripts/ablation.py --instruments):")
        print(instruments_table(found))
        if args.write_results:
            write_section(args.write_results, "pretrained-instruments", top + instruments_table(found),
                          title="What the fusion does, pretrained")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
