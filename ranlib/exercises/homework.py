"""Notebook 09's homework checks: RAN on another backbone, and a boundary-width curve.

- ``check_backbone_and_ran(MobileNetV3Backbone, ran_on_backbone)``: the backbone's contract (output stride 16,
  ``out_channels`` = the features' channels, dilated) at 64, 100 and 64x100 px, and gradients through it; then the
  composition ``ran_on_backbone(backbone, num_classes) -> ranlib.RAN(backbone, conv_org, conv_rev)`` on probe
  backbones whose features are of realistic size (a random MobileNetV3 gives features near 1e-8, where every
  comparison is trivially close), of two widths and output strides: the backbone passed in, two independent
  LargeFOV heads with a field of view of +-96 px (dilation 6 at stride 16, 12 at stride 8) on its channels,
  N(0, 0.01) init, Formula 1's attention, the fused scores against ranlib's and gradients into the backbone;
  last, RAN on the student's MobileNetV3, whose features must carry gradients.
- ``check_band_miou_curve(band_miou_curve, model, dataset, widths, device)``: against
  ``ranlib.evaluate.evaluate``'s ``mixed_miou``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ranlib.data import make_loader, mixed_boundary_band
from ranlib.evaluate import evaluate, predict_logits
from ranlib.exercises._check import (
    adding_cause,
    call,
    check_gradient,
    compare,
    describe,
    fail,
    guarded,
    likely,
    number,
    passed,
    student,
)
from ranlib.exercises.bands import probe_masks
from ranlib.exercises.heads import check_head_layer
from ranlib.heads import LargeFOVHead
from ranlib.metrics import ConfusionMatrix
from ranlib.model import RAN, RANOutput, build_model


class ProbeBackbone(nn.Module):
    """A stand-in backbone with ReLU features of order 1 (cheap, and no mistake can hide)."""

    def __init__(self, out_channels: int = 96, output_stride: int = 16):
        super().__init__()
        self.out_channels, self.output_stride = out_channels, output_stride
        self.patchify = nn.Conv2d(3, out_channels, output_stride, stride=output_stride)
        with torch.no_grad():
            self.patchify.weight.normal_(0, 0.1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patchify(images).relu()  # (B, C, H/os, W/os)


def _first_parameter(name: str, module: nn.Module) -> torch.Tensor | None:
    with student(f"{name}.parameters"):
        return next((p for p in module.parameters() if p.requires_grad), None)


def _check_backbone(backbone_cls) -> nn.Module:
    name = "MobileNetV3Backbone"
    torch.manual_seed(0)
    backbone = call(backbone_cls, name=name)
    if not isinstance(backbone, nn.Module):
        fail(f"{name}: an nn.Module expected, got {describe(backbone)}")
    with student(f"{name}.eval"):
        backbone.eval()
        stride = getattr(backbone, "output_stride", None)
    if stride != 16:
        fail(f"{name}: output_stride 16 expected, got {stride}")
    for hw in ((64, 64), (100, 100), (64, 100)):
        with torch.no_grad():
            f = call(backbone, torch.randn(1, 3, *hw), name=f"{name}.forward")
        if not isinstance(f, torch.Tensor) or f.dim() != 4:
            fail(f"{name}: features (B, C, h, w) expected, got {describe(f)}"
                 + likely("the whole classifier (pooling and linear layers) ran: wrap only "
                          "mobilenet_v3_large(dilated=True).features" if isinstance(f, torch.Tensor) and f.dim() == 2
                          else None))
        with student(f"{name}.out_channels"):
            channels = getattr(backbone, "out_channels", None)
        if channels != f.shape[1]:
            fail(f"{name}: out_channels says {channels} but the features have {f.shape[1]} channels"
                 + likely("the channels of another stage: read self.features[-1].out_channels"
                          if isinstance(channels, int) else None))
        cells = (math.ceil(hw[0] / 16), math.ceil(hw[1] / 16))
        if tuple(f.shape[-2:]) != cells:
            hint = ("output stride 32, the last stage is not dilated (mobilenet_v3_large(dilated=True))"
                    if tuple(f.shape[-2:]) == (math.ceil(hw[0] / 32), math.ceil(hw[1] / 32)) else
                    "H and W swapped (a transpose or permute)" if tuple(f.shape[-2:]) == cells[::-1] else None)
            fail(f"{name}: at {hw[0]}x{hw[1]} px features of {cells[0]}x{cells[1]} cells expected (output stride 16), "
                 f"got {f.shape[-2]}x{f.shape[-1]}{likely(hint)}")
    images = torch.randn(1, 3, 64, 64, requires_grad=True)
    f = call(backbone, images, name=f"{name}.forward")
    weight = _first_parameter(name, backbone)
    check_gradient(name, f, images if weight is None else weight, "the features")
    return backbone


def _check_composition(ran_fn, probe: ProbeBackbone, num_classes: int) -> None:
    name = "ran_on_backbone"
    where = f"{name}(backbone with out_channels {probe.out_channels}, output_stride {probe.output_stride})"
    d = 96 // probe.output_stride
    model = call(ran_fn, probe, num_classes, name=name)
    if not isinstance(model, RAN):
        fail(f"{where}: a ranlib.RAN expected, got {describe(model)}: return RAN(backbone, conv_org, conv_rev)")
    if model.backbone is not probe:
        fail(f"{where}: the model's backbone is not the one passed in: RAN(backbone, ...) with the argument")
    if model.conv_rev is None:
        fail(f"{where}: no conv_rev: that is the baseline (plain DeepLab); pass CONV_rev as RAN's third argument")
    if model.attention != "sigmoid":
        fail(f"{where}: attention={model.attention!r}: " + ("without attention that is the subtract variant"
             if model.attention is None else "use Formula 1, attention='sigmoid' (sigmoid(-original))"))
    convs = {}
    for head in ("conv_org", "conv_rev"):
        module = getattr(model, head)
        with student(f"{name}.{head}.conv"):
            conv = getattr(module, "conv", None)
        if isinstance(conv, nn.Conv2d) and conv.dilation != (d, d):
            hint = (f"a fixed dilation {conv.dilation[0]}: dilation = field_of_view // backbone.output_stride"
                    if conv.dilation in ((6, 6), (12, 12)) else "dilation = field_of_view // backbone.output_stride")
            fail(f"{where}.{head}: dilation {conv.dilation}: the field of view is dilation x output stride = "
                 f"{conv.dilation[0] * probe.output_stride} px; keep it at 96 px (dilation 12 x stride 8): 96 / "
                 f"{probe.output_stride} = {d}" + likely(hint))
        convs[head] = check_head_layer(f"{where}.{head}", module, probe.out_channels, num_classes, d)
    if model.conv_org is model.conv_rev or convs["conv_org"].weight is convs["conv_rev"].weight:
        fail(f"{where}: CONV_org and CONV_rev share their weights: build two heads")
    g = torch.Generator().manual_seed(probe.out_channels)
    reference = RAN(probe, LargeFOVHead(probe.out_channels, num_classes, dilation=d),
                    LargeFOVHead(probe.out_channels, num_classes, dilation=d))
    with torch.no_grad():  # ranlib's heads, scaled up with non-zero biases, copied into the student's
        for head in ("conv_org", "conv_rev"):
            ours, theirs = convs[head], getattr(reference, head).conv
            theirs.weight.mul_(10)
            theirs.bias.copy_(torch.randn(theirs.bias.shape, generator=g))
            ours.weight.copy_(theirs.weight)
            ours.bias.copy_(theirs.bias)
    with student(f"{name}(...).eval"):
        model.eval()
    images = torch.randn(2, 3, 64, 96, generator=g)
    out = call(model, images, name=f"{name}(...).forward")
    with torch.no_grad():
        ref = reference(images)
    if not isinstance(out, RANOutput):
        fail(f"{where}: the model's forward should return a RANOutput, got {describe(out)}")
    compare(f"{where}: branch 'fused'", out.fused, ref.fused)
    check_gradient(name, out.fused, probe.patchify.weight, "the backbone's features")


@guarded
def check_backbone_and_ran(backbone_cls, ran_fn, num_classes: int = 21) -> None:
    """Check the MobileNetV3 backbone wrapper, then ``ran_fn(backbone, num_classes)``, which composes a ``RAN``.

    The composition is probed on stand-in backbones of two widths and two output strides (96 channels at 16,
    40 channels at 8), then run on the student's MobileNetV3, whose features must carry gradients.
    """
    backbone = _check_backbone(backbone_cls)
    _check_composition(ran_fn, ProbeBackbone(96, 16), num_classes)
    _check_composition(ran_fn, ProbeBackbone(40, 8), 5)

    name = "ran_on_backbone(MobileNetV3Backbone())"
    model = call(ran_fn, backbone, num_classes, name=name)
    if not isinstance(model, RAN):
        fail(f"{name}: a ranlib.RAN expected, got {describe(model)}")
    with student(f"{name}.eval"):
        model.eval()
    out = call(model, torch.randn(1, 3, 64, 100), name=f"{name}.forward")
    fused = out.fused if isinstance(out, RANOutput) else out
    if not isinstance(fused, torch.Tensor) or fused.shape != (1, num_classes, 4, 7):
        fail(f"{name}: fused scores (1, {num_classes}, 4, 7) expected at 64x100 px, got {describe(fused)}")
    weight = _first_parameter(name, backbone)
    if weight is not None:
        check_gradient(name, fused, weight, "the fused scores (into MobileNetV3)")
    passed("MobileNetV3Backbone: output stride 16, out_channels right, gradients flow; ran_on_backbone: "
           "RAN(backbone, conv_org, conv_rev), two heads with a field of view of +-96 px on backbones of two "
           "widths and output strides, Formula 1, gradients into the backbone")


def _curve_mistakes(model, dataset, widths) -> dict[str, dict]:
    """What plausible mistakes return: {description: {width: mIoU}}, from the model's own predictions."""

    pairs = []
    for image, mask in dataset:
        prediction = predict_logits(model, image[None].to(next(model.parameters()).device)).argmax(1)[0].cpu()
        pairs.append((prediction, mask))

    def curve(select=lambda i, w: w, on_prediction=False, images=slice(None), shared=False):
        result, cm = {}, ConfusionMatrix(model.num_classes)
        for i, w in enumerate(widths):
            cm = cm if shared else ConfusionMatrix(model.num_classes)
            for p, m in pairs[images]:
                cm.update(p, m, mask=mixed_boundary_band(p if on_prediction else m, select(i, w)))
            result[w] = cm.compute()["miou"]
        return result

    return {
        "one ConfusionMatrix shared by all the widths: each width needs its own, fresh matrix": curve(shared=True),
        "the band's width from its position in widths (enumerate): mixed_boundary_band(mask, w) with the width "
        "itself": curve(select=lambda i, w: i),
        "the band of the prediction: the band comes from the ground-truth mask": curve(on_prediction=True),
        "only the first image counts: update the matrices with every image of the dataset": curve(images=slice(0, 1)),
        "only the last image counts: create the matrices once, before the loop over the images":
            curve(images=slice(-1, None)),
    }


