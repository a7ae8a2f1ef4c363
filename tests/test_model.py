"""The RAN model: shapes, the seed's formulas on the returned tensors, gradients, weights loading."""

from __future__ import annotations

import io
import math
import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from ranlib import RAN, RANLoss, RANOutput, build_model
from ranlib.backbone import BACKBONES, VGGLargeFOV
from ranlib.heads import HEADS

K = 5  # classes in these tests


def _x(size: int = 64, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def built_backbone():
    """``built_backbone(name)``: backbone ``name`` with DeepLab's fc6 (dilation 12), built once for this module and
    handed out with no gradients, so the configurations below share one ResNet-101 instead of building eight."""
    from ranlib.backbone import build_backbone

    built = {}

    def get(name: str, weights=None, fc6_dilation: int = 12) -> torch.nn.Module:
        assert weights is None and fc6_dilation == 12, "only the default backbones are shared"
        if name not in built:
            torch.manual_seed(0)
            built[name] = build_backbone(name)
        built[name].zero_grad(set_to_none=True)
        return built[name].train()

    return get


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("variant,attention", [("ran", "sigmoid"), ("ran", "normalized"),
                                                 ("subtract", "sigmoid"), ("baseline", "sigmoid")])
def test_forward_backward_every_configuration(backbone, head, variant, attention, built_backbone, monkeypatch):
    import ranlib.model

    monkeypatch.setattr(ranlib.model, "build_backbone", built_backbone)  # RAN.from_config composes the shared one
    torch.manual_seed(0)
    model = build_model(backbone, head, variant, attention, num_classes=K)
    assert model.backbone is built_backbone(backbone)
    out = model(_x(65))
    assert isinstance(out, RANOutput)
    assert model.backbone.output_stride == 8
    assert out.fused.shape == out.original.shape == (2, K, 9, 9)  # ceil(65 / 8)
    assert (out.reverse is None) == (variant == "baseline")
    assert (out.attention is None) == (variant != "ran")
    loss, parts = RANLoss()(out, torch.randint(0, K, (2, 65, 65)))
    loss.backward()
    assert set(parts) == ({"fused"} if variant == "baseline" else {"original", "reverse", "fused"})
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_backbone_channels_match_report(built_backbone):
    for name in BACKBONES:
        backbone = built_backbone(name).eval()
        with torch.no_grad():
            f = backbone(_x(32, batch=1))
        assert f.shape == (1, backbone.out_channels, 4, 4), name


def test_ran_formulas_hold_on_returned_tensors():
    torch.manual_seed(0)
    model = build_model("resnet18", variant="ran", num_classes=K).eval()
    x = _x()
    with torch.no_grad():
        out = model(x)
        f = model.backbone(x)
        rev = model.conv_rev(f)
    original = out.original.double().numpy()
    # Formula 1, computed independently in float64 numpy.
    np.testing.assert_allclose(out.attention.double().numpy(), 1.0 / (1.0 + np.exp(original)), rtol=1e-5)
    torch.testing.assert_close(out.reverse, -rev, rtol=0, atol=0)  # NEG
    assert torch.equal(out.fused, out.original + out.attention * out.reverse)  # exact, as documented
    torch.testing.assert_close(out.fused, out.original - out.attention * rev)


def test_normalized_attention_formula():
    torch.manual_seed(0)
    model = build_model("resnet18", attention="normalized", num_classes=K).eval()
    with torch.no_grad():
        out = model(_x())
    o = out.original.double().numpy()
    expected = 1.0 / (1.0 + np.exp(-(1.0 / (np.maximum(o, 0) + 0.125) - 4.0)))
    np.testing.assert_allclose(out.attention.double().numpy(), expected, rtol=1e-5)
    # Hand-worked points: every non-positive score gives sigmoid(4); a score of 0.125 gives sigmoid(0).
    from ranlib.reverse_attention import reverse_attention
    a = reverse_attention(torch.tensor([-3.0, 0.0, 0.125]), "normalized")
    torch.testing.assert_close(a, torch.tensor([1 / (1 + math.exp(-4)), 1 / (1 + math.exp(-4)), 0.5]))


def test_subtract_and_baseline_variants():
    torch.manual_seed(0)
    sub = build_model("resnet18", variant="subtract", num_classes=K).eval()
    with torch.no_grad():
        out = sub(_x())
        rev = sub.conv_rev(sub.backbone(_x()))
    assert torch.equal(out.fused, out.original + out.reverse)
    torch.testing.assert_close(out.reverse, -rev, rtol=0, atol=0)

    torch.manual_seed(0)
    base = build_model("resnet50", variant="baseline", num_classes=K).eval()
    assert base.conv_rev is None
    # Plain DeepLab-LargeFOV built independently: torchvision's dilated ResNet-50 + one 3x3 conv, dilation 12.
    plain = torchvision.models.resnet50(replace_stride_with_dilation=[False, True, True]).eval()
    renamed = {k.replace("stem.0", "conv1").replace("stem.1", "bn1"): v for k, v in base.backbone.state_dict().items()}
    plain.load_state_dict(renamed | {"fc.weight": plain.fc.weight, "fc.bias": plain.fc.bias})
    conv = torch.nn.Conv2d(2048, K, 3, padding=12, dilation=12)
    conv.load_state_dict(base.conv_org.conv.state_dict())
    x = _x()
    with torch.no_grad():
        out = base(x)
        h = plain.maxpool(plain.relu(plain.bn1(plain.conv1(x))))
        expected = conv(plain.layer4(plain.layer3(plain.layer2(plain.layer1(h)))))
    assert out.reverse is None and out.attention is None
    assert torch.equal(out.fused, out.original)
    torch.testing.assert_close(out.fused, expected)


def test_heads_start_independent():
    torch.manual_seed(0)
    model = build_model("resnet18", head="aspp", num_classes=K)
    for org, rev in zip(model.conv_org.parameters(), model.conv_rev.parameters(), strict=True):
        assert org.shape == rev.shape
        if org.dim() > 1:
            assert not torch.equal(org, rev)


def test_conv_rev_gets_gradient_from_reverse_and_fused_losses():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=K)
    x, y = _x(), torch.randint(0, K, (2, 64, 64))
    grads = {}
    for name, w in (("reverse", (0, 1, 0)), ("fused", (0, 0, 1))):
        model.zero_grad()
        loss, _ = RANLoss(weights=w)(model(x), y)
        loss.backward()
        grads[name] = model.conv_rev.conv.weight.grad.abs().sum().item()
    assert grads["reverse"] > 0 and grads["fused"] > 0
    model.zero_grad()
    loss, _ = RANLoss()(model(x), y)
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert dead == []


