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

``RAN(backbone, conv_org, conv_rev, attention)`` composes modules (any backbone that reports ``out_channels`` and
``output_stride``); ``build_model("resnet101", "largefov", "ran")`` and ``RAN.from_config(ModelConfig(...))``
build them from names, as training and checkpoints do.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ranlib.backbone import OUTPUT_STRIDE, build_backbone
from ranlib.heads import build_head, head_cells
from ranlib.model_config import DEFAULT_DILATION, ModelConfig, check_choice
from ranlib.reverse_attention import ATTENTIONS, neg, reverse_attention


class RANOutput(NamedTuple):
    """Every branch at feature resolution (the backbone's output stride, 8 here), logits of shape (B, K, h, w).

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
    """Reverse Attention Network composed of a backbone and two heads; ``forward`` always returns a ``RANOutput``.

    The contract between the parts (as torchvision's ``_SimpleSegmentationModel``):

    - ``backbone`` maps images ``(B, 3, H, W)`` to features ``(B, C, H/os, W/os)`` and has the attributes
      ``out_channels`` (C) and ``output_stride`` (os);
    - each head (``conv_org``, ``conv_rev``) maps ``(B, C, h, w)`` to class scores ``(B, K, h, w)``.

    The variant follows from what is passed: ``conv_rev=None`` is the baseline (``fused = original``); a
    ``conv_rev`` with ``attention=None`` the subtract variant (``fused = original + reverse``); a ``conv_rev`` with
    ``attention="sigmoid"`` or ``"normalized"`` (``ranlib.reverse_attention``) RAN. ``num_classes`` (K) is read
    from ``conv_org`` (its ``num_classes``, or the output channels of its last convolution) unless given.
    ``RAN.from_config`` builds the parts from a ``ModelConfig`` and keeps it as ``model.config``; a model
    composed by hand has ``config = None``.
    """

    def __init__(self, backbone: nn.Module, conv_org: nn.Module, conv_rev: nn.Module | None = None,
                 attention: str | None = "sigmoid", num_classes: int | None = None):
        super().__init__()
        if attention is not None:  # None: no attention (subtract)
            check_choice("attention", attention, ATTENTIONS)
        if isinstance(backbone, ModelConfig):
            raise TypeError("RAN takes modules: build a model from a ModelConfig with RAN.from_config(config)")
        for name in ("out_channels", "output_stride"):
            if not hasattr(backbone, name):
                raise TypeError(f"the backbone ({type(backbone).__name__}) must report {name}")
        self.backbone, self.conv_org, self.conv_rev = backbone, conv_org, conv_rev
        self.attention = attention  # the form of the reverse attention; None: no attention (subtract)
        self.num_classes = _head_classes(conv_org) if num_classes is None else num_classes
        self.config: ModelConfig | None = None  # set by from_config

    @classmethod
    def from_config(cls, config: ModelConfig) -> RAN:
        """The model a ``ModelConfig`` describes (how checkpoints and ``fit`` rebuild it).

        The parts are drawn from the RNG in the order backbone, CONV_org, CONV_rev (CONV_rev has the same
        structure as CONV_org, its own initialisation).
        """
        backbone = build_backbone(config.backbone, config.weights_backbone, fc6_dilation=config.head_dilation)
        ch, d, k = backbone.out_channels, _head_dilation(config), config.num_classes
        conv_org = build_head(config.head, ch, k, d)
        conv_rev = build_head(config.head, ch, k, d) if config.variant != "baseline" else None
        model = cls(backbone, conv_org, conv_rev, config.attention if config.variant == "ran" else None, k)
        model.config = config
        return model

    @property
    def output_stride(self) -> int:
        return self.backbone.output_stride

    @property
    def variant(self) -> str:
        """``"baseline"`` (no CONV_rev), ``"subtract"`` (no attention) or ``"ran"``."""
        if self.conv_rev is None:
            return "baseline"
        return "subtract" if self.attention is None else "ran"

    def forward(self, images: torch.Tensor) -> RANOutput:
        return self.classify(self.backbone(images))  # backbone: (B, 3, H, W) -> f: (B, C, H/os, W/os)

    def classify(self, f: torch.Tensor) -> RANOutput:
        """The two branches, the attention and the fusion on backbone features ``f`` (B, C, H/os, W/os): the part
        of ``forward`` after the backbone, for measuring what each loss sends back into ``f``
        (``ranlib.step_size``)."""
        original = self.conv_org(f)  # (B, K, H/os, W/os)
        if self.conv_rev is None:  # baseline: plain DeepLab
            return RANOutput(original, None, None, original)
        reverse = neg(self.conv_rev(f))  # (B, K, H/os, W/os)
        if self.attention is None:  # subtract
            return RANOutput(original, reverse, None, original + reverse)
        attention = reverse_attention(original, self.attention)  # (B, K, H/os, W/os), in [0, 1]
        return RANOutput(original, reverse, attention, original + attention * reverse)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of CONV_org and CONV_rev (trained at 10x the backbone's learning rate)."""
        heads = [self.conv_org] + ([self.conv_rev] if self.conv_rev is not None else [])
        return [p for h in heads for p in h.parameters()]

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())


