"""The classifier heads CONV_org and CONV_rev (ranlib.model's description: ``original = CONV_org(f)``).

Both branches use the same structure with independent initialisation. Two structures from DeepLab:

- ``LargeFOVHead`` (``head="largefov"``): one 3x3 convolution with dilation 12 (on VGG16, whose fc6/fc7 in the
  backbone already hold the large field of view, ranlib.model builds it with dilation 0: the 1x1 fc8 classifier).
- ``ASPPHead`` (``head="aspp"``): DeepLabv2 atrous spatial pyramid pooling, four 3x3 convolutions with
  dilations 6, 12, 18 and 24 whose class scores are summed.

The field of view is a parameter, ``dilation`` (``ModelConfig.head_dilation``), DeepLab's 12 by default. LargeFOV
uses it directly (0: a 1x1 convolution, as if every tap sat on the centre cell); ASPP's rates scale with it,
``round(r * dilation / 12)`` for r in (6, 12, 18, 24), at least 1 (0 again gives 1x1 branches), so 12 keeps
DeepLabv2's rates and 6 gives (3, 6, 9, 12). ``head_cells`` says how many feature cells the head reaches.

Heads take ``in_channels``, ``num_classes`` and ``dilation``, nothing about the backbone, so a head fits any
backbone module; they map ``(B, in_channels, h, w)`` to ``(B, num_classes, h, w)`` and report ``num_classes``.
Weights start from N(0, 0.01) and biases from 0, as DeepLab's classifiers do.
"""

from __future__ import annotations

import torch
from torch import nn

from ranlib.model_config import DEFAULT_DILATION, HEADS, check_choice, check_dilation

ASPP_RATES = (6, 12, 18, 24)


def _init_classifier(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv


class LargeFOVHead(nn.Module):
    """DeepLab-LargeFOV classifier: a 3x3 convolution with dilation 12, or 1x1 (fc8) with ``kernel_size=1``."""

    def __init__(self, in_channels: int, num_classes: int, kernel_size: int = 3, dilation: int = 12):
        super().__init__()
        self.num_classes = num_classes
        padding = dilation * (kernel_size - 1) // 2
        self.conv = _init_classifier(
            nn.Conv2d(in_channels, num_classes, kernel_size, padding=padding, dilation=dilation))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.conv(f)


class ASPPHead(nn.Module):
    """DeepLabv2 ASPP: the sum of 3x3 convolutions at several dilation rates."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = ASPP_RATES):
        super().__init__()  # a rate of 0 makes that branch a 1x1 convolution
        self.num_classes = num_classes
        self.branches = nn.ModuleList(
            _init_classifier(nn.Conv2d(in_channels, num_classes, 3 if r else 1, padding=r, dilation=max(r, 1)))
            for r in rates)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return sum(branch(f) for branch in self.branches)


def aspp_rates(dilation: int) -> tuple[int, ...]:
    """ASPP's rates for a head dilation: DeepLabv2's (6, 12, 18, 24) scaled by ``dilation / 12``, rounded half up."""
    if dilation == 0:
        return (0,) * len(ASPP_RATES)
    return tuple(max(1, (r * dilation + DEFAULT_DILATION // 2) // DEFAULT_DILATION) for r in ASPP_RATES)


def head_cells(head: str, dilation: int = DEFAULT_DILATION) -> int:
    """How many feature cells the head's outermost tap lies from the cell it scores (0 for a 1x1 head)."""
    check_choice("head", head, HEADS)
    return max(aspp_rates(dilation)) if head == "aspp" else dilation


def build_head(head: str, in_channels: int, num_classes: int, dilation: int = DEFAULT_DILATION) -> nn.Module:
    """One classifier branch ``head`` (one of ``HEADS``) for features of ``in_channels``; dilation 0: 1x1."""
    check_choice("head", head, HEADS)
    check_dilation(dilation)
    if head == "aspp":
        return ASPPHead(in_channels, num_classes, aspp_rates(dilation))
    if dilation == 0:
        return LargeFOVHead(in_channels, num_classes, kernel_size=1, dilation=1)
    return LargeFOVHead(in_channels, num_classes, dilation=dilation)
