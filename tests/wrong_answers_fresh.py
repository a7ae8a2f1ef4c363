"""A second list of wrong answers to the course's exercises, written from the notebooks' instructions alone.

Each entry is a plausible student mistake, written after reading only the exercise notebooks (each "Your turn"
cell's signature, docstring, hints and the prose above it), before reading the checks in ``ranlib/exercises/``
or the first list in ``tests/test_exercises.py``: it measures how the checks answer mistakes that their authors
did not anticipate. ``tests/test_exercises_fresh.py`` runs every entry through its check.

An entry is ``WrongAnswer(check, mistake, args)``: the name of the check in ``ranlib.exercises``, the mistake in
words, and what the student's cell hands to the check. Three checks also take numbers measured in the notebook
(``check_step_control``: both models' gradient norms; ``check_fusion_prediction``: the measured effect and the
attention statistics; ``check_band_miou_curve``: a model, a dataset and the widths); for those ``args`` holds
the student's part only, and the test supplies the rest (``STEP_CONTEXT`` below for the step control).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ranlib import RAN, RANLoss, RANOutput
from ranlib.backbone import build_backbone
from ranlib.data import boundary_band, mixed_boundary_band
from ranlib.data.bands import fill_void
from ranlib.evaluate import predict_logits
from ranlib.heads import LargeFOVHead
from ranlib.metrics import ConfusionMatrix

DEVICE = torch.device("cpu")  # the notebooks' DEVICE, which some answers use as a global


@dataclass(frozen=True)
class WrongAnswer:
    check: str  # the check's name in ranlib.exercises
    mistake: str  # what the student got wrong, in words
    args: tuple  # what the student's cell passes to the check (their part only, see the module docstring)


WRONG: list[WrongAnswer] = []


def wrong(check: str, mistake: str):
    """Register the decorated function or class as a wrong answer to `check` (passed as its only argument)."""
    def register(answer):
        WRONG.append(WrongAnswer(check, mistake, (answer,)))
        return answer
    return register


# ---------------------------------------------------------------------------------------------------------------
# 01 · my_bands(mask, width) -> (boundary band, mixed-boundary band)

def window_max(x: torch.Tensor, width: int) -> torch.Tensor:  # as given in notebook 01
    return F.max_pool2d(x[None, None], 2 * width + 1, stride=1, padding=width)[0, 0]


def _two_classes(x: torch.Tensor, width: int) -> torch.Tensor:
    return window_max(x, width) != -window_max(-x, width)


def _mixed(filled: torch.Tensor, width: int, big: float = 1e4) -> torch.Tensor:
    x = filled.float()
    top = window_max(torch.where(filled == 0, torch.full_like(x, -1.0), x), width)
    bottom = -window_max(-torch.where(filled == 0, torch.full_like(x, big), x), width)
    return top > bottom


@wrong("check_bands", "no fill_void: void (255) counts as a class of its own")
def bands_no_fill(mask, width):
    x = mask.float()
    return _two_classes(x, width) | (mask == 255), _mixed(mask, width)


@wrong("check_bands", "the boundary band leaves out the void pixels themselves")
def bands_no_void(mask, width):
    filled = fill_void(mask[None])[0]
    return _two_classes(filled.float(), width), _mixed(filled, width)


@wrong("check_bands", "off by one: window_max(x, width - 1), a window one pixel too small on each side")
def bands_off_by_one(mask, width):
    filled = fill_void(mask[None])[0]
    return _two_classes(filled.float(), width - 1) | (mask == 255), _mixed(filled, width - 1)


@wrong("check_bands", "mixed band tests max != min, so windows of background alone count as mixed")
def bands_not_equal(mask, width):
    filled = fill_void(mask[None])[0]
    x = filled.float()
    top = window_max(torch.where(filled == 0, torch.full_like(x, -1.0), x), width)
    bottom = -window_max(-torch.where(filled == 0, torch.full_like(x, 1e4), x), width)
    return _two_classes(x, width) | (mask == 255), top != bottom


@wrong("check_bands", "mixed band moves background out of the way for the maximum only, not for the minimum")
def bands_background_max_only(mask, width):
    filled = fill_void(mask[None])[0]
    x = filled.float()
    top = window_max(torch.where(filled == 0, torch.full_like(x, -1.0), x), width)
    bottom = -window_max(-x, width)
    return _two_classes(x, width) | (mask == 255), top > bottom


@wrong("check_bands", "hard-codes the quick dataset's class count: background becomes 6 for the minimum")
def bands_six_classes(mask, width):
    filled = fill_void(mask[None])[0]
    return _two_classes(filled.float(), width) | (mask == 255), _mixed(filled, width, big=6.0)


@wrong("check_bands", "fills the void pixels of `mask` in place")
def bands_in_place(mask, width):
    void = mask == 255
    mask[void] = fill_void(mask[None])[0][void]
    return _two_classes(mask.float(), width) | void, _mixed(mask, width)


@wrong("check_bands", "returns the two bands in the wrong order (mixed first)")
def bands_swapped(mask, width):
    filled = fill_void(mask[None])[0]
    return _mixed(filled, width), _two_classes(filled.float(), width) | (mask == 255)


@wrong("check_bands", "forgets to negate back: min taken as window_max(-x) instead of -window_max(-x)")
def bands_min_sign(mask, width):
    filled = fill_void(mask[None])[0]
    x = filled.float()
    boundary = (window_max(x, width) != window_max(-x, width)) | (mask == 255)
    return boundary, _mixed(filled, width)


@wrong("check_bands", "returns float 0/1 maps instead of bool")
def bands_float(mask, width):
    filled = fill_void(mask[None])[0]
    return (_two_classes(filled.float(), width) | (mask == 255)).float(), _mixed(filled, width).float()


# ---------------------------------------------------------------------------------------------------------------
# 02 · my_dilated_conv1d(x, w, rate)

@wrong("check_dilated_conv1d", "flips the kernel (w[2] on the left tap), a true convolution")
def conv1d_flipped(x, w, rate):
    p = F.pad(x, (rate, rate))
    n = len(x)
    return w[2] * p[:n] + w[1] * p[rate:rate + n] + w[0] * p[2 * rate:2 * rate + n]


@wrong("check_dilated_conv1d", "ignores the rate: an ordinary 3-tap convolution")
def conv1d_no_rate(x, w, rate):
    p = F.pad(x, (1, 1))
    return w[0] * p[:-2] + w[1] * p[1:-1] + w[2] * p[2:]


@wrong("check_dilated_conv1d", "no padding: a 'valid' output of length L - 2 rate")
def conv1d_valid(x, w, rate):
    n = len(x) - 2 * rate
    return w[0] * x[:n] + w[1] * x[rate:rate + n] + w[2] * x[2 * rate:2 * rate + n]


@wrong("check_dilated_conv1d", "wraps around with torch.roll instead of zeros outside the signal")
def conv1d_roll(x, w, rate):
    return w[0] * torch.roll(x, rate) + w[1] * x + w[2] * torch.roll(x, -rate)


@wrong("check_dilated_conv1d", "accumulates into x itself (y = x; y *= w[1]; ...), changing the input")
def conv1d_in_place(x, w, rate):
    p = F.pad(x, (rate, rate))
    n = len(x)
    y = x
    y *= w[1]
    y += w[0] * p[:n] + w[2] * p[2 * rate:2 * rate + n]
    return y


@wrong("check_dilated_conv1d", "pads 2 rate zeros on the left only (a causal filter)")
def conv1d_causal(x, w, rate):
    p = F.pad(x, (2 * rate, 0))
    n = len(x)
    return w[0] * p[:n] + w[1] * p[rate:rate + n] + w[2] * p[2 * rate:2 * rate + n]


@wrong("check_dilated_conv1d", "taps at 0, rate, 2 rate of the padded signal, shifted by one (slices start at 1)")
def conv1d_shifted(x, w, rate):
    p = F.pad(x, (rate, rate + 1))
    n = len(x)
    return w[0] * p[1:n + 1] + w[1] * p[rate + 1:rate + 1 + n] + w[2] * p[2 * rate + 1:2 * rate + 1 + n]


# ---------------------------------------------------------------------------------------------------------------
# 02 · MyConvOrg(in_channels, num_classes, dilation=12)

class _ConvOrg(nn.Module):
    """A correct CONV_org, the base of the wrong variants below and of the later exercises' answers."""

    def __init__(self, in_channels: int, num_classes: int, dilation: int = 12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation, dilation=dilation)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, f):
        return self.conv(f)


