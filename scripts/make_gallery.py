"""The gallery's figures (docs/gallery/*.png, shown in docs/gallery.md) from a baseline and a RAN on the embedded data.

    python scripts/make_gallery.py                       # trains both models first (runs/gallery/{baseline,ran})
    python scripts/make_gallery.py --baseline runs/b --ran runs/r    # run directories or checkpoint files

Without checkpoints it trains a baseline (plain DeepLab-LargeFOV) and a RAN with ``ranlib.engine.train.fit`` on
the embedded mixed-boundary dataset, with the same recipe and seed (ResNet-18 from random weights, 600
iterations of batch 8 at crop 96, lr 0.01 with the heads at 1x; rerunning resumes or reuses the runs). It
then finds the validation crops where the baseline is most confused at mixed boundaries
(``ranlib.viz.find_regions``: smallest top-2 softmax margin) and writes into ``--out``:

- ``branches.png``: the RAN's original / reverse / attention / fused maps at those crops;
- ``comparison.png``: image, ground truth, baseline and RAN predictions and the attention, same crops;
- ``trimap.png`` / ``mixed_trimap.png``: mIoU in boundary / mixed-boundary bands against band width;
- ``iou.png``, ``confusion.png`` (the RAN's), ``training_curves.png`` (both runs' log.csv);
- ``attention.png`` / ``attention.json``: the RAN's original scores against sigmoid(-score), and how far its
  attention opens in mixed-boundary bands and elsewhere (``ranlib.viz.attention_statistics``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

from ranlib import TrainConfig, fit, load_checkpoint
from ranlib.data import class_names, ensure_mixed_boundary_dataset, val_transforms, voc
from ranlib.engine.checkpoint import final_path, latest_intact
from ranlib.evaluate import predict
from ranlib.viz import (
    attention_statistics,
    find_regions,
    plot_attention_statistics,
    plot_branches,
    plot_comparison,
    plot_confusion_matrix,
    plot_iou_bars,
    plot_training_curves,
    plot_trimap,
)
from ranlib.viz.figure import new_figure

LABELS = {"baseline": "baseline", "ran": "RAN"}


def branches_at_regions(model, dataset, regions, names: list[str]) -> Figure:
    """One row of ``plot_branches`` per region, for the class that dominates the region's mixed boundary."""
    fig = new_figure((13.0, 2.8 * len(regions)))
    for sub, region in zip(fig.subfigures(len(regions), 1, squeeze=False)[:, 0], regions, strict=True):
        image, mask = dataset[region.index]
        c = region.classes[0]
        plot_branches(predict(model, image), image, c, mask=mask, box=region.box, class_names=names, fig=sub)
        sub.suptitle(f"val item {region.index}: RAN branches for class {names[c]!r} "
                     f"(baseline confusion here {region.score:.2f})", fontsize=10)
    return fig


def checkpoint_of(path: Path) -> Path:
    """A finished run's final.pt, else its newest intact checkpoint, or the checkpoint file itself."""
    if path.is_file():
        return path
    if final_path(path).exists():
        return final_path(path)
    found = latest_intact(path / "checkpoints")
    if found is None:
        raise SystemExit(f"no intact checkpoint in {path / 'checkpoints'}: train it first "
                         f"(python -m ranlib train --run-dir {path}) or pass a checkpoint file")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="baseline run directory or checkpoint (default: train one)")
    parser.add_argument("--ran", type=Path, help="RAN run directory or checkpoint (default: train one)")
    parser.add_argument("--runs", type=Path, default=Path("runs/gallery"), help="where to train the models")
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--head-lr-mult", type=float, default=1.0,
                        help="1: heads at the backbone's rate (steadier from random weights than DeepLab's 10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regions", type=int, default=4, help="number of crops to show")
    parser.add_argument("--crop-size", type=int, default=48)
    parser.add_argument("--search", type=int, default=100, help="validation items searched for crops")
    parser.add_argument("--out", type=Path, default=Path("docs/gallery"))
    args = parser.parse_args(argv)
    if (args.baseline is None) != (args.ran is None):
        parser.error("give both --baseline and --ran, or neither (then both are trained)")

    if args.baseline is None:
        paths = {v: fit(TrainConfig(variant=v, iterations=args.iterations, lr=args.lr,
                                    head_lr_mult=args.head_lr_mult, seed=args.seed, eval_every=0,
                                    checkpoint_every=100, run_dir=str(args.runs / v))) for v in LABELS}
    else:
        paths = {"baseline": args.baseline, "ran": args.ran}
    loaded = {v: load_checkpoint(checkpoint_of(Path(p))) for v, p in paths.items()}
    baseline, ran = loaded["baseline"][0], loaded["ran"][0]
    config = loaded["ran"][1]
    root = (ensure_mixed_boundary_dataset(config.data_root) if config.dataset == "mixed_boundary"
            else Path(config.data_root))
    names = class_names(root)
    dataset = voc(root, config.val_split, val_transforms())

    regions = find_regions(baseline, dataset, indices=range(min(args.search, len(dataset))),
                           max_regions=args.regions, crop_size=args.crop_size)
    if not regions:
        raise SystemExit(f"no mixed boundaries found in {root}'s {config.val_split} split")
    figures = {"branches": branches_at_regions(ran, dataset, regions, names),
               "comparison": plot_comparison(baseline, ran, dataset, regions, class_names=names)}
    attention = attention_statistics(ran, dataset, indices=range(min(args.search, len(dataset))))
    figures["attention"] = plot_attention_statistics(attention)

    run_dirs = {v: Path(p) if Path(p).is_dir() else checkpoint_of(Path(p)).parent.parent for v, p in paths.items()}
    if all((d / "metrics.json").exists() for d in run_dirs.values()):
        metrics = {LABELS[v]: json.loads((d / "metrics.json").read_text()) for v, d in run_dirs.items()}
        whole = {name: m["miou"] for name, m in metrics.items()}
        figures["trimap"] = plot_trimap({n: m["boundary_miou"] for n, m in metrics.items()}, whole)
        figures["mixed_trimap"] = plot_trimap({n: m["mixed_miou"] for n, m in metrics.items()}, whole,
                                              band="mixed-boundary")
        figures["iou"] = plot_iou_bars({n: m["iou"] for n, m in metrics.items()}, names)
        figures["confusion"] = plot_confusion_matrix(metrics["RAN"]["confusion"], names)
        figures["training_curves"] = plot_training_curves({LABELS[v]: d for v, d in run_dirs.items()})

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "attention.json").write_text(json.dumps(attention, indent=1) + "\n")
    for region in ("mixed boundary", "rest"):
        s = attention[region]
        print(f"attention in {region}: mean {s['attention_true']:.3f} at the true class, {s['attention_other']:.3f} "
              f"at the others; A > 0.5 for {100 * s['open_other']:.1f}% of the others; |fused - original| = "
              f"{100 * s['relative_change']:.1f}% of |original|")
    for name, fig in figures.items():
        fig.savefig(args.out / f"{name}.png", dpi=80)
        print(f"wrote {args.out / name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
