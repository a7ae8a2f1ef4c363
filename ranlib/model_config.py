"""What a RAN is built from, by name: ``ModelConfig`` and the names each of its fields accepts.

Plain data without torch, so that the command line (``python -m ranlib train --help``) and ``TrainConfig`` can
read the choices and defaults without loading a network library. ``RAN.from_config(ModelConfig(...))`` builds
the model (``ranlib.model``); every checkpoint stores its ``ModelConfig`` as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass

BACKBONES = ("resnet18", "resnet50", "resnet101", "vgg16", "efficientnet_lite0")  # ranlib.backbone
HEADS = ("largefov", "aspp")  # ranlib.heads
VARIANTS = ("ran", "subtract", "baseline")  # ranlib.model
ATTENTIONS = ("sigmoid", "normalized")  # ranlib.reverse_attention
DEFAULT_DILATION = 12  # DeepLab-LargeFOV's; ASPP's rates (6, 12, 18, 24) are given at this value


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