@wrong("check_conv_org", "padding 1 instead of the dilation: the scores shrink by 2 (dilation - 1)")
class ConvOrgPadding1(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, num_classes, dilation)
        self.conv.padding = (1, 1)


@wrong("check_conv_org", "no bias (bias=False)")
class ConvOrgNoBias(nn.Module):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation, dilation=dilation, bias=False)
        nn.init.normal_(self.conv.weight, std=0.01)

    def forward(self, f):
        return self.conv(f)


@wrong("check_conv_org", "keeps PyTorch's default initialisation (no normal_/zeros_)")
class ConvOrgDefaultInit(nn.Module):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation, dilation=dilation)

    def forward(self, f):
        return self.conv(f)


@wrong("check_conv_org", "std 0.01 ** 2 = 1e-4 (the variance taken for the standard deviation)")
class ConvOrgVarianceStd(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, num_classes, dilation)
        nn.init.normal_(self.conv.weight, std=0.01 ** 2)


@wrong("check_conv_org", "nn.init.normal_(w, 0.01): the positional argument is the MEAN, std stays 1")
class ConvOrgMeanNotStd(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, num_classes, dilation)
        nn.init.normal_(self.conv.weight, 0.01)


@wrong("check_conv_org", "hard-codes dilation 12 and padding 12, ignoring the `dilation` argument")
class ConvOrgFixedDilation(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, num_classes, 12)


@wrong("check_conv_org", "stores the layer as self.classifier: the state_dict keys differ from ranlib's")
class ConvOrgWrongName(nn.Module):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__()
        self.classifier = _ConvOrg(in_channels, num_classes, dilation).conv

    def forward(self, f):
        return self.classifier(f)


@wrong("check_conv_org", "a 1x1 kernel (fc8) instead of 3x3")
class ConvOrg1x1(nn.Module):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes, 1)
        nn.init.normal_(self.conv.weight, std=0.01)
        nn.init.zeros_(self.conv.bias)

    def forward(self, f):
        return self.conv(f)


@wrong("check_conv_org", "hard-codes 21 classes")
class ConvOrg21(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, 21, dilation)


@wrong("check_conv_org", "hard-codes ResNet-18's 512 input channels")
class ConvOrg512(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(512, num_classes, dilation)


@wrong("check_conv_org", "applies a ReLU to the class scores")
class ConvOrgRelu(_ConvOrg):
    def forward(self, f):
        return torch.relu(self.conv(f))


@wrong("check_conv_org", "initialises the bias with N(0, 0.01) too")
class ConvOrgBiasNormal(_ConvOrg):
    def __init__(self, in_channels, num_classes, dilation=12):
        super().__init__(in_channels, num_classes, dilation)
        nn.init.normal_(self.conv.bias, std=0.01)


# ---------------------------------------------------------------------------------------------------------------
# 02 · MyDeepLab(backbone_name="resnet18", num_classes=21)

class _DeepLab(nn.Module):
    def __init__(self, backbone_name="resnet18", num_classes=21):
        super().__init__()
        self.backbone = build_backbone(backbone_name)
        self.conv_org = _ConvOrg(self.backbone.out_channels, num_classes)

    def forward(self, images):
        scores = self.conv_org(self.backbone(images))
        return F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=False)


@wrong("check_deeplab", "upsamples with align_corners=True")
class DeepLabAlignCorners(_DeepLab):
    def forward(self, images):
        scores = self.conv_org(self.backbone(images))
        return F.interpolate(scores, size=images.shape[-2:], mode="bilinear", align_corners=True)


@wrong("check_deeplab", "upsamples by scale_factor=8 instead of to the image's size")
class DeepLabScale8(_DeepLab):
    def forward(self, images):
        return F.interpolate(self.conv_org(self.backbone(images)), scale_factor=8, mode="bilinear",
                             align_corners=False)


@wrong("check_deeplab", "nearest-neighbour upsampling")
class DeepLabNearest(_DeepLab):
    def forward(self, images):
        return F.interpolate(self.conv_org(self.backbone(images)), size=images.shape[-2:], mode="nearest")


@wrong("check_deeplab", "no upsampling: returns the 1/8-resolution scores")
class DeepLabNoUpsample(_DeepLab):
    def forward(self, images):
        return self.conv_org(self.backbone(images))


@wrong("check_deeplab", "hard-codes MyConvOrg(512, 21): ResNet-18's width and VOC's class count")
class DeepLabHardCoded(_DeepLab):
    def __init__(self, backbone_name="resnet18", num_classes=21):
        super().__init__(backbone_name, num_classes)
        self.conv_org = _ConvOrg(512, 21)


@wrong("check_deeplab", "ignores backbone_name: always ResNet-18")
class DeepLabAlwaysResnet18(_DeepLab):
    def __init__(self, backbone_name="resnet18", num_classes=21):
        super().__init__("resnet18", num_classes)


@wrong("check_deeplab", "names the parts features/head: ranlib's state_dict does not load")
class DeepLabWrongNames(nn.Module):
    def __init__(self, backbone_name="resnet18", num_classes=21):
        super().__init__()
        self.features = build_backbone(backbone_name)
        self.head = _ConvOrg(self.features.out_channels, num_classes)

    def forward(self, images):
        return F.interpolate(self.head(self.features(images)), size=images.shape[-2:], mode="bilinear",
                             align_corners=False)


@wrong("check_deeplab", "upsamples to a fixed 321 x 321")
class DeepLabFixedSize(_DeepLab):
    def forward(self, images):
        return F.interpolate(self.conv_org(self.backbone(images)), size=(321, 321), mode="bilinear",
                             align_corners=False)


@wrong("check_deeplab", "returns softmax probabilities instead of logits")
class DeepLabSoftmax(_DeepLab):
    def forward(self, images):
        return super().forward(images).softmax(1)


