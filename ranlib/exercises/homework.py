"""Notebook 09's homework checks: RAN on another backbone, and a boundary-width curve.

- ``check_backbone_and_ran(MobileNetV3Backbone, ran_on_backbone)``: the backbone's contract (output stride 16,
  ``out_channels`` = the features' channels, dilated) at 64 and 100 px; then the composition
  ``ran_on_backbone(backbone, num_classes) -> ranlib.RAN(backbone, conv_org, conv_rev)`` on a probe backbone
  whose features are of realistic size (a random MobileNetV3 gives features near 1e-8, where every comparison
  is trivially close): the backbone passed in, two independent LargeFOV heads with dilation 6 on its channels,
  Formula 1's attention, the outputs and gradients into the backbone; last, RAN on the student's MobileNetV3.
- ``check_band_miou_curve(band_miou_curve, model, dataset, widths, device)``: against
  ``ranlib.evaluate.evaluate``'s ``mixed_miou``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ranlib.data import make_loader
from ranlib.evaluate import evaluate
from ranlib.exercises._check import call, check_gradient, compare, describe, fail, passed
from ranlib.exercises.heads import check_head_layer
from ranlib.model import RAN, RANOutput


class ProbeBackbone(nn.Module):
    """A stand-in backbone with ReLU features of order 1 at output stride 16 (cheap, and no mistake can hide)."""

    output_stride = 16

    def __init__(self, out_channels: int = 96):
        super().__init__()
        self.out_channels = out_channels
        self.patchify = nn.Conv2d(3, out_channels, 16, stride=16)
        with torch.no_grad():
            self.patchify.weight.normal_(0, 0.1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patchify(images).relu()  # (B, C, H/16, W/16)


def check_backbone_and_ran(backbone_cls, ran_fn, num_classes: int = 21) -> None:
    """Check the MobileNetV3 backbone wrapper, then ``ran_fn(backbone, num_classes)``, which composes a ``RAN``."""
    name = "MobileNetV3Backbone"
    torch.manual_seed(0)
    backbone = call(backbone_cls, name=name).eval()
    if getattr(backbone, "output_stride", None) != 16:
        fail(f"{name}: output_stride 16 expected, got {getattr(backbone, 'output_stride', None)}")
    for size in (64, 100):
        with torch.no_grad():
            f = call(backbone, torch.randn(1, 3, size, size), name=f"{name}.forward")
        if not isinstance(f, torch.Tensor) or f.dim() != 4:
            fail(f"{name}: features (B, C, h, w) expected, got {describe(f)}")
        if getattr(backbone, "out_channels", None) != f.shape[1]:
            fail(f"{name}: out_channels says {getattr(backbone, 'out_channels', None)} but the features have "
                 f"{f.shape[1]} channels")
        cells = math.ceil(size / 16)
        if f.shape[-2:] != (cells, cells):
            hint = (": output stride 32, the last stage is not dilated (mobilenet_v3_large(dilated=True))"
                    if f.shape[-1] == math.ceil(size / 32) else "")
            fail(f"{name}: at {size} px features of {cells}x{cells} cells expected (output stride 16), got "
                 f"{f.shape[-2]}x{f.shape[-1]}{hint}")

    name = "ran_on_backbone"
    probe = ProbeBackbone()
    model = call(ran_fn, probe, num_classes, name=name)
    if not isinstance(model, RAN):
        fail(f"{name}: a ranlib.RAN expected, got {describe(model)}: return RAN(backbone, conv_org, conv_rev)")
    if model.backbone is not probe:
        fail(f"{name}: the model's backbone is not the one passed in: RAN(backbone, ...) with the argument")
    if model.conv_rev is None:
        fail(f"{name}: no conv_rev: that is the baseline (plain DeepLab); pass CONV_rev as RAN's third argument")
    if model.attention != "sigmoid":
        fail(f"{name}: attention={model.attention!r}: " + ("without attention that is the subtract variant"
             if model.attention is None else "use Formula 1, attention='sigmoid' (sigmoid(-original))"))
    for head in ("conv_org", "conv_rev"):
        module = getattr(model, head)
        conv = getattr(module, "conv", None)
        if isinstance(conv, nn.Conv2d) and conv.dilation != (6, 6):
            fail(f"{name}.{head}: dilation {conv.dilation}: the field of view is dilation x output stride = "
                 f"{conv.dilation[0] * 16} px; keep it at 96 px (dilation 12 x stride 8): 96 / 16 = 6")
        check_head_layer(f"{name}.{head}", module, probe.out_channels, num_classes, 6)
    if model.conv_org is model.conv_rev or model.conv_org.conv.weight is model.conv_rev.conv.weight:
        fail(f"{name}: CONV_org and CONV_rev share their weights: build two heads")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for head in (model.conv_org, model.conv_rev):
            head.conv.weight.mul_(10)
            head.conv.bias.copy_(torch.randn(head.conv.bias.shape, generator=g))
    model.eval()
    images = torch.randn(2, 3, 64, 64, generator=g)
    out = call(model, images, name=f"{name}(...).forward")
    with torch.no_grad():
        f = probe(images)
        o, r = model.conv_org(f), -model.conv_rev(f)
    compare(f"{name}: branch 'fused'", out.fused, o + torch.sigmoid(-o) * r)
    check_gradient(name, out.fused, probe.patchify.weight, "the backbone's features")

    model = call(ran_fn, backbone, num_classes, name=name).eval()
    with torch.no_grad():
        out = call(model, torch.randn(1, 3, 64, 64), name=f"{name}(MobileNetV3Backbone()).forward")
    if not isinstance(out, RANOutput) or out.fused.shape != (1, num_classes, 4, 4):
        fail(f"{name}(MobileNetV3Backbone()): fused scores (1, {num_classes}, 4, 4) expected at 64 px, got "
             f"{describe(out.fused if isinstance(out, RANOutput) else out)}")
    passed("MobileNetV3Backbone: output stride 16, out_channels right; ran_on_backbone: RAN(backbone, conv_org, "
           "conv_rev), two heads with dilation 6 (+-96 px), Formula 1, gradients into the backbone")


def check_band_miou_curve(fn, model, dataset, widths=(1, 2, 4, 8), device="cpu") -> None:
    """Check ``fn(model, dataset, widths) -> {width: mixed-boundary mIoU}`` against ``ranlib.evaluate.evaluate``."""
    name = "band_miou_curve"
    ours = call(fn, model, dataset, widths, name=name)
    if not isinstance(ours, dict) or set(ours) != set(widths):
        fail(f"{name}: a dict with one value per width {tuple(widths)} expected, got "
             f"{sorted(ours) if isinstance(ours, dict) else describe(ours)}")
    reference = evaluate(model, make_loader(dataset, 1, shuffle=False, num_workers=0), model.num_classes,
                         device, band_widths=tuple(widths))
    for w in widths:
        value = float(ours[w])
        if abs(value - reference["mixed_miou"][w]) > 1e-9:
            hint = None
            if abs(value - reference["boundary_miou"][w]) < 1e-9:
                hint = "that is the boundary band's value: use mixed_boundary_band"
            elif abs(value - reference["miou"]) < 1e-9:
                hint = "that is the whole-image mIoU: pass the band as update(..., mask=band)"
            elif w * 2 in reference["mixed_miou"] and abs(value - reference["mixed_miou"][w * 2]) < 1e-9:
                hint = f"the band of width {2 * w}: mixed_boundary_band(mask, w) already spans w on each side"
            fail(f"{name}, width {w}: mixed-boundary mIoU {reference['mixed_miou'][w]:.4f} expected, yours is "
                 f"{value:.4f}" + (f"\n  likely: {hint}" if hint else ""))
    passed(f"{name}: widths {tuple(widths)} equal to ranlib.evaluate.evaluate's mixed_miou")
