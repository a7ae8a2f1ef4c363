"""Every exercise check passes the solution and rejects plausible wrong answers, naming the mistake.

``WRONG[exercise]`` lists (wrong answer, a phrase the check's message must contain). The check must raise
``ExerciseError`` (a short message, no traceback wall) whose text contains that phrase; the solution must pass.
``python tests/test_exercises.py`` prints the count table of the README.
"""

from __future__ import annotations

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

# ---------------------------------------------------------------- 01: bands


def window_max(x, width, window=None):
    window = 2 * width + 1 if window is None else window
    return F.max_pool2d(x[None, None], window, stride=1, padding=window // 2)[0, 0]


def make_bands(window_of=lambda w: 2 * w + 1, fill=True, void=True, skip_background=True, swap=False,
               in_place=False):
    def my_bands(mask, width):
        window = window_of(width)
        if in_place:
            mask[mask == 255] = 0
        labels = (fill_void(mask[None])[0] if fill else mask).float()
        boundary = window_max(labels, width, window) != -window_max(-labels, width, window)
        if void:
            boundary = boundary | (mask == 255)
        if skip_background:
            high, low = torch.where(labels > 0, labels, -1.0), torch.where(labels > 0, labels, 1e9)
            mixed = window_max(high, width, window) > -window_max(-low, width, window)
        else:
            mixed = boundary.clone()
        return (mixed, boundary) if swap else (boundary, mixed)
    return my_bands


# ---------------------------------------------------------------- 02: dilated conv, CONV_org, DeepLab


def make_conv1d(flip=False, ignore_rate=False, pad=True, wrap=False):
    def my_dilated_conv1d(x, w, rate):
        r = 1 if ignore_rate else rate
        w = w.flip(0) if flip else w
        L = x.shape[0]
        if wrap:
            return sum(w[k] * torch.roll(x, -(k - 1) * r) for k in range(3))
        if not pad:
            return sum(w[k] * x[k * r:L - (2 - k) * r] for k in range(3))
        padded = torch.cat([torch.zeros(r), x, torch.zeros(r)])
        return sum(w[k] * padded[k * r:k * r + L] for k in range(3))
    return my_dilated_conv1d


def make_conv_org(padding=None, dilation_used=None, bias=True, std=0.01, relu=False, skip_bias=False):
    class MyConvOrg(nn.Module):
        def __init__(self, in_channels, num_classes, dilation=12):
            super().__init__()
            d = dilation if dilation_used is None else dilation_used
            self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=d if padding is None else padding,
                                  dilation=d, bias=bias)
            if std is not None:
                nn.init.normal_(self.conv.weight, std=std)
            if bias:
                nn.init.zeros_(self.conv.bias)

        def forward(self, f):
            if skip_bias:
                return F.conv2d(f, self.conv.weight, None, 1, self.conv.padding, self.conv.dilation)
            out = self.conv(f)
            return out.relu() if relu else out
    return MyConvOrg


def make_deeplab(upsample):
    class MyDeepLab(nn.Module):
        def __init__(self, backbone_name="resnet18", num_classes=21):
            super().__init__()
            self.backbone = build_backbone(backbone_name)
            self.conv_org = make_conv_org()(self.backbone.out_channels, num_classes)

        def forward(self, images):
            return upsample(self.conv_org(self.backbone(images)), images)
    return MyDeepLab


def up_right(x, images):
    return F.interpolate(x, size=images.shape[-2:], mode="bilinear", align_corners=False)


# ---------------------------------------------------------------- 03: reverse branch


def make_reverse(forward="neg_out", not_class="plain", padding=None, bias=True):
    class MyReverseBranch(nn.Module):
        def __init__(self, in_channels, num_classes, dilation=12):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation if padding is None else padding,
                                  dilation=dilation, bias=bias)
            nn.init.normal_(self.conv.weight, std=0.01)
            if bias:
                nn.init.zeros_(self.conv.bias)

        def not_class(self, f):
            return -self.conv(f) if not_class == "neg" else self.conv(f)

        def forward(self, f):
            return {"neg_out": lambda: -self.not_class(f), "none": lambda: self.not_class(f),
                    "neg_in": lambda: self.conv(-f), "relu": lambda: (-self.not_class(f)).relu(),
                    "reuse": lambda: self.not_class(f) * -1 if not_class == "plain" else self.not_class(f)}[forward]()
    return MyReverseBranch


# ---------------------------------------------------------------- 05: the model and the losses


