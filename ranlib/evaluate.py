"""Evaluation: mIoU overall, in boundary bands (the trimap) and in mixed-boundary bands, Boundary IoU, and what
RAN's fusion changes, with optional TTA.

``evaluate`` runs the model over a loader of ``(image, mask)`` pairs and accumulates one ``ConfusionMatrix``
for all labelled pixels, one per boundary-band width and one per mixed-boundary-band width (the bands come
from ``ranlib.data``), one ``BoundaryIoU``, and for models with a reverse branch one ``FusionChanges``
(pixels where ``argmax(fused) != argmax(original)``: fixed, broken, still wrong, per region). Test-time
augmentation averages the softmax of the logits over scales 0.5-1.75 and horizontal flips, at full resolution.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ranlib.engine.checkpoint import final_path, latest_intact, load_checkpoint
from ranlib.data import DataError, boundary_band, class_names, make_loader, mixed_boundary_band, val_transforms, voc
from ranlib.engine.distributed import unwrap
from ranlib.fusion_changes import FusionChanges, format_fusion_changes
from ranlib.metrics import BoundaryIoU, ConfusionMatrix
from ranlib.model import RANOutput
from ranlib.precision import autocast, resolve_device
from ranlib.progress import tqdm

TTA_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
BRANCHES = ("fused", "original", "reverse")  # each is a full set of class scores (reverse = NEG(CONV_rev))


def _branch(output: RANOutput, branch: str) -> torch.Tensor:
    if branch not in BRANCHES:
        raise ValueError(f"unknown branch {branch!r}; choose one of {', '.join(BRANCHES)}")
    scores = getattr(output, branch)
    if scores is None:
        raise ValueError(f"this model has no {branch} branch (the baseline has only fused = original)")
    return scores


def predict_branches(model, images: torch.Tensor, tta: bool = False, amp: str = "off",
                     branches: tuple[str, ...] = ("fused",)) -> dict[str, torch.Tensor]:
    """Full-resolution class scores (B, K, H, W) of each of ``branches``, from one forward pass per (scale, flip):
    logits, or TTA-averaged probabilities."""
    size = images.shape[-2:]
    if not tta:
        with autocast(images.device, amp):
            output = model(images).upsample(size)
        return {b: _branch(output, b).float() for b in branches}
    totals = dict.fromkeys(branches, 0)
    for scale in TTA_SCALES:
        scaled = F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
        for flip in (False, True):
            x = scaled.flip(-1) if flip else scaled
            with autocast(images.device, amp):
                output = model(x).upsample(size)
            for b in branches:
                logits = _branch(output, b).float()
                totals[b] = totals[b] + (logits.flip(-1) if flip else logits).softmax(1)
    return {b: total / (2 * len(TTA_SCALES)) for b, total in totals.items()}


def predict_logits(model, images: torch.Tensor, tta: bool = False, amp: str = "off",
                   branch: str = "fused") -> torch.Tensor:
    """Full-resolution class scores (B, K, H, W) of one branch (the prediction is ``fused``): logits, or
    TTA-averaged probabilities."""
    return predict_branches(model, images, tta, amp, (branch,))[branch]


@torch.no_grad()
def evaluate(model, loader, num_classes: int, device, band_widths=(2, 4, 8, 16), tta: bool = False,
             amp: str = "off", branch: str = "fused", progress: bool = False) -> dict:
    """Metrics of ``ConfusionMatrix.compute()`` plus ``boundary_miou`` and ``mixed_miou`` ({width: mIoU}),
    ``boundary_iou`` (``BoundaryIoU.compute()``: per-class ``iou`` and ``miou``) and the raw ``confusion`` matrix;
    for the fused branch of a model with a reverse branch (RAN, subtract) also ``fusion_changes``
    (``FusionChanges.compute()`` at 4 px). Under DDP every process evaluates its share and the counts are summed.

    ``branch="original"`` scores RAN's original branch alone (what the fusion starts from), ``"reverse"`` its
    reverse branch; the difference to ``"fused"`` is what the fusion adds. ``progress`` shows a progress bar."""
    was_training = model.training
    model.eval()
    overall = ConfusionMatrix(num_classes, device=device)
    boundary = {w: ConfusionMatrix(num_classes, device=device) for w in band_widths}
    mixed = {w: ConfusionMatrix(num_classes, device=device) for w in band_widths}
    boundary_iou = BoundaryIoU(num_classes, device=device)
    has_reverse = getattr(unwrap(model), "conv_rev", None) is not None  # the baseline has fused = original
    fusion = FusionChanges(4, device=device) if has_reverse and branch == "fused" else None
    branches = (branch, "original") if fusion is not None else (branch,)
    for images, masks in tqdm(loader, desc=f"evaluate {branch}", disable=not progress, leave=False):
        images, masks = images.to(device), masks.to(device)
        scores = predict_branches(model, images, tta, amp, branches)  # one forward pass for both branches
        prediction = scores[branch].argmax(1)  # (B, H, W)
        overall.update(prediction, masks)
        bands = {w: (boundary_band(masks, w), mixed_boundary_band(masks, w)) for w in band_widths}
        for w, (near_boundary, near_mixed) in bands.items():
            boundary[w].update(prediction, masks, near_boundary)
            mixed[w].update(prediction, masks, near_mixed)
        boundary_iou.update(prediction, masks)
        if fusion is not None:  # the bands at its width, when evaluate has them already
            near_boundary, near_mixed = bands.get(fusion.width, (None, None))
            fusion.update(scores["original"], scores[branch], masks, near_mixed, near_boundary)
    for counts in [overall, *boundary.values(), *mixed.values(), boundary_iou, *([fusion] if fusion else [])]:
        counts.reduce_from_all_processes()
    model.train(was_training)
    metrics = overall.compute()
    metrics["boundary_miou"] = {w: cm.compute()["miou"] for w, cm in boundary.items()}
    metrics["mixed_miou"] = {w: cm.compute()["miou"] for w, cm in mixed.items()}
    metrics["boundary_iou"] = boundary_iou.compute()
    if fusion is not None:
        metrics["fusion_changes"] = fusion.compute()
    metrics["confusion"] = overall.matrix.tolist()
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
    metrics = evaluate(model, loader, model.config.num_classes, device, tta=args.tta, branch=args.branch,
                       progress=True)
    print(f"{path}: {config.variant} {config.backbone}, {args.branch} branch, {len(dataset)} images of {root}")
    print(format_table(metrics, class_names(root)))
    return 0
