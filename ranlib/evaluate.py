"""Evaluation: mIoU overall, in boundary bands (the trimap) and in mixed-boundary bands, Boundary IoU, and what
RAN's fusion changes, with optional TTA.

``evaluate`` runs the model over a loader of ``(image, mask)`` pairs and accumulates a ``BandConfusion`` (one
``ConfusionMatrix`` for all labelled pixels, one per boundary-band width and one per mixed-boundary-band width; the
bands come from ``ranlib.data``), one ``BoundaryIoU``, and for models with a reverse branch one ``FusionChanges``
(pixels where ``argmax(fused) != argmax(original)``: fixed, broken, still wrong, per region). Test-time
augmentation averages the softmax of the logits over scales 0.5-1.75 and horizontal flips, at full resolution.

``evaluate_regions`` counts through the same ``BandConfusion`` and scores one band width in four pixel sets
(``REGIONS``: all, boundary band, mixed-boundary band, object interiors) with object-class IoU beside mIoU: the gap
RAN is meant to close, as the course, notebook 01 and ``scripts/measure_mixed_boundary_gap.py`` show it.

Band widths are ``int`` keys: ``metrics["mixed_miou"][4]``. A run's ``metrics.json`` holds the same dict (plus the
class names, ``named_metrics`` below), where JSON has turned those keys into strings (``"4"``);
``read_metrics`` reads it back with ``int`` keys, so that code reading a file and code calling ``evaluate`` index
the widths the same way.

``predict`` is the one place ranlib runs a trained model on images (eval mode, no gradients, every branch at the
image's size, optional TTA): ``evaluate``, the run directory's plots and every figure of ``ranlib.viz`` call it.
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ranlib.data import make_loader
from ranlib.distributed import unwrap
from ranlib.fusion_changes import FusionChanges, format_fusion_changes
from ranlib.metrics import BandConfusion, BoundaryIoU
from ranlib.model import RANOutput
from ranlib.precision import autocast
from ranlib.progress import tqdm

TTA_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
BRANCHES = ("fused", "original", "reverse")  # each is a full set of class scores (reverse = NEG(CONV_rev))
BAND_METRICS = ("boundary_miou", "mixed_miou")  # {band width in pixels (int): mIoU inside that band}


def _branch(output: RANOutput, branch: str) -> torch.Tensor:
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; choose one of {', '.join(BRANCHES)}")
    scores = getattr(output, branch)
    if scores is None:
        raise ValueError(f"this model has no {branch} branch (the baseline has only fused = original)")
    return scores


def _each(output: RANOutput, fn) -> RANOutput:
    """``fn(field_name, tensor)`` applied to every branch of ``output`` that the model has (None stays None)."""
    return RANOutput(*(None if x is None else fn(name, x) for name, x in zip(RANOutput._fields, output, strict=True)))


@torch.no_grad()
def predict(model, images: torch.Tensor, tta: bool = False, amp: str = "off") -> RANOutput:
    """What the model predicts for ``images`` (B, 3, H, W), or for one image (3, H, W) as a batch of one: every
    branch of its ``RANOutput`` at the images' resolution, (B, K, H, W) class scores and the (B, K, H, W)
    attention, float, on the device ``images`` came from. Every figure, the evaluation and the run plots predict
    through this function.

    Without TTA the class scores are logits of one forward pass. With ``tta`` each branch is averaged over the
    scales ``TTA_SCALES`` and horizontal flips: the class scores as softmax probabilities, the attention as it is.
    Runs without gradients, in eval mode, on the model's device, and puts the model back in the mode it was in."""
    if images.dim() == 3:
        images = images[None]
    device = next(model.parameters()).device
    x, size = images.to(device), tuple(images.shape[-2:])
    passes = [(s, flip) for s in TTA_SCALES for flip in (False, True)] if tta else [(1.0, False)]
    was_training = model.training
    model.eval()
    try:
        total = None
        for scale, flip in passes:
            scaled = x if scale == 1.0 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            with autocast(device, amp):
                output = model(scaled.flip(-1) if flip else scaled).upsample(size)
            output = _each(output, lambda name, y: y.float())
            if flip:  # back to the image's orientation
                output = _each(output, lambda name, y: y.flip(-1))
            if tta:
                output = _each(output, lambda name, y: y if name == "attention" else y.softmax(1))
            total = output if total is None else RANOutput(*(a if a is None else a + b
                                                             for a, b in zip(total, output, strict=True)))
    finally:
        model.train(was_training)
    return _each(total, lambda name, y: (y / len(passes)).to(images.device))


