"""ranlib.evaluate.predict, the one "what does the model predict for this image": eval mode, no gradients, every
branch at the image's size, TTA; checked against the model's forward pass written out here."""

import copy

import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(scope="module")
def ran():
    from ranlib import build_model

    torch.manual_seed(0)
    return build_model("resnet18", variant="ran", num_classes=3)


def test_predict_is_the_forward_pass_in_eval_mode_at_full_resolution(ran, one_thread):
    from ranlib.evaluate import predict, predict_logits

    images = torch.randn(2, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    ran.train()
    out = predict(ran, images)
    assert ran.training, "predict puts the model back in the mode it was in"
    with torch.no_grad():
        expected = ran.eval()(images)
    ran.train()
    for name, got, raw in zip(out._fields, out, expected, strict=True):
        assert not got.requires_grad and got.dtype == torch.float32
        up = F.interpolate(raw, size=(40, 48), mode="bilinear", align_corners=False)
        torch.testing.assert_close(got, up, msg=name)
    # In train mode BatchNorm uses the batch's statistics: a different answer, so eval mode was really used.
    with torch.no_grad():
        assert not torch.allclose(copy.deepcopy(ran)(images).fused, expected.fused)  # a copy: BN stats move
    torch.testing.assert_close(predict_logits(ran, images), out.fused)
    torch.testing.assert_close(predict_logits(ran, images, branch="original"), out.original)
    one = predict(ran, images[1])  # one image (3, H, W) is a batch of one
    assert one.fused.shape == (1, 3, 40, 48)
    torch.testing.assert_close(one.fused, out.fused[1:], rtol=1e-4, atol=1e-5)


def test_predict_with_tta_averages_softmax_over_scales_and_flips(ran, one_thread):
    from ranlib.evaluate import TTA_SCALES, predict

    images = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    got = predict(ran.eval(), images, tta=True)
    fused, attention = 0, 0
    with torch.no_grad():
        for scale in TTA_SCALES:
            x = F.interpolate(images, scale_factor=scale, mode="bilinear", align_corners=False)
            for flip in (False, True):
                out = ran(x.flip(-1) if flip else x).upsample((32, 32))
                f, a = (out.fused.flip(-1), out.attention.flip(-1)) if flip else (out.fused, out.attention)
                fused, attention = fused + f.softmax(1), attention + a
    n = 2 * len(TTA_SCALES)
    torch.testing.assert_close(got.fused, fused / n)
    torch.testing.assert_close(got.attention, attention / n)
    torch.testing.assert_close(got.fused.sum(1), torch.ones(1, 32, 32))  # probabilities


def test_predict_errors_name_the_branch(one_thread):
    from ranlib import build_model
    from ranlib.evaluate import predict, predict_logits

    baseline = build_model("resnet18", variant="baseline", num_classes=3)
    images = torch.randn(1, 3, 16, 16)
    assert predict(baseline, images).reverse is None
    with pytest.raises(ValueError, match="no reverse branch"):
        predict_logits(baseline, images, branch="reverse")
    with pytest.raises(ValueError, match="unknown branch 'fuse'"):
        predict_logits(baseline, images, branch="fuse")
