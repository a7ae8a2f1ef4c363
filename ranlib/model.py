"""The Reverse Attention Network: backbone, two branches, reverse attention and fusion.

Qin Huang, Chunyang Xia, Chihao Wu, Siyang Li, Ye Wang, Yuhang Song, C.-C. Jay Kuo: "Semantic Segmentation with
Reverse Attention", BMVC 2017, pp. 18.1-18.13 (arXiv 1707.06426). The model, as this library implements it::

    f         = backbone(image)                    # (B, C, H/8, W/8)
    original  = CONV_org(f)                        # (B, K, H/8, W/8)
    reverse   = NEG(CONV_rev(f)) = -CONV_rev(f)    # supervised with the ordinary labels
    attention = sigmoid(-original)                 # or the normalised form
    fused     = original + attention * reverse     # = original - attention * CONV_rev(f)

Three variants share this code: ``"ran"`` (above), ``"subtract"`` (no attention:
``fused = original + reverse``) and ``"baseline"`` (plain DeepLab: no reverse branch, ``fused = original``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ranlib.backbone import BACKBONES, OUTPUT_STRIDE, build_backbone
from ranlib.heads import DEFAULT_DILATION, HEADS, build_head, head_cells
from ranlib.reverse_attention import ATTENTIONS, neg, reverse_attention

VARIANTS = ("ran", "subtract", "baseline")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet101"  # resnet18 | resnet50 | resnet101 | vgg16 | efficientnet_lite0
    head: str = "largefov"  # largefov | aspp: the structure of both CONV_org and CONV_rev
    variant: str = "ran"  # ran | subtract | baseline
    attention: str = "sigmoid"  # sigmoid: sigmoid(-original) | normalized: sigmoid(1/(relu(original)+0.125)-4)
    num_classes: int = 21  # PASCAL VOC: background + 20 classes
    weights_backbone: str | None = None  # torchvision weight name such as "IMAGENET1K_V1"; None = random init
    # (efficientnet_lite0: "IMAGENET1K", from the installed package file)
    head_dilation: int = DEFAULT_DILATION  # the heads' field of view (ranlib.heads): LargeFOV's 3x3 dilation,
    # ASPP's rates scaled from (6, 12, 18, 24), VGG16's fc6; 0 = a 1x1 head. Reach: head_reach(config) pixels

    def __post_init__(self):
        for field, value, choices in (("backbone", self.backbone, BACKBONES), ("head", self.head, HEADS),
                                      ("variant", self.variant, VARIANTS), ("attention", self.attention, ATTENTIONS)):
            if value not in choices:
                raise ValueError(f"unknown {field} {value!r}; choose one of {', '.join(choices)}")
        if not isinstance(self.head_dilation, int) or self.head_dilation < 0:
            raise ValueError(f"head_dilation must be 0 (a 1x1 head) or a positive integer, got {self.head_dilation!r}")


class RANOutput(NamedTuple):
    """Every branch at feature resolution (output stride 8), logits of shape (B, K, h, w).

    ``reverse`` is ``None`` for the baseline; ``attention`` is ``None`` for the baseline and subtract variants.
    For ``"ran"``, ``fused == original + attention * reverse`` holds exactly on these tensors.
    """

    original: torch.Tensor
    reverse: torch.Tensor | None
    attention: torch.Tensor | None
    fused: torch.Tensor

    def upsample(self, size: tuple[int, int]) -> RANOutput:
        """All branches bilinearly resized (``align_corners=False``) to ``size``, e.g. the image's (H, W).

        The attention map is resized the same way, so it stays in [0, 1]. Use ``.fused`` of the result as the
        full-resolution segmentation logits.
        """
        def up(x):
            return None if x is None else F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return RANOutput(*(up(x) for x in self))


class RAN(nn.Module):
    """Reverse Attention Network on a dilated backbone; ``forward`` always returns a ``RANOutput``."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone, config.weights_backbone, fc6_dilation=config.head_dilation)
        ch, d = self.backbone.out_channels, config.head_dilation
        self.conv_org = build_head(config.head, ch, config.num_classes, config.backbone, d)
        # CONV_rev: same structure, its own initialisation (drawn after CONV_org's from the RNG).
        self.conv_rev = (build_head(config.head, ch, config.num_classes, config.backbone, d)
                         if config.variant != "baseline" else None)

    @classmethod
    def from_config(cls, config: ModelConfig) -> RAN:
        """The model a ``ModelConfig`` describes (how checkpoints and ``fit`` rebuild it)."""
        return cls(config)

    @property
    def output_stride(self) -> int:
        return self.backbone.output_stride

    def forward(self, images: torch.Tensor) -> RANOutput:
        f = self.backbone(images)  # (B, C, H/8, W/8)
        original = self.conv_org(f)  # (B, K, H/8, W/8)
        if self.conv_rev is None:  # baseline: plain DeepLab
            return RANOutput(original, None, None, original)
        reverse = neg(self.conv_rev(f))  # (B, K, H/8, W/8)
        if self.config.variant == "subtract":
            return RANOutput(original, reverse, None, original + reverse)
        attention = reverse_attention(original, self.config.attention)  # (B, K, H/8, W/8), in [0, 1]
        return RANOutput(original, reverse, attention, original + attention * reverse)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of CONV_org and CONV_rev (trained at 10x the backbone's learning rate)."""
        heads = [self.conv_org] + ([self.conv_rev] if self.conv_rev is not None else [])
        return [p for h in heads for p in h.parameters()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())


def build_model(backbone: str = "resnet101", head: str = "largefov", variant: str = "ran",
                attention: str = "sigmoid", num_classes: int = 21, weights_backbone: str | None = None,
                head_dilation: int = DEFAULT_DILATION) -> RAN:
    """Build a RAN (or its subtract/baseline variant). See ``ModelConfig`` for the meaning of each argument."""
    if weights_backbone is not None and not isinstance(weights_backbone, str):
        weights_backbone = weights_backbone.name  # a torchvision enum: keep the config plain data
    return RAN(ModelConfig(backbone, head, variant, attention, num_classes, weights_backbone, head_dilation))


class HeadReachWarning(UserWarning):
    """The training crop is too small for the head's field of view (see ``check_head_fits_crop``)."""


def head_reach(config: ModelConfig) -> int:
    """How far, in input pixels, the heads' outermost tap lies from the pixel it scores (0 for a 1x1 head).

    DeepLab-LargeFOV on a ResNet (3x3, dilation 12, output stride 8) reaches 12 * 8 = 96 px each way.
    """
    return OUTPUT_STRIDE * head_cells(config.head, config.backbone, config.head_dilation)


def check_head_fits_crop(config: ModelConfig, crop_size: int) -> str | None:
    """Warn (``HeadReachWarning``) when crops of ``crop_size`` give a feature map no wider than the head's reach.

    The feature map is ``ceil(crop_size / 8)`` cells wide. When the head's outermost taps lie that many cells or
    more from every cell, they read only zero padding: in training the head is a 1x1 convolution and those taps
    get no gradient, but evaluation on larger images uses them (a LargeFOV head trains as a 1x1 convolution;
    an ASPP head's smaller rates may still see data). A warning rather than a refusal: such a run is
    still valid and reproducible (the embedded data's main job is one), it just does not train the head it
    evaluates. Returns the message, or ``None`` when the head fits.
    """
    cells, width = head_cells(config.head, config.backbone, config.head_dilation), math.ceil(crop_size / OUTPUT_STRIDE)
    if cells == 0 or cells < width:
        return None
    message = (f"the {config.head} head reaches {head_reach(config)} px (head_dilation {config.head_dilation}, "
               f"{cells} feature cells) but {crop_size}-px training crops give a {width}x{width} feature map: "
               f"its outermost taps read only zero padding in training and get no gradient, while evaluation on "
               f"larger images uses them (a LargeFOV head trains as a 1x1 convolution). "
               f"Train on crops wider than {head_reach(config)} px, "
               f"or set head_dilation so the head reaches fewer than {width} cells (0: a 1x1 head).")
    warnings.warn(message, HeadReachWarning, stacklevel=2)
    return message