def predict_logits(model, images: torch.Tensor, tta: bool = False, amp: str = "off",
                   branch: str = "fused") -> torch.Tensor:
    """One branch of ``predict`` (the prediction is ``fused``): full-resolution class scores (B, K, H, W), logits
    or TTA-averaged probabilities, on the device ``images`` came from."""
    return _branch(predict(model, images, tta, amp), branch)


@torch.no_grad()
def evaluate(model, loader, num_classes: int, device, band_widths=(2, 4, 8, 16), tta: bool = False,
             amp: str = "off", branch: str = "fused", progress: bool = False) -> dict:
    """Metrics of ``ConfusionMatrix.compute()`` plus ``boundary_miou`` and ``mixed_miou`` ({width (int): mIoU}),
    ``boundary_iou`` (``BoundaryIoU.compute()``: per-class ``iou`` and ``miou``) and the raw ``confusion`` matrix;
    for the fused branch of a model with a reverse branch (RAN, subtract) also ``fusion_changes``
    (``FusionChanges.compute()`` at 4 px). Under DDP every process evaluates its share and the counts are summed.

    ``branch="original"`` scores RAN's original branch alone (what the fusion starts from), ``"reverse"`` its
    reverse branch; the difference to ``"fused"`` is what the fusion adds. ``progress`` shows a progress bar."""
    counts = BandConfusion(num_classes, band_widths, device=device)
    boundary_iou = BoundaryIoU(num_classes, device=device)
    has_reverse = getattr(unwrap(model), "conv_rev", None) is not None  # the baseline has fused = original
    fusion = FusionChanges(4, device=device) if has_reverse and branch == "fused" else None
    for images, masks in tqdm(loader, desc=f"evaluate {branch}", disable=not progress, leave=False):
        images, masks = images.to(device), masks.to(device)
        output = predict(model, images, tta, amp)  # every branch from one forward pass (per scale and flip)
        prediction = _branch(output, branch).argmax(1)  # (B, H, W)
        bands = counts.update(prediction, masks)
        boundary_iou.update(prediction, masks)
        if fusion is not None:  # the bands at its width, when evaluate has them already
            near_boundary, near_mixed = bands.get(fusion.width, (None, None))
            fusion.update(output.original, output.fused, masks, near_mixed, near_boundary)
    for counter in [counts, boundary_iou, *([fusion] if fusion else [])]:
        counter.reduce_from_all_processes()
    metrics = counts.overall.compute()
    metrics["boundary_miou"] = {w: cm.compute()["miou"] for w, cm in counts.boundary.items()}
    metrics["mixed_miou"] = {w: cm.compute()["miou"] for w, cm in counts.mixed.items()}
    metrics["boundary_iou"] = boundary_iou.compute()
    if fusion is not None:
        metrics["fusion_changes"] = fusion.compute()
    metrics["confusion"] = counts.overall.matrix.tolist()
    return metrics


# The pixel sets of ``evaluate_regions``, at band width w (Chebyshev distance, ``ranlib.data.bands``); each holds only
# labelled pixels. The mixed band lies inside the boundary band; interior and boundary band split the labelled pixels.
REGIONS = {
    "all": "every labelled pixel",
    "boundary": "within w px of any class boundary (boundary_band)",
    "mixed": "within w px of a boundary between two object classes (mixed_boundary_band)",
    "interior": "farther than w px from any class boundary (outside boundary_band)",
}


@torch.no_grad()
def evaluate_regions(model, data, width: int = 4, batch_size: int = 8, tta: bool = False, amp: str = "off",
                     branch: str = "fused", progress: bool = False) -> dict[str, dict]:
    """How the model scores in each pixel set of ``REGIONS`` at band width ``width``: where RAN should help (the
    mixed band) against object interiors, the course's and the paper's comparison.

    ``data``: a dataset of ``(image, mask)`` pairs (read in batches of ``batch_size``; VOC's images differ in size,
    so 1 there) or a loader of batches. Returns ``{region: figures}``, each figures a dict of ``pixels``,
    ``pixel_acc``, per-class ``iou`` and ``miou`` (``ConfusionMatrix.compute()``), ``object_miou`` (the mean IoU of
    the object classes with ground truth in the region: background left out, ``ConfusionMatrix.object_miou``),
    ``present`` (per class: has ground-truth pixels there) and the (K, K) ``confusion`` counts (ground truth,
    prediction). IoU counts only the region's pixels, so a background pixel predicted as an object is a false
    positive there. Counts live on the CPU; under DDP they are summed over the processes."""
    loader = make_loader(data, batch_size, shuffle=False, num_workers=0) if isinstance(data, Dataset) else data
    counts = BandConfusion(unwrap(model).num_classes, (width,))
    for images, masks in tqdm(loader, desc=f"regions {branch}", disable=not progress, leave=False):
        counts.update(predict_logits(model, images, tta, amp, branch).argmax(1).cpu(), masks.cpu())  # (B, H, W)
    counts.reduce_from_all_processes()
    regions = {"all": counts.overall, "boundary": counts.boundary[width], "mixed": counts.mixed[width],
               "interior": counts.interior(width)}
    return {name: {"pixels": int(confusion.matrix.sum()), **confusion.compute(), "object_miou": confusion.object_miou(),
                   "present": (confusion.matrix.sum(1) > 0).tolist(), "confusion": confusion.matrix}
            for name, confusion in regions.items()}


