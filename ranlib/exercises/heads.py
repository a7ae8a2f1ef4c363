"""Checks shared by the classifier-head exercises (CONV_org in 02, CONV_rev in 03, the heads in 09)."""

from __future__ import annotations

import torch
from torch import nn

from ranlib.exercises._check import fail


def check_head_layer(name: str, module: nn.Module, in_channels: int, num_classes: int, dilation: int,
                     init: bool = True) -> nn.Conv2d:
    """The module's ``conv`` must be DeepLab's classifier: 3x3, the given dilation, padding = dilation, a bias."""
    conv = getattr(module, "conv", None)
    if not isinstance(conv, nn.Conv2d):
        fail(f"{name}: store the convolution as self.conv (an nn.Conv2d), found {type(conv).__name__}: ranlib's "
             "weights load by that name")
    if conv.bias is None:
        fail(f"{name}: the convolution has no bias (bias=False): DeepLab's classifier has one, and ranlib's "
             "state_dict holds conv.bias")
    if (conv.in_channels, conv.out_channels) != (in_channels, num_classes):
        fail(f"{name}: {in_channels} -> {num_classes} channels expected, got {conv.in_channels} -> "
             f"{conv.out_channels}")
    if conv.kernel_size != (3, 3):
        fail(f"{name}: kernel_size (3, 3) expected, got {conv.kernel_size}")
    if conv.dilation != (dilation, dilation):
        fail(f"{name}: dilation ({dilation}, {dilation}) expected, got {conv.dilation}: the taps must be "
             f"{dilation} feature cells apart")
    if conv.padding != (dilation, dilation):
        fail(f"{name}: padding {conv.padding} with dilation {dilation}: a 3x3 kernel with dilation d needs "
             f"padding d to keep h x w (padding {conv.padding[0]} shrinks the map by "
             f"{2 * (dilation - conv.padding[0])} cells)")
    if init:
        weight, bias = conv.weight.detach(), conv.bias.detach()
        if abs(weight.std().item() - 0.01) > 0.001 or abs(weight.mean().item()) > 0.001:
            fail(f"{name}: weights should start from N(0, 0.01^2), yours have mean {weight.mean().item():.4f} and "
                 f"std {weight.std().item():.4f}: use nn.init.normal_(self.conv.weight, std=0.01) "
                 "(PyTorch's default init is not DeepLab's)")
        if bias.abs().max().item() != 0:
            fail(f"{name}: biases should start at 0, yours reach {bias.abs().max().item():.4f}: "
                 "nn.init.zeros_(self.conv.bias)")
    return conv


def realistic_features(channels: int, size: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Non-negative features of order 1, as a ReLU backbone gives: (batch, channels, size, size)."""
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(batch, channels, size, size, generator=g)).relu()


def load_with_bias(module: nn.Module, reference: nn.Module, scale: float = 10.0, seed: int = 1) -> None:
    """Copy ``reference``'s weights into both, scaled up, with non-zero biases (so no mistake can hide)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reference.conv.weight.mul_(scale)
        reference.conv.bias.copy_(torch.randn(reference.conv.bias.shape, generator=g))
    module.load_state_dict(reference.state_dict())
