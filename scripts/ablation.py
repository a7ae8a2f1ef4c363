"""The README's ablation: baseline, subtract and RAN, the main job's recipe, over several seeds.

    python scripts/ablation.py                  # seeds 0 1 2: trains the runs that are missing, then the table
    python scripts/ablation.py --seeds 0 --no-train
    python scripts/ablation.py --normalized     # adds RAN with the normalised attention form

Each run is exactly ``python -m ranlib train --variant V --seed S`` (the main job: ResNet-18 from random
weights, 1000 iterations on the embedded dataset) in ``runs/mixed_boundary-resnet18-V-seedS``;
``--normalized`` adds ``--attention normalized`` runs in ``runs/mixed_boundary-resnet18-ran-normalized-seedS``.
A finished run is not trained again and a cut-off one resumes. The table gives validation mIoU, boundary-band and
mixed-boundary-band mIoU at 4 px per seed, and their mean and sample standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from ranlib.engine.train import TrainConfig, fit

VARIANTS = ("baseline", "subtract", "ran")
NORMALIZED = "ran-normalized"  # variant "ran" with attention="normalized"
COLUMNS = (("miou", "mIoU"), ("boundary", "boundary-band mIoU (4 px)"), ("mixed", "mixed-boundary-band mIoU (4 px)"))


def run_dir(runs: Path, variant: str, seed: int) -> Path:
    """Where the CLI puts ``--variant variant --seed seed`` (see ``ranlib.cli.config_from_args``)."""
    return runs / f"mixed_boundary-resnet18-{variant}-seed{seed}"


def config(arm: str, seed: int, directory: Path) -> TrainConfig:
    """The main job's config for one arm of the table: a variant, or RAN with the normalised attention."""
    if arm == NORMALIZED:
        return TrainConfig(variant="ran", attention="normalized", seed=seed, run_dir=str(directory))
    return TrainConfig(variant=arm, seed=seed, run_dir=str(directory))


def scores(directory: Path) -> dict[str, float]:
    """mIoU, boundary and mixed-boundary mIoU at 4 px, in percent, from a finished run's metrics.json."""
    path = directory / "metrics.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: train the run first (drop --no-train)")
    m = json.loads(path.read_text())
    return {"miou": 100 * m["miou"], "boundary": 100 * m["boundary_miou"]["4"], "mixed": 100 * m["mixed_miou"]["4"]}


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """A Markdown table: one row per variant, each column 'mean ± sd (seed values)'."""
    lines = ["| variant | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for variant, by_seed in results.items():
        cells = []
        for key, _ in COLUMNS:
            values = [by_seed[s][key] for s in sorted(by_seed)]
            spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.mean(values):.1f}{spread} ({' / '.join(f'{v:.1f}' for v in values)})")
        lines.append(f"| `{variant}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--no-train", action="store_true", help="only read finished runs")
    parser.add_argument("--normalized", action="store_true", help="add RAN with attention='normalized'")
    args = parser.parse_args(argv)
    arms = VARIANTS + ((NORMALIZED,) if args.normalized else ())
    results: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in arms}
    for seed in args.seeds:
        for arm in arms:
            directory = run_dir(args.runs, arm, seed)
            if not args.no_train and not (directory / "metrics.json").exists():
                fit(config(arm, seed, directory))
            results[arm][seed] = scores(directory)
    print(f"seeds {' '.join(map(str, args.seeds))}: mean ± sample sd (per-seed values)")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
