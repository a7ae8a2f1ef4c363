"""The classifier heads CONV_org and CONV_rev (the seed's description: ``original = CONV_org(f)``).

Both branches use the same structure with independent initialisation. Two structures from DeepLab:

- ``LargeFOVHead`` (``head="largefov"``): for ResNet one 3x3 convolution with dilation 12; for the VGG16
  LargeFOV backbone, whose fc6/fc7 already hold the large field of view, the 1x1 fc8 classifier.
- ``ASPPHead`` (``head="aspp"``): DeepLabv2 atrous spatial pyramid pooling, four 3x3 convolutions with
  dilations 6, 12, 18 and 24 whose class scores are summed.

Heads take ``in_channels`` and ``num_classes`` and map ``(B, in_channels, h, w)`` to ``(B, num_classes, h, w)``.
Weights start from N(0, 0.01) and biases from 0, as DeepLab's classifiers do.
"""

from __future__ import annotations

import torch
from torch import nn

HEADS = ("largefov", "aspp")


def _init_classifier(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.zeros_(conv.bias)
    return conv


class LargeFOVHead(nn.Module):
    """DeepLab-LargeFOV classifier: a 3x3 convolution with dilation 12, or 1x1 (fc8) with ``kernel_size=1``."""

    def __init__(self, in_channels: int, num_classes: int, kernel_size: int = 3, dilation: int = 12):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = _init_classifier(
            nn.Conv2d(in_channels, num_classes, kernel_size, padding=padding, dilation=dilation))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.conv(f)


class ASPPHead(nn.Module):
    """DeepLabv2 ASPP: the sum of 3x3 convolutions at several dilation rates."""

    def __init__(self, in_channels: int, num_classes: int, rates: tuple[int, ...] = (6, 12, 18, 24)):
        super().__init__()
        self.branches = nn.ModuleList(
            _init_classifier(nn.Conv2d(in_channels, num_classes, 3, padding=r, dilation=r)) for r in rates)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return sum(branch(f) for branch in self.branches)


def build_head(head: str, in_channels: int, num_classes: int, backbone: str) -> nn.Module:
    """One classifier branch. ``backbone`` picks fc8 (1x1) for VGG16's LargeFOV head."""
    if head == "largefov":
        if backbone == "vgg16":
            return LargeFOVHead(in_channels, num_classes, kernel_size=1, dilation=1)
        return LargeFOVHead(in_channels, num_classes)
    elif head == "aspp":
        return ASPPHead(in_channels, num_classes)
    raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
