"""Measure candidate quick-mode recipes for the course's three models (baseline, subtract, RAN; seed 0).

The course (notebooks 01 and 06-09) trains three quick-mode models once per machine and compares them. Each must
be worth comparing on the quick validation split (``val_quick``, the embedded dataset's first 50 val scenes):

(a) it predicts every class somewhere;
(b) every class scores an IoU above zero;
(c) object-class IoU in 4-px mixed-boundary bands (``ranlib.data.mixed_boundary_band``) is below object-class IoU
    in object interiors (labelled pixels outside ``ranlib.data.boundary_band`` at 4 px): the course's problem.

Object-class IoU of a pixel set: the mean IoU over the object classes (background excluded) with ground truth in
that set, counting only the set's pixels (``ranlib.metrics.ConfusionMatrix`` masked to the set).

Each recipe is the course's ``MODES["quick"]`` with a few fields replaced (``RECIPES`` below). Runs go to
``--runs-root/<recipe>/<variant>`` (a finished run is reused). The table gives the training wall time under the
machine's load and an idle estimate: ``--speed`` times training steps of each recipe against the main job's step
(RAN, batch 8, 64-px crops) taking turns in one process, so load slows them alike; the idle estimate is the
recipe's training images over ``IDLE_MAIN_JOB_IMAGES_PER_S`` times that ratio (each step is ``fit``'s own
``ranlib.engine.train.train_step``), plus the run's other wall time
(start-up, evaluation, plots) scaled by the main job's measured slowdown. Usage::

    python scripts/measure_course_models.py --recipes c64-d0 c128-d6 --threads 1   # one process per model
    python scripts/measure_course_models.py --recipes c64-d0 c128-d6 --speed-only  # the step-time ratios
    python scripts/measure_course_models.py --recipes c64-d0 c128-d6 --table        # the table from the runs

``--write-results docs/results.md`` also writes, between that file's ``course-models`` markers, the recipes taken
as seeds of one configuration: per variant mean ± sample sd and the recipes' values, and whether object IoU in the
mixed-boundary bands is below object IoU in the interiors (what docs/results.md shows for ``--recipes current
current-seed1 current-seed2``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ranlib import course
from ranlib.engine.config import TrainConfig
from ranlib.engine.train import StepSetup, train_step
from ranlib.results_doc import cpu_model, header, write_section

WIDTH = 4  # band width in px (Chebyshev), as the README's mixed-boundary mIoU
# The main job (RAN, batch 8, 64-px crops) trains at a median 58 images/s on the idle 2-core development machine,
# measured (2026-11-25) with DeepLab's dilation-12 head, a 3x3 convolution; the 1x1 head's step is no slower.
IDLE_MAIN_JOB_IMAGES_PER_S = 58.0
# Fields replaced in course.MODES["quick"]; "current" is the course's configuration as it stands.
RECIPES = {
    "current": {},
    "c64-d0": dict(iterations=300, batch_size=8, crop_size=64, lr=0.01, head_lr_mult=1.0, head_dilation=0),
    "c128-d6": dict(iterations=75, batch_size=8, crop_size=128, lr=0.01, head_lr_mult=1.0, head_dilation=6),
    "c64-d0-150": dict(iterations=150, batch_size=8, crop_size=64, lr=0.01, head_lr_mult=1.0, head_dilation=0),
    "c64-d4": dict(iterations=300, batch_size=8, crop_size=64, lr=0.01, head_lr_mult=1.0, head_dilation=4),
    "c64-d0-200": dict(iterations=200, batch_size=8, crop_size=64, lr=0.01, head_lr_mult=1.0, head_dilation=0),
    # the main job's optimisation (lr 1e-3, heads at 10x), shortened
    "c64-d0-main": dict(iterations=300, batch_size=8, crop_size=64, lr=1e-3, head_lr_mult=10.0, head_dilation=0),
    # the course's configuration at the README's other two seeds: the seed-to-seed spread next to its comparisons
    "current-seed1": dict(seed=1),
    "current-seed2": dict(seed=2),
    "c64-d0-b4": dict(iterations=600, batch_size=4, crop_size=64, lr=1e-3, head_lr_mult=10.0, head_dilation=0),
}
# Cheaper recipes (1,200-1,600 crops per model, against the course's 2,400) and two at the course's cost, measured
# 2026-12-07 at seed 0 on one thread (docs/results.md, "Cheaper quick recipes"). Name: batch, iterations, lr and
# the heads' lr multiplier (h; 10 where not given); "-s<seed>" runs one at another seed.
_SEARCHED = {
    "b8-150-lr3e-3": dict(iterations=150, lr=3e-3),
    "b4-300-lr2e-3": dict(iterations=300, batch_size=4, lr=2e-3),
    "b8-200-lr5e-3-h2": dict(iterations=200, lr=5e-3, head_lr_mult=2.0),
    "b8-200-lr1e-2-h1": dict(iterations=200, lr=1e-2, head_lr_mult=1.0),
    "b8-150-lr1e-2-h1": dict(iterations=150, lr=1e-2, head_lr_mult=1.0),
    "b4-300-lr1e-2-h1": dict(iterations=300, batch_size=4, lr=1e-2, head_lr_mult=1.0),
    "b8-150-lr2e-2-h1": dict(iterations=150, lr=2e-2, head_lr_mult=1.0),
    "b8-200-lr2e-2-h1": dict(iterations=200, lr=2e-2, head_lr_mult=1.0),
    "b8-300-lr1e-2-h1": dict(iterations=300, lr=1e-2, head_lr_mult=1.0),  # c64-d0, with seeds
    "b8-300-lr3e-3-h3": dict(iterations=300, lr=3e-3, head_lr_mult=3.3),
}
RECIPES |= {f"{name}-s{seed}": {**recipe, "seed": seed} for name, recipe in _SEARCHED.items() for seed in (0, 1, 2)}


def recipe_config(recipe: str, variant: str, runs_root: Path) -> TrainConfig:
    """The course's quick configuration for ``variant`` with ``RECIPES[recipe]`` applied, in its own run folder."""
    base = course.MODES["quick"]
    overrides = RECIPES[recipe]
    config = replace(base, **overrides, data_root=str(course.data_root("quick")), variant=variant,
                     run_dir=str(runs_root / recipe / variant))
    return replace(config, checkpoint_every=min(config.checkpoint_every, config.iterations))


