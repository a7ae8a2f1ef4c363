"""Checks shared by the classifier-head exercises (CONV_org in 02, CONV_rev in 03, the heads in 05 and 09).

``check_head_layer`` reads the student's layer (3x3, the dilation asked for, padding that keeps h x w, a bias,
N(0, 0.01) weights and zero biases) and names what differs; ``head_probes`` builds the student's head in two
configurations (512 -> 21 channels at the default dilation 12, 64 -> 5 at dilation 6, so nothing fixed can pass),
loads ranlib's weights scaled up with non-zero biases, and yields features of square and non-square maps whose
sizes are not all multiples of 8; ``run_head`` calls a forward and names in-place edits, a layer re-initialised or
rebuilt inside forward, and a detached result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ranlib.exercises._check import call, check_gradient, check_unchanged, describe, fail, likely, student
from ranlib.heads import LargeFOVHead

# (in_channels, num_classes, dilation passed to the constructor; None: the default, 12)
HEAD_CONFIGS = ((512, 21, None), (64, 5, 6))
# (feature h, w) and the image they come from at output stride 8
FEATURE_SIZES = (((8, 8), "64 px"), ((41, 41), "321 px"), ((10, 17), "75x130 px"))


def _init_hint(weight: torch.Tensor, fan_in: int) -> str | None:
    std, bound = weight.std().item(), 1 / math.sqrt(fan_in)
    if weight.abs().max().item() <= bound * (1 + 1e-6) and abs(std - bound / math.sqrt(3)) < 0.2 * bound:
        return (f"PyTorch's default init (uniform within +-1/sqrt(fan_in) = +-{bound:.4f}) was left in place: "
                "nn.init.normal_(self.conv.weight, std=0.01)")
    if abs(std - 0.1) < 0.01:
        return "std 0.1: N(0, 0.01^2) has std 0.01 (0.01 is the std, not the variance)"
    if abs(std - 1e-4) < 1e-5:
        return "std 0.0001 = 0.01^2: N(0, 0.01^2) has variance 0.01^2, so std=0.01"
    if abs(weight.mean().item()) > 0.001 and abs(std - 0.01) <= 0.001:
        return "a non-zero mean: nn.init.normal_(w, mean=0.0, std=0.01)"
    if abs(std - 1) < 0.1:
        return ("std 1: nn.init.normal_ without std=, or nn.init.normal_(w, 0.01), which sets the MEAN (its second "
                "argument): pass std=0.01 by name")
    if std < 1e-6:
        return "all weights equal (zeros_ or constant_): only the bias starts at 0, the weights are N(0, 0.01)"
    return None


def check_head_layer(name: str, module: nn.Module, in_channels: int, num_classes: int, dilation: int,
                     init: bool = True) -> nn.Conv2d:
    """The module's ``conv`` must be DeepLab's classifier: 3x3, the given dilation, padding = dilation, a bias."""
    conv = _the_conv(name, module)
    if (conv.in_channels, conv.out_channels) != (in_channels, num_classes):
        fail(f"{name}: {in_channels} -> {num_classes} channels expected, got {conv.in_channels} -> "
             f"{conv.out_channels}{likely(_channels_hint(conv, in_channels, num_classes))}")
    _check_geometry(name, conv, dilation)
    if init:
        _check_init(name, conv, in_channels)
    return conv


def _the_conv(name: str, module: nn.Module) -> nn.Conv2d:
    """``module.conv``, an ``nn.Conv2d`` with a bias (ranlib's weights load by these names)."""
    with student(f"{name}.conv"):
        conv = getattr(module, "conv", None)
    if not isinstance(conv, nn.Conv2d):
        hint = ("the layer is wrapped (nn.Sequential or a module of its own): self.conv must be the nn.Conv2d "
                "itself" if isinstance(conv, nn.Module) else "store the nn.Conv2d as self.conv")
        fail(f"{name}: store the convolution as self.conv (an nn.Conv2d), found {type(conv).__name__}: ranlib's "
             f"weights load by that name{likely(hint)}")
    if conv.bias is None:
        with student(f"{name}.named_parameters"):
            extra = [n for n, _ in module.named_parameters() if n != "conv.weight"]
        fail(f"{name}: the convolution has no bias (bias=False): DeepLab's classifier has one, and ranlib's "
             "state_dict holds conv.bias" + likely(f"a separate bias parameter ({extra[0]}) does not load "
                                                   "ranlib's conv.bias: use the layer's own bias" if extra else None))
    return conv


def _channels_hint(conv: nn.Conv2d, in_channels: int, num_classes: int) -> str | None:
    if (conv.in_channels, conv.out_channels) == (num_classes, in_channels):
        return "in_channels and num_classes swapped: nn.Conv2d(in_channels, num_classes, ...)"
    if conv.in_channels != in_channels:
        return ("a fixed channel count: the head's input channels come from the features (the in_channels "
                "argument, or backbone.out_channels); other backbones have other widths")
    return "a fixed class count: use the num_classes argument"


def _check_geometry(name: str, conv: nn.Conv2d, dilation: int) -> None:
    """3x3, stride 1, the dilation asked for, padding that keeps h x w (zeros), one group."""
    numbers = (*conv.kernel_size, *conv.dilation, *conv.stride,
               *(() if isinstance(conv.padding, str) else conv.padding))
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in numbers):
        fail(f"{name}: kernel_size {conv.kernel_size}, dilation {conv.dilation}, padding {conv.padding}: PyTorch "
             "wants ints\n  likely: a float argument (12.0, or 96 / 16): use ints (//)")
    if conv.kernel_size != (3, 3):
        fail(f"{name}: kernel_size (3, 3) expected, got {conv.kernel_size}")
    if conv.stride != (1, 1):
        hint = ("arguments in the wrong order: nn.Conv2d(in, out, kernel_size, stride, padding, dilation); pass "
                "padding= and dilation= by name" if conv.stride == (dilation, dilation) or conv.stride[0] > 2
                else "the head keeps the features' resolution: stride 1")
        fail(f"{name}: stride (1, 1) expected, got {conv.stride}{likely(hint)}")
    if conv.dilation != (dilation, dilation):
        fail(f"{name}: dilation ({dilation}, {dilation}) expected, got {conv.dilation}: the taps must be "
             f"{dilation} feature cells apart{likely(_dilation_hint(conv.dilation))}")
    if isinstance(conv.padding, str) and conv.padding != "same":  # 'same' is padding = dilation here: right
        fail(f"{name}: padding={conv.padding!r} pads nothing: the map shrinks by {2 * dilation} cells on each "
             f"axis\n  likely: 'valid' means no padding: use padding={dilation} (= dilation) or 'same'")
    elif not isinstance(conv.padding, str) and conv.padding != (dilation, dilation):
        fail(f"{name}: padding {conv.padding} with dilation {dilation}: a 3x3 kernel with dilation d needs "
             f"padding d to keep h x w (padding {conv.padding[0]} changes the map by "
             f"{2 * (conv.padding[0] - dilation):+d} cells){likely(_padding_hint(conv.padding, dilation))}")
    if conv.padding_mode != "zeros":
        fail(f"{name}: padding_mode={conv.padding_mode!r}: DeepLab pads with zeros\n  likely: reflect or "
             "replicate padding: leave padding_mode at its default, 'zeros'")
    if conv.groups != 1:
        fail(f"{name}: groups={conv.groups}: every class score reads every channel (groups=1)")


