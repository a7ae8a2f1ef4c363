"""Notebook 02's exercises: a dilated 1-D convolution, CONV_org, and plain DeepLab assembled from it.

- ``check_dilated_conv1d(my_dilated_conv1d)``: against ``F.conv1d(..., dilation=rate)``.
- ``check_conv_org(MyConvOrg)``: the layer (3x3, dilation 12, padding 12, a bias, N(0, 0.01) init; also built
  64 -> 5 with dilation 6) and its scores with ranlib's weights and non-zero biases, on features of realistic size
  for 64, 321 and 75x130 px images; gradients reach the layer.
- ``check_deeplab(MyDeepLab)``: with ranlib's baseline weights, full-resolution logits at 64, 321 and 75x130 px,
  with 21 and 5 classes; gradients reach the backbone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ranlib
from ranlib.exercises._check import (
    call,
    check_gradient,
    check_unchanged,
    compare,
    describe,
    fail,
    guarded,
    likely,
    passed,
    student,
)
from ranlib.exercises.heads import head_gradient, head_probes, run_head


@guarded
def check_dilated_conv1d(fn) -> None:
    """Check ``fn(x, w, rate) -> y``: 'same' zero padding, y[i] = w0 x[i-rate] + w1 x[i] + w2 x[i+rate]."""
    name = "my_dilated_conv1d"
    g = torch.Generator().manual_seed(0)

    def conv(x_, w_, r, padding=None):
        return F.conv1d(x_[None, None], w_[None, None], padding=r if padding is None else padding, dilation=r)[0, 0]

    for length in (32, 11):
        x, w = torch.randn(length, generator=g) + 1.0, torch.tensor([0.5, -1.0, 2.0])  # non-zero at the edges
        for rate in (1, 4, 2):  # at rate 2, rate - 1 is 1: rate 4 first tells the two mistakes apart
            given_x, given_w = x.clone(), w.clone()
            ours = call(fn, given_x, given_w, rate, name=name)
            check_unchanged(f"{name} (x)", given_x, x)
            check_unchanged(f"{name} (w)", given_w, w)
            right = conv(x, w, rate)
            wrong = {
                "kernel flipped: y[i] = w[0] x[i - rate] + w[1] x[i] + w[2] x[i + rate]": conv(x, w.flip(0), rate),
                "the rate is ignored (taps 1 apart)": conv(x, w, 1),
                "no padding: put rate zeros on each side so the output keeps length L": conv(x, w, rate, 0),
                "values wrap around the ends: outside [0, L) x is zero, not periodic":
                    sum(w[k] * torch.roll(x, -(k - 1) * rate) for k in range(3)),
                "the batch and channel dimensions of conv1d are kept: return shape (L,)": right[None, None],
            }
            # y shifted by s positions (y'[i] = y[i + s]): the zeros split unevenly, or slices that start off by s
            far = 2 * rate + 2
            full = conv(x, w, rate, padding=rate + far)  # full[j] = y[j - far]
            for s in (*range(1, 2 * rate + 1), *range(-1, -2 * rate - 1, -1)):
                wrong[f"the output is shifted by {abs(s)} position{'s' if abs(s) > 1 else ''} to the "
                      f"{'left' if s > 0 else 'right'} (y[i] holds the value of y[i {'+' if s > 0 else '-'} "
                      f"{abs(s)}]): with rate zeros on EACH side, the three slices start at 0, rate and 2 rate"] = \
                    full[far + s:far + s + length]
            if rate > 1:
                wrong["off by one: the taps are rate apart, not rate - 1"] = conv(x, w, rate - 1)
            compare(f"{name}, length {length}, rate {rate}", ours, right, wrong, atol=1e-5)
    passed(f"{name}: equal to F.conv1d(..., padding=rate, dilation=rate) for rates 1, 2, 4, inputs untouched")


@guarded
def check_conv_org(cls) -> None:
    """Check ``cls(in_channels, num_classes, dilation=12)``, CONV_org: (B, C, h, w) -> (B, K, h, w).

    Built as ``cls(512, 21)`` (the default dilation, 12) and ``cls(64, 5, dilation=6)``.
    """
    name = "MyConvOrg"
    for label, mine, reference, f, where in head_probes(name, cls):
        ours = run_head(label, mine, mine, f)
        w, b, d = reference.conv.weight, reference.conv.bias, reference.conv.dilation[0]
        with torch.no_grad():
            theirs = reference(f)
            wrong = {
                "forward applies a ReLU: class scores must be able to go negative": theirs.relu(),
                "the bias is not added: return self.conv(f)": F.conv2d(f, w, None, 1, d, d),
                "NEG applied: that belongs to the reverse branch (notebook 03), CONV_org returns self.conv(f)": -theirs,
                "a softmax or sigmoid in forward: CONV_org returns the raw scores (the losses apply the softmax)":
                    theirs.softmax(1),
                "H and W swapped (a transpose or permute): keep (B, C, h, w) as it comes": theirs.transpose(-1, -2),
            }
            if d != 12:
                wrong["a fixed dilation 12 in forward: use self.conv, built with the dilation argument"] = \
                    F.conv2d(f, w, b, 1, 12, 12)
            compare(f"{label} {where}", ours, theirs, wrong)
    head_gradient(label, mine, f)
    passed(f"{name}: 3x3, dilation 12 (and 6 when asked), padding = dilation, N(0, 0.01) weights and zero biases; "
           "with ranlib's weights (non-zero biases) the same scores on square and non-square maps; gradients flow")


@guarded
def check_deeplab(cls, backbone: str = "resnet18", num_classes: int = 21,
                  sizes: tuple = (64, 321, (75, 130))) -> None:
    """Check ``cls(backbone, num_classes)``: images (B, 3, H, W) -> logits (B, K, H, W), ranlib's baseline.

    Built with ``num_classes`` and with 5 classes; images of each size in ``sizes`` (an int is a square).
    """
    name = "MyDeepLab"
    for k, (net, classes) in enumerate(((backbone, num_classes), (backbone, 5), ("tiny", 5))):
        label = f"{name}({net!r}, {classes})"
        torch.manual_seed(0)
        reference = ranlib.build_model(backbone=net, variant="baseline", num_classes=classes).eval()
        with torch.no_grad():
            reference.conv_org.conv.weight.mul_(10)
            reference.conv_org.conv.bias.normal_()
        mine = call(cls, net, classes, name=label)
        _load_baseline(label, mine, reference, net, backbone)
        for size in sizes if k == 0 else sizes[-1:]:
            hw = (size, size) if isinstance(size, int) else tuple(size)
            images = torch.randn(1, 3, *hw, generator=torch.Generator().manual_seed(hw[0] + hw[1]))
            with torch.no_grad():
                ours, original = call(mine, images, name=f"{label}.forward"), reference(images).original
                f = reference.backbone(images)
            if not isinstance(ours, torch.Tensor):
                fail(f"{label}: forward should return the logits tensor, got {describe(ours)}")
            theirs = F.interpolate(original, size=hw, mode="bilinear", align_corners=False)
            compare(f"{label} at {hw[0]}x{hw[1]} px", ours, theirs,
                    _upsampling_mistakes(ours, original, f, reference.conv_org.conv, hw), atol=1e-4)
    mine.train()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    out = call(mine, images, name=f"{label}.forward")
    with student(f"{label}.backbone"):
        weight = next(mine.backbone.parameters())
    check_gradient(label, out, weight, "the logits (into the backbone)")
    shown = ", ".join(f"{s}" if isinstance(s, int) else f"{s[0]}x{s[1]}" for s in sizes)
    passed(f"{name}: with ranlib's baseline weights, the same full-resolution logits at {shown} px, "
           f"{num_classes} and 5 classes, on {backbone} and on a second backbone; gradients reach the backbone")


def _load_baseline(label: str, mine, reference: ranlib.RAN, net: str, backbone: str) -> None:
    """Load ranlib's baseline on ``net`` into the student's model (then in eval mode), naming why it does not fit;
    ``backbone`` is the one the check was asked for."""
    with student(f"{label}.state_dict"):
        keys = set(mine.state_dict())
    missing, unexpected = set(reference.state_dict()) - keys, keys - set(reference.state_dict())
    if missing or unexpected:
        ignored = net != backbone and keys == set(ranlib.build_model(
            backbone=backbone, variant="baseline", num_classes=reference.num_classes).state_dict())
        fail(f"{label}: state_dict keys differ from ranlib's baseline: missing {sorted(missing)[:3]}, "
             f"unexpected {sorted(unexpected)[:3]}: keep the attributes backbone and conv_org (whose layer "
             "is conv)" + likely(f"backbone_name is ignored (always {backbone!r}): build_backbone(backbone_name)"
                                 if ignored else None))
    with student(f"{label}.load_state_dict"):
        try:
            mine.load_state_dict(reference.state_dict())
        except RuntimeError as error:
            if "size mismatch" in str(error):
                fail(f"{label}: ranlib's weights do not fit ({str(error).splitlines()[-1].strip()[:120]})\n"
                     "  likely: a fixed channel or class count: use num_classes and self.backbone.out_channels")
            raise
        mine.eval()


def _upsampling_mistakes(ours: torch.Tensor, original: torch.Tensor, f: torch.Tensor, conv: torch.nn.Conv2d,
                         hw: tuple[int, int]) -> dict[str, torch.Tensor]:
    """What plausible mistakes return for images of ``hw``, from ranlib's scores at 1/8 (``original``), its
    features ``f`` and its CONV_org layer ``conv``: {description: logits}."""

    def up(x, size=hw, mode="bilinear", corners=False, **kwargs):
        return F.interpolate(x, size=size, mode=mode, align_corners=corners if mode == "bilinear" else None,
                             **kwargs)

    h, w = original.shape[-2:]
    wrong = {
        "align_corners=True: ranlib upsamples with align_corners=False": up(original, corners=True),
        f"scale_factor=8: at {hw[0]}x{hw[1]} px the features are {h}x{w} cells, and 8 x that is "
        f"{8 * h}x{8 * w}; upsample to size=images.shape[-2:]": up(original, size=None, scale_factor=8),
        "nearest-neighbour upsampling: use mode='bilinear'": up(original, mode="nearest"),
        "no upsampling: the scores come at 1/8 of the image, resize them to the image's H x W": original,
        "H and W swapped: size=images.shape[-2:] is (H, W), in that order": up(original, size=hw[::-1]),
        "a softmax in forward: DeepLab returns the logits (the loss applies the softmax)": up(original).softmax(1),
        "upsampled to a fixed size: use the image's own size, images.shape[-2:]": up(original, size=(hw[0], hw[0])),
    }
    if ours.dim() == 4 and tuple(ours.shape[-2:]) != hw:
        wrong[f"upsampled to a fixed size {ours.shape[-2]}x{ours.shape[-1]}: use the image's own size, "
              "images.shape[-2:]"] = up(original, size=tuple(ours.shape[-2:]))
    for d in (1, 6, 24):
        wrong[f"CONV_org built with dilation {d}: MyDeepLab's head is MyConvOrg with its default dilation, "
              "12"] = up(F.conv2d(f, conv.weight, conv.bias, 1, d, d))
    return wrong
