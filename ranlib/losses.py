"""The three RAN losses: cross-entropy on the original, reverse and fused logits.

Each branch is supervised with the ordinary labels (the reverse branch too: NEG already turned its
"not class c" responses around). Logits come at output stride 8 and are upsampled bilinearly
(``align_corners=False``) to the label size before the loss; pixels labelled ``ignore_index`` (255, VOC's
object borders) do not count. For the baseline only the fused (= original) term exists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ranlib.data.labels import IGNORE_INDEX
from ranlib.model import RANOutput


class RANLoss(nn.Module):
    """``loss, parts = RANLoss()(output, target)``: the weighted sum and a dict of the terms that count."""

    def __init__(self, weights: tuple[float, float, float] = (1.0, 1.0, 1.0), ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.weights = dict(zip(("original", "reverse", "fused"), weights, strict=True))
        self.ignore_index = ignore_index

    def forward(self, output: RANOutput, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # the supervised branches only (not the attention; the baseline's original is its fused)
        counted = output._replace(attention=None, original=None if output.reverse is None else output.original)
        logits = counted.upsample(target.shape[-2:])  # (B, K, H, W) each
        parts = {name: F.cross_entropy(getattr(logits, name).float(), target, ignore_index=self.ignore_index)
                 for name in self.weights if getattr(logits, name) is not None}
        total = sum(self.weights[name] * loss for name, loss in parts.items())
        return total, parts
