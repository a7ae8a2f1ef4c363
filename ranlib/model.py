"""The Reverse Attention Network: backbone, two branches, reverse attention and fusion.

Huang, Wang, Wang, Kuo: "Semantic Segmentation with Reverse Attention", BMVC 2017. The seed's description::

    f         = backbone(image)                    # (B, C, H/8, W/8)
    original  = CONV_org(f)                        # (B, K, H/8, W/8)
    reverse   = NEG(CONV_rev(f)) = -CONV_rev(f)    # supervised with the ordinary labels
    attention = sigmoid(-original)                 # or the normalised form
    fused     = original + attention * reverse     # = original - attention * CONV_rev(f)

Three variants share this code: ``"ran"`` (above), ``"subtract"`` (no attention:
``fused = original + reverse``) and ``"baseline"`` (plain DeepLab: no reverse branch, ``fused = original``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ranlib.backbone import BACKBONES, build_backbone
from ranlib.heads import HEADS, build_head
from ranlib.reverse_attention import ATTENTIONS, neg, reverse_attention

VARIANTS = ("ran", "subtract", "baseline")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet101"  # resnet18 | resnet50 | resnet101 | vgg16
    head: str = "largefov"  # largefov | aspp: the structure of both CONV_org and CONV_rev
    variant: str = "ran"  # ran | subtract | baseline
    attention: str = "sigmoid"  # sigmoid: sigmoid(-original) | normalized: sigmoid(1/(relu(original)+0.125)-4)
    num_classes: int = 21  # PASCAL VOC: background + 20 classes
    weights_backbone: str | None = None  # torchvision weight name such as "IMAGENET1K_V1"; None = random init

    def __post_init__(self):
        for field, value, choices in (("backbone", self.backbone, BACKBONES), ("head", self.head, HEADS),
                                      ("variant", self.variant, VARIANTS), ("attention", self.attention, ATTENTIONS)):
            if value not in choices:
                raise ValueError(f"unknown {field} {value!r}; choose one of {', '.join(choices)}")


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
        self.backbone = build_backbone(config.backbone, config.weights_backbone)
        ch = self.backbone.out_channels
        self.conv_org = build_head(config.head, ch, config.num_classes, config.backbone)
        # CONV_rev: same structure, its own initialisation (drawn after CONV_org's from the RNG).
        self.conv_rev = (build_head(config.head, ch, config.num_classes, config.backbone)
                         if config.variant != "baseline" else None)

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
                attention: str = "sigmoid", num_classes: int = 21, weights_backbone: str | None = None) -> RAN:
    """Build a RAN (or its subtract/baseline variant). See ``ModelConfig`` for the meaning of each argument."""
    if weights_backbone is not None and not isinstance(weights_backbone, str):
        weights_backbone = weights_backbone.name  # a torchvision enum: keep the config plain data
    return RAN(ModelConfig(backbone, head, variant, attention, num_classes, weights_backbone))


def model_config_dict(model: RAN) -> dict:
    """The model's configuration as plain data (what checkpoints store beside the weights)."""
    return asdict(model.config)