def named_metrics(metrics: dict, class_names: list[str]) -> dict:
    """``evaluate``'s metrics with the class names: ``classes`` and ``per_class_iou`` ({name: IoU}) beside the
    ``iou`` list (in class-index order, as before)."""
    named = {"classes": list(class_names), "per_class_iou": dict(zip(class_names, metrics["iou"], strict=True))}
    if "boundary_iou" in metrics:
        named["per_class_boundary_iou"] = dict(zip(class_names, metrics["boundary_iou"]["iou"], strict=True))
    return named | metrics


def read_metrics(path: str | Path) -> dict:
    """A run's ``metrics.json`` (or the run directory holding it) with the band widths of ``boundary_miou`` and
    ``mixed_miou`` as ``int`` keys again, as ``evaluate`` returns them: ``read_metrics(run_dir)["mixed_miou"][4]``.
    (The file itself keeps JSON's string keys, ``"4"``, which scripts reading it as plain JSON use.)"""
    path = Path(path)
    path = path if path.suffix == ".json" else path / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass a run directory written by ranlib.engine.train.fit (it "
                                "writes metrics.json when the run finishes) or the path of its metrics.json")
    metrics = json.loads(path.read_text())
    for key in BAND_METRICS:
        if key in metrics:
            metrics[key] = {int(width): miou for width, miou in metrics[key].items()}
    return metrics


def percent_scores(metrics: dict, width: int = 4) -> dict[str, float]:
    """What the results tables of ``scripts/`` compare, in percent, from ``evaluate``'s metrics (or
    ``read_metrics``'): ``miou``, and ``boundary`` and ``mixed``, the band mIoUs at ``width`` px."""
    return {"miou": 100 * metrics["miou"], "boundary": 100 * metrics["boundary_miou"][width],
            "mixed": 100 * metrics["mixed_miou"][width]}


def read_scores(run_dir: str | Path, width: int = 4) -> dict[str, float]:
    """``percent_scores`` of a finished run's ``metrics.json`` (``read_metrics``), and ``images_per_s``, the median
    training speed of its ``log.csv`` (nan without one)."""
    log = Path(run_dir) / "log.csv"
    rows = list(csv.DictReader(log.open(newline=""))) if log.exists() else []
    rates = [float(row["images_per_s"]) for row in rows if row.get("images_per_s")]
    return percent_scores(read_metrics(run_dir), width) | {
        "images_per_s": statistics.median(rates) if rates else float("nan")}


def format_table(metrics: dict, class_names: list[str]) -> str:
    """A plain-text table: overall, boundary and mixed-boundary mIoU, Boundary IoU, then per-class IoU and
    Boundary IoU, then (for RAN and subtract models) what the fusion changes."""
    lines = [f"{'metric':<28}{'value':>8}", "-" * 36,
             f"{'mIoU':<28}{100 * metrics['miou']:>8.1f}",
             f"{'pixel accuracy':<28}{100 * metrics['pixel_acc']:>8.1f}",
             f"{'mean class accuracy':<28}{100 * metrics['mean_class_acc']:>8.1f}",
             f"{'frequency-weighted IoU':<28}{100 * metrics['fwiou']:>8.1f}"]
    lines += [f"{f'boundary mIoU ({w} px)':<28}{100 * v:>8.1f}" for w, v in metrics["boundary_miou"].items()]
    lines += [f"{f'mixed-boundary mIoU ({w} px)':<28}{100 * v:>8.1f}" for w, v in metrics["mixed_miou"].items()]
    biou = metrics.get("boundary_iou", {"miou": float("nan"), "iou": [float("nan")] * len(metrics["iou"])})
    lines += [f"{'Boundary IoU (mean)':<28}{100 * biou['miou']:>8.1f}"]
    lines += ["", f"{'class':<28}{'IoU':>8}{'bIoU':>8}", "-" * 44]
    lines += [f"{name:<28}{100 * iou:>8.1f}{100 * b:>8.1f}"
              for name, iou, b in zip(class_names, metrics["iou"], biou["iou"], strict=True)]
    if "fusion_changes" in metrics:
        lines += ["", format_fusion_changes(metrics["fusion_changes"])]
    return "\n".join(lines)