def train_and_report(recipe: str, variant: str, runs_root: Path, threads: int) -> dict:
    """Train (or reuse) one run and write its report (``course_report.json`` in the run folder)."""
    from ranlib import fit, load_checkpoint

    torch.set_num_threads(threads)
    config = recipe_config(recipe, variant, runs_root)
    run_dir = Path(config.run_dir)
    out = run_dir / "course_report.json"
    tic = time.perf_counter()
    fit(config)
    wall = time.perf_counter() - tic
    if out.exists():  # reused: keep the wall time measured when it trained
        return json.loads(out.read_text())
    model, _, _ = load_checkpoint(course.finished_checkpoint(config))
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    rates = sorted(float(r["images_per_s"]) for r in rows if r.get("images_per_s"))
    report = {"recipe": recipe, "variant": variant, "config": asdict(config), "threads": threads,
              "wall_s": wall, "median_images_per_s": rates[len(rates) // 2] if rates else None,
              "cpu": cpu_model(), "load_at_end": load(),
              **course.model_report(model, Path(config.data_root), config.val_split, WIDTH)}
    out.write_text(json.dumps(report, indent=1))
    return report


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else float("nan")


def step_ratios(recipes: list[str], runs_root: Path, rounds: int, threads: int) -> dict:
    """Training-step throughput of each (recipe, variant) relative to the main job's step (RAN, batch 8, 64 px),
    the steps taking turns in one process: images/s ratio, and the main job's images/s under this load."""
    from ranlib.losses import RANLoss
    from ranlib.model import RAN

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    arms = {("main", "ran"): TrainConfig(variant="ran")}
    for recipe in recipes:
        for variant in course.VARIANTS:
            arms[(recipe, variant)] = recipe_config(recipe, variant, runs_root)
    setups = {}
    for key, config in arms.items():
        model = RAN.from_config(config.model_config)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        batch = (torch.randn(config.batch_size, 3, config.crop_size, config.crop_size),
                 torch.randint(0, 6, (config.batch_size, config.crop_size, config.crop_size)))
        setups[key] = (model, optimizer, itertools.repeat(batch))
    criterion = RANLoss((1.0, 1.0, 1.0))
    scaler = torch.amp.GradScaler("cpu", enabled=False)  # fp32, as the quick runs train
    seconds = dict.fromkeys(arms, 0.0)
    for r in range(rounds + 1):  # round 0 warms up
        for key, (model, optimizer, batches) in setups.items():
            tic = time.perf_counter()
            train_step(StepSetup(model, criterion, optimizer, scaler, torch.device("cpu")), batches)
            if r:
                seconds[key] += time.perf_counter() - tic
    main_rate = rounds * 8 / seconds[("main", "ran")]
    return {"main_images_per_s": main_rate, "load": load(), "cpu": cpu_model(), "threads": threads,
            "ratio": {f"{r}/{v}": rounds * arms[(r, v)].batch_size / s / main_rate
                      for (r, v), s in seconds.items() if r != "main"}}


def table(recipes: list[str], runs_root: Path) -> str:
    speed_path = runs_root / "speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.exists() else None
    lines = ["| recipe | iterations x batch x crop | lr (head x) | head dilation (reach) | variant | train wall s "
             "(load) | idle est. s | mIoU | boundary mIoU | mixed-boundary mIoU | object IoU mixed band / "
             "interior | (a) missing predictions | (b) IoU = 0 |",
             "|---" * 13 + "|"]
    for recipe in recipes:
        for variant in course.VARIANTS:
            path = runs_root / recipe / variant / "course_report.json"
            if not path.exists():
                continue
            r = json.loads(path.read_text())
            c = r["config"]
            dilation = 12 if c["head_dilation"] is None else c["head_dilation"]
            idle = "-"
            if speed and f"{recipe}/{variant}" in speed["ratio"]:
                images = c["iterations"] * c["batch_size"]
                train_idle = images / (IDLE_MAIN_JOB_IMAGES_PER_S * speed["ratio"][f"{recipe}/{variant}"])
                train_loaded = images / r["median_images_per_s"]
                slowdown = IDLE_MAIN_JOB_IMAGES_PER_S / speed["main_images_per_s"]  # this machine's, now
                idle = f"{train_idle + max(r['wall_s'] - train_loaded, 0) / max(slowdown, 1):.0f}"
            lines.append(
                f"| {recipe} | {c['iterations']} x {c['batch_size']} x {c['crop_size']} | {c['lr']:g} "
                f"({c['head_lr_mult']:g}x) | {dilation} ({8 * dilation} px) | {variant} | {r['wall_s']:.0f} "
                f"({r['load_at_end']:.1f}) | {idle} | {100 * r['miou']:.1f} | {100 * r['boundary_miou']:.1f} | "
                f"{100 * r['mixed_miou']:.1f} | {100 * r['mixed_object_iou']:.1f} / "
                f"{100 * r['interior_object_iou']:.1f} | {', '.join(r['missing_predictions']) or 'none'} | "
                f"{', '.join(r['zero_iou']) or 'none'} |")
    if speed:
        lines.append(f"\nStep-time ratios measured on {speed['cpu']}, load {speed['load']:.1f}, "
                     f"{speed['threads']} thread(s): the main job's step ran at {speed['main_images_per_s']:.1f} "
                     f"images/s under that load.")
    return "\n".join(lines)


def seed_table(recipes: list[str], runs_root: Path) -> str:
    """One row per variant over ``recipes`` (the seeds of one configuration): mIoU, boundary-band and
    mixed-boundary-band mIoU at 4 px as 'mean ± sd (values)', then object IoU in the mixed band < in the interiors
    per recipe; a variant without a finished report is left out."""
    def cell(values: list[float]) -> str:
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.1f}{spread} ({' / '.join(f'{v:.1f}' for v in values)})"

    lines = ["| variant | mIoU | boundary-band mIoU (4 px) | mixed-boundary-band mIoU (4 px) | object IoU, mixed band "
             f"< interiors ({' / '.join(recipes)}) |", "|---|---:|---:|---:|---:|"]
    for variant in course.VARIANTS:
        paths = [runs_root / recipe / variant / "course_report.json" for recipe in recipes]
        if not all(p.exists() for p in paths):
            continue
        reports = [json.loads(p.read_text()) for p in paths]
        cells = [cell([100 * r[key] for r in reports]) for key in ("miou", "boundary_miou", "mixed_miou")]
        bands = " / ".join(f"{100 * r['mixed_object_iou']:.1f} "
                           f"{'<' if r['mixed_object_iou'] < r['interior_object_iou'] else '≥'} "
                           f"{100 * r['interior_object_iou']:.1f}" for r in reports)
        lines.append(f"| `{variant}` | " + " | ".join(cells) + f" | {bands} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["c64-d0", "c128-d6"], choices=list(RECIPES))
    parser.add_argument("--variants", nargs="+", default=list(course.VARIANTS), choices=list(course.VARIANTS))
    parser.add_argument("--runs-root", type=Path, default=Path("runs/q_course"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per training process")
    parser.add_argument("--parallel", action="store_true", help="one process per (recipe, variant), all at once")
    parser.add_argument("--speed-only", action="store_true", help="only the step-time ratios (speed.json)")
    parser.add_argument("--speed-rounds", type=int, default=6)
    parser.add_argument("--table", action="store_true", help="only print the table from finished runs")
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the recipes' seed table between FILE's <!-- course-models:begin/end --> "
                             "markers")
    parser.add_argument("--one", nargs=2, metavar=("RECIPE", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.runs_root.mkdir(parents=True, exist_ok=True)
    if args.one:
        report = train_and_report(*args.one, args.runs_root, args.threads)
        print(json.dumps({k: v for k, v in report.items() if k != "config"}))
        return
    if args.speed_only:
        speed = step_ratios(args.recipes, args.runs_root, args.speed_rounds, args.threads)
        (args.runs_root / "speed.json").write_text(json.dumps(speed, indent=1))
        print(json.dumps(speed, indent=1))
        return
    if not args.table:
        jobs = [(r, v) for r in args.recipes for v in args.variants]
        command = [sys.executable, __file__, "--runs-root", str(args.runs_root), "--threads", str(args.threads)]
        if args.parallel:
            running = [subprocess.Popen([*command, "--one", r, v]) for r, v in jobs]
            failed = [job for job, p in zip(jobs, running, strict=True) if p.wait()]
        else:
            failed = [(r, v) for r, v in jobs if subprocess.call([*command, "--one", r, v])]
        if failed:
            print(f"failed: {failed}", file=sys.stderr)
    print(table(args.recipes, args.runs_root))
    if args.write_results:
        text = seed_table(args.recipes, args.runs_root)
        print(text)
        jobs = len(args.recipes) * len(args.variants) if args.parallel else 1
        write_section(args.write_results, "course-models",
                      header("measure_course_models.py", argv, args.threads, jobs) + text,
                      title="The course's quick models")


if __name__ == "__main__":
    main()