def _tiny_probe():
    """A 24-class model on the tiny backbone and masks whose labels reach 23, so that no class count can be fixed."""
    torch.manual_seed(0)
    model = build_model(backbone="tiny", variant="ran", num_classes=24).eval()
    with torch.no_grad():
        model.conv_org.conv.weight.mul_(100)
    masks = [torch.where((m > 0) & (m != 255), m + 19, m) for m in probe_masks()]
    return model, [(torch.randn(3, *m.shape, generator=torch.Generator().manual_seed(i)), m)
                   for i, m in enumerate(masks)]


def _check_curve(fn, name, model, dataset, widths, device) -> None:
    ours = call(fn, model, dataset, widths, name=name)
    if not isinstance(ours, dict) or set(ours) != set(widths):
        hint = ("a list: return a dict {width: mIoU}" if isinstance(ours, (list, tuple)) else
                "the widths as strings: use the int widths as the keys" if isinstance(ours, dict)
                and set(ours) == {str(w) for w in widths} else None)
        fail(f"{name}: a dict with one value per width {tuple(widths)} expected, got "
             f"{sorted(ours) if isinstance(ours, dict) else describe(ours)}" + likely(hint))
    reference = evaluate(model, make_loader(dataset, 1, shuffle=False, num_workers=0), model.num_classes,
                         device, band_widths=tuple(widths))
    for w in widths:
        value = number(f"{name}, width {w}", ours[w])
        if not _same_miou(value, reference["mixed_miou"][w]):
            hint = _curve_hint(value, w, reference)
            if hint is None:  # the mistakes that need the whole curve, recomputed from the model's predictions
                hint = next((m for m, curve in _curve_mistakes(model, dataset, widths).items()
                             if all(_same_miou(number(name, ours[v]), curve[v]) for v in widths)), None)
            fail(f"{name}, width {w}: mixed-boundary mIoU {reference['mixed_miou'][w]:.4f} expected, yours is "
                 f"{value:.4f}" + likely(hint))


