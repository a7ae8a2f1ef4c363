"""The mixed-boundary region finder: crops where two object classes meet and the network is least sure.

The paper motivates reverse attention with *mixed* boundaries: pixels near the border between two object
classes (a person on a horse, a cat on a sofa), where the original branch's scores for both classes are
similar. ``ranlib.data.mixed_boundary_band`` marks those pixels in a label mask. This module turns the band
into a short list of crops worth looking at:

1. every band pixel is a candidate crop centre; its crop (``crop_size`` square, shifted to lie inside the
   image) is scored by the mean *confusion* of the band pixels in it, where confusion = 1 - (p1 - p2), the
   gap between the two largest softmax probabilities of the given logits (typically the baseline's, or the
   RAN's original branch): 1 means a tie, 0 a sure decision. Without logits a crop scores the fraction of
   its pixels that lie in the band;
2. crops are taken greedily by score, skipping any that overlaps a taken crop by more than ``max_overlap``.

The mask can be ground truth or a prediction (``logits.argmax(0)``), so it works on VOC labels and on a
model's own output alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ranlib.data import IGNORE_INDEX, mixed_boundary_band
from ranlib.evaluate import predict
from ranlib.model import RAN
from ranlib.progress import tqdm


@dataclass(frozen=True)
class Region:
    """A crop of an image: the box, its score and the classes whose mixed boundary it holds."""

    top: int
    left: int
    height: int
    width: int
    score: float  # mean confusion of its band pixels (or its band fraction without logits); higher = first
    classes: tuple[int, ...]  # object classes (not background or void) of its band pixels, most frequent first
    index: int | None = None  # dataset item it comes from (set by find_regions)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(top, left, height, width), the form ``plot_branches(box=...)`` takes."""
        return (self.top, self.left, self.height, self.width)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices: ``array[region.slices]`` crops an (H, W, …) array."""
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The crop of a (…, H, W) tensor, such as an image (3, H, W) or a mask (H, W)."""
        return x[(..., *self.slices)]


def confusion_map(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """1 - (top-1 minus top-2 softmax probability) per pixel, for logits (K, h, w) resized to ``size``: (H, W)."""
    if logits.dim() == 4:
        logits = logits[0]
    up = F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]  # (K, H, W)
    top2 = up.softmax(0).topk(2, dim=0).values  # (2, H, W)
    return 1.0 - (top2[0] - top2[1])


def _box_sums(x: torch.Tensor, tops: torch.Tensor, lefts: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sum of x (H, W) over the boxes [top, top+h) x [left, left+w), via an integral image."""
    s = F.pad(x.double().cumsum(0).cumsum(1), (1, 0, 1, 0))  # (H+1, W+1), s[i, j] = sum of x[:i, :j]
    return s[tops + h, lefts + w] - s[tops, lefts + w] - s[tops + h, lefts] + s[tops, lefts]


def find_mixed_boundary_regions(mask: torch.Tensor, logits: torch.Tensor | None = None, *, width: int = 4,
                                crop_size: int = 48, max_regions: int = 4, max_overlap: float = 0.25,
                                ignore_index: int = IGNORE_INDEX) -> list[Region]:
    """Crops centred on the mixed boundaries of a label mask (H, W), most confused first; [] if there are none.

    logits: optional (K, h, w) scores at any resolution (e.g. ``output.original[0]``) that rank the crops.
    width: the band's half-width in pixels, as in ``mixed_boundary_band``.
    """
    if mask.dim() != 2:
        raise ValueError(f"expected one label mask (H, W), got shape {tuple(mask.shape)}; index the batch first")
    H, W = mask.shape
    band = mixed_boundary_band(mask.cpu(), width, ignore_index=ignore_index)  # (H, W) bool
    if not band.any():
        return []
    h, w = min(crop_size, H), min(crop_size, W)
    ys, xs = band.nonzero(as_tuple=True)  # candidate centres
    tops = (ys - h // 2).clamp(0, H - h)
    lefts = (xs - w // 2).clamp(0, W - w)
    band_count = _box_sums(band.float(), tops, lefts, h, w)
    if logits is not None:
        confusion = confusion_map(logits.detach().cpu(), (H, W)) * band  # (H, W), 0 off the band
        score = _box_sums(confusion, tops, lefts, h, w) / band_count
    else:
        score = band_count / (h * w)

    regions, alive = [], torch.ones_like(score, dtype=torch.bool)
    for i in score.argsort(descending=True, stable=True).tolist():
        if len(regions) == max_regions:
            break
        if not alive[i]:
            continue
        t, lf = int(tops[i]), int(lefts[i])
        overlap = ((h - (tops - t).abs()).clamp(min=0) * (w - (lefts - lf).abs()).clamp(min=0)) / (h * w)
        alive &= overlap <= max_overlap  # removes this crop too (it overlaps itself fully)
        labels = mask[t:t + h, lf:lf + w][band[t:t + h, lf:lf + w]]
        labels = labels[(labels != 0) & (labels != ignore_index)]  # the objects that meet here
        values, counts = labels.unique(return_counts=True)
        classes = tuple(int(v) for v in values[counts.argsort(descending=True, stable=True)])
        regions.append(Region(t, lf, h, w, float(score[i]), classes))
    return regions


def find_regions(model: RAN, dataset, *, indices=None, on: str = "ground_truth", max_regions: int = 6,
                 per_image: int = 1, width: int = 4, crop_size: int = 48) -> list[Region]:
    """The ``max_regions`` most confused mixed-boundary crops over dataset items, ranked by the model's
    original branch (use the baseline to find where plain DeepLab struggles).

    dataset: items ``(image (3, H, W), mask (H, W))``, images as the model expects them (normalised).
    on: "ground_truth" finds the boundaries in the dataset's masks, "prediction" in the model's argmax.
    per_image: at most this many crops from any one image. Returned regions carry their ``index``.
    """
    if on not in ("ground_truth", "prediction"):
        raise ValueError(f"on={on!r}: choose 'ground_truth' or 'prediction'")
    indices = range(len(dataset)) if indices is None else indices
    found = []
    for i in tqdm(indices, desc="finding mixed-boundary regions", leave=False):
        image, mask = dataset[i]
        output = predict(model, image)  # every branch (1, K, H, W), on the CPU like the image
        labels = mask if on == "ground_truth" else output.fused[0].argmax(0)
        for r in find_mixed_boundary_regions(labels, output.original[0], width=width, crop_size=crop_size,
                                             max_regions=per_image):
            found.append(Region(*r.box, r.score, r.classes, index=int(i)))
    return sorted(found, key=lambda r: -r.score)[:max_regions]
