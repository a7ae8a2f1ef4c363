"""The reverse attention's forms (``ranlib.reverse_attention``): the paper's ``sigmoid`` and ``normalized``, and
``centered``, ours (not the paper's): ``sigmoid(-(original - mean over classes))``. Known values worked by hand,
the offset invariance that sets ``centered`` apart, shapes, gradients, one training step, and the bad-name message.

Hand values used below (e = 2.718282):
    sigmoid(0)  = 0.5
    sigmoid(1)  = 1 / (1 + e^-1) = 1 / 1.367879 = 0.731059      sigmoid(-1) = 1 / (1 + e)    = 0.268941
    sigmoid(2)  = 1 / (1 + e^-2) = 1 / 1.135335 = 0.880797      sigmoid(-2) = 1 / (1 + e^2)  = 0.119203
    sigmoid(-3) = 1 / (1 + e^3)  = 1 / 21.085537 = 0.047426
    sigmoid(-5) = 1 / (1 + e^5)  = 1 / 149.413159 = 0.006693
"""

from __future__ import annotations

import pytest
import torch

from ranlib import RANLoss, build_model
from ranlib.engine.train import TrainConfig
from ranlib.model_config import ATTENTIONS, ConfigError, ModelConfig
from ranlib.reverse_attention import reverse_attention


def pixels(*scores: list[float]) -> torch.Tensor:
    """Scores of K classes at a row of pixels, as the model's (B=1, K, H=1, W=len(scores)) tensor."""
    return torch.tensor(scores, dtype=torch.float64).T.reshape(1, len(scores[0]), 1, len(scores))


def test_the_new_form_is_offered_beside_the_papers():
    assert ATTENTIONS == ("sigmoid", "normalized", "centered")


def test_centered_against_hand_worked_values():
    # pixel 1: scores (2, 0, -2), mean 0 -> sigmoid(-(2, 0, -2)) = (sigmoid(-2), sigmoid(0), sigmoid(2))
    # pixel 2: scores (5, 3, 1), mean 3 -> centred (2, 0, -2): the same three values as pixel 1
    # pixel 3: scores (3, 0, 0), mean 1 -> centred (2, -1, -1) -> (sigmoid(-2), sigmoid(1), sigmoid(1))
    a = reverse_attention(pixels([2, 0, -2], [5, 3, 1], [3, 0, 0]), "centered")
    expected = pixels([0.119203, 0.5, 0.880797], [0.119203, 0.5, 0.880797], [0.119203, 0.731059, 0.731059])
    torch.testing.assert_close(a, expected, rtol=0, atol=1e-6)


def test_papers_sigmoid_against_hand_worked_values():
    # pixel 2 of the test above, read raw by Formula 1: sigmoid(-(5, 3, 1)) -- shut at every class
    a = reverse_attention(pixels([5, 3, 1]), "sigmoid")
    torch.testing.assert_close(a, pixels([0.006693, 0.047426, 0.268941]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("form", ATTENTIONS)
def test_centered_alone_ignores_the_offset_the_softmax_ignores(form):
    """Adding c(pixel) to all K scores of a pixel leaves the softmax unchanged; of the forms, only centered
    follows it."""
    original = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    offset = 4.0 + 3.0 * torch.rand(2, 1, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(torch.softmax(original + offset, 1), torch.softmax(original, 1))
    moved = reverse_attention(original + offset, form)
    if form == "centered":
        torch.testing.assert_close(moved, reverse_attention(original, form), rtol=0, atol=1e-12)
    else:  # the paper's forms read each raw score: an offset of 4 to 7 shuts them
        assert (moved - reverse_attention(original, form)).abs().max() > 0.1
        assert moved.mean() < reverse_attention(original, form).mean()


def test_centered_opens_exactly_below_the_pixels_mean_score():
    original = torch.randn(3, 6, 5, 5, generator=torch.Generator().manual_seed(2))
    a = reverse_attention(original, "centered")
    assert torch.equal(a > 0.5, original < original.mean(1, keepdim=True))


@pytest.mark.parametrize("form", ATTENTIONS)
@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (4, 3), (1, 21, 1, 1)])
def test_shapes_and_range(form, shape):
    original = 10 * torch.randn(shape, generator=torch.Generator().manual_seed(3))
    a = reverse_attention(original, form)
    assert a.shape == original.shape and a.dtype == original.dtype
    assert a.min() >= 0 and a.max() <= 1


def test_centered_needs_the_class_dimension():
    with pytest.raises(ValueError, match=r"classes on dim 1.*shape \(3,\)"):
        reverse_attention(torch.zeros(3), "centered")


def test_centered_gradient_against_hand_worked_values():
    # A_k = s(-(x_k - m)), m = mean(x), s' = s (1 - s). d(sum_k A_k)/dx_j = -s'_j + (1/K) sum_k s'_k.
    # At (2, 0, -2): s'(+-2) = 0.880797 * 0.119203 = 0.104994, s'(0) = 0.25; sum = 0.459988, / 3 = 0.153329
    # -> (-0.104994 + 0.153329, -0.25 + 0.153329, -0.104994 + 0.153329) = (0.048335, -0.096671, 0.048335):
    # they sum to 0, since the offset direction (1, 1, 1) does not change A.
    x = pixels([2, 0, -2]).requires_grad_()
    reverse_attention(x, "centered").sum().backward()
    torch.testing.assert_close(x.grad, pixels([0.048335, -0.096671, 0.048335]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("form", ATTENTIONS)
def test_gradients_match_finite_differences(form):
    # positive scores only for normalized: relu's kink at 0 has no finite difference
    x = torch.rand(1, 4, 2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.1
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: reverse_attention(t, form), (x,))


def test_a_centered_ran_trains_one_step():
    torch.manual_seed(0)
    model = build_model("resnet18", attention="centered", num_classes=4)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    masks = torch.randint(0, 4, (2, 32, 32), generator=torch.Generator().manual_seed(6))
    out = model(images)
    centred = out.original - out.original.mean(1, keepdim=True)
    torch.testing.assert_close(out.attention, torch.sigmoid(-centred))
    assert torch.equal(out.fused, out.original + out.attention * out.reverse)
    loss, _ = RANLoss()(out, masks)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.conv_org.parameters()]
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    optimiser.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.conv_org.parameters(), strict=True))
    assert torch.isfinite(RANLoss()(model(images), masks)[0])
    assert model.config.attention == "centered" and TrainConfig(attention="centered").attention == "centered"


def test_a_bad_name_gives_the_one_message_everywhere():
    expected = "attention = 'centred' is not allowed; attention must be one of sigmoid, normalized, centered"
    for call in (lambda: reverse_attention(torch.zeros(1, 3, 2, 2), "centred"),
                 lambda: ModelConfig(attention="centred"), lambda: TrainConfig(attention="centred"),
                 lambda: build_model("resnet18", attention="centred", num_classes=3)):
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == expected


def test_train_help_lists_the_new_form_as_ours():
    from ranlib.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    (action,) = [a for a in train._actions if a.dest == "attention"]
    assert tuple(action.choices) == ATTENTIONS and "ours, not the paper's" in action.help
