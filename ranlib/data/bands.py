"""Boundary bands (the trimap of DeepLab's evaluation) and mixed-boundary bands (where RAN should help).

- ``boundary_band(mask, width)``: pixels within ``width`` of a boundary between any two classes.
- ``mixed_boundary_band(mask, width)``: pixels within ``width`` of a boundary between two *different
  non-background* classes — where two objects meet and their class responses mix.

"Within ``width``" is the Chebyshev distance: a pixel is in the band when the (2·width+1)² square around it
holds two different classes. Void pixels (255, VOC's object borders) are boundary, not a class: before
comparing, each void pixel takes the label of a nearby labelled pixel (grown outwards one pixel at a time),
so a 255 border between a cat and a dog is a cat/dog boundary. Void pixels themselves are in the band of
``boundary_band``; metrics ignore them anyway. Both functions take (H, W) or (B, H, W) integer masks and return
bool tensors of the same shape; they run on the mask's device.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch
import torch.nn.functional as F

from ranlib.data.labels import IGNORE_INDEX


def fill_void(mask: torch.Tensor, ignore_index: int = IGNORE_INDEX, max_steps: int = 64) -> torch.Tensor:
    """(B, H, W) labels with every void pixel replaced by a neighbouring label (grown one pixel per step)."""
    labels = mask.clone()
    for _ in range(max_steps):
        void = labels == ignore_index
        if not void.any():
            break
        valid = torch.where(void, torch.full_like(labels, -1), labels).float()[:, None]  # (B, 1, H, W)
        grown = F.max_pool2d(valid, 3, stride=1, padding=1)[:, 0].long()  # (B, H, W), -1 where no label near
        labels = torch.where(void & (grown >= 0), grown, labels)
    return labels


def _classes_nearby(labels: torch.Tensor, width: int, num_classes: int) -> torch.Tensor:
    """(B, K, H, W) bool: class k occurs within ``width`` (Chebyshev) of each pixel."""
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * (labels >= 0)[:, None]  # still-void pixels (no label anywhere near) count for nothing
    k = 2 * width + 1  # a square max filter is a row filter then a column filter: O(k) instead of O(k^2)
    rows = F.max_pool2d(onehot, (1, k), stride=1, padding=(0, width))
    return F.max_pool2d(rows, (k, 1), stride=1, padding=(width, 0)) > 0


class _BandCache:
    """The bands of masks seen recently, by the masks' bytes, up to ``limit`` bytes (a bool is one byte), the
    least recently used dropped first. One evaluation draws the same validation masks' bands up to four times (the
    metrics, the attention statistics, the fusion counts), and a run evaluates the same masks every few hundred
    iterations; drawing them is 30-40 % of a quick-mode evaluation on a CPU."""

    def __init__(self, limit: int):
        self.limit, self.bytes = limit, 0
        self.bands: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, key: tuple) -> torch.Tensor | None:
        band = self.bands.get(key)
        if band is None:
            return None
        self.bands.move_to_end(key)
        return band.clone()  # a copy: a caller that edits its band must not edit the cache

    def put(self, key: tuple, band: torch.Tensor) -> None:
        self.bands[key] = band.clone()
        self.bytes += band.numel()
        while self.bytes > self.limit:
            self.bytes -= self.bands.popitem(last=False)[1].numel()


_CACHE = _BandCache(64 * 2**20)  # a VOC image's band is about 0.2 MB


def _band(mask: torch.Tensor, width: int, ignore_index: int, skip_background: bool) -> torch.Tensor:
    if width < 0:
        raise ValueError(f"band width must be >= 0, got {width}")
    if mask.device.type != "cpu":  # CPU masks only: hashing a GPU mask would copy it to the host
        return _draw_band(mask, width, ignore_index, skip_background)
    digest = hashlib.blake2b(mask.contiguous().numpy().tobytes(), digest_size=16).digest()
    key = (digest, tuple(mask.shape), str(mask.dtype), width, ignore_index, skip_background)
    band = _CACHE.get(key)
    if band is None:
        band = _draw_band(mask, width, ignore_index, skip_background)
        _CACHE.put(key, band)
    return band


def _draw_band(mask: torch.Tensor, width: int, ignore_index: int, skip_background: bool) -> torch.Tensor:
    batched = mask if mask.dim() == 3 else mask[None]  # (B, H, W)
    void = batched == ignore_index
    labels = fill_void(batched.long(), ignore_index)
    labels = torch.where(labels == ignore_index, torch.full_like(labels, -1), labels)
    num_classes = int(labels.max().item()) + 1 if labels.numel() and labels.max() >= 0 else 1
    nearby = _classes_nearby(labels, width, num_classes)  # (B, K, H, W)
    if skip_background:
        nearby = nearby[:, 1:]
    band = nearby.sum(dim=1) >= 2  # (B, H, W)
    if not skip_background:
        band |= void
    return band if mask.dim() == 3 else band[0]


def boundary_band(mask: torch.Tensor, width: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixels within ``width`` of any class boundary (void pixels included)."""
    return _band(mask, width, ignore_index, skip_background=False)


def mixed_boundary_band(mask: torch.Tensor, width: int, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixels within ``width`` of a boundary between two different non-background classes."""
    return _band(mask, width, ignore_index, skip_background=True)