def test_loss_against_hand_worked_values():
    # Logits at the label size (no resize). Pixel (0,0): logits (2, 0), label 0 -> log(1 + e^-2).
    # Pixel (0,1): (0, 1), label 0 -> log(1 + e^1). Pixel (1,0): label 255, ignored. Pixel (1,1): (1, 1) -> log 2.
    logits = torch.tensor([[[2.0, 0.0], [5.0, 1.0]], [[0.0, 1.0], [-5.0, 1.0]]])[None]  # (1, 2, 2, 2)
    target = torch.tensor([[[0, 0], [255, 1]]])
    ce = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1)) + math.log(2)) / 3
    out = RANOutput(original=logits, reverse=2 * logits, attention=None, fused=-logits)
    rev = (math.log(1 + math.exp(-4)) + math.log(1 + math.exp(2)) + math.log(2)) / 3
    fused = (math.log(1 + math.exp(2)) + math.log(1 + math.exp(-1)) + math.log(2)) / 3
    total, parts = RANLoss(weights=(1.0, 0.5, 2.0))(out, target)
    assert parts["original"].item() == pytest.approx(ce, rel=1e-6)
    assert parts["reverse"].item() == pytest.approx(rev, rel=1e-6)
    assert parts["fused"].item() == pytest.approx(fused, rel=1e-6)
    assert total.item() == pytest.approx(ce + 0.5 * rev + 2.0 * fused, rel=1e-6)
    base_total, base_parts = RANLoss()(RANOutput(logits, None, None, logits), target)
    assert set(base_parts) == {"fused"} and base_total.item() == pytest.approx(ce, rel=1e-6)