def make_ran(reverse=lambda r: -r, attention=lambda o, r: torch.sigmoid(-o),
             fuse=lambda o, r, a: o + a * r, baseline_reverse=False):
    class MyRAN(nn.Module):
        def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
            super().__init__()
            self.variant = variant
            self.backbone = build_backbone(backbone)
            self.conv_org = LargeFOVHead(self.backbone.out_channels, num_classes)
            self.conv_rev = (LargeFOVHead(self.backbone.out_channels, num_classes)
                             if variant != "baseline" or baseline_reverse else None)

        def forward(self, images):
            f = self.backbone(images)
            original = self.conv_org(f)
            if self.variant == "baseline":
                return RANOutput(original, -self.conv_rev(f) if baseline_reverse else None, None, original)
            rev = reverse(self.conv_rev(f))
            if self.variant == "subtract":
                return RANOutput(original, rev, None, original + rev)
            a = attention(original, rev)
            return RANOutput(original, rev, a, fuse(original, rev, a))
    return MyRAN


def make_loss(up=lambda x, size: F.interpolate(x, size=size, mode="bilinear", align_corners=False),
              ignore=True, combine=sum, baseline_all=False, reverse_sign=1, target_small=False, reduction="mean"):
    def my_ran_loss(output, target, ignore_index=255):
        if output.reverse is None and not baseline_all:
            branches = {"fused": output.fused}
        else:
            branches = {"original": output.original, "reverse": output.reverse, "fused": output.fused}
            if output.reverse is None:
                branches["reverse"] = output.original
        parts = {}
        for name, logits in branches.items():
            if name == "reverse":
                logits = reverse_sign * logits
            if target_small:
                t = F.interpolate(target[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
                parts[name] = F.cross_entropy(logits, t, ignore_index=ignore_index)
                continue
            logits = up(logits, target.shape[-2:])
            kwargs = {"ignore_index": ignore_index} if ignore else {}
            parts[name] = F.cross_entropy(logits, target, reduction=reduction, **kwargs)
        total = combine(parts.values()) if combine is not sum else sum(parts.values())
        return total, parts
    return my_ran_loss


# ---------------------------------------------------------------- 06: optimiser groups, poly


def groups_right(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": lr},
            {"params": model.head_parameters(), "lr": lr * head_lr_mult}]


# ---------------------------------------------------------------- 07: IoU, band mIoU


def make_metrics(iou_of=lambda tp, gt, pred: tp / (gt + pred - tp), empty=math.nan, mean="defined",
                 acc="pixel", in_place=False):
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
        return {"iou": iou, "miou": miou, "pixel_acc": pixel_acc}
    return my_metrics


def make_band_miou(band=ranlib.data.mixed_boundary_band, extra=0, whole=False, on_prediction=False):
    def my_band_miou(predictions, masks, width, num_classes):
        cm = ConfusionMatrix(num_classes)
        for p, m in zip(predictions, masks, strict=True):
            cm.update(p, m, mask=None if whole else band(p if on_prediction else m, width + extra))
        return cm.compute()["miou"]
    return my_band_miou


# ---------------------------------------------------------------- 08: confusion, fusion effect


def make_confusion(corners=False, mode="bilinear", softmax_first=False, softmax_dim=0, gap=True, one_minus=True):
    def my_confusion(logits, size):
        x = logits.softmax(0) if softmax_first else logits
        up = F.interpolate(x[None].float(), size=size, mode=mode,
                           align_corners=corners if mode == "bilinear" else None)[0]
        p = up if softmax_first else (up.softmax(softmax_dim) if softmax_dim is not None else up)
        top2 = p.topk(2, dim=0).values
        value = top2[0] - top2[1] if gap else top2[0]
        return 1 - value if one_minus else value
    return my_confusion


def make_effect(void=True, scale=1.0, swap=False, compare_scores=False):
    def my_fusion_effect(original, fused, target):
        labelled = target != 255 if void else torch.ones_like(target, dtype=torch.bool)
        before, after = original.argmax(1), fused.argmax(1)
        n = labelled.sum()
        changed = ((original != fused).any(1) if compare_scores else (before != after)) & labelled
        fixed = (before != target) & (after == target) & labelled
        broken = (before == target) & (after != target) & labelled
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


def make_ran_on_backbone(dilation=lambda b: 96 // b.output_stride, shared=False, reverse=True, attention="sigmoid",
                         in_channels=None, own_backbone=False, compose=True):
    def ran_on_backbone(backbone, num_classes):
        d = dilation(backbone)
        channels = backbone.out_channels if in_channels is None else in_channels
        conv_org = LargeFOVHead(channels, num_classes, dilation=d)
        conv_rev = conv_org if shared else LargeFOVHead(channels, num_classes, dilation=d)
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
        cms = {w: ConfusionMatrix(5) for w in widths}
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

EXERCISES = {
    # name: (check, solution, [(wrong answer, phrase the message must contain), ...])
    "01 bands": (ex.check_bands, make_bands(), [
        (make_bands(window_of=lambda w: 2 * w + 3), "one pixel too wide"),
        (make_bands(void=False), "void pixels themselves are missing"),
        (make_bands(skip_background=False), "background boundaries counted"),
        (make_bands(fill=False), "not filled first"),
        (make_bands(swap=True), "swapped"),
        (make_bands(in_place=True), "in place"),
    ]),
    "02 dilated conv1d": (ex.check_dilated_conv1d, make_conv1d(), [
        (make_conv1d(flip=True), "kernel flipped"),
        (make_conv1d(ignore_rate=True), "rate is ignored"),
        (make_conv1d(pad=False), "no padding"),
        (make_conv1d(wrap=True), "wrap around"),
    ]),
    "02 CONV_org": (ex.check_conv_org, make_conv_org(), [
        (make_conv_org(bias=False), "bias=False"),
        (make_conv_org(padding=1), "padding (1, 1) with dilation 12"),
        (make_conv_org(dilation_used=1), "dilation (12, 12) expected"),
        (make_conv_org(std=None), "N(0, 0.01^2)"),
        (make_conv_org(relu=True), "ReLU"),
        (make_conv_org(skip_bias=True), "bias is not added"),
    ]),
    "02 DeepLab": (ex.check_deeplab, make_deeplab(up_right), [
        (make_deeplab(lambda x, im: F.interpolate(x, scale_factor=8, mode="bilinear", align_corners=False)),
         "scale_factor=8"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=im.shape[-2:], mode="bilinear", align_corners=True)),
         "align_corners=True"),
        (make_deeplab(lambda x, im: F.interpolate(x, size=im.shape[-2:])), "nearest"),
        (make_deeplab(lambda x, im: x), "no upsampling"),
    ]),
    "03 CONV_rev + NEG": (ex.check_reverse_branch, make_reverse(), [
        (make_reverse(forward="none"), "NEG missing"),
        (make_reverse(forward="neg_in"), "self.conv(-f)"),
        (make_reverse(not_class="neg", forward="reuse"), "NEG applied in not_class"),
        (make_reverse(forward="relu"), "sigmoid or ReLU after NEG"),
        (make_reverse(bias=False), "bias=False"),
        (make_reverse(padding=1), "padding (1, 1) with dilation 12"),
    ]),
    "04 Formula 1": (ex.check_reverse_attention, lambda x: 1.0 / (1.0 + torch.exp(x)), [
        (torch.sigmoid, "sigmoid(x) instead of sigmoid(-x)"),
        (lambda x: 1.0 / (1.0 + torch.exp(-x)), "sigmoid(x) instead of sigmoid(-x)"),
        (lambda x: torch.sigmoid(-x).detach(), "detached"),
        (lambda x: torch.sigmoid(x.neg_()), "in place"),
        (lambda x: torch.softmax(-x, dim=1 if x.dim() == 4 else 0), "softmax over the classes"),
        (lambda x: torch.exp(-x), "exp(-x) alone"),
    ]),
    "04 normalised attention": (ex.check_normalized_attention,
                                lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125) - 4.0), [
        (lambda x: torch.sigmoid(-x), "Formula 1"),
        (lambda x: torch.sigmoid(1.0 / (x + 0.125) - 4.0), "ReLU is missing"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125)), "-4 is missing"),
        (lambda x: torch.sigmoid(1.0 / (x.relu_() + 0.125) - 4.0), "in place"),
        (lambda x: torch.sigmoid(1.0 / (torch.relu(x) + 0.125) - 4.0).detach(), "detached"),
        (lambda x: torch.sigmoid(4.0 - 1.0 / (torch.relu(x) + 0.125)), "no minus in front"),
    ]),
    "04 fusion": (ex.check_fuse, lambda o, r, a: o + a * r, [
        (lambda o, r, a: o - a * r, "NEG applied twice"),
        (lambda o, r, a: o + r, "attention is ignored"),
        (lambda o, r, a: a * o + r, "applied to the original scores"),
        (lambda o, r, a: a * r, "original scores are missing"),
        (lambda o, r, a: o.add_(a * r), "in place"),
        (lambda o, r, a: o + a.detach() * r, "detached"),
    ]),
    "05 assembled RAN": (ex.check_ran, make_ran(), [
        (make_ran(reverse=lambda r: r), "NEG missing"),
        (make_ran(attention=lambda o, r: torch.sigmoid(o)), "sigmoid(x) instead of sigmoid(-x)"),
        (make_ran(attention=lambda o, r: torch.sigmoid(-o).detach()), "detached"),
        (make_ran(fuse=lambda o, r, a: o + a.detach() * r), "detached inside the fusion"),
        (make_ran(fuse=lambda o, r, a: o + r), "attention is ignored"),
        (make_ran(attention=lambda o, r: torch.sigmoid(-r)), "computed from the reverse scores"),
        (make_ran(baseline_reverse=True), "no conv_rev"),
    ]),
    "05 three losses": (ex.check_ran_loss, make_loss(), [
        (make_loss(combine=lambda v: sum(v) / len(list(v))), "averaged instead of summed"),
        (make_loss(ignore=False), "ignore index 255"),
        (make_loss(up=lambda x, s: F.interpolate(x, size=s, mode="bilinear", align_corners=True)),
         "align_corners=True"),
        (make_loss(up=lambda x, s: F.interpolate(x, size=s)), "nearest"),
        (make_loss(target_small=True), "labels were shrunk"),
        (make_loss(reverse_sign=-1), "already NEG"),
        (make_loss(baseline_all=True), "baseline has only 'fused'"),
        (make_loss(reduction="sum"), "reduction='sum'"),
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
    ]),
    "06 poly schedule": (ex.check_poly, lambda t, T, p=0.9: (1 - t / T) ** p, [
        (lambda t, T, p=0.9: 1 - (t / T) ** p, "the power applies to (1 - t/T)"),
        (lambda t, T, p=0.9: 1 - t / T, "power is missing"),
        (lambda t, T, p=0.9: (1 - (t + 1) / T) ** p, "off by one"),
        (lambda t, T, p=0.9: (1 - t // T) ** p, "integer division"),
        (lambda t, T, p=0.9: (1 - t / T) ** 0.9, "power argument is ignored"),
        (lambda t, T, p=0.9: (1 - t / (T - 1)) ** p if t < T else 0.0, "T - 1"),
    ]),
    "07 IoU": (ex.check_iou, make_metrics(), [
        (make_metrics(empty=0.0), "0/0 counted as IoU 0"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp / gt), "recall"),
        (make_metrics(iou_of=lambda tp, gt, pred: tp / (gt + pred)), "TP counted twice"),
        (make_metrics(mean="all"), "includes a nan"),
        (make_metrics(mean="zeros"), "counted as 0 in the mean"),
        (make_metrics(acc="class"), "mean class accuracy"),
        (make_metrics(in_place=True), "in place"),
    ]),
    "07 band mIoU": (ex.check_band_miou, make_band_miou(), [
        (make_band_miou(band=ranlib.data.boundary_band), "use mixed_boundary_band"),
        (make_band_miou(whole=True), "the whole image"),
        (make_band_miou(extra=1), "one pixel too wide"),
        (make_band_miou(on_prediction=True), "band of the prediction"),
    ]),
    "08 confusion score": (ex.check_confusion, make_confusion(), [
        (make_confusion(corners=True), "align_corners=True"),
        (make_confusion(softmax_first=True), "softmax before upsampling"),
        (make_confusion(softmax_dim=None), "no softmax"),
        (make_confusion(softmax_dim=-1), "wrong dimension"),
        (make_confusion(gap=False), "gap to the runner-up"),
        (make_confusion(mode="nearest"), "nearest"),
    ]),
    "08 fusion effect (measurement)": (ex.check_fusion_effect, make_effect(), [
        (make_effect(void=False), "void pixels (255) counted"),
        (make_effect(scale=100.0), "a percentage"),
        (make_effect(swap=True), "fixed and broken swapped"),
        (make_effect(compare_scores=True), "compared the scores"),
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
    ]),
}

