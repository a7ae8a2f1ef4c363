"""One confusion matrix for every segmentation metric (as torchvision's segmentation reference does).

``ConfusionMatrix(K)`` accumulates a (K, K) matrix of (ground truth, prediction) pixel counts with one
``bincount`` per batch, skipping pixels labelled ``ignore_index`` (255) and, when a bool ``mask`` is given,
pixels outside it (a boundary band, say). ``compute()`` derives:

- ``pixel_acc``: correct pixels / labelled pixels;
- ``mean_class_acc``: the mean over classes present in the ground truth of correct / labelled;
- ``iou``: per class, TP / (TP + FP + FN), ``nan`` for a class absent from both ground truth and prediction;
- ``miou``: the mean of the defined IoUs;  ``fwiou``: IoUs weighted by each class's ground-truth frequency.

Under DDP ``reduce_from_all_processes()`` sums the matrices of every process; it is a no-op otherwise.

``BandConfusion(K, widths)`` holds the confusion matrices that ``ranlib.evaluate`` scores in: every labelled pixel,
and per band width the boundary band and the mixed-boundary band (``ranlib.data.bands``), fed one batch at a time.

``BoundaryIoU(K)`` accumulates Boundary IoU per class (Cheng et al., CVPR 2021) the same way: intersection and
union of the ground truth's and the prediction's boundary pixels, per class, over a dataset.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ranlib.data.bands import boundary_band, fill_void, mixed_boundary_band
from ranlib.data.labels import IGNORE_INDEX
from ranlib.distributed import all_reduce_sum


class ConfusionMatrix:
    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu"):
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
        """Under DDP, sum the matrices of every process (then each holds the whole dataset's); else a no-op."""
        all_reduce_sum(self.matrix)

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

    def object_miou(self) -> float:
        """Mean IoU over the object classes (1..K-1) that have ground-truth pixels here: how well objects are told
        apart, with the background (class 0) left out; the course compares it in mixed bands and in interiors."""
        m = self.matrix.double()
        tp, gt, pred = m.diag(), m.sum(1), m.sum(0)
        present = (gt > 0)[1:]
        iou = (tp / (gt + pred - tp).clamp(min=1))[1:]
        return iou[present].mean().item() if present.any() else float("nan")


class BandConfusion:
    """One prediction's ``ConfusionMatrix`` over every labelled pixel (``overall``) and, for each band width w,
    over the pixels within w px of a class boundary (``boundary[w]``, ``boundary_band``) and of a boundary between
    two object classes (``mixed[w]``, ``mixed_boundary_band``). ``interior(w)`` is the rest: labelled pixels farther
    than w px from any boundary. ``ranlib.evaluate.evaluate`` and ``evaluate_regions`` both count through it."""

    def __init__(self, num_classes: int, widths, device: torch.device | str = "cpu"):
        self.overall = ConfusionMatrix(num_classes, device=device)
        self.boundary = {w: ConfusionMatrix(num_classes, device=device) for w in widths}
        self.mixed = {w: ConfusionMatrix(num_classes, device=device) for w in widths}

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Count one batch of label tensors (B, H, W); returns the bands it drew, ``{w: (boundary band, mixed
        band)}`` (bool, on the target's device), for other counters of the same batch."""
        self.overall.update(prediction, target)
        bands = {w: (boundary_band(target, w), mixed_boundary_band(target, w)) for w in self.boundary}
        for w, (near_boundary, near_mixed) in bands.items():
            self.boundary[w].update(prediction, target, near_boundary)
            self.mixed[w].update(prediction, target, near_mixed)
        return bands

    def reduce_from_all_processes(self) -> None:
        """Under DDP, sum every matrix over the processes; else a no-op."""
        for confusion in [self.overall, *self.boundary.values(), *self.mixed.values()]:
            confusion.reduce_from_all_processes()

    def interior(self, width: int) -> ConfusionMatrix:
        """The counts of the labelled pixels outside the boundary band at ``width``: ``overall`` minus
        ``boundary[width]``, since the band and the interior split the labelled pixels."""
        interior = ConfusionMatrix(self.overall.num_classes, self.overall.ignore_index, self.overall.matrix.device)
        interior.matrix = self.overall.matrix - self.boundary[width].matrix
        return interior


def boundary_dilation(height: int, width: int, ratio: float = 0.02) -> int:
    """Boundary IoU's ``d``: ``ratio`` of the image diagonal in pixels, rounded, at least 1."""
    return max(1, round(ratio * math.hypot(height, width)))


def label_boundary(labels: torch.Tensor, d: int) -> torch.Tensor:
    """Boundary pixels of a label map (…, H, W): those with another label within Chebyshev distance ``d``.

    For each class c this is the mask ``labels == c`` minus its erosion by a (2d+1)² square (Boundary IoU's
    boundary), for all classes at once: a pixel survives the erosion of its own class's mask exactly when the
    smallest and the largest label in its window both equal its own. Outside the image counts as the pixel's own
    class, so the image border is not a boundary.
    """
    shape = labels.shape
    x = labels.reshape(-1, 1, *shape[-2:]).float()  # (N, 1, H, W); labels up to 255 are exact in float32
    k = 2 * d + 1  # max_pool pads with -inf, so outside the image never counts; a square window is a row then a column

    def window_max(y):
        return F.max_pool2d(F.max_pool2d(y, (1, k), stride=1, padding=(0, d)), (k, 1), stride=1, padding=(d, 0))

    return ((window_max(x) != x) | (-window_max(-x) != x)).reshape(shape)


class BoundaryIoU:
    """Boundary IoU per class (Cheng, Girshick, Dollár, Berg, Kirillov: "Boundary IoU: Improving Object-Centric
    Image Segmentation Evaluation", CVPR 2021), accumulated over a dataset beside ``ConfusionMatrix``.

    For each class c, G = ground truth == c and P = prediction == c; their boundaries G_d and P_d are the mask
    minus its erosion, with d = 2 % of the image diagonal (``dilation_ratio``, at least 1 px; 4 px on the
    embedded 128² images, 14 px on 512² VOC crops). Boundary IoU = |G_d ∩ P_d| / |G_d ∪ P_d|, with both counts
    summed over the dataset before dividing. Unlike trimap mIoU it penalises a prediction's false boundaries
    as well as missed ones. Two choices for semantic segmentation:

    - the masks are padded with "inside", so the image border is not a boundary (the reference code of
      boundary-iou-api pads with "outside" and counts it; this class measures only boundaries between classes);
    - void pixels (``ignore_index``, VOC's object borders) first take a neighbouring label
      (``ranlib.data.bands.fill_void``), so the ground-truth boundary runs through the middle of the void
      border, where a prediction's would; void pixels are then left out of both counts.
    """

    def __init__(self, num_classes: int, dilation_ratio: float = 0.02, ignore_index: int = IGNORE_INDEX,
                 device: torch.device | str = "cpu"):
        self.num_classes, self.dilation_ratio, self.ignore_index = num_classes, dilation_ratio, ignore_index
        self.intersection = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.union = torch.zeros(num_classes, dtype=torch.int64, device=device)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Count one batch: label tensors (B, H, W) (or (H, W)) of the same shape."""
        target = target if target.dim() == 3 else target[None]
        prediction = (prediction if prediction.dim() == 3 else prediction[None]).to(target.device)
        d = boundary_dilation(*target.shape[-2:], self.dilation_ratio)
        labelled = target != self.ignore_index
        truth = fill_void(target.long(), self.ignore_index)
        prediction = prediction.long()
        on_truth = label_boundary(truth, d) & labelled  # G_d of every class, at its own class (B, H, W)
        on_prediction = label_boundary(prediction, d) & labelled  # P_d likewise
        both = on_truth & on_prediction & (truth == prediction)  # G_d ∩ P_d of the class they share
        k = self.num_classes

        def count(where, classes):
            return torch.bincount(classes[where & (classes < k)], minlength=k)[:k]

        inter = count(both, truth)
        union = count(on_truth, truth) + count(on_prediction, prediction) - inter
        self.intersection += inter.to(self.intersection.device)
        self.union += union.to(self.union.device)

    def reset(self) -> None:
        self.intersection.zero_()
        self.union.zero_()

    def reduce_from_all_processes(self) -> None:
        """Under DDP, sum the counts of every process; else a no-op."""
        all_reduce_sum(self.intersection, self.union)

    def compute(self) -> dict:
        """``iou``: per class, ``nan`` where neither the ground truth nor the prediction has a boundary of the
        class; ``miou``: the mean of the defined values."""
        inter, union = self.intersection.double(), self.union.double()
        iou = torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(union, float("nan")))
        defined = ~iou.isnan()
        return {"iou": iou.tolist(), "miou": iou[defined].mean().item() if defined.any() else float("nan")}
