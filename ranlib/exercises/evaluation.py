"""Notebook 07's exercises: IoU from a confusion matrix, and mIoU inside mixed-boundary bands.

- ``check_iou(my_metrics)``: per-class IoU, mIoU and pixel accuracy against ``ranlib.metrics.ConfusionMatrix``
  on a hand-worked matrix and on matrices with a class absent from both ground truth and prediction (0/0: no IoU,
  left out of the mean), a class never predicted and a class predicted but absent.
- ``check_band_miou(my_band_miou)``: mixed-boundary mIoU of hand-made predictions against ``ConfusionMatrix``
  restricted to ``ranlib.data.mixed_boundary_band``.
"""

from __future__ import annotations

import math

import torch

from ranlib.data import boundary_band, mixed_boundary_band
from ranlib.exercises._check import adding_cause, call, describe, fail, guarded, likely, number, passed, student
from ranlib.exercises.bands import probe_masks
from ranlib.metrics import ConfusionMatrix


def probe_matrices() -> list[torch.Tensor]:
    """The hand-worked 3x3 matrix, a 5x5 one with absent classes, and a random 21x21 one."""
    hand = torch.tensor([[8, 2, 0], [1, 5, 0], [0, 0, 4]])
    absent = torch.tensor([[50, 3, 2, 0, 1],
                           [4, 30, 0, 0, 2],
                           [0, 0, 0, 0, 0],  # class 2: never in the ground truth, but predicted below
                           [0, 0, 0, 0, 0],  # class 3: absent from both (0/0)
                           [2, 1, 5, 0, 0]])  # class 4: in the ground truth, never predicted (IoU 0)
    absent[0, 2] = 2
    noisy = torch.randint(0, 50, (21, 21), generator=torch.Generator().manual_seed(0)) + 200 * torch.eye(21).long()
    return [hand, absent, noisy]


