"""What a RAN is built from, by name: ``ModelConfig`` and the names each of its fields accepts.

Plain data without torch, so that the command line (``python -m ranlib train --help``) and ``TrainConfig`` can
read the choices and defaults without loading a network library. ``RAN.from_config(ModelConfig(...))`` builds
the model (``ranlib.model``); every checkpoint stores its ``ModelConfig`` as a dict.
"""

from __future__ import annotations

from dataclasses import dataclass

# ranlib.backbone; "tiny" (about 6,000 parameters) is for tests and quick experiments of the training engine
BACKBONES = ("resnet18", "resnet50", "resnet101", "vgg16", "efficientnet_lite0", "tiny")
HEADS = ("largefov", "aspp")  # ranlib.heads
VARIANTS = ("ran", "subtract", "baseline")  # ranlib.model
ATTENTIONS = ("sigmoid", "normalized", "centered")  # ranlib.reverse_attention; "centered" is ours, not the paper's
DEFAULT_DILATION = 12  # DeepLab-LargeFOV's; ASPP's rates (6, 12, 18, 24) are given at this value
# The named fields of ModelConfig (and of ranlib.engine.config.TrainConfig) with the names each accepts
MODEL_NAMES = (("backbone", BACKBONES), ("head", HEADS), ("variant", VARIANTS), ("attention", ATTENTIONS))
AMP_CHOICES = ("auto", "off", "bf16", "fp16")  # ranlib.precision: how a run computes, kept here beside the other names


class ConfigError(ValueError):
    """A configuration field holds a value outside its allowed range; ``field``, ``value`` and ``allowed`` say
    which. The command line words it as a bad flag (``ranlib.cli.bad_flag``)."""

    def __init__(self, field: str, value, allowed: str):
        super().__init__(f"{field} = {value!r} is not allowed; {field} must be {allowed}")
        self.field, self.value, self.allowed = field, value, allowed


def check_choice(field: str, value, choices: tuple) -> None:
    """The one check of every name list above: ``value`` must be one of ``choices``, else ConfigError."""
    if value not in choices:
        raise ConfigError(field, value, f"one of {', '.join(choices)}")


def check_dilation(value) -> None:
    """The one check of a head dilation: a whole number >= 0 (0: a 1x1 head), else ConfigError."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError("head_dilation", value, "a whole number >= 0 (0: a 1x1 head)")


@dataclass(frozen=True)
class ModelConfig:
    backbone: str = "resnet101"  # resnet18 | resnet50 | resnet101 | vgg16 | efficientnet_lite0 | tiny (tests)
    head: str = "largefov"  # largefov | aspp: the structure of both CONV_org and CONV_rev
    variant: str = "ran"  # ran | subtract | baseline
    attention: str = "sigmoid"  # the paper's: sigmoid: sigmoid(-original) | normalized: sigmoid(1/(relu(original)
    # +0.125)-4); ours, not the paper's: centered: sigmoid(-(original - its mean over the classes at the pixel))
    num_classes: int = 21  # PASCAL VOC: background + 20 classes
    weights_backbone: str | None = None  # torchvision weight name such as "IMAGENET1K_V1"; None = random init
    # (efficientnet_lite0: "IMAGENET1K", from the installed package file)
    head_dilation: int = DEFAULT_DILATION  # the heads' field of view (ranlib.heads): LargeFOV's 3x3 dilation,
    # ASPP's rates scaled from (6, 12, 18, 24), VGG16's fc6; 0 = a 1x1 head. Reach: head_reach(config) pixels

    def __post_init__(self):
        for field, choices in MODEL_NAMES:
            check_choice(field, getattr(self, field), choices)
        check_dilation(self.head_dilation)
