"""Every exercise check passes the solution and rejects plausible wrong answers, naming the mistake.

``EXERCISES[exercise]`` lists (wrong answer, a phrase the check's message must contain). The check must raise
``ExerciseError`` (a short message, no traceback wall) whose text contains that phrase; the solution must pass.
A message *names* the mistake when it has a ``likely:`` line or its phrase is itself the cause ("bias=False",
"in place"); a phrase wrapped in ``Located(...)`` marks a message that only says where the values differ or
which call failed. At least 80% must be named. ``python tests/test_exercises.py`` prints the README's table.
Each wrong answer runs through its check once per session (``outcome``): the per-answer tests and the table read
the same result.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import ranlib
from ranlib import exercises as ex
from ranlib.backbone import build_backbone
from ranlib.data.bands import fill_void
from ranlib.heads import LargeFOVHead
from ranlib.metrics import ConfusionMatrix
from ranlib.model import RANOutput


class Located(str):
    """An expected phrase that only locates the mistake (which value differs, which call failed)."""


def names_the_mistake(message: str, phrase: str) -> bool:
    """Named: the expected phrase is the cause (a ``likely:`` line or a cause in the message itself)."""
    return not isinstance(phrase, Located)


# ---------------------------------------------------------------- 01: bands


def window_max(x, width, window=None):
    window = 2 * width + 1 if window is None else window
    return F.max_pool2d(x[None, None], window, stride=1, padding=window // 2)[0, 0]


def make_bands(window_of=lambda w: 2 * w + 1, fill=True, void=True, skip_background=True, swap=False,
               in_place=False, one_sided=False, strict=True, transpose=False, dtype=torch.bool):
    def my_bands(mask, width):
        window = window_of(width)
        if in_place:
            mask[mask == 255] = 0
        labels = (fill_void(mask[None])[0] if fill else mask).float()
        low_side = labels if one_sided else -window_max(-labels, width, window)
        boundary = window_max(labels, width, window) != low_side
        if void:
            boundary = boundary | (mask == 255)
        if skip_background:
            high, low = torch.where(labels > 0, labels, -1.0), torch.where(labels > 0, labels, 1e9)
            low_side = high if one_sided else -window_max(-low, width, window)
            mixed = window_max(high, width, window) > low_side if strict else \
                window_max(high, width, window) >= low_side
        else:
            mixed = boundary.clone()
        result = (mixed, boundary) if swap else (boundary, mixed)
        return tuple((b.T if transpose else b).to(dtype) for b in result)
    return my_bands


# ---------------------------------------------------------------- 02: dilated conv, CONV_org, DeepLab


def make_conv1d(flip=False, ignore_rate=False, pad=True, wrap=False, off_by_one=False, one_side=False,
                in_place=False, keep_dims=False):
    def my_dilated_conv1d(x, w, rate):
        if keep_dims:
            return F.conv1d(x[None, None], w[None, None], padding=rate, dilation=rate)
        if in_place:
            x.mul_(2)
            x = x / 2
        r = 1 if ignore_rate else rate - 1 if off_by_one and rate > 1 else rate
        if one_side:
            padded = torch.cat([x, torch.zeros(2 * r)])
            return sum(w[k] * padded[k * r:k * r + x.shape[0]] for k in range(3))
        w = w.flip(0) if flip else w
        L = x.shape[0]
        if wrap:
            return sum(w[k] * torch.roll(x, -(k - 1) * r) for k in range(3))
        if not pad:
            return sum(w[k] * x[k * r:L - (2 - k) * r] for k in range(3))
        padded = torch.cat([torch.zeros(r), x, torch.zeros(r)])
        return sum(w[k] * padded[k * r:k * r + L] for k in range(3))
    return my_dilated_conv1d


def make_conv_org(padding=None, dilation_used=None, bias=True, std=0.01, relu=False, skip_bias=False,
                  init_mean=None, zero_bias=True, swap_channels=False, in_channels_used=None, positional=False,
                  reinit=False, rebuild=False, detach=False, in_place=False, transpose=False, mode="zeros",
                  dilation_type=int, softmax=False):
    class MyConvOrg(nn.Module):
        def __init__(self, in_channels, num_classes, dilation=12):
            super().__init__()
            d = dilation_type(dilation if dilation_used is None else dilation_used)
            c_in = in_channels if in_channels_used is None else in_channels_used
            channels = (num_classes, c_in) if swap_channels else (c_in, num_classes)
            if positional:
                self.conv = nn.Conv2d(*channels, 3, d, d)
            else:
                self.conv = nn.Conv2d(*channels, 3, padding=d if padding is None else padding, dilation=d, bias=bias,
                                      padding_mode=mode)
            if init_mean is not None:
                nn.init.normal_(self.conv.weight, init_mean)
            elif std is not None:
                nn.init.normal_(self.conv.weight, std=std)
            if bias and zero_bias:
                nn.init.zeros_(self.conv.bias)

        def forward(self, f):
            if reinit:
                nn.init.zeros_(self.conv.bias)
            if rebuild:
                conv = nn.Conv2d(self.conv.in_channels, self.conv.out_channels, 3, padding=self.conv.padding,
                                 dilation=self.conv.dilation)
                return conv(f)
            if in_place:
                f = f.mul_(1.5) / 1.5
            if skip_bias:
                return F.conv2d(f, self.conv.weight, None, 1, self.conv.padding, self.conv.dilation)
            out = self.conv(f)
            out = out.transpose(-1, -2) if transpose else out
            out = out.softmax(1) if softmax else out
            out = out.detach() if detach else out
            return out.relu() if relu else out
    return MyConvOrg


def make_deeplab(upsample, classes=None, no_grad=False):
    class MyDeepLab(nn.Module):
        def __init__(self, backbone_name="resnet18", num_classes=21):
            super().__init__()
            self.backbone = build_backbone(backbone_name)
            self.conv_org = make_conv_org()(self.backbone.out_channels, num_classes if classes is None else classes)

        def forward(self, images):
            with torch.set_grad_enabled(not no_grad and torch.is_grad_enabled()):
                f = self.backbone(images)
            return upsample(self.conv_org(f), images)
    return MyDeepLab


def up_right(x, images):
    return F.interpolate(x, size=images.shape[-2:], mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- 03: reverse branch


def make_reverse(forward="neg_out", not_class="plain", padding=None, bias=True, init=True, fixed_dilation=None):
    class MyReverseBranch(nn.Module):
        def __init__(self, in_channels, num_classes, dilation=12):
            super().__init__()
            d = dilation if fixed_dilation is None else fixed_dilation
            self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=d if padding is None else padding,
                                  dilation=d, bias=bias)
            if init:
                nn.init.normal_(self.conv.weight, std=0.01)
                if bias:
                    nn.init.zeros_(self.conv.bias)

        def not_class(self, f):
            return -self.conv(f) if not_class == "neg" else self.conv(f)

        def forward(self, f):
            c = self.conv
            return {"neg_out": lambda: -self.not_class(f), "none": lambda: self.not_class(f),
                    "neg_in": lambda: self.conv(-f), "relu": lambda: (-self.not_class(f)).relu(),
                    "reuse": lambda: self.not_class(f) * -1 if not_class == "plain" else self.not_class(f),
                    "one_minus": lambda: 1 - self.not_class(f),
                    "neg_bias": lambda: F.conv2d(f, c.weight, -c.bias, 1, c.padding, c.dilation),
                    "detach": lambda: -self.not_class(f).detach(),
                    "transpose": lambda: -self.not_class(f).transpose(-1, -2),
                    "reinit": lambda: (nn.init.zeros_(c.bias), -self.not_class(f))[1]}[forward]()
    return MyReverseBranch


# ---------------------------------------------------------------- 05: the model and the losses


def make_ran(reverse=lambda r: -r, attention=lambda o, r: torch.sigmoid(-o),
             fuse=lambda o, r, a: o + a * r, baseline_reverse=False, head=LargeFOVHead, shared=False,
             neg_features=False, detach_features=False, reinit=False):
    class MyRAN(nn.Module):
        def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
            super().__init__()
            self.variant = variant
            self.backbone = build_backbone(backbone)
            self.conv_org = head(self.backbone.out_channels, num_classes)
            self.conv_rev = (self.conv_org if shared else head(self.backbone.out_channels, num_classes)
                             if variant != "baseline" or baseline_reverse else None)

        def forward(self, images):
            f = self.backbone(images)
            f = f.detach() if detach_features else f
            if reinit:
                nn.init.zeros_(self.conv_org.conv.bias)
            original = self.conv_org(f)
            if self.variant == "baseline":
                return RANOutput(original, -self.conv_rev(f) if baseline_reverse else None, None, original)
            rev = self.conv_rev(-f) if neg_features else reverse(self.conv_rev(f))
            if self.variant == "subtract":
                return RANOutput(original, rev, None, original + rev)
            a = attention(original, rev)
            return RANOutput(original, rev, a, fuse(original, rev, a))
    return MyRAN


def make_loss(up=lambda x, size: F.interpolate(x, size=size, mode="bilinear", align_corners=False),
              ignore=True, combine=sum, baseline_all=False, reverse_sign=1, target_small=False, reduction="mean",
              per_image=False, softmax=False, detach=None, other_branch=False, loss=F.cross_entropy):
    def my_ran_loss(output, target, ignore_index=255):
        if per_image:
            results = [make_loss()(RANOutput(*(None if t is None else t[i:i + 1] for t in output)), target[i:i + 1])
                       for i in range(target.shape[0])]
            parts = {k: sum(r[1][k] for r in results) / len(results) for k in results[0][1]}
            return sum(parts.values()), parts
        if output.reverse is None and not baseline_all:
            branches = {"fused": output.fused}
        else:
            branches = {"original": output.original, "reverse": output.reverse, "fused": output.fused}
            if output.reverse is None:
                branches["reverse"] = output.original
        parts = {}
        if other_branch and "original" in branches:
            branches["original"] = output.fused
        for name, logits in branches.items():
            if name == "reverse":
                logits = reverse_sign * logits
            if name == detach:
                logits = logits.detach()
            if target_small:
                t = F.interpolate(target[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
                parts[name] = F.cross_entropy(logits, t, ignore_index=ignore_index)
                continue
            logits = up(logits, target.shape[-2:])
            logits = logits.softmax(1) if softmax else logits
            kwargs = {"ignore_index": ignore_index} if ignore else {}
            parts[name] = loss(logits, target, reduction=reduction, **kwargs)
        total = combine(parts.values()) if combine is not sum else sum(parts.values())
        return total, parts
    return my_ran_loss


# ---------------------------------------------------------------- 06: optimiser groups, poly


def groups_right(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": lr},
            {"params": model.head_parameters(), "lr": lr * head_lr_mult}]


# ---------------------------------------------------------------- 07: IoU, band mIoU


def make_metrics(iou_of=lambda tp, gt, pred: tp / (gt + pred - tp), empty=math.nan, mean="defined",
                 acc="pixel", in_place=False, drop_background=False, scale=1.0):
    def my_metrics(C):
        if in_place:
            C.fill_diagonal_(0) if False else C.mul_(1)
            C[0, 0] += 0
            C += 0
            C[-1, -1] = C[-1, -1] + 1
        C = C.double()
        tp, gt, pred = C.diag(), C.sum(1), C.sum(0)
        union = gt + pred - tp
        iou = [iou_of(t, g, p).item() if u > 0 else empty for t, g, p, u in zip(tp, gt, pred, union, strict=True)]
        defined = [v for v in iou if not math.isnan(v)]
        miou = {"defined": sum(defined) / max(len(defined), 1), "all": sum(iou) / len(iou),
                "zeros": sum(defined) / len(iou)}[mean]
        pixel_acc = (tp.sum() / C.sum()).item() if acc == "pixel" else (tp[gt > 0] / gt[gt > 0]).mean().item()
        if drop_background:
            iou = iou[1:]
        return {"iou": iou, "miou": scale * miou, "pixel_acc": scale * pixel_acc}
    return my_metrics


def make_band_miou(band=ranlib.data.mixed_boundary_band, extra=0, whole=False, on_prediction=False,
                   per_image=False, scale=1.0):
    def my_band_miou(predictions, masks, width, num_classes):
        if per_image:
            return sum(make_band_miou()([p], [m], width, num_classes)
                       for p, m in zip(predictions, masks, strict=True)) / len(masks)
        if scale != 1.0:
            return scale * make_band_miou()(predictions, masks, width, num_classes)
        cm = ConfusionMatrix(num_classes)
        for p, m in zip(predictions, masks, strict=True):
            cm.update(p, m, mask=None if whole else band(p if on_prediction else m, width + extra))
        return cm.compute()["miou"]
    return my_band_miou


# ---------------------------------------------------------------- 08: confusion, fusion effect


def make_confusion(corners=False, mode="bilinear", softmax_first=False, softmax_dim=0, gap=True, one_minus=True,
                   swap_size=False, sigmoid=False, lowest=False):
    def my_confusion(logits, size):
        x = logits.softmax(0) if softmax_first else logits
        up = F.interpolate(x[None].float(), size=tuple(size)[::-1] if swap_size else size, mode=mode,
                           align_corners=corners if mode == "bilinear" else None)[0]
        p = up if softmax_first else (up.softmax(softmax_dim) if softmax_dim is not None else up)
        p = torch.sigmoid(up) if sigmoid else p
        top2 = p.topk(2, dim=0).values
        if lowest:
            top2 = torch.stack([p.max(0).values, p.min(0).values])
        value = top2[0] - top2[1] if gap else top2[0]
        return 1 - value if one_minus else value
    return my_confusion


def make_effect(void=True, scale=1.0, swap=False, compare_scores=False, per_image=False, count=False,
                fixed_after=False):
    def my_fusion_effect(original, fused, target):
        if per_image:
            each = [make_effect()(original[i:i + 1], fused[i:i + 1], target[i:i + 1]) for i in range(len(target))]
            return {k: sum(e[k] for e in each) / len(each) for k in each[0]}
        labelled = target != 255 if void else torch.ones_like(target, dtype=torch.bool)
        before, after = original.argmax(1), fused.argmax(1)
        n = labelled.sum()
        changed = ((original != fused).any(1) if compare_scores else (before != after)) & labelled
        fixed = (before != target) & (after == target) & labelled
        if fixed_after:
            fixed = (after == target) & labelled
        broken = (before == target) & (after != target) & labelled
        if count:
            n = 1
        if swap:
            fixed, broken = broken, fixed
        return {k: scale * (v.sum() / n).item() for k, v in (("changed", changed), ("fixed", fixed),
                                                             ("broken", broken))}
    return my_fusion_effect


# ---------------------------------------------------------------- 09: backbone + RAN


class MobileNetV3Backbone(nn.Module):
    output_stride = 16

    def __init__(self, dilated=True):
        super().__init__()
        import torchvision
        self.features = torchvision.models.mobilenet_v3_large(dilated=dilated).features
        self.out_channels = self.features[-1].out_channels

    def forward(self, images):
        return self.features(images)


class PlainMobileNet(MobileNetV3Backbone):
    def __init__(self):
        super().__init__(dilated=False)


class NoGradMobileNet(MobileNetV3Backbone):
    def forward(self, images):
        with torch.no_grad():
            return self.features(images)


class FixedChannelsMobileNet(MobileNetV3Backbone):
    def __init__(self):
        super().__init__()
        self.out_channels = 160


class DefaultInitHead(nn.Module):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation, dilation=dilation)

    def forward(self, f):
        return self.conv(f)


def make_ran_on_backbone(dilation=lambda b: 96 // b.output_stride, shared=False, reverse=True, attention="sigmoid",
                         in_channels=None, own_backbone=False, compose=True, head=LargeFOVHead):
    def ran_on_backbone(backbone, num_classes):
        d = dilation(backbone)
        channels = backbone.out_channels if in_channels is None else in_channels
        conv_org = head(channels, num_classes, dilation=d)
        conv_rev = conv_org if shared else head(channels, num_classes, dilation=d)
        if not compose:
            return conv_org, conv_rev
        return ranlib.RAN(MobileNetV3Backbone() if own_backbone else backbone, conv_org,
                          conv_rev if reverse else None, attention=attention)
    return ran_on_backbone


# ---------------------------------------------------------------- 09: band-mIoU curve, 08: the prediction

_CURVE_DATA = {}


def curve_data():
    """A random RAN with large class scores (so predictions vary) and the two probe masks as a dataset."""
    if not _CURVE_DATA:
        from ranlib.exercises.bands import probe_masks

        torch.manual_seed(0)
        model = ranlib.build_model(backbone="resnet18", num_classes=5).eval()
        with torch.no_grad():
            model.conv_org.conv.weight.mul_(100)
        _CURVE_DATA["args"] = (model, [(torch.randn(3, *m.shape), m) for m in probe_masks()], (1, 2, 4))
    return _CURVE_DATA["args"]


def make_curve(band=ranlib.data.mixed_boundary_band, width_of=lambda w: w):
    def band_miou_curve(model, dataset, widths):
        from ranlib.evaluate import predict_logits
        cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
        with torch.no_grad():
            for image, mask in dataset:
                p = predict_logits(model, image[None]).argmax(1)[0]
                for w in widths:
                    cms[w].update(p, mask, mask=None if band is None else band(mask, width_of(w)))
        return {w: cm.compute()["miou"] for w, cm in cms.items()}
    return band_miou_curve


RARELY = {"changed": 0.004, "fixed": 0.002, "broken": 0.001}
OFTEN = {"changed": 0.05, "fixed": 0.03, "broken": 0.01}


# ---------------------------------------------------------------- the table of exercises

# ---------------------------------------------------------------- 07: the step each loss gives the backbone


def make_loss_gradients(mistake=None):
    def my_loss_gradients(model, images, masks):
        if mistake == "eval":
            model.eval()
        x = images.requires_grad_() if mistake == "image" else images
        f = model.backbone(x)
        if mistake == "detach":
            f = f.detach()
        _, parts = ranlib.RANLoss()(model.classify(f), masks)
        wrt = x if mistake == "image" else f
        grads = {k: torch.autograd.grad(v, wrt, retain_graph=True)[0] for k, v in parts.items()}
        total = sum(grads.values())
        if mistake == "total_each":
            grads = {k: total for k in grads}
        norm = {"mean_abs": lambda g: g.abs().mean(), "squared": lambda g: g.pow(2).sum(),
                "per_image": lambda g: g.flatten(1).norm(dim=1).mean()}.get(mistake, lambda g: g.norm())
        out = {k: norm(g).item() for k, g in grads.items()}
        out["total"] = sum(out.values()) if mistake == "sum_norms" else norm(total).item()
        if mistake == "features":
            out = {k: f.norm().item() for k in out}
        if mistake == "batch":
            out = {k: v / images.shape[0] for k, v in out.items()}
        if mistake == "three_keys":
            out = {"original": 0.0, "reverse": 0.0} | out
        if mistake == "no_total":
            del out["total"]
        return out
    return my_loss_gradients


RAN_NORMS = {"original": 1.0, "reverse": 0.8, "fused": 1.2, "total": 2.5}  # made up: total 2.5x the baseline's
BASELINE_NORMS = {"fused": 1.0, "total": 1.0}


EXERCISES = {
    # name: (check, solution, [(wrong answer, phrase the message must contain), ...])
    "01 bands": (ex.check_bands, make_bands(), [
        (make_bands(window_of=lambda w: 2 * w + 3), "one pixel too wide"),
        (make_bands(void=False), "void pixels themselves are missing"),
        (make_bands(skip_background=False), "background boundaries counted"),
        (make_bands(fill=False), "not filled first"),
        (make_bands(swap=True), "swapped"),
        (make_bands(in_place=True), "in place"),
        (make_bands(one_sided=True), "only one side"),
        (make_bands(strict=False), ">= instead of >"),
        (make_bands(transpose=True), "H and W swapped"),
        (make_bands(window_of=lambda w: 2 * w), Located("different shapes")),
        (make_bands(dtype=torch.float32), "dtype bool expected"),
        (make_bands(window_of=lambda w: 3), "one pixel too narrow"),
    ]),
    "02 dilated conv1d": (ex.check_dilated_conv1d, make_conv1d(), [
        (make_conv1d(flip=True), "kernel flipped"),
        (make_conv1d(ignore_rate=True), "rate is ignored"),
        (make_conv1d(pad=False), "no padding"),
        (make_conv1d(wrap=True), "wrap around"),
        (make_conv1d(off_by_one=True), "off by one"),
        (make_conv1d(one_side=True), "shifted by"),
        (make_conv1d(in_place=True), "changed its input in place"),
        (make_conv1d(keep_dims=True), "return shape (L,)"),
        (lambda x, w, rate: make_conv1d()(x, w, 2), Located("differs from ranlib's")),
    ]),
    "02 CONV_org": (ex.check_conv_org, make_conv_org(), [
        (make_conv_org(bias=False), "bias=False"),
        (make_conv_org(padding=1), "padding (1, 1) with dilation 12"),
        (make_conv_org(dilation_used=1), "dilation (12, 12) expected"),
        (make_conv_org(std=None), "N(0, 0.01^2)"),
        (make_conv_org(relu=True), "ReLU"),
        (make_conv_org(skip_bias=True), "bias is not added"),
        (make_conv_org(padding="valid"), "'valid' means no padding"),
        (make_conv_org(dilation_type=float), "a float argument"),
        (make_conv_org(init_mean=0.01), "sets the MEAN"),
        (make_conv_org(std=0.1), "std 0.1"),
        (make_conv_org(zero_bias=False), "default bias init"),
        (make_conv_org(swap_channels=True), "in_channels and num_classes swapped"),
        (make_conv_org(dilation_used=12), "a fixed dilation 12"),
        (make_conv_org(in_channels_used=512), "a fixed channel count"),
        (make_conv_org(positional=True), "arguments in the wrong order"),
        (make_conv_org(reinit=True), "inside forward"),
        (make_conv_org(rebuild=True), "built inside forward"),
        (make_conv_org(detach=True), "detached"),
        (make_conv_org(in_place=True), "in place"),
        (make_conv_org(transpose=True), "H and W swapped"),
        (make_conv_org(mode="reflect"), "reflect or replicate padding"),
        (make_conv_org(padding=24), "padding 2 x dilation"),
        (make_conv_org(softmax=True), "a softmax or sigmoid in forward"),
    ]),
    "02 DeepLab": (ex.check_deeplab, make_deeplab(up_right), [
        (make_deeplab(lambda x, im: F.interpolate(x, scale_factor=8, mode="bilinear", align_corners=False)),
         "scale_factor=8"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=im.shape[-2:], mode="bilinear", align_corners=True)),
         "align_corners=True"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=im.shape[-2:])), "nearest"),
        (make_deeplab(lambda x, im: x), "no upsampling"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=im.shape[-2:][::-1], mode="bilinear", align_corners=False)),
         "H and W swapped"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=(im.shape[-2], im.shape[-2]), mode="bilinear",
                                                  align_corners=False)), "a fixed size"),
        (make_deeplab(up_right, classes=21), "a fixed channel or class count"),
        (make_deeplab(lambda x, im: up_right(x, im).softmax(1)), "a softmax in forward"),
        (make_deeplab(up_right, no_grad=True), "detached"),
    ]),
    "03 CONV_rev + NEG": (ex.check_reverse_branch, make_reverse(), [
        (make_reverse(forward="none"), "NEG missing"),
        (make_reverse(forward="neg_in"), "self.conv(-f)"),
        (make_reverse(not_class="neg", forward="reuse"), "NEG applied in not_class"),
        (make_reverse(forward="relu"), "sigmoid or ReLU after NEG"),
        (make_reverse(bias=False), "bias=False"),
        (make_reverse(padding=1), "padding (1, 1) with dilation 12"),
        (make_reverse(padding="valid"), "'valid' means no padding"),
        (make_reverse(forward="one_minus"), "NEG as 1 - x"),
        (make_reverse(forward="neg_bias"), "only the bias negated"),
        (make_reverse(init=False), "PyTorch's default init"),
        (make_reverse(fixed_dilation=12), "a fixed dilation 12"),
        (make_reverse(forward="detach"), "detached"),
        (make_reverse(forward="transpose"), "H and W swapped"),
        (make_reverse(forward="reinit"), "inside forward"),
        (make_reverse(not_class="neg", forward="neg_out"), "NEG applied in not_class"),
    ]),
    "04 Formula 1": (ex.check_reverse_attention, lambda x: 1.0 / (1.0 + torch.exp(x)), [
        (torch.sigmoid, "sigmoid(x) instead of sigmoid(-x)"),
        (lambda x: 1.0 / (1.0 + torch.exp(-x)), "sigmoid(x) instead of sigmoid(-x)"),
        (lambda x: torch.sigmoid(-x).detach(), "detached"),
        (lambda x: torch.sigmoid(x.neg_()), "in place"),
        (lambda x: torch.softmax(-x, dim=1 if x.dim() == 4 else 0), "softmax over the classes"),
        (lambda x: torch.exp(-x), "exp(-x) alone"),
        (lambda x: -torch.sigmoid(x), "NEG applied to the output"),
        (lambda x: 1.0 / (1.0 - torch.exp(x)), "1 / (1 - exp(x))"),
        (lambda x: 1 - x, "1 - x"),
        (lambda x: torch.sigmoid(-x.transpose(-1, -2)) if x.dim() == 4 else torch.sigmoid(-x), "H and W swapped"),
    ]),
    "04 normalised attention": (ex.check_normalized_attention,
                                lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125) - 4.0), [
        (lambda x: torch.sigmoid(-x), "Formula 1"),
        (lambda x: torch.sigmoid(1.0 / (x + 0.125) - 4.0), "ReLU is missing"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125)), "-4 is missing"),
        (lambda x: torch.sigmoid(1.0 / (x.relu_() + 0.125) - 4.0), "in place"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125) - 4.0).detach(), "detached"),
        (lambda x: torch.sigmoid(4.0 - 1.0 / (torch.relu(x) + 0.125)), "no minus in front"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125) + 4.0), "+4 instead of -4"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(-x) + 0.125) - 4.0), "relu(-x)"),
        (lambda x: 1.0 / (torch.relu(x) + 0.125) - 4.0, "the sigmoid is missing"),
        (lambda x: torch.sigmoid(1.0 / torch.relu(x) + 0.125 - 4.0), "0.125 missing or misplaced"),
    ]),
    "04 fusion": (ex.check_fuse, lambda o, r, a: o + a * r, [
        (lambda o, r, a: o - a * r, "NEG applied twice"),
        (lambda o, r, a: o + r, "attention is ignored"),
        (lambda o, r, a: a * o + r, "applied to the original scores"),
        (lambda o, r, a: a * r, "original scores are missing"),
        (lambda o, r, a: o.add_(a * r), "in place"),
        (lambda o, r, a: o + a.detach() * r, "detached"),
        (lambda o, r, a: o + (1 - a) * r, "1 - A"),
        (lambda o, r, a: (o + r) * a, "only the reverse scores are weighted"),
        (lambda o, r, a: o + 0.5 * a * r, Located("differs from ranlib's")),
    ]),
    "05 assembled RAN": (ex.check_ran, make_ran(), [
        (make_ran(reverse=lambda r: r), "NEG missing"),
        (make_ran(attention=lambda o, r: torch.sigmoid(o)), "sigmoid(x) instead of sigmoid(-x)"),
        (make_ran(attention=lambda o, r: torch.sigmoid(-o).detach()), "detached"),
        (make_ran(fuse=lambda o, r, a: o + a.detach() * r), "detached inside the fusion"),
        (make_ran(fuse=lambda o, r, a: o + r), "attention is ignored"),
        (make_ran(attention=lambda o, r: torch.sigmoid(-r)), "computed from the reverse scores"),
        (make_ran(baseline_reverse=True), "no conv_rev"),
        (make_ran(head=DefaultInitHead), "PyTorch's default init"),
        (make_ran(shared=True), "the same module"),
        (make_ran(neg_features=True), "NEG applied to the features"),
        (make_ran(attention=lambda o, r: torch.softmax(-o, 1)), "a softmax over the classes"),
        (make_ran(detach_features=True), "detached"),
        (make_ran(fuse=lambda o, r, a: o - a * r), "NEG applied twice"),
        (make_ran(fuse=lambda o, r, a: a * r), "original scores are missing"),
        (make_ran(reinit=True), "inside forward"),
    ]),
    "05 three losses": (ex.check_ran_loss, make_loss(), [
        (make_loss(combine=lambda v: sum(v) / len(list(v))), "averaged instead of summed"),
        (make_loss(ignore=False), "ignore_index=255"),
        (make_loss(up=lambda x, s: F.interpolate(x, size=s, mode="bilinear", align_corners=True)),
         "align_corners=True"),
        (make_loss(up=lambda x, s: F.interpolate(x, size=s)), "nearest"),
        (make_loss(target_small=True), "labels were shrunk"),
        (make_loss(reverse_sign=-1), "already NEG"),
        (make_loss(baseline_all=True), "baseline has only 'fused'"),
        (make_loss(reduction="sum"), "reduction='sum'"),
        (make_loss(per_image=True), "a mean of per-image losses"),
        (make_loss(softmax=True), "a softmax before cross_entropy"),
        (make_loss(up=lambda x, s: F.interpolate(x, size=tuple(s)[::-1], mode="bilinear", align_corners=False)),
         "(H, W), in that order"),
        (make_loss(detach="reverse"), "detached"),
        (make_loss(combine=lambda v: sum(v) + list(v)[-1]), "counted twice"),
        (make_loss(other_branch=True), "computed on another branch"),
        (make_loss(loss=F.nll_loss), "nll_loss"),
        (make_loss(loss=lambda x, t, **k: F.cross_entropy(x, t, label_smoothing=0.1, **k)),
         Located("differs from ranlib's")),
    ]),
    "06 parameter groups": (ex.check_param_groups, groups_right, [
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr},
                                   {"params": m.head_parameters(), "lr": lr}], "multiply by head_lr_mult"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr * mult},
                                   {"params": m.head_parameters(), "lr": lr}], "swapped"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr},
                                   {"params": list(m.conv_org.parameters()), "lr": lr * mult}],
         "CONV_rev's parameters are missing"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr},
                                   {"params": m.head_parameters(), "lr": 10 * lr}], "not a fixed 10"),
        (lambda m, lr, mult=10.0: [{"params": list(m.parameters()), "lr": lr}], "2 groups expected"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr},
                                   {"params": m.head_parameters(), "lr": lr / mult}], "lr / head_lr_mult"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr},
                                   {"params": list(m.parameters()), "lr": lr * mult}], "in both groups"),
        (lambda m, lr, mult=10.0: [{"params": m.backbone_parameters(), "lr": lr * mult},
                                   {"params": m.head_parameters(), "lr": lr * mult}],
         "the backbone trains at the base lr"),
    ]),
    "06 poly schedule": (ex.check_poly, lambda t, T, p=0.9: (1 - t / T) ** p, [
        (lambda t, T, p=0.9: 1 - (t / T) ** p, "the power applies to (1 - t/T)"),
        (lambda t, T, p=0.9: 1 - t / T, "power is missing"),
        (lambda t, T, p=0.9: (1 - (t + 1) / T) ** p, "off by one"),
        (lambda t, T, p=0.9: (1 - t // T) ** p, "integer division"),
        (lambda t, T, p=0.9: (1 - t / T) ** 0.9, "power argument is ignored"),
        (lambda t, T, p=0.9: (1 - t / (T - 1)) ** p if t < T else 0.0, "T - 1"),
        (lambda t, T, p=0.9: (1 - t / T) * p, "* instead of **"),
        (lambda t, T, p=0.9: (t / T) ** p, "the factor grows"),
        (lambda t, T, p=0.9: p ** (1 - t / T), "base and exponent swapped"),
        (lambda t, T, p=0.9: max((1 - t / T) ** p, 0.01), Located("expected 0.000000")),
    ]),
    "07 IoU": (ex.check_iou, make_metrics(), [
        (make_metrics(empty=0.0), "0/0 counted as IoU 0"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp / gt), "recall"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp / (gt + pred)), "TP counted twice"),
        (make_metrics(mean="all"), "includes a nan"),
        (make_metrics(mean="zeros"), "counted as 0 in the mean"),
        (make_metrics(acc="class"), "mean class accuracy"),
        (make_metrics(in_place=True), "in place"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp // (gt + pred - tp)), "integer division"),
        (make_metrics(iou_of=lambda tp, gt, pred: 2 * tp / (gt + pred)), "Dice"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp / pred), "precision"),
        (make_metrics(drop_background=True), "left out: every class has an IoU"),
        (make_metrics(scale=100.0), "a percentage"),
        (make_metrics(iou_of=lambda tp, gt, pred: (tp + 1) / (gt + pred - tp + 1)), Located("should be")),
    ]),
    "07 band mIoU": (ex.check_band_miou, make_band_miou(), [
        (make_band_miou(band=ranlib.data.boundary_band), "use mixed_boundary_band"),
        (make_band_miou(whole=True), "the whole image"),
        (make_band_miou(extra=1), "one pixel too wide"),
        (make_band_miou(on_prediction=True), "band of the prediction"),
        (make_band_miou(per_image=True), "a mean of per-image mIoUs"),
        (make_band_miou(scale=100.0), "a percentage"),
    ]),
    "07 loss gradients at the backbone": (ex.check_loss_gradients, make_loss_gradients(), [
        (make_loss_gradients("total_each"), "each term got the gradient of the summed loss"),
        (make_loss_gradients("sum_norms"), "'total' is the sum of the terms' norms"),
        (make_loss_gradients("squared"), "squared norms"),
        (make_loss_gradients("mean_abs"), "the mean of |gradient|"),
        (make_loss_gradients("features"), "the norm of the features f themselves"),
        (make_loss_gradients("per_image"), "a mean of per-image norms"),
        (make_loss_gradients("image"), "the gradient with respect to the images"),
        (make_loss_gradients("eval"), "eval mode"),
        (make_loss_gradients("batch"), "divided by the batch size"),
        (make_loss_gradients("three_keys"), "the baseline has one loss term"),
        (make_loss_gradients("no_total"), "'total' is missing"),
        (make_loss_gradients("detach"), "detached"),
    ]),
    "07 the control the step calls for": (lambda a: ex.check_step_control(*a),
                                          ("baseline-step", 2.5, RAN_NORMS, BASELINE_NORMS), [
        (("none", 2.5, RAN_NORMS, BASELINE_NORMS), "could come from that larger step"),
        (("more-iterations", 2.5, RAN_NORMS, BASELINE_NORMS), "the confound is the backbone's step"),
        (("head-lr", 2.5, RAN_NORMS, BASELINE_NORMS), "the confound is the backbone's step"),
        (("baseline-step", 0.4, RAN_NORMS, BASELINE_NORMS), "the baseline's over RAN's"),
        (("baseline-step", 3.0, RAN_NORMS, BASELINE_NORMS), "the *summed* gradient"),
        (("baseline-step", 1.2, RAN_NORMS, BASELINE_NORMS), "only the fused terms"),
        (("Baseline-step", 2.5, RAN_NORMS, BASELINE_NORMS), "CONTROL should be one of"),
    ]),
    "08 confusion score": (ex.check_confusion, make_confusion(), [
        (make_confusion(corners=True), "align_corners=True"),
        (make_confusion(softmax_first=True), "softmax before upsampling"),
        (make_confusion(softmax_dim=None), "no softmax"),
        (make_confusion(softmax_dim=-1), "wrong dimension"),
        (make_confusion(gap=False), "gap to the runner-up"),
        (make_confusion(mode="nearest"), "nearest"),
        (make_confusion(swap_size=True), "H and W swapped"),
        (make_confusion(sigmoid=True), "sigmoid instead of softmax"),
        (make_confusion(lowest=True), "the runner-up is the second largest"),
        (make_confusion(one_minus=False), "without '1 -'"),
        (lambda logits, size: make_confusion()(logits / 2, size), Located("differs from ranlib's")),
    ]),
    "08 fusion effect (measurement)": (ex.check_fusion_effect, make_effect(), [
        (make_effect(void=False), "void pixels (255) counted"),
        (make_effect(scale=100.0), "a percentage"),
        (make_effect(swap=True), "fixed and broken swapped"),
        (make_effect(compare_scores=True), "compared the scores"),
        (make_effect(per_image=True), "a mean of per-image fractions"),
        (make_effect(count=True), "a count, not a fraction"),
        (make_effect(fixed_after=True), "fixed is wrong before AND right after"),
    ]),
    "09 backbone + RAN": (lambda answer: ex.check_backbone_and_ran(*answer),
                          (MobileNetV3Backbone, make_ran_on_backbone()), [
        ((PlainMobileNet, make_ran_on_backbone()), "not dilated"),
        ((MobileNetV3Backbone, make_ran_on_backbone(dilation=lambda b: 12)), "96 / 16 = 6"),
        ((MobileNetV3Backbone, make_ran_on_backbone(shared=True)), "share their weights"),
        ((MobileNetV3Backbone, make_ran_on_backbone(reverse=False)), "that is the baseline"),
        ((MobileNetV3Backbone, make_ran_on_backbone(attention=None)), "subtract variant"),
        ((MobileNetV3Backbone, make_ran_on_backbone(attention="normalized")), "use Formula 1"),
        ((MobileNetV3Backbone, make_ran_on_backbone(in_channels=960)), "96 -> 21 channels expected"),
        ((MobileNetV3Backbone, make_ran_on_backbone(own_backbone=True)), "not the one passed in"),
        ((MobileNetV3Backbone, make_ran_on_backbone(compose=False)), "return RAN(backbone, conv_org, conv_rev)"),
        ((MobileNetV3Backbone, make_ran_on_backbone(dilation=lambda b: 6)), "a fixed dilation 6"),
        ((MobileNetV3Backbone, make_ran_on_backbone(dilation=lambda b: 96 / b.output_stride)), "a float argument"),
        ((NoGradMobileNet, make_ran_on_backbone()), "detached"),
        ((FixedChannelsMobileNet, make_ran_on_backbone()), "another stage"),
        ((MobileNetV3Backbone, make_ran_on_backbone(head=DefaultInitHead)), "PyTorch's default init"),
    ]),
    "09 band-mIoU curve": (lambda fn: ex.check_band_miou_curve(fn, *curve_data()), make_curve(), [
        (make_curve(band=ranlib.data.boundary_band), "boundary band"),
        (make_curve(band=None), "whole-image"),
        (make_curve(width_of=lambda w: 2 * w), "band of width"),
    ]),
    "08 prediction before measuring": (lambda p: ex.check_fusion_prediction(*p), ("often", OFTEN), [
        (("often", RARELY), "you predicted the fusion changes the prediction often"),
        (("rarely", OFTEN), "you predicted the fusion changes the prediction rarely"),
        (("maybe", OFTEN), "'rarely' or 'often'"),
        (("Often", OFTEN), "spelling"),
        (("often", {"changed": 0.003, "fixed": 0.001, "broken": 0.001},
          {"mixed boundary": {"relative_change": 0.02, "open_other": 0.1}}), "you predicted"),
        (("rarely", OFTEN, {"mixed boundary": {"relative_change": 0.3, "open_other": 0.3}}), "you predicted"),
    ]),
}

CASES = [(name, i) for name, (_, _, wrong) in EXERCISES.items() for i in range(len(wrong))]


@functools.cache
def outcome(name: str, index: int) -> BaseException | None:
    """What the check raised for wrong answer ``index`` of ``name`` (None: it accepted the answer), computed once.

    The traceback and the chained context are dropped, so that the cached errors do not keep the checks' models
    alive."""
    check, _, wrong = EXERCISES[name]
    answer, _ = wrong[index]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(answer)
    except Exception as error:  # noqa: BLE001 - any other exception is a finding the tests report
        error.__traceback__, error.__context__, error.__cause__ = None, None, None
        return error
    finally:
        torch.set_num_threads(threads)
    return None


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_passes(name, one_thread, capsys):
    check, solution, _ = EXERCISES[name]
    check(solution)
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_wrong_answer_named(name, index):
    _, _, wrong = EXERCISES[name]
    _, phrase = wrong[index]
    error = outcome(name, index)
    assert isinstance(error, ex.ExerciseError), f"{name}: the check raised {error!r}, not ExerciseError"
    message = str(error)
    assert str(phrase) in message, f"{name}: the message does not name the mistake ({phrase!r}):\n{message}"
    assert len(message.splitlines()) <= 2, message
    rendered = error._render_traceback_()
    assert rendered[0].startswith("✗ ") and len(rendered) <= 2


def test_stub_is_not_done_yet(one_thread):
    def stub(*args, **kwargs):
        raise NotImplementedError("Your turn: write the function")

    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            raise NotImplementedError("Your turn")

    for check, answer, what in ((ex.check_reverse_attention, stub, "my_reverse_attention"),
                                (ex.check_conv_org, Stub, "MyConvOrg"), (ex.check_iou, stub, "my_metrics"),
                                (ex.check_ran_loss, stub, "my_ran_loss"), (ex.check_bands, stub, "my_bands")):
        with pytest.raises(ex.NotDoneError, match=f"not done yet: write {what}"):
            check(answer)
    with pytest.raises(ex.NotDoneError, match="not done yet"):
        ex.check_fusion_prediction(..., {"changed": 0.0, "fixed": 0.0, "broken": 0.0})


def test_crash_in_student_code_is_one_line():
    def crashes(x):
        return x @ torch.ones(5, 5, 5)

    with pytest.raises(ex.ExerciseError) as caught:
        ex.check_reverse_attention(crashes)
    assert "my_reverse_attention raised RuntimeError" in str(caught.value)
    assert len(str(caught.value).splitlines()) <= 2


def test_fusion_prediction_consistency(capsys):
    rarely, often = RARELY, OFTEN
    ex.check_fusion_prediction("rarely", rarely)
    ex.check_fusion_prediction("often", often)
    assert capsys.readouterr().out.count("✓") == 2
    with pytest.raises(ex.ExerciseError, match="you predicted the fusion changes the prediction often"):
        ex.check_fusion_prediction("often", rarely)
    with pytest.raises(ex.ExerciseError, match="changed 5.00% of the labelled pixels"):
        ex.check_fusion_prediction("rarely", often)
    with pytest.raises(ex.ExerciseError, match="'rarely' or 'often'"):
        ex.check_fusion_prediction("maybe", often)


def test_fusion_effect_reference_by_hand():
    # 1 image, 2 classes, 4 pixels: labels 0, 1, 1, 255
    original = torch.tensor([[1.0, 1.0, -1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 1, 4)
    fused = torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]]).reshape(1, 2, 1, 4)
    target = torch.tensor([[[0, 1, 1, 255]]])
    # argmax before: 0 0 1 (0); after: 0 1 0 (1). Pixel 1 fixed, pixel 2 broken, the void pixel not counted.
    assert ex.fusion_effect(original, fused, target) == pytest.approx({"changed": 2 / 3, "fixed": 1 / 3,
                                                                        "broken": 1 / 3})


def count_table() -> list[tuple[str, int, int, int]]:
    """(exercise, wrong answers tried, caught with the expected phrase, of those named) for every exercise, from
    the same single run of each wrong answer as the per-answer tests (``outcome``)."""
    rows = []
    for name, (_, _, wrong) in EXERCISES.items():
        caught = named = 0
        for index, (_, phrase) in enumerate(wrong):
            error = outcome(name, index)
            if isinstance(error, ex.ExerciseError) and phrase in str(error):
                caught += 1
                named += names_the_mistake(str(error), phrase)
        rows.append((name, len(wrong), caught, named))
    return rows


def test_most_wrong_answers_are_named():
    rows = count_table()
    tried, caught, named = (sum(r[i] for r in rows) for i in (1, 2, 3))
    assert caught == tried, [r for r in rows if r[2] < r[1]]
    assert named >= 0.8 * tried, f"{named} of {tried} wrong answers named"


if __name__ == "__main__":
    torch.set_num_threads(1)
    rows = count_table()
    print("| exercise | wrong answers tried | caught | mistake named | only located |\n|---|---:|---:|---:|---:|")
    for name, tried, caught, named in rows:
        print(f"| {name} | {tried} | {caught} | {named} | {caught - named} |")
    tried, caught, named = (sum(r[i] for r in rows) for i in (1, 2, 3))
    print(f"| **{len(rows)} exercises** | **{tried}** | **{caught}** | **{named}** | **{caught - named}** |")