def _same_miou(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6


def _curve_hint(value: float, w: int, reference: dict) -> str | None:
    """The mistake that ``value``, the student's mIoU at width ``w``, shows against ``evaluate``'s metrics."""
    if abs(value - reference["boundary_miou"][w]) < 1e-6:
        return "that is the boundary band's value: use mixed_boundary_band"
    if abs(value - reference["miou"]) < 1e-6:
        return "that is the whole-image mIoU: pass the band as update(..., mask=band)"
    if w * 2 in reference["mixed_miou"] and abs(value - reference["mixed_miou"][w * 2]) < 1e-6:
        return f"the band of width {2 * w}: mixed_boundary_band(mask, w) already spans w on each side"
    return None


@guarded
def check_band_miou_curve(fn, model, dataset, widths=(1, 2, 4, 8), device="cpu") -> None:
    """Check ``fn(model, dataset, widths) -> {width: mixed-boundary mIoU}`` against ``ranlib.evaluate.evaluate``,
    on the model and data given, then on a 24-class model (labels up to 23) of ranlib's own."""
    name = "band_miou_curve"
    _check_curve(fn, name, model, dataset, widths, device)
    probe_model, probe_data = _tiny_probe()
    where = f"{name} on a 24-class model (labels up to 23)"
    with adding_cause("one possible cause: a fixed class count: ConfusionMatrix(model.num_classes)"):
        _check_curve(fn, where, probe_model, probe_data, (1, 2), "cpu")
    passed(f"{name}: widths {tuple(widths)} equal to ranlib.evaluate.evaluate's mixed_miou, and on a 24-class model")