# IoU computed in plausible wrong ways: {the mistake: (TP, ground-truth and predicted counts per class) -> values};
# a union is 0 only where TP is, so 0/0 is the only nan and nothing divides to inf
IOU_MISTAKES = {
    "that is recall, TP / (TP + FN): IoU divides by TP + FP + FN": lambda tp, gt, pred: tp / gt,
    "that is precision, TP / (TP + FP): IoU divides by TP + FP + FN": lambda tp, gt, pred: tp / pred,
    "TP counted twice in the union: TP + FP + FN = row sum + column sum - TP": lambda tp, gt, pred: tp / (gt + pred),
    "0/0 counted as IoU 0: a class absent from both ground truth and prediction has no IoU (nan), and the mean "
    "leaves it out": lambda tp, gt, pred: (tp / (gt + pred - tp)).nan_to_num(nan=0.0),
    "integer division (//): the counts are integers, use / (or C.double() first)":
        lambda tp, gt, pred: tp // (gt + pred - tp),
    "a percentage: return fractions in [0, 1]": lambda tp, gt, pred: 100 * tp / (gt + pred - tp),
    "that is the Dice score 2TP / (2TP + FP + FN): IoU is TP / (TP + FP + FN)":
        lambda tp, gt, pred: 2 * tp / (gt + pred),
}


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all((math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-6
                                    for x, y in zip(a, b, strict=True))


@guarded
def check_iou(fn) -> None:
    """Check ``fn(C) -> {"iou": [K floats, nan for 0/0], "miou": float, "pixel_acc": float}``."""
    name = "my_metrics"
    for C in probe_matrices():
        given = C.clone()
        ours = call(fn, given, name=name)
        if not torch.equal(given, C):
            fail(f"{name} changed the confusion matrix in place: work on a copy (C.double() makes one)")
        where = f"{name} on a {C.shape[0]}x{C.shape[0]} matrix"
        if not isinstance(ours, dict) or not {"iou", "miou", "pixel_acc"} <= set(ours):
            fail(f"{name} should return a dict with 'iou', 'miou' and 'pixel_acc', got {describe(ours)}")
        cm = ConfusionMatrix(C.shape[0])
        cm.matrix += C
        reference = cm.compute()
        _check_ious(name, where, ours, C, reference)
        miou = number(f"{where}: 'miou'", ours["miou"])
        if abs(miou - reference["miou"]) > 1e-6 or math.isnan(miou):
            fail(f"{where}: mIoU {reference['miou']:.4f} expected, yours is {miou:.4f}"
                 + likely(_miou_hint(miou, reference)))
        acc = number(f"{where}: 'pixel_acc'", ours["pixel_acc"])
        if not abs(acc - reference["pixel_acc"]) <= 1e-6:  # a nan fails too
            fail(f"{where}: pixel accuracy {reference['pixel_acc']:.4f} expected, yours is {acc:.4f}"
                 + likely(_pixel_acc_hint(acc, C, reference)))
    passed(f"{name}: IoU, mIoU and pixel accuracy equal to ranlib.metrics.ConfusionMatrix, 0/0 left out as nan")


def _check_ious(name: str, where: str, ours: dict, C: torch.Tensor, reference: dict) -> None:
    """One IoU per class, nan where the class is absent from both ground truth and prediction."""
    with student(f"{name}: its 'iou'"):
        iou = ours["iou"].tolist() if isinstance(ours["iou"], torch.Tensor) else list(ours["iou"])
    iou = [number(f"{where}: an IoU", v) for v in iou]
    if len(iou) != C.shape[0]:
        fail(f"{where}: {C.shape[0]} IoUs expected (one per class), got {len(iou)}"
             + likely("background (class 0) or the last class left out: every class has an IoU"
                      if len(iou) == C.shape[0] - 1 else None))
    if _same(iou, reference["iou"]):
        return
    C = C.double()
    tp, gt, pred = C.diag(), C.sum(1), C.sum(0)
    mistake = next((m for m, variant in IOU_MISTAKES.items() if _same(iou, variant(tp, gt, pred).tolist())), None)
    c = next(i for i, (a, b) in enumerate(zip(iou, reference["iou"], strict=True)) if not _same([a], [b]))
    fail(f"{where}: IoU of class {c} should be {reference['iou'][c]:.4f}, yours is {iou[c]}" + likely(mistake))


def _miou_hint(miou: float, reference: dict) -> str | None:
    if math.isnan(miou):
        return "the mean includes a nan: average only the defined IoUs"
    defined = [v for v in reference["iou"] if not math.isnan(v)]
    candidates = (
        (sum(defined) / len(reference["iou"]), 1e-6,
         "absent classes counted as 0 in the mean: average only the defined IoUs"),
        (reference["fwiou"], 1e-6, "frequency-weighted IoU: mIoU is the plain mean over the classes"),
        (100 * reference["miou"], 1e-4, "a percentage: return a fraction in [0, 1]"),
        (reference["pixel_acc"], 1e-6, "that is the pixel accuracy: mIoU is the mean of the per-class IoUs"),
    )
    return next((hint for value, tolerance, hint in candidates if abs(miou - value) < tolerance), None)


def _pixel_acc_hint(acc: float, C: torch.Tensor, reference: dict) -> str | None:
    precision = (C.double().diag() / C.double().sum(0).clamp(min=1)).mean().item()
    candidates = (
        (reference["mean_class_acc"], 1e-6, "mean class accuracy: pixel accuracy is the trace over the total"),
        (100 * reference["pixel_acc"], 1e-4, "a percentage: return a fraction in [0, 1]"),
        (reference["miou"], 1e-6, "that is the mIoU: pixel accuracy is the trace over the total"),
        (precision, 1e-6, "the mean of per-class precision (diagonal over column sums): pixel accuracy is the "
                          "trace over the total"),
    )
    return next((hint for value, tolerance, hint in candidates if abs(acc - value) < tolerance), None)


def probe_predictions(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """Predictions with errors where objects meet: each mask shifted by two pixels, void filled, some noise."""
    g = torch.Generator().manual_seed(0)
    out = []
    for m in masks:
        p = torch.roll(m, shifts=(2, 2), dims=(0, 1)).masked_fill(torch.roll(m, (2, 2), (0, 1)) == 255, 0)
        noise = torch.rand(m.shape, generator=g) < 0.05
        out.append(torch.where(noise, torch.randint(0, 5, m.shape, generator=g), p))
    return out


def _band_miou(predictions, masks, width, band=mixed_boundary_band, num_classes=5, on_prediction=False,
               nan_as_zero=False):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=None if band is None else band(p if on_prediction else m, width))
    if nan_as_zero:
        return torch.tensor(cm.compute()["iou"]).nan_to_num().mean().item()
    return cm.compute()["miou"]


def _same_number(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-6


def _relabel(labels: torch.Tensor, offset: int = 19) -> torch.Tensor:
    """Labels 1-4 moved to 20-23 (background and void kept): a probe for 24 classes."""
    return torch.where((labels > 0) & (labels != 255), labels + offset, labels)


@guarded
def check_band_miou(fn, num_classes: int = 5) -> None:
    """Check ``fn(predictions, masks, width, num_classes) -> mixed-boundary mIoU`` (lists of (H, W) labels)."""
    name = "my_band_miou"
    masks = probe_masks()
    predictions = probe_predictions(masks)
    for width in (1, 2, 4):
        given = [m.clone() for m in masks]
        ours = call(fn, [p.clone() for p in predictions], given, width, num_classes, name=name)
        if any(not torch.equal(a, b) for a, b in zip(given, masks, strict=False)):
            fail(f"{name} changed the masks in place: leave them as they are")
        ours = number(f"{name}: the mIoU", ours)
        expected = _band_miou(predictions, masks, width)
        if _same_number(ours, expected):
            continue
        mistakes = {
            "the boundary band: use mixed_boundary_band (boundaries between two objects only)":
                _band_miou(predictions, masks, width, boundary_band),
            "the whole image: pass the band to ConfusionMatrix.update(..., mask=band)":
                _band_miou(predictions, masks, width, None),
            "band one pixel too wide: mixed_boundary_band(mask, width), not width + 1":
                _band_miou(predictions, masks, width + 1),
            "the band of the prediction: the band comes from the ground-truth mask":
                _band_miou(predictions, masks, width, on_prediction=True),
            "a mean of per-image mIoUs: accumulate one ConfusionMatrix over all the images":
                sum(_band_miou([p], [m], width) for p, m in zip(predictions, masks, strict=True)) / len(masks),
            "a band of width 2w: mixed_boundary_band(mask, w) already spans w on each side":
                _band_miou(predictions, masks, 2 * width),
            "a percentage: return a fraction in [0, 1]": 100 * expected,
            "nan IoUs counted as 0 in the mean: compute()['miou'] averages only the classes that have an IoU":
                _band_miou(predictions, masks, width, nan_as_zero=True),
            "only the last image counts: create the ConfusionMatrix once, before the loop":
                _band_miou(predictions[-1:], masks[-1:], width),
            "only the first image counts: update the matrix with every image":
                _band_miou(predictions[:1], masks[:1], width),
        }
        for other in range(0, 2 * width + 2):
            if other != width:
                mistakes[f"the band of width {other}: mixed_boundary_band(mask, width) with the width given"] = \
                    _band_miou(predictions, masks, other)
        mistake = next((m for m, v in mistakes.items() if _same_number(ours, v)), None)
        fail(f"{name}, width {width}: mixed-boundary mIoU {expected:.4f} expected, yours is {ours:.4f}"
             + likely(mistake))
    # 24 classes (labels up to 23), so that no class count can be fixed
    masks24, predictions24 = [_relabel(m) for m in masks], [_relabel(p) for p in predictions]
    where = f"{name} with num_classes=24 (labels up to 23)"
    with adding_cause("one possible cause: a fixed class count: ConfusionMatrix(num_classes), with the argument"):
        ours = number(f"{where}: the mIoU", call(fn, predictions24, masks24, 2, 24, name=where))
    expected = _band_miou(predictions24, masks24, 2, num_classes=24)
    if not _same_number(ours, expected):
        fail(f"{where}, width 2: mixed-boundary mIoU {expected:.4f} expected, yours is {ours:.4f}: right with 5 "
             "classes, wrong with 24\n  one possible cause: a fixed class count: ConfusionMatrix(num_classes)")
    passed(f"{name}: equal to ConfusionMatrix restricted to mixed_boundary_band at widths 1, 2, 4, with 5 and 24 "
           "classes")