def test_upsample_gives_full_resolution_logits():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=K).eval()
    with torch.no_grad():
        out = model(_x(64))
    full = out.upsample((64, 64))
    assert full.fused.shape == (2, K, 64, 64)
    expected = torch.nn.functional.interpolate(out.fused, size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.equal(full.fused, expected)
    assert 0 <= full.attention.min() and full.attention.max() <= 1


def test_state_dict_round_trip():
    torch.manual_seed(0)
    a = build_model("resnet18", head="aspp", num_classes=K).eval()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    torch.manual_seed(1)
    b = build_model("resnet18", head="aspp", num_classes=K).eval()
    buffer.seek(0)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    with torch.no_grad():
        for x, y in zip(a(_x()), b(_x()), strict=True):
            assert torch.equal(x, y)


def test_weights_backbone_loads_from_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(123)
    reference = torchvision.models.resnet18().state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / weights.url.rsplit("/", 1)[-1])

    def no_network(*args, **kwargs):
        raise AssertionError("the cached file must be used without a download")
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model = build_model("resnet18", weights_backbone="IMAGENET1K_V1", num_classes=K)
    assert torch.equal(model.backbone.layer3[1].conv2.weight, reference["layer3.1.conv2.weight"])
    assert torch.equal(model.backbone.stem[0].weight, reference["conv1.weight"])
    assert model.config.weights_backbone == "IMAGENET1K_V1"
    assert build_model("resnet18", weights_backbone=weights, num_classes=K).config.weights_backbone == "IMAGENET1K_V1"


def test_missing_weights_error_names_file_url_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    with pytest.raises(RuntimeError) as err:
        build_model("resnet50", weights_backbone="IMAGENET1K_V1")
    message = str(err.value)
    assert weights.url in message
    assert str(tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]) in message
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        build_model("resnet18", weights_backbone="NOT_A_WEIGHT")


def test_vgg16_initialisation_from_torchvision_decimates_fc_layers():
    torch.manual_seed(0)
    state = torchvision.models.vgg16().state_dict()
    vgg = VGGLargeFOV()
    vgg.load_torchvision_vgg16(state)
    convs = [m for m in vgg.features if isinstance(m, torch.nn.Conv2d)]
    assert torch.equal(convs[0].weight, state["features.0.weight"])
    assert torch.equal(convs[-1].weight, state["features.28.weight"])
    fc6 = state["classifier.0.weight"].view(4096, 512, 7, 7)
    # Output unit 4 of ours is unit 16 of theirs; kernel tap (1, 2) is their tap (3, 6).
    assert torch.equal(vgg.fc6.weight[4, :, 1, 2], fc6[16, :, 3, 6])
    assert vgg.fc7.weight[3, 5, 0, 0] == state["classifier.3.weight"][12, 20]
    assert [c.dilation for c in convs[-3:]] == [(2, 2)] * 3 and vgg.fc6.dilation == (12, 12)


def test_bad_names_are_refused():
    for kwargs in ({"backbone": "resnet34"}, {"head": "psp"}, {"variant": "reverse"}, {"attention": "softmax"}):
        with pytest.raises(ValueError, match=f"{next(iter(kwargs))} must be one of"):
            build_model(**{"num_classes": K, "backbone": "resnet18", **kwargs})
    assert isinstance(build_model("resnet18", num_classes=K), RAN)


def test_head_dilation_builds_the_documented_heads():
    from ranlib.heads import aspp_rates
    assert build_model("resnet18", num_classes=K).conv_org.conv.dilation == (12, 12)  # DeepLab's default
    assert build_model("resnet18", num_classes=K, head_dilation=3).conv_rev.conv.dilation == (3, 3)
    one = build_model("resnet18", num_classes=K, head_dilation=0).conv_org.conv
    assert one.kernel_size == (1, 1) and one.padding == (0, 0)
    # ASPP: DeepLabv2's rates at 12, scaled by dilation / 12 and rounded half up, at least 1.
    assert aspp_rates(12) == (6, 12, 18, 24) and aspp_rates(6) == (3, 6, 9, 12)
    assert aspp_rates(1) == (1, 1, 2, 2) and aspp_rates(0) == (0, 0, 0, 0)
    aspp = build_model("resnet18", "aspp", num_classes=K, head_dilation=6).conv_org
    assert [b.dilation[0] for b in aspp.branches] == [3, 6, 9, 12]
    assert all(b.kernel_size == (1, 1) for b in build_model("resnet18", "aspp", num_classes=K,
                                                              head_dilation=0).conv_org.branches)
    vgg = build_model("vgg16", num_classes=K, head_dilation=4)
    assert vgg.backbone.fc6.dilation == (4, 4) and vgg.conv_org.conv.kernel_size == (1, 1)
    with pytest.raises(ValueError, match="head_dilation"):
        build_model("resnet18", num_classes=K, head_dilation=-1)
    # Checkpoints written before the field existed still load, with DeepLab's head.
    from ranlib.model import ModelConfig
    assert ModelConfig(**{"backbone": "resnet18", "num_classes": K}).head_dilation == 12