def _dilation_hint(got: tuple[int, int]) -> str | None:
    if got == (12, 12):
        return "a fixed dilation 12: use the dilation argument"
    if got[0] != got[1]:
        return "two different dilations: one int applies to both axes"
    return "the dilation is not passed to nn.Conv2d (dilation=dilation)" if got == (1, 1) else None


def _padding_hint(got: tuple[int, int], dilation: int) -> str | None:
    if got == (12, 12):
        return "a fixed padding 12: padding = the dilation argument"
    if got == (1, 1):
        return "padding 1 is right for dilation 1 only: padding = dilation"
    return "padding 2 x dilation grows the map: padding = dilation" if got == (2 * dilation, 2 * dilation) else None


def _check_init(name: str, conv: nn.Conv2d, in_channels: int) -> None:
    """N(0, 0.01^2) weights and zero biases, as DeepLab initialises its classifier."""
    weight, bias = conv.weight.detach().double(), conv.bias.detach().double()
    if abs(weight.std().item() - 0.01) > 0.001 or abs(weight.mean().item()) > 0.001:
        fail(f"{name}: weights should start from N(0, 0.01^2), yours have mean {weight.mean().item():.4f} and "
             f"std {weight.std().item():.4f}: use nn.init.normal_(self.conv.weight, std=0.01)"
             + likely(_init_hint(weight, in_channels * 9)))
    if bias.abs().max().item() != 0:
        bound = 1 / math.sqrt(in_channels * 9)
        hint = ("PyTorch's default bias init (uniform) was left in place" if bias.abs().max().item() <= bound
                else "the bias is initialised like the weights")
        fail(f"{name}: biases should start at 0, yours reach {bias.abs().max().item():.4f}: "
             f"nn.init.zeros_(self.conv.bias){likely(hint)}")


