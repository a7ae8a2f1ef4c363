"""Does the head's field of view fit the data? The main job with the head's reach and the training crop varied.

    python scripts/measure_head_fov.py                      # the default arms, seed 0: trains what is missing
    python scripts/measure_head_fov.py --arms d12-crop64 d0-crop64 --seeds 0 1 2
    python scripts/measure_head_fov.py --arms d0-crop64 d3-crop64 --write-results docs/results.md

With 64-px crops the feature map is 8x8, and DeepLab-LargeFOV's 3x3 head with dilation 12 (reach 96 px) reads
only zero padding through its outer taps: in training it is a 1x1 convolution, while evaluation on the 128-px
scenes uses outer taps that never got a gradient (``ranlib.model.check_head_fits_crop`` warns about it). The arms
are the main job (RAN, ResNet-18 from scratch, 1000 iterations, batch 8, its recipe) with one change each:

- ``d0-crop64``: the main job: a 1x1 head (``head_dilation=0``), what 64-px crops can train, stated as such;
- ``d12-crop64``: DeepLab's dilation 12 on 64-px crops (the outer taps read only padding in training);
- ``d12-crop128``: whole 128-px scenes (16x16 features, so the dilation-12 taps see data); 4x the pixels per step;
  ``-250it``: the same for 250 iterations, the main job's number of training pixels;
- ``d3-crop64``: dilation 3 (reach 24 px), every tap sees data at 64 px; ``-lr3e-3`` and ``-lr3e-4`` with the
  learning rate 3x higher and lower (the heads at 10x as always).

Runs go to ``runs/head_fov/<arm>-seed<seed>``; a finished run is read, not trained again. The table gives validation
mIoU, boundary-band and mixed-boundary-band mIoU at 4 px, the median training images/s and the run's wall time.
``--write-results FILE`` also writes one row per arm (mean ± sample sd over the seeds, then the seeds' values)
between FILE's ``head-fov`` markers.
"""

from __future__ import annotations

import argparse
import statistics
import warnings
from pathlib import Path

import torch

from ranlib.model import HeadReachWarning, check_head_fits_crop, head_reach
from ranlib.results_doc import header, write_section
from ranlib.seed_tables import sweep

ARMS = {  # name: TrainConfig fields changed from the main job
    "d12-crop64": {"head_dilation": 12},
    "d0-crop64": {},
    "d12-crop128": {"head_dilation": 12, "crop_size": 128},
    "d12-crop128-250it": {"head_dilation": 12, "crop_size": 128, "iterations": 250, "eval_every": 125,
                          "checkpoint_every": 25},
    "d3-crop64": {"head_dilation": 3},
    "d3-crop64-lr3e-3": {"head_dilation": 3, "lr": 3e-3},
    "d3-crop64-lr3e-4": {"head_dilation": 3, "lr": 3e-4},
}
DEFAULT_ARMS = ("d12-crop64", "d0-crop64", "d12-crop128")
COLUMNS = (("miou", "mIoU"), ("boundary", "boundary-band mIoU (4 px)"), ("mixed", "mixed-boundary-band mIoU (4 px)"))


def arm_table(rows: list[tuple[str, int, str, str, dict[str, float]]]) -> str:
    """One row per arm: its head's reach, its seeds and each score as 'mean ± sd (the seeds' values)', or the one
    value of a single seed."""
    by_arm: dict[str, list[tuple[int, str, dict[str, float]]]] = {}
    for arm, seed, reach, _, s in rows:
        by_arm.setdefault(arm, []).append((seed, reach, s))
    lines = ["| arm | head reach | seeds | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|---|---|" + "---:|" * len(COLUMNS)]
    for arm, runs in by_arm.items():
        cells = []
        for key, _ in COLUMNS:
            values = [s[key] for _, _, s in runs]
            cells.append(f"{values[0]:.1f}" if len(values) == 1 else
                         f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} "
                         f"({' / '.join(f'{v:.1f}' for v in values)})")
        seeds = " / ".join(str(seed) for seed, _, _ in runs)
        lines.append(f"| `{arm}` | {runs[0][1]} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=list(DEFAULT_ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/head_fov"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the table between FILE's <!-- head-fov:begin/end --> markers")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for run in sweep({arm: ARMS[arm] for arm in args.arms}, args.seeds, args.runs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", HeadReachWarning)
            check_head_fits_crop(run.config.model_config, run.config.crop_size)
        reach = f"{head_reach(run.config.model_config)} px" + (" (warned)" if caught else "")
        wall = "" if run.wall_s is None else f"{run.wall_s:.0f}"
        rows.append((run.arm, run.seed, reach, wall, run.scores))
    print("| arm | seed | head reach | mIoU | boundary-band mIoU (4 px) | mixed-boundary-band mIoU (4 px) "
          "| train images/s | wall s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for arm, seed, reach, wall, s in rows:
        print(f"| `{arm}` | {seed} | {reach} | {s['miou']:.1f} | {s['boundary']:.1f} | {s['mixed']:.1f} | "
              f"{s['images_per_s']:.0f} | {wall} |")
    if args.write_results:
        text = f"Validation (200 images):\n\n{arm_table(rows)}"
        write_section(args.write_results, "head-fov", header("measure_head_fov.py", argv, torch.get_num_threads())
                      + text, title="The head's field of view")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