@pytest.mark.parametrize("head,backbone,dilation,reach", [
    ("largefov", "resnet18", 12, 96), ("largefov", "resnet18", 3, 24), ("largefov", "resnet18", 0, 0),
    ("aspp", "resnet18", 12, 192), ("aspp", "resnet18", 6, 96), ("largefov", "vgg16", 12, 96),
    ("aspp", "vgg16", 12, 288)])  # VGG16: fc6's reach plus the head's
def test_head_reach_matches_the_impulse_response(head, backbone, dilation, reach):
    from ranlib.model import ModelConfig, head_reach
    config = ModelConfig(backbone, head, num_classes=K, head_dilation=dilation)
    assert head_reach(config) == reach
    if backbone == "vgg16":
        return
    # Independently: feed the head one nonzero feature cell and see how far from it the scores change.
    torch.manual_seed(0)
    head_module = build_model(backbone, head, num_classes=K, head_dilation=dilation).conv_org
    size = 2 * reach // 8 + 9
    f = torch.zeros(1, head_module_in(head_module), size, size)
    f[0, :, size // 2, size // 2] = 1
    with torch.no_grad():
        changed = (head_module(f) - head_module(torch.zeros_like(f))).abs().sum(1)[0] > 0  # (size, size)
    rows, cols = changed.nonzero(as_tuple=True)
    assert 8 * (rows - size // 2).abs().max().item() == reach
    assert 8 * (cols - size // 2).abs().max().item() == reach


def head_module_in(head: torch.nn.Module) -> int:
    return next(m for m in head.modules() if isinstance(m, torch.nn.Conv2d)).in_channels


@pytest.mark.parametrize("dilation", [7, 8, 12])
def test_warning_exactly_when_outer_taps_get_no_gradient(dilation):
    """64-px crops give 8x8 features: the 3x3 head's outer taps see data for dilation <= 7 only."""
    from ranlib.model import HeadReachWarning, ModelConfig, check_head_fits_crop
    config = ModelConfig("resnet18", num_classes=K, head_dilation=dilation)
    torch.manual_seed(0)
    conv = build_model("resnet18", num_classes=K, head_dilation=dilation).conv_org.conv
    conv(torch.randn(2, conv.in_channels, 8, 8)).square().sum().backward()
    outer = conv.weight.grad.clone()
    outer[:, :, 1, 1] = 0
    blind = not outer.any()
    assert blind == (dilation >= 8)
    if blind:
        with pytest.warns(HeadReachWarning, match="64-px training crops give a 8x8 feature map"):
            assert check_head_fits_crop(config, 64) is not None
    else:
        assert check_head_fits_crop(config, 64) is None
    assert check_head_fits_crop(config, 128) is None  # 16x16 features: the taps see data
    assert check_head_fits_crop(ModelConfig("resnet18", num_classes=K, head_dilation=0), 8) is None


class PatchBackbone(torch.nn.Module):
    """A backbone that is not ranlib's: 16x16 patches to 24 ReLU channels, output stride 16."""

    out_channels, output_stride = 24, 16

    def __init__(self):
        super().__init__()
        self.patchify = torch.nn.Conv2d(3, self.out_channels, 16, stride=16)

    def forward(self, x):
        return self.patchify(x).relu()  # (B, 24, H/16, W/16)


@pytest.mark.parametrize("variant", ["ran", "subtract", "baseline"])
def test_composed_model_on_a_backbone_of_ones_own(variant):
    from ranlib.heads import ASPPHead, LargeFOVHead
    torch.manual_seed(0)
    backbone = PatchBackbone()
    conv_org, conv_rev = LargeFOVHead(24, K, dilation=6), ASPPHead(24, K, rates=(1, 2))
    with torch.no_grad():  # scores of order 1, so a wrong sign or a missing term cannot hide
        for p in [*conv_org.parameters(), *conv_rev.parameters()]:
            p.normal_()
    model = RAN(backbone, conv_org, None if variant == "baseline" else conv_rev,
                attention=None if variant == "subtract" else "sigmoid").eval()
    assert model.variant == variant and model.num_classes == K and model.output_stride == 16
    assert model.config is None
    x = _x(64)
    with torch.no_grad():
        out = model(x)
        f = x.unfold(2, 16, 16).unfold(3, 16, 16)  # (B, 3, 4, 4, 16, 16): the patches, by hand
        f = torch.einsum("bchwij,ocij->bohw", f, backbone.patchify.weight) + backbone.patchify.bias[:, None, None]
        o, rev = conv_org(f.relu()), conv_rev(f.relu())
    assert out.fused.shape == (2, K, 4, 4)
    close = {"rtol": 1e-4, "atol": 1e-4}  # scores of order 10
    torch.testing.assert_close(out.original, o, **close)
    if variant == "baseline":
        assert out.reverse is None and out.attention is None and torch.equal(out.fused, out.original)
        return
    torch.testing.assert_close(out.reverse, -rev, **close)
    if variant == "subtract":
        assert out.attention is None
        torch.testing.assert_close(out.fused, o - rev, **close)
    else:
        torch.testing.assert_close(out.fused, o - torch.sigmoid(-o) * rev, **close)


def test_composition_contract_is_enforced():
    from ranlib.heads import LargeFOVHead
    head = LargeFOVHead(24, K)
    with pytest.raises(TypeError, match="output_stride"):
        RAN(torch.nn.Conv2d(3, 24, 1), head)
    from ranlib.model import ModelConfig
    with pytest.raises(TypeError, match="from_config"):
        RAN(ModelConfig("resnet18"), head)
    with pytest.raises(ValueError, match="attention must be one of sigmoid, normalized"):
        RAN(PatchBackbone(), head, LargeFOVHead(24, K), attention="softmax")
    plain = torch.nn.Sequential(torch.nn.Conv2d(24, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1))
    assert RAN(PatchBackbone(), plain).num_classes == 3  # read from a head's last convolution
    assert RAN(PatchBackbone(), plain, num_classes=7).num_classes == 7


@pytest.mark.parametrize("backbone,head,variant,dilation", [
    ("resnet18", "largefov", "ran", 12), ("resnet18", "aspp", "subtract", 6), ("vgg16", "largefov", "ran", 12),
    ("vgg16", "aspp", "baseline", 4), ("resnet18", "largefov", "ran", 0)])
def test_from_config_draws_parts_in_the_old_order(backbone, head, variant, dilation):
    """Seeded runs stay bit-identical: backbone, then CONV_org, then CONV_rev, built here by hand."""
    from ranlib.backbone import build_backbone
    from ranlib.heads import ASPPHead, LargeFOVHead, aspp_rates
    from ranlib.model import ModelConfig
    config = ModelConfig(backbone, head, variant, num_classes=K, head_dilation=dilation)
    torch.manual_seed(0)
    model = RAN.from_config(config)
    torch.manual_seed(0)
    parts = {"backbone": build_backbone(backbone, fc6_dilation=dilation)}
    for name in ("conv_org", "conv_rev")[:1 if variant == "baseline" else 2]:
        if head == "aspp":
            parts[name] = ASPPHead(parts["backbone"].out_channels, K, aspp_rates(dilation))
        elif backbone == "vgg16" or dilation == 0:  # VGG16's fc6 holds the field of view; its fc8 is 1x1
            parts[name] = LargeFOVHead(parts["backbone"].out_channels, K, kernel_size=1, dilation=1)
        else:
            parts[name] = LargeFOVHead(parts["backbone"].out_channels, K, dilation=dilation)
    expected = {f"{part}.{key}": value for part, module in parts.items() for key, value in module.state_dict().items()}
    state = model.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    assert model.config is config and model.variant == variant and model.num_classes == K
    assert model.attention == ("sigmoid" if variant == "ran" else None)


def test_state_dict_key_names_are_public():
    """Checkpoints load by these names: backbone.*, conv_org.*, conv_rev.* (a LargeFOV head's one layer: conv)."""
    state = build_model("resnet18", num_classes=K).state_dict()
    assert [k for k in state if not k.startswith("backbone.")] == [
        "conv_org.conv.weight", "conv_org.conv.bias", "conv_rev.conv.weight", "conv_rev.conv.bias"]
    assert "backbone.stem.0.weight" in state and "backbone.layer4.1.conv2.weight" in state
    aspp = build_model("resnet18", "aspp", "baseline", num_classes=K).state_dict()
    assert [k for k in aspp if not k.startswith("backbone.")] == [
        f"conv_org.branches.{i}.{p}" for i in range(4) for p in ("weight", "bias")]
