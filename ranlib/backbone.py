"""Dilated backbones with output stride 8 (the feature extractor ``f`` of the model's description in ranlib.model).

RAN sits on DeepLab (Chen et al., 2016/2017): the backbone keeps 1/8 resolution by replacing the strides of
its last stages with dilation. Two families are provided:

- ``ResNetBackbone``: torchvision ResNet-18/50/101 with ``replace_stride_with_dilation=[False, True, True]``
  (DeepLabv2 style); ``out_channels`` is 512 (ResNet-18) or 2048.
- ``VGGLargeFOV``: VGG16 DeepLab-LargeFOV. pool4 and pool5 have stride 1, conv5 has dilation 2, fc6 is a
  3x3 convolution with dilation 12 to 1024 channels, fc7 a 1x1 convolution to 1024 channels, each followed by
  ReLU and dropout; ``out_channels`` is 1024. ImageNet initialisation copies torchvision's VGG16 convolutions
  and decimates its fully connected layers as DeepLab did: fc6 keeps every 4th output unit and taps 0, 3, 6
  of the 7x7 kernel; fc7 keeps every 4th unit in both dimensions. ``fc6_dilation`` changes the LargeFOV
  (0: a 1x1 fc6 initialised from the kernel's centre tap).
- ``EfficientNetLite0Backbone`` (``ranlib.efficientnet``, needs ``ranlib[offline-weights]``): timm's
  EfficientNet-Lite0 dilated to output stride 8; ``out_channels`` is 320; ImageNet weights ``"IMAGENET1K"``
  from an installed package file, no download.
- ``TinyBackbone`` (``"tiny"``): three stride-2 convolutions, about 6,000 parameters and no pretrained weights;
  ``out_channels`` is 32. Not a model of the paper: it is for tests and quick experiments of the training engine
  (resume, checkpoints, interrupts, the CLI, DDP), where a resumable checkpoint of kilobytes and a step of
  milliseconds matter and what the network learns does not.

Every backbone reports ``out_channels`` and ``output_stride`` and maps ``(B, 3, H, W)`` to
``(B, out_channels, ceil(H/8), ceil(W/8))``.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models import WeightsEnum

from ranlib.model_config import BACKBONES, check_choice

RESNETS = {
    "resnet18": (torchvision.models.resnet18, torchvision.models.ResNet18_Weights, 512),
    "resnet50": (torchvision.models.resnet50, torchvision.models.ResNet50_Weights, 2048),
    "resnet101": (torchvision.models.resnet101, torchvision.models.ResNet101_Weights, 2048),
}
OUTPUT_STRIDE = 8  # every backbone here


def resolve_weights(weights_enum: type[WeightsEnum], weights: str | WeightsEnum | None) -> WeightsEnum | None:
    """Turn ``"IMAGENET1K_V1"``, ``"ResNet50_Weights.IMAGENET1K_V2"``, ``"DEFAULT"`` or an enum into the enum."""
    if weights is None or isinstance(weights, WeightsEnum):
        return weights
    name = weights.split(".")[-1]
    try:
        return weights_enum[name]
    except KeyError:
        choices = ", ".join(weights_enum.__members__)  # aliases such as DEFAULT included
        raise ValueError(f"unknown weights {weights!r} for {weights_enum.__name__}; choose one of {choices}") from None


def weight_names(name: str) -> tuple[str, ...]:
    """The weight names backbone ``name`` accepts (``--weights-backbone``): its torchvision enum's, aliases such as
    DEFAULT included; for efficientnet_lite0 the package file's."""
    check_choice("backbone", name, BACKBONES)
    if name in RESNETS:
        return tuple(RESNETS[name][1].__members__)
    if name == "vgg16":
        return tuple(torchvision.models.VGG16_Weights.__members__)
    if name == "tiny":
        return ()  # random initialisation only
    from ranlib.efficientnet import WEIGHTS  # loaded only for this backbone, as in build_backbone

    return WEIGHTS


def load_weights(weights: WeightsEnum) -> dict[str, torch.Tensor]:
    """Load ``weights`` through torchvision (the torch hub cache first, then the network).

    A file already in ``$TORCH_HOME/hub/checkpoints`` is used without a network. When it is missing and the
    download fails, the error names the file, the URL and the folder to put it in.
    """
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    filename = weights.url.rsplit("/", 1)[-1]
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as err:
        if (folder / filename).exists() and not isinstance(err, urllib.error.URLError):
            raise
        raise RuntimeError(
            f"could not load backbone weights {weights}: {filename} is not in {folder} and the download "
            f"failed ({err}). Fetch {weights.url} by hand and put it at {folder / filename} "
            "(set TORCH_HOME to use another cache folder)."
        ) from err


class ResNetBackbone(nn.Module):
    """ResNet stem and four stages, stages 3 and 4 dilated (2 and 4) so the output stride is 8."""

    output_stride = 8

    def __init__(self, name: str = "resnet101", weights: str | WeightsEnum | None = None,
                 norm_layer: type[nn.Module] = nn.BatchNorm2d):
        super().__init__()
        build, weights_enum, self.out_channels = RESNETS[name]
        weights = resolve_weights(weights_enum, weights)
        net = build(replace_stride_with_dilation=[False, True, True] if name != "resnet18" else None,
                    norm_layer=norm_layer)
        if name == "resnet18":  # BasicBlock refuses dilation in torchvision, so set it by hand.
            _dilate_basic_blocks(net.layer3, dilation=2)
            _dilate_basic_blocks(net.layer4, dilation=4)
        if weights is not None:
            net.load_state_dict(load_weights(weights))
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 64, H/4, W/4)
        x = self.layer2(self.layer1(x))  # (B, C2, H/8, W/8)
        return self.layer4(self.layer3(x))  # (B, out_channels, H/8, W/8)


