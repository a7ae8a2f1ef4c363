"""One confusion matrix for every segmentation metric (as torchvision's segmentation reference does).

``ConfusionMatrix(K)`` accumulates a (K, K) matrix of (ground truth, prediction) pixel counts with one
``bincount`` per batch, skipping pixels labelled ``ignore_index`` (255) and, when a bool ``mask`` is given,
pixels outside it (a boundary band, say). ``compute()`` derives:

- ``pixel_acc``: correct pixels / labelled pixels;
- ``mean_class_acc``: the mean over classes present in the ground truth of correct / labelled;
- ``iou``: per class, TP / (TP + FP + FN), ``nan`` for a class absent from both ground truth and prediction;
- ``miou``: the mean of the defined IoUs;  ``fwiou``: IoUs weighted by each class's ground-truth frequency.

Under DDP ``reduce_from_all_processes()`` sums the matrices of every process; it is a no-op otherwise.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu"):
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Count pixels of a batch: ``prediction`` and ``target`` are label tensors of the same shape."""
        keep = target != self.ignore_index
        if mask is not None:
            keep &= mask.to(keep.device)
        k = self.num_classes
        index = target[keep].to(self.matrix.device) * k + prediction[keep].to(self.matrix.device)
        self.matrix += torch.bincount(index.long(), minlength=k * k).reshape(k, k)

    def reset(self) -> None:
        self.matrix.zero_()

    def reduce_from_all_processes(self) -> None:
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    def compute(self) -> dict:
        """The metrics above as plain Python numbers (per-class IoU as a list)."""
        m = self.matrix.double()
        tp, gt, pred = m.diag(), m.sum(1), m.sum(0)
        total = m.sum()
        union = gt + pred - tp
        iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, float("nan")))
        present = gt > 0
        defined = ~iou.isnan()
        return {
            "pixel_acc": (tp.sum() / total).item() if total > 0 else float("nan"),
            "mean_class_acc": (tp[present] / gt[present]).mean().item() if present.any() else float("nan"),
            "iou": iou.tolist(),
            "miou": iou[defined].mean().item() if defined.any() else float("nan"),
            "fwiou": ((gt / total) * iou.nan_to_num()).sum().item() if total > 0 else float("nan"),
        }
