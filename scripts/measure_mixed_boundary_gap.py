"""Measure the gap RAN is meant to close: a DeepLab baseline's IoU where two objects meet vs. inside objects.

Trains ``build_model(backbone, variant="baseline")`` on the embedded mixed-boundary dataset with a plain loop
(SGD with momentum, poly learning rate, ``RANLoss``) for a wall-clock budget, then evaluates on its val split
in three pixel sets:

- all labelled pixels;
- the mixed-boundary band: within ``--band-width`` px (Chebyshev) of a boundary between two *object* classes
  (``ranlib.data.mixed_boundary_band``);
- interiors: farther than ``--interior-distance`` px from any boundary (outside ``ranlib.data.boundary_band``).

IoU per class inside a pixel set counts only that set's pixels: TP / (TP + FP + FN) with FP and FN restricted
to the set. The mean is over classes with ground-truth pixels in the set. Usage (about 5 minutes on 2 CPUs)::

    python scripts/measure_mixed_boundary_gap.py --minutes 4
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from ranlib import RANLoss, build_model
from ranlib.data import (
    boundary_band,
    class_names,
    ensure_mixed_boundary_dataset,
    make_loader,
    mixed_boundary_band,
    train_transforms,
    val_transforms,
    voc,
)


def confusion(pred: torch.Tensor, target: torch.Tensor, keep: torch.Tensor, k: int) -> torch.Tensor:
    """(K, K) counts of (ground truth, prediction) over the pixels selected by ``keep`` (255 excluded)."""
    keep = keep & (target != 255)
    return torch.bincount(target[keep] * k + pred[keep], minlength=k * k).reshape(k, k)


def summarise(matrix: torch.Tensor) -> dict:
    """Pixel accuracy, per-class IoU and their mean over the classes present in the ground truth."""
    m = matrix.double()
    tp, gt, pr = m.diag(), m.sum(1), m.sum(0)
    iou = tp / (gt + pr - tp).clamp(min=1)
    present = gt > 0
    return {"pixels": int(m.sum()), "pixel_acc": (tp.sum() / m.sum().clamp(min=1)).item(),
            "miou": iou[present].mean().item(), "iou": [round(v, 4) if p else None for v, p in
                                                        zip(iou.tolist(), present.tolist(), strict=True)]}


@torch.no_grad()
def evaluate(model, dataset, k: int, band_width: int, interior_distance: int) -> dict:
    model.eval()
    regions = ("all", "mixed_band", "interior")
    matrices = {r: torch.zeros(k, k, dtype=torch.long) for r in regions}
    for images, masks in make_loader(dataset, batch_size=16, shuffle=False, num_workers=0):
        logits = model(images).upsample(masks.shape[-2:]).fused  # (B, K, H, W)
        pred = logits.argmax(1)  # (B, H, W)
        keeps = {"all": torch.ones_like(masks, dtype=torch.bool),
                 "mixed_band": mixed_boundary_band(masks, band_width),
                 "interior": ~boundary_band(masks, interior_distance)}
        for r in regions:
            matrices[r] += confusion(pred, masks, keeps[r], k)
    return {r: summarise(matrices[r]) for r in regions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/mixed_boundary")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget (wall clock)")
    parser.add_argument("--max-iterations", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--band-width", type=int, default=4)
    parser.add_argument("--interior-distance", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    root = ensure_mixed_boundary_dataset(args.root)
    k = len(class_names(root))
    train = voc(root, "train", train_transforms(args.crop))
    val = voc(root, "val", val_transforms())
    model = build_model(args.backbone, variant="baseline", num_classes=k).to(args.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    criterion = RANLoss()
    budget, start, iteration = args.minutes * 60, time.time(), 0
    loader = make_loader(train, args.batch_size, shuffle=True, drop_last=True, num_workers=1)
    model.train()
    while iteration < args.max_iterations and time.time() - start < budget:
        for images, masks in loader:
            progress = min((time.time() - start) / budget, 1.0)
            for group in optimizer.param_groups:
                group["lr"] = args.lr * (1 - progress) ** 0.9  # poly schedule over the time budget
            loss, _ = criterion(model(images.to(args.device)), masks.to(args.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            iteration += 1
            if iteration % 20 == 0:
                print(f"iteration {iteration}  loss {loss.item():.3f}  {time.time() - start:.0f}s", flush=True)
            if iteration >= args.max_iterations or time.time() - start >= budget:
                break
    model.to("cpu")
    result = {"iterations": iteration, "train_seconds": round(time.time() - start),
              "args": vars(args), **evaluate(model, val, k, args.band_width, args.interior_distance)}
    print(json.dumps(result, indent=1))
    for region in ("all", "mixed_band", "interior"):
        r = result[region]
        print(f"{region:>10}: mIoU {r['miou']:.3f}  pixel acc {r['pixel_acc']:.3f}  ({r['pixels']} px)")
    assert not math.isnan(result["all"]["miou"])


if __name__ == "__main__":
    main()