def realistic_features(channels: int, size: int | tuple[int, int], batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Non-negative features of order 1, as a ReLU backbone gives: (batch, channels, h, w)."""
    h, w = (size, size) if isinstance(size, int) else size
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randn(batch, channels, h, w, generator=g)).relu()


def load_with_bias(name: str, module: nn.Module, reference: nn.Module, scale: float = 10.0, seed: int = 1) -> None:
    """Copy ``reference``'s weights into both, scaled up, with non-zero biases (so no mistake can hide)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        reference.conv.weight.mul_(scale)
        reference.conv.bias.copy_(torch.randn(reference.conv.bias.shape, generator=g))
    with student(f"{name}.load_state_dict"):
        module.load_state_dict(reference.state_dict())


def head_probes(name: str, cls: type) -> Iterator[tuple]:
    """Yield ``(label, mine, reference, features, where)`` for each configuration and feature size.

    ``mine`` is the student's head (its layer and initialisation checked), ``reference`` a ``LargeFOVHead``
    built by ranlib; both hold ranlib's weights scaled up with non-zero biases.
    """
    for in_channels, num_classes, dilation in HEAD_CONFIGS:
        d = 12 if dilation is None else dilation
        label = f"{name}({in_channels}, {num_classes}" + ("" if dilation is None else f", dilation={dilation}") + ")"
        mine = call(cls, in_channels, num_classes, name=label, **({} if dilation is None else {"dilation": d}))
        if not isinstance(mine, nn.Module):
            fail(f"{label}: an nn.Module expected, got {describe(mine)}")
        check_head_layer(label, mine, in_channels, num_classes, d)
        reference = LargeFOVHead(in_channels, num_classes, dilation=d)
        with student(f"{label}.state_dict"):
            keys = set(mine.state_dict())
        if keys != set(reference.state_dict()):
            fail(f"{label}: state_dict keys {sorted(reference.state_dict())} expected, got {sorted(keys)}: store "
                 "the only layer as self.conv\n  likely: an extra parameter or buffer (register "
                 "a helper buffer with persistent=False) or a wrapped layer")
        load_with_bias(label, mine, reference, seed=in_channels)
        for k, (size, image) in enumerate(FEATURE_SIZES):
            f = realistic_features(in_channels, size, batch=2 if k == 2 else 1, seed=in_channels + k)
            yield label, mine, reference, f, f"on features {size[0]}x{size[1]} (a {image} image)"


def run_head(label: str, fn: Callable, module: nn.Module, f: torch.Tensor) -> torch.Tensor:
    """``fn(f)`` without gradients, naming in-place edits and a layer changed or rebuilt by the call."""
    with student(f"{label}.state_dict"):
        before = {k: v.detach().clone() for k, v in module.state_dict().items()}
    given = f.clone()
    with torch.no_grad():
        out = call(fn, given, name=f"{label}.{getattr(fn, '__name__', 'forward')}")
    check_unchanged(label, given, f)
    with student(f"{label}.state_dict"):
        after = module.state_dict()
    changed = [k for k, v in before.items() if k in after and not torch.equal(v, after[k].detach())]
    if changed:
        fail(f"{label}: calling forward changed the layer's {changed[0]}\n  likely: the layer is (re-)initialised "
             "inside forward: build and initialise self.conv in __init__ only")
    with torch.no_grad():
        again = call(fn, f.clone(), name=f"{label}.{getattr(fn, '__name__', 'forward')}")
    if isinstance(out, torch.Tensor) and isinstance(again, torch.Tensor) and not torch.equal(out, again):
        fail(f"{label}: two calls on the same features give different scores\n  likely: a layer built inside "
             "forward gets new random weights at every call: build self.conv in __init__")
    return out


def head_gradient(label: str, module: nn.Module, f: torch.Tensor) -> None:
    """The training cells need gradients from ``module(f)`` into the layer's weights."""
    out = call(module, f.clone(), name=f"{label}.forward")
    check_gradient(label, out, module.conv.weight, "the scores")
