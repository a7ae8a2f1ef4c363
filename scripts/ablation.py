"""The README's ablation: baseline, subtract and RAN, the main job's recipe, over several seeds.

    python scripts/ablation.py                  # seeds 0 1 2: trains the runs that are missing, then the table
    python scripts/ablation.py --seeds 0 --no-train
    python scripts/ablation.py --normalized     # adds RAN with the normalised attention form
    python scripts/ablation.py --no-train --instruments   # then what the fusion does in the RAN and subtract runs

Each run is exactly ``python -m ranlib train --variant V --seed S`` (the main job: ResNet-18 from random
weights, 1000 iterations on the embedded dataset) in ``runs/mixed_boundary-resnet18-V-seedS``;
``--normalized`` adds ``--attention normalized`` runs in ``runs/mixed_boundary-resnet18-ran-normalized-seedS``.
A finished run is not trained again and a cut-off one resumes. The table gives validation mIoU, boundary-band and
mixed-boundary-band mIoU at 4 px per seed, and their mean and sample standard deviation over the seeds.

``--instruments`` adds, for each run with a reverse branch, what the fusion does at inference: the original branch
alone scored on the same validation images (``evaluate(..., branch="original")``, as ``python -m ranlib evaluate
--branch original``) against the fused output, the share of labelled pixels whose class the fusion changes (all,
and in the 4-px mixed-boundary bands) with fixed − broken (``metrics.json``'s ``fusion_changes``), and the
attention at the last evaluation (``log.csv``: other classes' attention open in mixed bands / elsewhere, the mean
original score).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path

import torch

from ranlib import TrainConfig, fit, load_checkpoint
from ranlib.data import make_loader, val_transforms, voc
from ranlib.engine.checkpoint import final_path
from ranlib.evaluate import evaluate, read_metrics

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


def instruments(directory: Path) -> dict[str, float]:
    """What the fusion does in one finished run with a reverse branch (see the module docstring), in percent."""
    model, config, _ = load_checkpoint(final_path(directory))
    loader = make_loader(voc(config.data_root, config.val_split, val_transforms()), config.eval_batch_size,
                         shuffle=False, num_workers=0)
    original = evaluate(model, loader, model.num_classes, torch.device("cpu"), band_widths=(4,), branch="original")
    metrics = read_metrics(directory)
    changes = metrics["fusion_changes"]
    with open(directory / "log.csv", newline="") as f:
        last = [row for row in csv.DictReader(f) if row.get("val_miou")][-1]
    attention = {key: float(last[key]) if last.get(key) else float("nan")
                 for key in ("attn_open_other_mixed", "attn_open_other_rest", "attn_original_mean")}
    return {"original_miou": 100 * original["miou"], "fused_miou": 100 * metrics["miou"],
            "original_mixed": 100 * original["mixed_miou"][4], "fused_mixed": 100 * metrics["mixed_miou"][4],
            "changed": 100 * changes["all"]["changed"] / changes["all"]["pixels"],
            "changed_mixed": 100 * changes["mixed_boundary"]["changed"] / changes["mixed_boundary"]["pixels"],
            "net": 100 * (changes["all"]["fixed"] - changes["all"]["broken"]) / changes["all"]["pixels"],
            "open_mixed": 100 * attention["attn_open_other_mixed"],
            "open_rest": 100 * attention["attn_open_other_rest"],
            "original_mean": attention["attn_original_mean"]}


def instruments_table(rows: list[tuple[str, int, dict[str, float]]]) -> str:
    """A Markdown table of ``instruments`` per (variant, seed)."""
    lines = ["| variant | seed | mIoU original / fused | mixed mIoU original / fused | pixels changed: all / mixed "
             "band | fixed − broken (all pixels) | attention open, other classes: mixed / elsewhere | mean "
             "original score |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    return "\n".join(lines + [instruments_row(arm, seed, r) for arm, seed, r in rows])


def instruments_row(arm: str, seed: int, r: dict[str, float]) -> str:
    """One run's row of ``instruments_table``; a run without attention (subtract) gets a dash there."""
    no_attention = r["open_mixed"] != r["open_mixed"]  # nan
    opening = "— (no attention)" if no_attention else f"{r['open_mixed']:.1f}% / {r['open_rest']:.1f}%"
    return (f"| `{arm}` | {seed} | {r['original_miou']:.1f} / {r['fused_miou']:.1f} | {r['original_mixed']:.1f} / "
            f"{r['fused_mixed']:.1f} | {r['changed']:.2f}% / {r['changed_mixed']:.2f}% | {r['net']:+.2f}% | "
            f"{opening} | {r['original_mean']:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--no-train", action="store_true", help="only read finished runs")
    parser.add_argument("--normalized", action="store_true", help="add RAN with attention='normalized'")
    parser.add_argument("--instruments", action="store_true", help="what the fusion does in the ran/subtract runs")
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
    if args.instruments:
        rows = [(arm, seed, instruments(run_dir(args.runs, arm, seed)))
                for arm in arms if arm != "baseline" for seed in args.seeds]
        print("\nwhat the fusion does (validation; attention at the last evaluation, first 4 batches):")
        print(instruments_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