@wrong("check_deeplab", "CONV_org with dilation 1 (padding 1)")
class DeepLabDilation1(_DeepLab):
    def __init__(self, backbone_name="resnet18", num_classes=21):
        super().__init__(backbone_name, num_classes)
        self.conv_org = _ConvOrg(self.backbone.out_channels, num_classes, dilation=1)


# ---------------------------------------------------------------------------------------------------------------
# 03 · MyReverseBranch(LargeFOVHead): not_class(f) and forward(f)

@wrong("check_reverse_branch", "negates the input: self.conv(-f) (the bias is not negated)")
class ReverseNegInput(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return self.conv(-f)


@wrong("check_reverse_branch", "forward forgets NEG: returns CONV_rev(f)")
class ReverseNoNeg(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return self.not_class(f)


@wrong("check_reverse_branch", "NEG in not_class as well: not_class returns -CONV_rev(f), forward CONV_rev(f)")
class ReverseNegTwice(LargeFOVHead):
    def not_class(self, f):
        return -self.conv(f)

    def forward(self, f):
        return -self.not_class(f)


@wrong("check_reverse_branch", "negates the weights only: conv2d(f, -weight, +bias)")
class ReverseNegWeights(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        c = self.conv
        return F.conv2d(f, -c.weight, c.bias, padding=c.padding, dilation=c.dilation)


@wrong("check_reverse_branch", "reversed labels as 1 - x: forward returns 1 - CONV_rev(f)")
class ReverseOneMinus(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return 1 - self.conv(f)


@wrong("check_reverse_branch", "adds a sigmoid: forward returns sigmoid(-CONV_rev(f))")
class ReverseSigmoid(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return torch.sigmoid(-self.conv(f))


@wrong("check_reverse_branch", "redefines self.conv in __init__ as an ordinary 3x3 convolution (padding 1)")
class ReverseOwnConv(LargeFOVHead):
    def __init__(self, in_channels, num_classes, kernel_size=3, dilation=12):
        super().__init__(in_channels, num_classes, kernel_size, dilation)
        self.conv = nn.Conv2d(in_channels, num_classes, 3, padding=1)

    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return -self.conv(f)


@wrong("check_reverse_branch", "detaches the reverse scores: -CONV_rev(f).detach()")
class ReverseDetached(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)

    def forward(self, f):
        return -self.conv(f).detach()


@wrong("check_reverse_branch", "not_class applies NEG and forward does not: the two methods swapped")
class ReverseSwapped(LargeFOVHead):
    def not_class(self, f):
        return -self.conv(f)

    def forward(self, f):
        return self.conv(f)


# ---------------------------------------------------------------------------------------------------------------
# 04 · my_reverse_attention(original)

@wrong("check_reverse_attention", "sign: 1 / (1 + exp(-F_org)) = sigmoid(F_org)")
def attention_sign(original):
    return 1 / (1 + torch.exp(-original))


@wrong("check_reverse_attention", "exp(-x) / (1 + exp(-x)): right on paper, nan where exp(-x) overflows")
def attention_overflow(original):
    e = torch.exp(-original)
    return e / (1 + e)


@wrong("check_reverse_attention", "detaches F_org: the fused loss no longer trains CONV_org through A")
def attention_detached(original):
    return 1 / (1 + torch.exp(original.detach()))


@wrong("check_reverse_attention", "exp_ in place: changes F_org")
def attention_in_place(original):
    return 1 / (1 + original.exp_())


@wrong("check_reverse_attention", "typo in the sign of the denominator: 1 / (1 - exp(F_org))")
def attention_minus(original):
    return 1 / (1 - torch.exp(original))


@wrong("check_reverse_attention", "normalises A over the classes (dim 1) so that it sums to 1")
def attention_normalised_over_classes(original):
    a = 1 / (1 + torch.exp(original))
    return a / a.sum(1, keepdim=True)


@wrong("check_reverse_attention", "forgets the 1 / (1 + .): returns exp(-F_org)")
def attention_exp_only(original):
    return torch.exp(-original)


@wrong("check_reverse_attention", "computes in float64 and returns float64")
def attention_float64(original):
    return 1 / (1 + torch.exp(original.double()))


@wrong("check_reverse_attention", "softmax over the classes of -F_org instead of a sigmoid per class")
def attention_softmax(original):
    return torch.exp(-original) / torch.exp(-original).sum(1, keepdim=True)


# ---------------------------------------------------------------------------------------------------------------
# 04 · my_fuse(original, reverse, attention)

@wrong("check_fuse", "subtracts: F_org - A * F_rev (NEG applied a second time)")
def fuse_minus(original, reverse, attention):
    return original - attention * reverse


@wrong("check_fuse", "ignores the attention: F_org + F_rev")
def fuse_no_attention(original, reverse, attention):
    return original + reverse


@wrong("check_fuse", "attention on both terms: A * (F_org + F_rev)")
def fuse_both(original, reverse, attention):
    return attention * (original + reverse)


@wrong("check_fuse", "attention on the wrong term: A * F_org + F_rev")
def fuse_wrong_term(original, reverse, attention):
    return attention * original + reverse


@wrong("check_fuse", "adds in place into F_org")
def fuse_in_place(original, reverse, attention):
    return original.add_(attention * reverse)


@wrong("check_fuse", "a convex combination: (1 - A) * F_org + A * F_rev")
def fuse_convex(original, reverse, attention):
    return (1 - attention) * original + attention * reverse


@wrong("check_fuse", "matrix product A @ F_rev instead of elementwise")
def fuse_matmul(original, reverse, attention):
    return original + attention @ reverse


@wrong("check_fuse", "sums the reverse evidence over the classes")
def fuse_class_sum(original, reverse, attention):
    return original + (attention * reverse).sum(1, keepdim=True)


@wrong("check_fuse", "detaches the attention")
def fuse_detached(original, reverse, attention):
    return original + attention.detach() * reverse


# ---------------------------------------------------------------------------------------------------------------
# 04 · my_normalized_attention(original)

@wrong("check_normalized_attention", "torch.relu_ changes F_org in place")
def normalized_relu_(original):
    return torch.sigmoid(1 / (torch.relu_(original) + 0.125) - 4)


@wrong("check_normalized_attention", "no ReLU: 1 / (F_org + 0.125) blows up near -0.125")
def normalized_no_relu(original):
    return torch.sigmoid(1 / (original + 0.125) - 4)


@wrong("check_normalized_attention", "0.125 outside the fraction: 1 / ReLU(F_org) + 0.125 - 4")
def normalized_misplaced(original):
    return torch.sigmoid(1 / torch.relu(original) + 0.125 - 4)


@wrong("check_normalized_attention", "sign flipped: sigmoid(4 - 1 / (ReLU + 0.125))")
def normalized_sign(original):
    return torch.sigmoid(4 - 1 / (torch.relu(original) + 0.125))


@wrong("check_normalized_attention", "clamp(min=0.125) instead of ReLU + 0.125")
def normalized_clamp(original):
    return torch.sigmoid(1 / original.clamp(min=0.125) - 4)


@wrong("check_normalized_attention", "abs instead of ReLU: negative scores decay too")
def normalized_abs(original):
    return torch.sigmoid(1 / (original.abs() + 0.125) - 4)


@wrong("check_normalized_attention", "sigmoid(4) for scores <= 0, but forgets + 0.125 for positive scores")
def normalized_where(original):
    return torch.where(original <= 0, torch.sigmoid(torch.tensor(4.0)), torch.sigmoid(1 / original - 4))


@wrong("check_normalized_attention", "the - 4 inside the denominator: 1 / (ReLU + 0.125 - 4)")
def normalized_minus4_inside(original):
    return torch.sigmoid(1 / (torch.relu(original) + 0.125 - 4))


@wrong("check_normalized_attention", "Formula 1 in place of the normalised form: sigmoid(-F_org)")
def normalized_formula1(original):
    return torch.sigmoid(-original)


# ---------------------------------------------------------------------------------------------------------------
# 05 · MyRAN(backbone="resnet18", num_classes=21, variant="ran")

class _RAN(nn.Module):
    """A correct MyRAN; the wrong variants below change one thing each."""

    def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
        super().__init__()
        self.variant = variant
        self.backbone = build_backbone(backbone)
        channels = self.backbone.out_channels
        self.conv_org = LargeFOVHead(channels, num_classes)
        self.conv_rev = LargeFOVHead(channels, num_classes) if variant != "baseline" else None

    def attention(self, original):
        return torch.sigmoid(-original)

    def forward(self, images):
        f = self.backbone(images)
        original = self.conv_org(f)
        if self.variant == "baseline":
            return RANOutput(original, None, None, original)
        reverse = -self.conv_rev(f)
        if self.variant == "subtract":
            return RANOutput(original, reverse, None, original + reverse)
        attention = self.attention(original)
        return RANOutput(original, reverse, attention, original + attention * reverse)


@wrong("check_ran", "detaches F_org in the attention")
class RANDetached(_RAN):
    def attention(self, original):
        return torch.sigmoid(-original.detach())


@wrong("check_ran", "attention sigmoid(F_org): NEG forgotten")
class RANAttentionSign(_RAN):
    def attention(self, original):
        return torch.sigmoid(original)


@wrong("check_ran", "CONV_rev is the same module as CONV_org (shared weights)")
class RANShared(_RAN):
    def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
        super().__init__(backbone, num_classes, variant)
        if variant != "baseline":
            self.conv_rev = self.conv_org


@wrong("check_ran", "subtract variant returns an attention of ones instead of None")
class RANSubtractOnes(_RAN):
    def forward(self, images):
        out = super().forward(images)
        if self.variant == "subtract":
            return out._replace(attention=torch.ones_like(out.original))
        return out


@wrong("check_ran", "the baseline builds CONV_rev anyway")
class RANBaselineWithRev(_RAN):
    def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
        super().__init__(backbone, num_classes, variant)
        self.conv_rev = LargeFOVHead(self.backbone.out_channels, num_classes)


@wrong("check_ran", "reverse output is CONV_rev(f) without NEG; fused = F_org - A * CONV_rev(f) is right")
class RANReverseWithoutNeg(_RAN):
    def forward(self, images):
        f = self.backbone(images)
        original = self.conv_org(f)
        if self.variant == "baseline":
            return RANOutput(original, None, None, original)
        not_class = self.conv_rev(f)
        if self.variant == "subtract":
            return RANOutput(original, not_class, None, original - not_class)
        attention = torch.sigmoid(-original)
        return RANOutput(original, not_class, attention, original - attention * not_class)


@wrong("check_ran", "upsamples every branch to the image size")
class RANUpsampled(_RAN):
    def forward(self, images):
        return super().forward(images).upsample(images.shape[-2:])


@wrong("check_ran", "hard-codes ResNet-18's 512 channels for the heads")
class RAN512(_RAN):
    def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
        super().__init__(backbone, num_classes, variant)
        self.conv_org = LargeFOVHead(512, num_classes)
        self.conv_rev = LargeFOVHead(512, num_classes) if variant != "baseline" else None


@wrong("check_ran", "hard-codes 21 classes")
class RAN21(_RAN):
    def __init__(self, backbone="resnet18", num_classes=21, variant="ran"):
        super().__init__(backbone, 21, variant)


@wrong("check_ran", "subtract variant: fused = F_org - F_rev")
class RANSubtractMinus(_RAN):
    def forward(self, images):
        out = super().forward(images)
        if self.variant == "subtract":
            return out._replace(fused=out.original - out.reverse)
        return out


@wrong("check_ran", "the baseline's fused output is None")
class RANBaselineNoFused(_RAN):
    def forward(self, images):
        out = super().forward(images)
        return out._replace(fused=None) if self.variant == "baseline" else out


@wrong("check_ran", "returns a plain tuple (original, reverse, attention, fused) instead of RANOutput")
class RANPlainTuple(_RAN):
    def forward(self, images):
        return tuple(super().forward(images))


# ---------------------------------------------------------------------------------------------------------------
# 05 · my_ran_loss(output, target, ignore_index=255)

def _terms(output):
    if output.reverse is None:
        return {"fused": output.fused}
    return {"original": output.original, "reverse": output.reverse, "fused": output.fused}


def _ce(logits, target, ignore_index=255, **kwargs):
    up = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(up, target, ignore_index=ignore_index, **kwargs)


@wrong("check_ran_loss", "the total is the MEAN of the terms, not their sum")
def loss_mean(output, target, ignore_index=255):
    parts = {k: _ce(v, target, ignore_index) for k, v in _terms(output).items()}
    return sum(parts.values()) / len(parts), parts


@wrong("check_ran_loss", "no ignore_index: clamps 255 to the last class so that cross_entropy runs")
def loss_clamp_void(output, target, ignore_index=255):
    k = output.fused.shape[1]
    parts = {name: _ce(v, target.clamp(max=k - 1), ignore_index=-100) for name, v in _terms(output).items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "downsamples the labels (nearest) to the logits' size instead of upsampling the logits")
def loss_downsample_target(output, target, ignore_index=255):
    size = output.fused.shape[-2:]
    small = F.interpolate(target[:, None].float(), size=size, mode="nearest")[:, 0].long()
    parts = {k: F.cross_entropy(v, small, ignore_index=ignore_index) for k, v in _terms(output).items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "upsamples with align_corners=True")
def loss_align_corners(output, target, ignore_index=255):
    parts = {}
    for k, v in _terms(output).items():
        up = F.interpolate(v, size=target.shape[-2:], mode="bilinear", align_corners=True)
        parts[k] = F.cross_entropy(up, target, ignore_index=ignore_index)
    return sum(parts.values()), parts


@wrong("check_ran_loss", "the baseline gets an 'original' term too (counted twice in the total)")
def loss_baseline_two_terms(output, target, ignore_index=255):
    terms = {"original": output.original, "reverse": output.reverse, "fused": output.fused}
    parts = {k: _ce(v, target, ignore_index) for k, v in terms.items() if v is not None}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "trains the reverse term on NEG(F_rev) = CONV_rev(f) (NEG applied again)")
def loss_reverse_negated(output, target, ignore_index=255):
    terms = _terms(output)
    if "reverse" in terms:
        terms["reverse"] = -terms["reverse"]
    parts = {k: _ce(v, target, ignore_index) for k, v in terms.items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "keys 'org', 'rev', 'ran' instead of 'original', 'reverse', 'fused'")
def loss_wrong_keys(output, target, ignore_index=255):
    names = {"original": "org", "reverse": "rev", "fused": "ran"}
    parts = {names[k]: _ce(v, target, ignore_index) for k, v in _terms(output).items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "upsamples by scale_factor=8 instead of to the labels' size")
def loss_scale8(output, target, ignore_index=255):
    parts = {}
    for k, v in _terms(output).items():
        up = F.interpolate(v, scale_factor=8, mode="bilinear", align_corners=False)
        parts[k] = F.cross_entropy(up, target, ignore_index=ignore_index)
    return sum(parts.values()), parts


@wrong("check_ran_loss", "reduction='sum': sums over the pixels instead of averaging")
def loss_sum_reduction(output, target, ignore_index=255):
    parts = {k: _ce(v, target, ignore_index, reduction="sum") for k, v in _terms(output).items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "hard-codes ignore_index=255 instead of using the argument")
def loss_hard_coded_255(output, target, ignore_index=255):
    parts = {k: _ce(v, target, 255) for k, v in _terms(output).items()}
    return sum(parts.values()), parts


@wrong("check_ran_loss", "the total from .item(): a Python float, not differentiable")
def loss_total_float(output, target, ignore_index=255):
    parts = {k: _ce(v, target, ignore_index) for k, v in _terms(output).items()}
    return sum(p.item() for p in parts.values()), parts


# ---------------------------------------------------------------------------------------------------------------
# 06 · my_param_groups(model, lr, head_lr_mult=10.0) and my_poly(iteration, iterations, power=0.9)

@wrong("check_param_groups", "hard-codes 10 instead of head_lr_mult")
def groups_fixed_mult(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": lr}, {"params": model.head_parameters(), "lr": 10 * lr}]


@wrong("check_param_groups", "the heads' group first, the backbone's second")
def groups_order(model, lr, head_lr_mult=10.0):
    return [{"params": model.head_parameters(), "lr": head_lr_mult * lr},
            {"params": model.backbone_parameters(), "lr": lr}]


@wrong("check_param_groups", "the rates swapped: the backbone gets 10x")
def groups_rates_swapped(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": head_lr_mult * lr},
            {"params": model.head_parameters(), "lr": lr}]


@wrong("check_param_groups", "model.parameters() for the first group: the heads appear in both groups")
def groups_all_parameters(model, lr, head_lr_mult=10.0):
    return [{"params": list(model.parameters()), "lr": lr},
            {"params": model.head_parameters(), "lr": head_lr_mult * lr}]


@wrong("check_param_groups", "only CONV_org in the heads' group")
def groups_conv_org_only(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": lr},
            {"params": list(model.conv_org.parameters()), "lr": head_lr_mult * lr}]


@wrong("check_param_groups", "key 'learning_rate' instead of 'lr'")
def groups_wrong_key(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "learning_rate": lr},
            {"params": model.head_parameters(), "learning_rate": head_lr_mult * lr}]


@wrong("check_param_groups", "one group with every parameter at the base rate")
def groups_single(model, lr, head_lr_mult=10.0):
    return [{"params": list(model.parameters()), "lr": lr}]


@wrong("check_param_groups", "the heads' rate is head_lr_mult itself (forgot * lr)")
def groups_mult_only(model, lr, head_lr_mult=10.0):
    return [{"params": model.backbone_parameters(), "lr": lr}, {"params": model.head_parameters(), "lr": head_lr_mult}]


@wrong("check_param_groups", "lists conv_org and conv_rev by hand: crashes on the baseline (conv_rev is None)")
def groups_by_hand(model, lr, head_lr_mult=10.0):
    heads = list(model.conv_org.parameters()) + list(model.conv_rev.parameters())
    return [{"params": model.backbone_parameters(), "lr": lr}, {"params": heads, "lr": head_lr_mult * lr}]


@wrong("check_poly", "hard-codes power 0.9")
def poly_fixed_power(iteration, iterations, power=0.9):
    return (1 - iteration / iterations) ** 0.9


@wrong("check_poly", "1 - (t/T)^p instead of (1 - t/T)^p")
def poly_wrong_bracket(iteration, iterations, power=0.9):
    return 1 - (iteration / iterations) ** power


@wrong("check_poly", "off by one: (1 - (t + 1)/T)^p")
def poly_off_by_one(iteration, iterations, power=0.9):
    return (1 - (iteration + 1) / iterations) ** power


@wrong("check_poly", "integer division t // T: the factor stays 1 until the end")
def poly_floor_division(iteration, iterations, power=0.9):
    return (1 - iteration // iterations) ** power


@wrong("check_poly", "multiplies by the power instead of raising to it")
def poly_times_power(iteration, iterations, power=0.9):
    return (1 - iteration / iterations) * power


@wrong("check_poly", "divides by T - 1 (so the last iteration reaches 0)")
def poly_t_minus_one(iteration, iterations, power=0.9):
    return (1 - iteration / (iterations - 1)) ** power


# ---------------------------------------------------------------------------------------------------------------
# 07 · my_metrics(C)

def _counts(C):
    m = C.double()
    tp = m.diag()
    return m, tp, m.sum(0) - tp, m.sum(1) - tp


def _nanmean(values):
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


@wrong("check_iou", "precision TP / (TP + FP) instead of IoU")
def metrics_precision(C):
    m, tp, fp, fn = _counts(C)
    iou = [t / d if d > 0 else math.nan for t, d in zip(tp.tolist(), (tp + fp).tolist(), strict=False)]
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": (tp.sum() / m.sum()).item()}


@wrong("check_iou", "0/0 counted as IoU 0 and averaged in")
def metrics_zero_for_absent(C):
    m, tp, fp, fn = _counts(C)
    union = tp + fp + fn
    iou = [t / u if u > 0 else 0.0 for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    return {"iou": iou, "miou": sum(iou) / len(iou), "pixel_acc": (tp.sum() / m.sum()).item()}


@wrong("check_iou", "nan for 0/0, but a plain mean: mIoU becomes nan")
def metrics_nan_mean(C):
    m, tp, fp, fn = _counts(C)
    iou = tp / (tp + fp + fn)
    return {"iou": iou.tolist(), "miou": iou.mean().item(), "pixel_acc": (tp.sum() / m.sum()).item()}


@wrong("check_iou", "pixel accuracy as the mean of the per-class recalls")
def metrics_mean_recall(C):
    m, tp, fp, fn = _counts(C)
    union = tp + fp + fn
    iou = [t / u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    recall = [t / g for t, g in zip(tp.tolist(), m.sum(1).tolist(), strict=False) if g > 0]
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": sum(recall) / len(recall)}


@wrong("check_iou", "zeroes the diagonal of C in place to get the off-diagonal sums")
def metrics_in_place(C):
    tp = C.diagonal().clone().double()
    C.fill_diagonal_(0)
    fp, fn = C.sum(0).double(), C.sum(1).double()
    union = tp + fp + fn
    iou = [t / u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": (tp.sum() / (union.sum() - fp.sum())).item()}


@wrong("check_iou", "union = row sum + column sum (TP counted twice)")
def metrics_tp_twice(C):
    m, tp, fp, fn = _counts(C)
    union = m.sum(0) + m.sum(1)
    iou = [t / u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": (tp.sum() / m.sum()).item()}


@wrong("check_iou", "floor division // on the integer counts")
def metrics_floor(C):
    tp = C.diag()
    union = C.sum(0) + C.sum(1) - tp
    iou = [t // u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    return {"iou": [float(v) for v in iou], "miou": _nanmean([float(v) for v in iou]),
            "pixel_acc": float(tp.sum() // C.sum())}


@wrong("check_iou", "hard-codes 21 classes in the loop")
def metrics_21(C):
    m, tp, fp, fn = _counts(C)
    iou = []
    for c in range(21):
        u = (tp[c] + fp[c] + fn[c]).item()
        iou.append(tp[c].item() / u if u > 0 else math.nan)
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": (tp.sum() / m.sum()).item()}


@wrong("check_iou", "pixel accuracy over the columns: trace / C.sum(0) summed per class")
def metrics_pixel_acc_columns(C):
    m, tp, fp, fn = _counts(C)
    union = tp + fp + fn
    iou = [t / u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist(), strict=False)]
    return {"iou": iou, "miou": _nanmean(iou), "pixel_acc": (tp / m.sum(0).clamp(min=1)).mean().item()}


# ---------------------------------------------------------------------------------------------------------------
# 07 · my_band_miou(predictions, masks, width, num_classes)

@wrong("check_band_miou", "boundary_band instead of mixed_boundary_band")
def band_miou_boundary(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=boundary_band(m, width))
    return cm.compute()["miou"]


@wrong("check_band_miou", "the band of the prediction instead of the ground truth's")
def band_miou_predicted_band(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=mixed_boundary_band(p, width))
    return cm.compute()["miou"]


@wrong("check_band_miou", "one matrix per image and the mean of the images' mIoU")
def band_miou_per_image(predictions, masks, width, num_classes):
    values = []
    for p, m in zip(predictions, masks, strict=False):
        cm = ConfusionMatrix(num_classes)
        cm.update(p, m, mask=mixed_boundary_band(m, width))
        values.append(cm.compute()["miou"])
    return _nanmean(values)


@wrong("check_band_miou", "update(mask, prediction): ground truth and prediction swapped")
def band_miou_swapped(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(m, p, mask=mixed_boundary_band(m, width))
    return cm.compute()["miou"]


@wrong("check_band_miou", "hard-codes ConfusionMatrix(21)")
def band_miou_21(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(21)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=mixed_boundary_band(m, width))
    return cm.compute()["miou"]


@wrong("check_band_miou", "treats width as the window size: mixed_boundary_band(mask, width // 2)")
def band_miou_half_width(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=mixed_boundary_band(m, width // 2))
    return cm.compute()["miou"]


@wrong("check_band_miou", "averages the IoU list with nan counted as 0")
def band_miou_nan_as_zero(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m, mask=mixed_boundary_band(m, width))
    return torch.tensor(cm.compute()["iou"]).nan_to_num().mean().item()


@wrong("check_band_miou", "creates the matrix inside the loop: only the last image counts")
def band_miou_last_image(predictions, masks, width, num_classes):
    for p, m in zip(predictions, masks, strict=False):
        cm = ConfusionMatrix(num_classes)
        cm.update(p, m, mask=mixed_boundary_band(m, width))
    return cm.compute()["miou"]


@wrong("check_band_miou", "no band at all: the whole image's mIoU")
def band_miou_no_band(predictions, masks, width, num_classes):
    cm = ConfusionMatrix(num_classes)
    for p, m in zip(predictions, masks, strict=False):
        cm.update(p, m)
    return cm.compute()["miou"]


# ---------------------------------------------------------------------------------------------------------------
# 07 · my_loss_gradients(model, images, masks)

def _gradients(model, images, masks):
    f = model.backbone(images)
    _, parts = RANLoss()(model.classify(f), masks)
    return f, parts, {k: torch.autograd.grad(v, f, retain_graph=True)[0] for k, v in parts.items()}


@wrong("check_loss_gradients", "'total' = the sum of the terms' norms, not the norm of the summed gradient")
def gradients_sum_of_norms(model, images, masks):
    f, parts, grads = _gradients(model, images, masks)
    norms = {k: g.norm().item() for k, g in grads.items()}
    return {**norms, "total": sum(norms.values())}


@wrong("check_loss_gradients", "differentiates with respect to the images instead of f")
def gradients_wrt_images(model, images, masks):
    images = images.clone().requires_grad_()
    _, parts = RANLoss()(model(images), masks)
    grads = {k: torch.autograd.grad(v, images, retain_graph=True)[0] for k, v in parts.items()}
    return {**{k: g.norm().item() for k, g in grads.items()}, "total": sum(grads.values()).norm().item()}


@wrong("check_loss_gradients", "switches the model to eval mode first")
def gradients_eval_mode(model, images, masks):
    model.eval()
    f, parts, grads = _gradients(model, images, masks)
    return {**{k: g.norm().item() for k, g in grads.items()}, "total": sum(grads.values()).norm().item()}


@wrong("check_loss_gradients", "backward() per term with f.retain_grad(), never zeroing: gradients accumulate")
def gradients_accumulated(model, images, masks):
    f = model.backbone(images)
    f.retain_grad()
    _, parts = RANLoss()(model.classify(f), masks)
    norms = {}
    for k, v in parts.items():
        v.backward(retain_graph=True)
        norms[k] = f.grad.norm().item()
    norms["total"] = f.grad.norm().item()
    model.zero_grad()
    return norms


@wrong("check_loss_gradients", "squared norms (sum of squares)")
def gradients_squared(model, images, masks):
    f, parts, grads = _gradients(model, images, masks)
    return {**{k: (g ** 2).sum().item() for k, g in grads.items()}, "total": (sum(grads.values()) ** 2).sum().item()}


@wrong("check_loss_gradients", "RMS (norm / sqrt(numel)) instead of the L2 norm")
def gradients_rms(model, images, masks):
    f, parts, grads = _gradients(model, images, masks)
    rms = {k: (g.norm() / g.numel() ** 0.5).item() for k, g in grads.items()}
    total = sum(grads.values())
    return {**rms, "total": (total.norm() / total.numel() ** 0.5).item()}


@wrong("check_loss_gradients", "forgets the 'total' entry")
def gradients_no_total(model, images, masks):
    f, parts, grads = _gradients(model, images, masks)
    return {k: g.norm().item() for k, g in grads.items()}


@wrong("check_loss_gradients", "hard-codes the three RAN terms: a KeyError on the baseline")
def gradients_three_terms(model, images, masks):
    f = model.backbone(images)
    _, parts = RANLoss()(model.classify(f), masks)
    grads = {k: torch.autograd.grad(parts[k], f, retain_graph=True)[0] for k in ("original", "reverse", "fused")}
    return {**{k: g.norm().item() for k, g in grads.items()}, "total": sum(grads.values()).norm().item()}


@wrong("check_loss_gradients", "gradients with respect to CONV_org's weights instead of f")
def gradients_wrt_conv_org(model, images, masks):
    _, parts = RANLoss()(model(images), masks)
    w = model.conv_org.conv.weight
    grads = {k: torch.autograd.grad(v, w, retain_graph=True)[0] for k, v in parts.items()}
    return {**{k: g.norm().item() for k, g in grads.items()}, "total": sum(grads.values()).norm().item()}


# ---------------------------------------------------------------------------------------------------------------
# 07 · STEP_RATIO and CONTROL (the check also takes the measured gradients: the test supplies them)

STEP_CONTEXT = ({"original": 0.6, "reverse": 0.7, "fused": 0.65, "total": 1.8}, {"fused": 0.9, "total": 0.9})
RATIO = 2.0  # the right STEP_RATIO on STEP_CONTEXT
for control, ratio, mistake in (
        ("none", RATIO, "chooses no control although RAN's step is twice the baseline's"),
        ("more-iterations", RATIO, "gives the baseline more iterations, not a larger step per iteration"),
        ("head-lr", RATIO, "raises the baseline's head rate: the backbone's step stays the same"),
        ("baseline-step", 1 / RATIO, "the ratio inverted: the baseline's total over RAN's"),
        ("baseline-step", 0.65 / 0.9, "the ratio of the 'fused' terms instead of the totals"),
        ("baseline-step", 100 * RATIO, "the ratio in percent"),
        ("baseline-step", (0.6 + 0.7 + 0.65) / 0.9, "the sum of RAN's term norms over the baseline's total"),
        (..., RATIO, "CONTROL left as ... (the placeholder)"),
        ("baseline_step", RATIO, "a misspelt control key (underscore)"),
        ("baseline-step", ..., "STEP_RATIO left as ... (the placeholder)")):
    WRONG.append(WrongAnswer("check_step_control", mistake, (control, ratio)))


# ---------------------------------------------------------------------------------------------------------------
# 08 · my_confusion(logits, size)

def _top2_gap(p):
    top = p.topk(2, dim=0).values
    return 1 - (top[0] - top[1])


@wrong("check_confusion", "softmax first, then upsamples the probabilities")
def confusion_softmax_first(logits, size):
    p = F.interpolate(logits.softmax(0)[None], size=size, mode="bilinear", align_corners=False)[0]
    return _top2_gap(p)


@wrong("check_confusion", "softmax over the last dimension (the image's width) instead of the classes")
def confusion_wrong_dim(logits, size):
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return _top2_gap(up.softmax(-1))


@wrong("check_confusion", "returns the gap p(1) - p(2) itself, not 1 minus it")
def confusion_gap(logits, size):
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return 1 - _top2_gap(up.softmax(0))


@wrong("check_confusion", "no softmax: the gap between the two largest logits")
def confusion_logits(logits, size):
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return _top2_gap(up)


@wrong("check_confusion", "align_corners=True")
def confusion_align_corners(logits, size):
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=True)[0]
    return _top2_gap(up.softmax(0))


@wrong("check_confusion", "nearest-neighbour upsampling")
def confusion_nearest(logits, size):
    up = F.interpolate(logits[None], size=size, mode="nearest")[0]
    return _top2_gap(up.softmax(0))


@wrong("check_confusion", "largest minus smallest probability instead of the top two")
def confusion_max_min(logits, size):
    p = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].softmax(0)
    return 1 - (p.max(0).values - p.min(0).values)


@wrong("check_confusion", "sorts ascending and takes the first two (the two smallest)")
def confusion_sorted_ascending(logits, size):
    p = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].softmax(0)
    s = p.sort(0).values
    return 1 - (s[1] - s[0])


@wrong("check_confusion", "interpolates the (K, h, w) tensor without adding the batch dimension")
def confusion_no_batch(logits, size):
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return _top2_gap(up.softmax(0))


# ---------------------------------------------------------------------------------------------------------------
# 08 · my_fusion_effect(original, fused, target) and PREDICTION

def _effect(changed, fixed, broken, n):
    return {"changed": changed / n, "fixed": fixed / n, "broken": broken / n}


@wrong("check_fusion_effect", "divides by all pixels, void included")
def effect_all_pixels(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    n = target.numel()
    return _effect(((a != b) & ok).sum().item(), ((a != target) & (b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), n)


@wrong("check_fusion_effect", "counts changes at void pixels too (divides by the labelled ones)")
def effect_void_in_numerator(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    return _effect((a != b).sum().item(), ((a != target) & (b == target)).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), ok.sum().item())


@wrong("check_fusion_effect", "fixed and broken swapped")
def effect_swapped(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    return _effect(((a != b) & ok).sum().item(), ((a == target) & (b != target) & ok).sum().item(),
                   ((a != target) & (b == target) & ok).sum().item(), ok.sum().item())


@wrong("check_fusion_effect", "argmax over dimension 0 (the batch) instead of the classes")
def effect_argmax_dim0(original, fused, target):
    a, b, ok = original.argmax(0), fused.argmax(0), target != 255
    n = ok.sum().item()
    return _effect(((a != b) & ok).sum().item(), ((a != target) & (b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), n)


@wrong("check_fusion_effect", "'fixed' counts every pixel the fused output gets right")
def effect_fixed_is_right(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    return _effect(((a != b) & ok).sum().item(), ((b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), ok.sum().item())


@wrong("check_fusion_effect", "returns pixel counts instead of fractions")
def effect_counts(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    return _effect(((a != b) & ok).sum().item(), ((a != target) & (b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), 1)


@wrong("check_fusion_effect", "only the first image of the batch (original[0])")
def effect_first_image(original, fused, target):
    a, b, t = original[0].argmax(0), fused[0].argmax(0), target[0]
    ok = t != 255
    return _effect(((a != b) & ok).sum().item(), ((a != t) & (b == t) & ok).sum().item(),
                   ((a == t) & (b != t) & ok).sum().item(), ok.sum().item())


@wrong("check_fusion_effect", "'changed' where any logit changed, not the argmax")
def effect_logits_changed(original, fused, target):
    a, b, ok = original.argmax(1), fused.argmax(1), target != 255
    changed = (original != fused).any(1) & ok
    return _effect(changed.sum().item(), ((a != target) & (b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), ok.sum().item())


@wrong("check_fusion_effect", "sets the void pixels of target to 0 in place")
def effect_in_place(original, fused, target):
    ok = target != 255
    target[~ok] = 0
    a, b = original.argmax(1), fused.argmax(1)
    return _effect(((a != b) & ok).sum().item(), ((a != target) & (b == target) & ok).sum().item(),
                   ((a == target) & (b != target) & ok).sum().item(), ok.sum().item())


for prediction, mistake in (("often", "predicts 'often' where the fusion changes under 1% of the pixels"),
                            ("Rarely", "'Rarely' with a capital letter"),
                            ("rare", "'rare' instead of 'rarely'"),
                            (..., "PREDICTION left as ... (the placeholder)"),
                            (True, "True instead of one of the two words"),
                            (0.01, "a number instead of one of the two words")):
    WRONG.append(WrongAnswer("check_fusion_prediction", mistake, (prediction,)))


# ---------------------------------------------------------------------------------------------------------------
# 09 · MobileNetV3Backbone and ran_on_backbone(backbone, num_classes, field_of_view=96)

class _MobileNet(nn.Module):
    output_stride = 16

    def __init__(self):
        super().__init__()
        self.features = torchvision.models.mobilenet_v3_large(dilated=True).features
        self.out_channels = self.features[-1].out_channels

    def forward(self, images):
        return self.features(images)


def _ran_on_backbone(backbone, num_classes, field_of_view=96):
    d = field_of_view // backbone.output_stride
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes, dilation=d),
               LargeFOVHead(backbone.out_channels, num_classes, dilation=d))


def ran_dilation_12(backbone, num_classes, field_of_view=96):
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes),
               LargeFOVHead(backbone.out_channels, num_classes))


def ran_stride_8(backbone, num_classes, field_of_view=96):
    d = field_of_view // 8
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes, dilation=d),
               LargeFOVHead(backbone.out_channels, num_classes, dilation=d))


def ran_shared_head(backbone, num_classes, field_of_view=96):
    head = LargeFOVHead(backbone.out_channels, num_classes, dilation=field_of_view // backbone.output_stride)
    return RAN(backbone, head, head)


def ran_960(backbone, num_classes, field_of_view=96):
    d = field_of_view // backbone.output_stride
    return RAN(backbone, LargeFOVHead(960, num_classes, dilation=d), LargeFOVHead(960, num_classes, dilation=d))


def ran_float_dilation(backbone, num_classes, field_of_view=96):
    d = field_of_view / backbone.output_stride
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes, dilation=d),
               LargeFOVHead(backbone.out_channels, num_classes, dilation=d))


def ran_fixed_6(backbone, num_classes, field_of_view=96):
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes, dilation=6),
               LargeFOVHead(backbone.out_channels, num_classes, dilation=6))


def ran_no_reverse(backbone, num_classes, field_of_view=96):
    d = field_of_view // backbone.output_stride
    return RAN(backbone, LargeFOVHead(backbone.out_channels, num_classes, dilation=d))


class MobileNetNotDilated(_MobileNet):
    def __init__(self):
        super().__init__()
        self.features = torchvision.models.mobilenet_v3_large().features


class MobileNetDropLast(_MobileNet):
    def __init__(self):
        super().__init__()
        self.features = self.features[:-1]
        self.out_channels = 960


class MobileNetWholeModel(_MobileNet):
    def __init__(self):
        super().__init__()
        self.model = torchvision.models.mobilenet_v3_large(dilated=True)
        del self.features

    def forward(self, images):
        return self.model(images)


class MobileNetNoChannels(_MobileNet):
    def __init__(self):
        super().__init__()
        del self.out_channels


class MobileNetStride32(_MobileNet):
    output_stride = 32


for backbone_cls, ran_fn, mistake in (
        (_MobileNet, ran_dilation_12, "keeps dilation 12: a field of view of +-192 px at output stride 16"),
        (_MobileNet, ran_stride_8, "dilation = 96 // 8: output stride 8 hard-coded"),
        (_MobileNet, ran_shared_head, "one head object used as both CONV_org and CONV_rev"),
        (_MobileNet, ran_960, "hard-codes MobileNetV3's 960 channels in the heads"),
        (_MobileNet, ran_float_dilation, "dilation = 96 / 16 = 6.0, a float"),
        (_MobileNet, ran_fixed_6, "hard-codes dilation 6, ignoring field_of_view and the output stride"),
        (_MobileNet, ran_no_reverse, "forgets conv_rev: a baseline, not RAN"),
        (MobileNetNotDilated, _ran_on_backbone, "dilated=False: the features are at 1/32 while it reports 16"),
        (MobileNetDropLast, _ran_on_backbone, "drops the last feature layer (160 channels) but reports 960"),
        (MobileNetWholeModel, _ran_on_backbone, "wraps the whole classifier (logits, not features)"),
        (MobileNetNoChannels, _ran_on_backbone, "does not set out_channels"),
        (MobileNetStride32, _ran_on_backbone, "reports output_stride 32")):
    WRONG.append(WrongAnswer("check_backbone_and_ran", mistake, (backbone_cls, ran_fn)))


# ---------------------------------------------------------------------------------------------------------------
# 09 · band_miou_curve(model, dataset, widths) (the check also takes the model, the data, the widths, the device)

def _predictions(model, dataset):
    for image, mask in dataset:
        yield predict_logits(model, image[None].to(DEVICE)).argmax(1)[0].cpu(), mask


@wrong("check_band_miou_curve", "one ConfusionMatrix shared by all widths")
def curve_shared_matrix(model, dataset, widths):
    cm, curve = ConfusionMatrix(model.num_classes), {}
    for w in widths:
        for p, m in _predictions(model, dataset):
            cm.update(p, m, mask=mixed_boundary_band(m, w))
        curve[w] = cm.compute()["miou"]
    return curve


@wrong("check_band_miou_curve", "boundary_band instead of mixed_boundary_band")
def curve_boundary(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    for p, m in _predictions(model, dataset):
        for w in widths:
            cms[w].update(p, m, mask=boundary_band(m, w))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "hard-codes ConfusionMatrix(21)")
def curve_21(model, dataset, widths):
    cms = {w: ConfusionMatrix(21) for w in widths}
    for p, m in _predictions(model, dataset):
        for w in widths:
            cms[w].update(p, m, mask=mixed_boundary_band(m, w))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "returns a list of mIoU, not {w: mIoU}")
def curve_list(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    for p, m in _predictions(model, dataset):
        for w in widths:
            cms[w].update(p, m, mask=mixed_boundary_band(m, w))
    return [cm.compute()["miou"] for cm in cms.values()]


@wrong("check_band_miou_curve", "keys are strings ('1', '2', ...)")
def curve_str_keys(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    for p, m in _predictions(model, dataset):
        for w in widths:
            cms[w].update(p, m, mask=mixed_boundary_band(m, w))
    return {str(w): cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "the 1/8-resolution fused scores, not upsampled to the mask")
def curve_low_resolution(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    with torch.no_grad():
        for image, m in dataset:
            p = model.eval()(image[None]).fused.argmax(1)[0]
            for w in widths:
                cms[w].update(p, m, mask=mixed_boundary_band(m, w))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "the band width from the index (enumerate) instead of the width")
def curve_index_width(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    for p, m in _predictions(model, dataset):
        for i, w in enumerate(widths):
            cms[w].update(p, m, mask=mixed_boundary_band(m, i))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "the band of the prediction instead of the ground truth's")
def curve_predicted_band(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    for p, m in _predictions(model, dataset):
        for w in widths:
            cms[w].update(p, m, mask=mixed_boundary_band(p, w))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}


@wrong("check_band_miou_curve", "only the first image of the dataset")
def curve_first_image(model, dataset, widths):
    cms = {w: ConfusionMatrix(model.num_classes) for w in widths}
    p, m = next(iter(_predictions(model, dataset)))
    for w in widths:
        cms[w].update(p, m, mask=mixed_boundary_band(m, w))
    return {w: cm.compute()["miou"] for w, cm in cms.items()}
