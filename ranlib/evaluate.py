"""Evaluation: mIoU overall, in boundary bands (the trimap) and in mixed-boundary bands, Boundary IoU, and what
RAN's fusion changes, with optional TTA.

``evaluate`` runs the model over a loader of ``(image, mask)`` pairs and accumulates one ``ConfusionMatrix``
for all labelled pixels, one per boundary-band width and one per mixed-boundary-band width (the bands come
from ``ranlib.data``), one ``BoundaryIoU``, and for models with a reverse branch one ``FusionChanges``
(pixels where ``argmax(fused) != argmax(original)``: fixed, broken, still wrong, per region). Test-time
augmentation averages the softmax of the logits over scales 0.5-1.75 and horizontal flips, at full resolution.

Band widths are ``int`` keys: ``metrics["mixed_miou"][4]``. A run's ``metrics.json`` holds the same dict (plus the
class names, ``named_metrics`` below), where JSON has turned those keys into strings (``"4"``);
``read_metrics`` reads it back with ``int`` keys, so that code reading a file and code calling ``evaluate`` index
the widths the same way.

``predict`` is the one place ranlib runs a trained model on images (eval mode, no gradients, every branch at the
image's size, optional TTA): ``evaluate``, the run directory's plots and every figure of ``ranlib.viz`` call it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from ranlib.data import DataError, boundary_band, class_names, make_loader, mixed_boundary_band, val_transforms, voc
from ranlib.engine.checkpoint import final_path, latest_intact, load_checkpoint
from ranlib.engine.distributed import unwrap
from ranlib.fusion_changes import FusionChanges, format_fusion_changes
from ranlib.metrics import BoundaryIoU, ConfusionMatrix
from ranlib.model import RANOutput
from ranlib.precision import autocast, resolve_device
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
    overall = ConfusionMatrix(num_classes, device=device)
    boundary = {w: ConfusionMatrix(num_classes, device=device) for w in band_widths}
    mixed = {w: ConfusionMatrix(num_classes, device=device) for w in band_widths}
    boundary_iou = BoundaryIoU(num_classes, device=device)
    has_reverse = getattr(unwrap(model), "conv_rev", None) is not None  # the baseline has fused = original
    fusion = FusionChanges(4, device=device) if has_reverse and branch == "fused" else None
    for images, masks in tqdm(loader, desc=f"evaluate {branch}", disable=not progress, leave=False):
        images, masks = images.to(device), masks.to(device)
        output = predict(model, images, tta, amp)  # every branch from one forward pass (per scale and flip)
        prediction = _branch(output, branch).argmax(1)  # (B, H, W)
        overall.update(prediction, masks)
        bands = {w: (boundary_band(masks, w), mixed_boundary_band(masks, w)) for w in band_widths}
        for w, (near_boundary, near_mixed) in bands.items():
            boundary[w].update(prediction, masks, near_boundary)
            mixed[w].update(prediction, masks, near_mixed)
        boundary_iou.update(prediction, masks)
        if fusion is not None:  # the bands at its width, when evaluate has them already
            near_boundary, near_mixed = bands.get(fusion.width, (None, None))
            fusion.update(output.original, output.fused, masks, near_mixed, near_boundary)
    for counts in [overall, *boundary.values(), *mixed.values(), boundary_iou, *([fusion] if fusion else [])]:
        counts.reduce_from_all_processes()
    metrics = overall.compute()
    metrics["boundary_miou"] = {w: cm.compute()["miou"] for w, cm in boundary.items()}
    metrics["mixed_miou"] = {w: cm.compute()["miou"] for w, cm in mixed.items()}
    metrics["boundary_iou"] = boundary_iou.compute()
    if fusion is not None:
        metrics["fusion_changes"] = fusion.compute()
    metrics["confusion"] = overall.matrix.tolist()
    return metrics


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


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint a user named: a file, or a run directory's final.pt (else its newest intact checkpoint)."""
    path = Path(path)
    if path.is_dir():
        if final_path(path).exists():
            return final_path(path)
        return latest_intact(path / "checkpoints") or final_path(path)  # load_state names the nearest that exist
    return path


def run_evaluation(args) -> int:
    """``python -m ranlib evaluate`` (parsed by ``ranlib.cli``): load the checkpoint, print the metric table."""
    device = resolve_device(args.device)
    path = checkpoint_file(args.checkpoint)
    model, config, _ = load_checkpoint(path, device=device)
    root = args.data_root or config.data_root
    if not Path(root).is_dir():
        where = "given with --data-root" if args.data_root else f"stored in {path} (relative to the folder it ran in)"
        raise DataError(f"dataset root {root} ({where}) does not exist here; pass --data-root with the dataset's "
                        f"folder{', e.g. data/mixed_boundary' if config.dataset == 'mixed_boundary' else ''}")
    dataset = voc(root, args.split or config.val_split, val_transforms())
    loader = make_loader(dataset, args.batch_size or config.eval_batch_size, shuffle=False, num_workers=0)
    metrics = evaluate(model, loader, model.num_classes, device, tta=args.tta, branch=args.branch,
                       progress=True)
    print(f"{path}: {config.variant} {config.backbone}, {args.branch} branch, {len(dataset)} images of {root}")
    print(format_table(metrics, class_names(root)))
    return 0