def _dilate_basic_blocks(layer: nn.Sequential, dilation: int) -> None:
    """Remove the stride of a BasicBlock stage and dilate its 3x3 convolutions (DeepLabv2 style)."""
    for i, block in enumerate(layer):
        first = dilation // 2 if i == 0 else dilation  # the first block keeps the previous stage's rate
        for conv, rate in ((block.conv1, first), (block.conv2, dilation)):
            conv.stride, conv.dilation, conv.padding = (1, 1), (rate, rate), (rate, rate)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)


# VGG16 "D" configuration; pool4/pool5 use stride 1 and conv5 dilation 2 (DeepLab-LargeFOV).
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M1", 512, 512, 512, "M1"]


class VGGLargeFOV(nn.Module):
    """VGG16 DeepLab-LargeFOV up to fc7: ``(B, 3, H, W) -> (B, 1024, H/8, W/8)``."""

    output_stride = 8
    out_channels = 1024

    def __init__(self, weights: str | WeightsEnum | None = None, dropout: float = 0.5, fc6_dilation: int = 12):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, dilation = 3, 1
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))  # ceil(H/2), as Caffe for odd H
            elif v == "M1":
                layers.append(nn.MaxPool2d(3, stride=1, padding=1))
                dilation = 2  # every convolution after pool4 (conv5_x) is dilated
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=dilation, dilation=dilation), nn.ReLU(inplace=True)]
                in_ch = v
        self.features = nn.Sequential(*layers)
        kernel, rate = (3, fc6_dilation) if fc6_dilation > 0 else (1, 1)
        self.fc6 = nn.Conv2d(512, 1024, kernel, padding=rate * (kernel - 1) // 2, dilation=rate)
        self.fc7 = nn.Conv2d(1024, 1024, 1)
        self.relu, self.drop = nn.ReLU(inplace=True), nn.Dropout2d(dropout)
        weights = resolve_weights(torchvision.models.VGG16_Weights, weights)
        if weights is not None:
            self.load_torchvision_vgg16(load_weights(weights))

    def load_torchvision_vgg16(self, state: dict[str, torch.Tensor]) -> None:
        """Copy torchvision's VGG16 convolutions and decimate its classifier into fc6/fc7 (as DeepLab did)."""
        ours = [m for m in self.features if isinstance(m, nn.Conv2d)]
        theirs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
        assert len(ours) == len(theirs) == 13, "VGG16 has 13 convolutions"
        with torch.no_grad():
            for conv, idx in zip(ours, theirs, strict=True):
                conv.weight.copy_(state[f"features.{idx}.weight"])
                conv.bias.copy_(state[f"features.{idx}.bias"])
            fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
            taps = slice(0, 7, 3) if self.fc6.kernel_size[0] == 3 else slice(3, 4)  # 3x3: 0, 3, 6; 1x1: centre
            self.fc6.weight.copy_(fc6[::4][:, :, taps, taps])  # (1024, 512, 3, 3) or (1024, 512, 1, 1)
            self.fc6.bias.copy_(state["classifier.0.bias"][::4])
            self.fc7.weight.copy_(state["classifier.3.weight"][::4, ::4][:, :, None, None])  # (1024, 1024, 1, 1)
            self.fc7.bias.copy_(state["classifier.3.bias"][::4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, H/8, W/8)
        x = self.drop(self.relu(self.fc6(x)))  # (B, 1024, H/8, W/8)
        return self.drop(self.relu(self.fc7(x)))  # (B, 1024, H/8, W/8)


class TinyBackbone(nn.Module):
    """Three 3x3 convolutions of stride 2 (3 -> 8 -> 16 -> 32 channels), each followed by BatchNorm and ReLU:
    ``(B, 3, H, W) -> (B, 32, ceil(H/8), ceil(W/8))`` with 6,088 parameters, for tests of the training engine."""

    output_stride = 8
    out_channels = 32

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        for in_ch, out_ch in ((3, 8), (8, 16), (16, self.out_channels)):
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out_ch),
                       nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, 32, ceil(H/8), ceil(W/8))


def build_backbone(name: str, weights: str | WeightsEnum | None = None, fc6_dilation: int = 12) -> nn.Module:
    """Return the dilated backbone ``name`` (one of ``BACKBONES``), optionally with ImageNet weights.

    ``fc6_dilation`` is used by ``vgg16`` only (its LargeFOV layer).
    """
    check_choice("backbone", name, BACKBONES)
    if name in RESNETS:
        return ResNetBackbone(name, weights)
    elif name == "vgg16":
        return VGGLargeFOV(weights, fc6_dilation=fc6_dilation)
    elif name == "tiny":
        if weights is not None:
            raise ValueError(f"the tiny backbone has no pretrained weights (got {weights!r}); leave the weights out")
        return TinyBackbone()
    from ranlib.efficientnet import EfficientNetLite0Backbone  # efficientnet_lite0; timm is an optional dependency
    return EfficientNetLite0Backbone(weights)