def _head_classes(head: nn.Module) -> int:
    """K of a head: its ``num_classes``, else the output channels of its last convolution."""
    if isinstance(getattr(head, "num_classes", None), int):
        return head.num_classes
    convs = [m for m in head.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise TypeError(f"cannot tell the number of classes of the head {type(head).__name__}: pass num_classes")
    return convs[-1].out_channels


def _head_dilation(config: ModelConfig) -> int:
    """The dilation the heads are built with: ``config.head_dilation``, except VGG16's LargeFOV head.

    VGG16's fc6 (in the backbone, dilated by ``head_dilation``) already holds LargeFOV's field of view; its
    LargeFOV classifier is the 1x1 fc8 (dilation 0). Its ASPP head keeps the scaled rates.
    """
    return 0 if config.backbone == "vgg16" and config.head == "largefov" else config.head_dilation


def build_model(backbone: str = "resnet101", head: str = "largefov", variant: str = "ran",
                attention: str = "sigmoid", num_classes: int = 21, weights_backbone: str | None = None,
                head_dilation: int = DEFAULT_DILATION) -> RAN:
    """Build a RAN (or its subtract/baseline variant) from names. See ``ModelConfig`` for each argument.

    The string front door to ``RAN.from_config``; to put RAN on a backbone or heads of your own, compose
    ``RAN(backbone, conv_org, conv_rev)``.
    """
    if weights_backbone is not None and not isinstance(weights_backbone, str):
        weights_backbone = weights_backbone.name  # a torchvision enum: keep the config plain data
    return RAN.from_config(ModelConfig(backbone, head, variant, attention, num_classes, weights_backbone,
                                       head_dilation))


class HeadReachWarning(UserWarning):
    """The training crop is too small for the head's field of view (see ``check_head_fits_crop``)."""


def head_reach(config: ModelConfig) -> int:
    """How far, in input pixels, the heads' outermost tap lies from the pixel it scores (0 for a 1x1 head).

    DeepLab-LargeFOV on a ResNet (3x3, dilation 12, output stride 8) reaches 12 * 8 = 96 px each way.
    """
    return OUTPUT_STRIDE * _reach_cells(config)


def _reach_cells(config: ModelConfig) -> int:
    """Feature cells the heads reach, plus VGG16's fc6 (in the backbone, before the 1x1 or ASPP head)."""
    fc6 = config.head_dilation if config.backbone == "vgg16" else 0
    return head_cells(config.head, _head_dilation(config)) + fc6


def check_head_fits_crop(config: ModelConfig, crop_size: int) -> str | None:
    """Warn (``HeadReachWarning``) when crops of ``crop_size`` give a feature map no wider than the head's reach.

    The feature map is ``ceil(crop_size / 8)`` cells wide. When the head's outermost taps lie that many cells or
    more from every cell, they read only zero padding: in training the head is a 1x1 convolution and those taps
    get no gradient, but evaluation on larger images uses them (a LargeFOV head trains as a 1x1 convolution;
    an ASPP head's smaller rates may still see data). A warning rather than a refusal: such a run is
    still valid and reproducible (the embedded data's main job is one), it just does not train the head it
    evaluates. Returns the message, or ``None`` when the head fits.
    """
    cells, width = _reach_cells(config), math.ceil(crop_size / OUTPUT_STRIDE)
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