CASES = [(name, i) for name, (_, _, wrong) in EXERCISES.items() for i in range(len(wrong))]


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_passes(name, one_thread, capsys):
    check, solution, _ = EXERCISES[name]
    check(solution)
    assert capsys.readouterr().out.startswith("✓ ")


@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_wrong_answer_named(name, index, one_thread):
    check, _, wrong = EXERCISES[name]
    answer, phrase = wrong[index]
    with pytest.raises(ex.ExerciseError) as caught:
        check(answer)
    message = str(caught.value)
    assert phrase in message, f"{name}: the message does not name the mistake ({phrase!r}):\n{message}"
    assert len(message.splitlines()) <= 2, message
    rendered = caught.value._render_traceback_()
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


def count_table() -> list[tuple[str, int, int]]:
    """(exercise, wrong answers tried, caught with a message naming the mistake) for every exercise."""
    import contextlib
    import io

    rows = []
    for name, (check, _, wrong) in EXERCISES.items():
        caught = 0
        for answer, phrase in wrong:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    check(answer)
            except ex.ExerciseError as error:
                caught += phrase in str(error)
        rows.append((name, len(wrong), caught))
    return rows


if __name__ == "__main__":
    torch.set_num_threads(1)
    rows = count_table()
    print("| exercise | wrong answers tried | caught, mistake named |\n|---|---:|---:|")
    for name, tried, caught in rows:
        print(f"| {name} | {tried} | {caught} |")
    print(f"| **{len(rows)} exercises** | **{sum(r[1] for r in rows)}** | **{sum(r[2] for r in rows)}** |")
