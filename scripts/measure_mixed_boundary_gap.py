"""Measure the gap RAN is meant to close: a DeepLab baseline's IoU where two objects meet vs. inside objects.

Trains ``variant="baseline"`` (DeepLab: backbone + LargeFOV head, no reverse branch) on the embedded
mixed-boundary dataset with the library's engine (``ranlib.engine.train.fit``; random backbone weights, so the head
learns at the backbone's rate: with DeepLab's 10x the loss blows up in the first iterations and the model ends
up predicting background everywhere), reloads the final checkpoint
(``ranlib.load_checkpoint``) and scores its val predictions in two pixel sets with
``ranlib.evaluate.evaluate_regions``:

- mixed-boundary band: within ``--width`` px (Chebyshev) of a boundary between two *object* classes
  (``ranlib.data.mixed_boundary_band``), where two class responses mix;
- interiors: labelled pixels farther than ``--width`` px from any class boundary (outside
  ``ranlib.data.boundary_band``).

In each set the score is the mean IoU over the *object* classes (background excluded) that have ground-truth
pixels in the set; IoU counts only the set's pixels, so a background pixel of the set predicted as an object is
a false positive there. Rerunning with the same ``--run-dir`` reuses the finished run. About 20 minutes on 2
busy CPUs::

    python scripts/measure_mixed_boundary_gap.py --run-dir runs/gap-baseline

``--write-results docs/results.md`` also writes the two object mIoUs between that file's ``mixed-boundary-gap``
markers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ranlib import TrainConfig, fit, load_checkpoint
from ranlib.data import class_names, ensure_mixed_boundary_dataset, val_transforms, voc
from ranlib.engine.checkpoint import final_path
from ranlib.evaluate import evaluate_regions
from ranlib.results_doc import header, write_section

SETS = {"mixed_band": "mixed", "interior": "interior", "all": "all"}  # this script's names: evaluate_regions'


def measure(model, dataset, width: int) -> dict:
    """Object mIoU, per-class IoU (None for a class without ground truth in the set), pixel counts and pixel
    accuracy in the mixed-boundary band, in object interiors and in all labelled pixels."""
    regions = evaluate_regions(model, dataset, width, batch_size=8)
    return {name: {"object_miou": r["object_miou"], "pixels": r["pixels"], "pixel_acc": r["pixel_acc"],
                   "iou": [v if p else None for v, p in zip(r["iou"], r["present"], strict=True)]}
            for name, r in ((name, regions[region]) for name, region in SETS.items())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/mixed_boundary", help="embedded dataset (generated if absent)")
    parser.add_argument("--run-dir", default="runs/gap-baseline")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--head-lr-mult", type=float, default=1.0,
                        help="DeepLab's 10 assumes a pretrained backbone; from random weights it diverges")
    parser.add_argument("--width", type=int, default=4, help="band width in px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the result between FILE's <!-- mixed-boundary-gap:begin/end --> markers")
    args = parser.parse_args(argv)

    root = ensure_mixed_boundary_dataset(args.root)
    config = TrainConfig(backbone=args.backbone, variant="baseline", data_root=str(root), crop_size=args.crop_size,
                         batch_size=args.batch_size, iterations=args.iterations, lr=args.lr,
                         head_lr_mult=args.head_lr_mult, seed=args.seed, run_dir=args.run_dir, eval_every=0,
                         checkpoint_every=args.iterations, device=args.device, num_workers=args.workers)
    run_dir = fit(config)
    model, _, state = load_checkpoint(final_path(Path(run_dir)))
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    names = class_names(root)
    result = {"iterations": state["iteration"], "width": args.width,
              **measure(model.to(device), voc(root, "val", val_transforms()), args.width)}
    (Path(run_dir) / "mixed_boundary_gap.json").write_text(json.dumps(result, indent=1))
    print(f"baseline {args.backbone}, {state['iteration']} iterations, val split, width {args.width} px")
    print(f"{'pixel set':<22}{'object mIoU':>12}{'pixel acc':>11}{'pixels':>10}  " + " ".join(names[1:]))
    for name, label in (("mixed_band", "mixed-boundary band"), ("interior", "object interiors"), ("all", "all")):
        r = result[name]
        per_class = " ".join(f"{v:.3f}" if v is not None else "  -  " for v in r["iou"][1:])
        print(f"{label:<22}{r['object_miou']:>12.3f}{r['pixel_acc']:>11.3f}{r['pixels']:>10,d}  {per_class}")
    gap = result["interior"]["object_miou"] - result["mixed_band"]["object_miou"]
    print(f"gap (interior - mixed band): {gap:.3f} object mIoU")
    if args.write_results:
        text = (f"DeepLab baseline, {args.backbone} from random weights, {state['iteration']} iterations of "
                f"{args.batch_size} crops of {args.crop_size} px, lr {args.lr:g} (heads at {args.head_lr_mult:g}x); "
                f"validation, bands of {args.width} px:\n\n| pixel set | object-class mIoU |\n|---|---:|\n"
                f"| mixed-boundary band | {100 * result['mixed_band']['object_miou']:.1f} |\n"
                f"| object interiors | {100 * result['interior']['object_miou']:.1f} |")
        write_section(args.write_results, "mixed-boundary-gap",
                      header("measure_mixed_boundary_gap.py", argv, torch.get_num_threads()) + text,
                      title="The gap at mixed boundaries")


if __name__ == "__main__":
    main()
