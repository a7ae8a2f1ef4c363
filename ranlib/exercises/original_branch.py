"""Notebook 02's exercises: a dilated 1-D convolution, CONV_org, and plain DeepLab assembled from it.

- ``check_dilated_conv1d(my_dilated_conv1d)``: against ``F.conv1d(..., dilation=rate)``.
- ``check_conv_org(MyConvOrg)``: the layer (3x3, dilation 12, padding 12, a bias, N(0, 0.01) init) and its
  scores with ranlib's weights and non-zero biases, on features of realistic size for 64 and 321 px images.
- ``check_deeplab(MyDeepLab)``: with ranlib's baseline weights, full-resolution logits at 64 and 321 px.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ranlib
from ranlib.exercises._check import call, compare, describe, fail, passed
from ranlib.exercises.heads import check_head_layer, load_with_bias, realistic_features


def check_dilated_conv1d(fn) -> None:
    """Check ``fn(x, w, rate) -> y``: 'same' zero padding, y[i] = w0 x[i-rate] + w1 x[i] + w2 x[i+rate]."""
    name = "my_dilated_conv1d"
    g = torch.Generator().manual_seed(0)
    for length in (32, 11):
        x, w = torch.randn(length, generator=g) + 1.0, torch.tensor([0.5, -1.0, 2.0])  # non-zero at the edges
        for rate in (1, 2, 4):
            ours = call(fn, x.clone(), w.clone(), rate, name=name)

            def conv(x_, w_, r):
                return F.conv1d(x_[None, None], w_[None, None], padding=r, dilation=r)[0, 0]

            wrong = {
                "kernel flipped: y[i] = w[0] x[i - rate] + w[1] x[i] + w[2] x[i + rate]": conv(x, w.flip(0), rate),
                "the rate is ignored (taps 1 apart)": conv(x, w, 1),
                "no padding: put rate zeros on each side so the output keeps length L":
                    F.conv1d(x[None, None], w[None, None], dilation=rate)[0, 0],
                "values wrap around the ends: outside [0, L) x is zero, not periodic":
                    sum(w[k] * torch.roll(x, -(k - 1) * rate) for k in range(3)),
            }
            compare(f"{name}, length {length}, rate {rate}", ours, conv(x, w, rate), wrong, atol=1e-5)
    passed(f"{name}: equal to F.conv1d(..., padding=rate, dilation=rate) for rates 1, 2, 4")


def check_conv_org(cls, in_channels: int = 512, num_classes: int = 21) -> None:
    """Check ``cls(in_channels, num_classes, dilation=12)``, CONV_org: (B, C, h, w) -> (B, K, h, w)."""
    name = "MyConvOrg"
    mine = call(cls, in_channels, num_classes, name=name)
    conv = check_head_layer(name, mine, in_channels, num_classes, 12)
    reference = ranlib.heads.LargeFOVHead(in_channels, num_classes)
    if set(mine.state_dict()) != set(reference.state_dict()):
        fail(f"{name}: state_dict keys {sorted(reference.state_dict())} expected, got {sorted(mine.state_dict())}: "
             "store the only layer as self.conv")
    load_with_bias(mine, reference)
    for image_size, size in ((64, 8), (321, 41)):
        f = realistic_features(in_channels, size, batch=1)
        with torch.no_grad():
            ours, theirs = call(mine, f, name=f"{name}.forward"), reference(f)
            wrong = {
                "forward applies a ReLU: class scores must be able to go negative": theirs.relu(),
                "the bias is not added: return self.conv(f)": F.conv2d(f, conv.weight, None, 1, 12, 12),
                "NEG applied: that belongs to the reverse branch (notebook 03), CONV_org returns self.conv(f)": -theirs,
            }
            compare(f"{name} on features of a {image_size} px image", ours, theirs, wrong)
    passed(f"{name}: 3x3, dilation 12, padding 12, N(0, 0.01) weights and zero biases; with ranlib's weights "
           "(non-zero biases) the same scores at 64 and 321 px")


def check_deeplab(cls, backbone: str = "resnet18", num_classes: int = 21, sizes: tuple[int, ...] = (64, 321)) -> None:
    """Check ``cls(backbone, num_classes)``: images (B, 3, H, W) -> logits (B, K, H, W), ranlib's baseline."""
    name = "MyDeepLab"
    torch.manual_seed(0)
    reference = ranlib.build_model(backbone=backbone, variant="baseline", num_classes=num_classes).eval()
    with torch.no_grad():
        reference.conv_org.conv.weight.mul_(10)
        reference.conv_org.conv.bias.normal_()
    mine = call(cls, backbone, num_classes, name=name)
    missing, unexpected = (set(reference.state_dict()) - set(mine.state_dict()),
                           set(mine.state_dict()) - set(reference.state_dict()))
    if missing or unexpected:
        fail(f"{name}: state_dict keys differ from ranlib's baseline: missing {sorted(missing)[:3]}, unexpected "
             f"{sorted(unexpected)[:3]}: keep the attributes backbone and conv_org (whose layer is conv)")
    call(mine.load_state_dict, reference.state_dict(), name=f"{name}.load_state_dict")
    mine.eval()
    for size in sizes:
        images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(size))
        with torch.no_grad():
            ours, original = call(mine, images, name=f"{name}.forward"), reference(images).original
        theirs = F.interpolate(original, size=(size, size), mode="bilinear", align_corners=False)
        wrong = {
            "align_corners=True: ranlib upsamples with align_corners=False":
                F.interpolate(original, size=(size, size), mode="bilinear", align_corners=True),
            f"scale_factor=8: at {size} px the features are {original.shape[-1]} cells, and 8 x "
            f"{original.shape[-1]} = {8 * original.shape[-1]}; upsample to size=images.shape[-2:]":
                F.interpolate(original, scale_factor=8, mode="bilinear", align_corners=False),
            "nearest-neighbour upsampling: use mode='bilinear'": F.interpolate(original, size=(size, size)),
            "no upsampling: the scores come at 1/8 of the image, resize them to the image's H x W": original,
        }
        if not isinstance(ours, torch.Tensor):
            fail(f"{name}: forward should return the logits tensor, got {describe(ours)}")
        compare(f"{name} at {size} px", ours, theirs, wrong, atol=1e-4)
    shown = " and ".join(map(str, sizes))
    passed(f"{name}: with ranlib's baseline weights, the same full-resolution logits at {shown} px")
