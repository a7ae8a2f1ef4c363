"""Notebook 04's exercises: Formula 1, the normalised attention, and the fusion.

- ``check_reverse_attention(my_reverse_attention)``: A = sigmoid(-F_org) = 1 / (1 + exp(F_org)).
- ``check_normalized_attention(my_normalized_attention)``: A = sigmoid(1 / (relu(F_org) + 0.125) - 4).
- ``check_fuse(my_fuse)``: F_RAN = F_org + A * F_rev.

Each probes hand-picked scores (0, ±2, large magnitudes), a (B, K, h, w) batch of realistic size, that the input
is not modified in place, and that gradients flow back through the result (the attention is not detached).
"""

from __future__ import annotations

import math

import torch

from ranlib.exercises._check import (
    ExerciseError,
    call,
    check_gradient,
    check_unchanged,
    compare,
    fail,
    guarded,
    passed,
)
from ranlib.reverse_attention import reverse_attention


def _scores() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [torch.tensor([0.0, 2.0, -2.0, 0.5, -0.5, 8.0, -8.0]), 5 * torch.randn(2, 21, 8, 8, generator=g),
            5 * torch.randn(1, 5, 7, 11, generator=g), torch.tensor([-100.0, -60.0, 60.0, 100.0])]


def _elementwise_check(name: str, fn, reference, wrong) -> None:
    for scores in _scores():
        given = scores.clone()
        try:
            ours = call(fn, given, name=name)
        except ExerciseError as error:
            if scores.dim() == 1 and "dimension out of range" in str(error).lower():
                fail(f"{name} raised IndexError on the 1-D scores {scores.tolist()}: the formula is elementwise and "
                     "takes any shape\n  likely: a sum, softmax or normalisation over a dimension (dim=1): each "
                     "score gives its own attention, whatever the other classes' scores")
            raise
        check_unchanged(name, given, scores)
        mistakes = {k: v(scores) for k, v in wrong.items()}
        if scores.dim() == 4:
            mistakes["H and W swapped (a transpose or permute): elementwise, the shape stays as it is"] = \
                reference(scores.transpose(-1, -2))
        compare(f"{name}, scores {scores.tolist() if scores.dim() == 1 else tuple(scores.shape)}",
                ours, reference(scores), mistakes, atol=1e-6)
        if ours.dtype != scores.dtype:
            fail(f"{name}: dtype {scores.dtype} expected (the input's), got {ours.dtype}\n  likely: computed in "
                 "another precision (.double(), float64 constants from numpy or math): keep the input's dtype")
        if isinstance(ours, torch.Tensor) and torch.isnan(ours).any():
            fail(f"{name} returns NaN for scores {scores.tolist()}")
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    check_gradient(name, call(fn, x, name=name), x, "the attention")


@guarded
def check_reverse_attention(fn) -> None:
    """Check ``fn(original) -> A = sigmoid(-original)``, elementwise, any shape."""
    name = "my_reverse_attention"
    _elementwise_check(name, fn, lambda x: reverse_attention(x, "sigmoid"), {
        "looks like sigmoid(x) instead of sigmoid(-x): NEG is missing (1 / (1 + exp(-x)))": torch.sigmoid,
        "a softmax over the classes: the attention is per class, an elementwise sigmoid":
            lambda x: torch.softmax(-x, dim=1 if x.dim() == 4 else 0),
        "exp(-x) alone: the formula is 1 / (1 + exp(x))": lambda x: torch.exp(-x),
        "1 - x: the formula is 1 / (1 + exp(x))": lambda x: 1 - x,
        "NEG applied to the output, -sigmoid(x): the minus goes inside, sigmoid(-x)": lambda x: -torch.sigmoid(x),
        "1 / (1 - exp(x)): the formula is 1 / (1 + exp(x))": lambda x: 1 / (1 - torch.exp(x)),
        "exp(x) / (1 + exp(x)) is sigmoid(x): the formula is 1 / (1 + exp(x)) = sigmoid(-x)":
            lambda x: torch.exp(x) / (1 + torch.exp(x)),
        "exp(-x) overflows to inf at very negative scores, and inf / inf is nan: exp(-x) / (1 + exp(-x)) is right "
        "on paper only; 1 / (1 + exp(x)) stays finite": lambda x: torch.exp(-x) / (1 + torch.exp(-x)),
        "normalised over the classes (A / A.sum(1)): each class's attention is on its own, sigmoid(-x)":
            lambda x: torch.sigmoid(-x) / torch.sigmoid(-x).sum(1 if x.dim() == 4 else 0, keepdim=True),
    })
    passed(f"{name}: 0.5 at score 0, sigmoid(-x) elsewhere (|x| up to 100, no overflow), input untouched, "
           "gradients flow")


@guarded
def check_normalized_attention(fn) -> None:
    """Check ``fn(original) -> A = sigmoid(1 / (relu(original) + 0.125) - 4)``, elementwise, any shape."""
    name = "my_normalized_attention"
    _elementwise_check(name, fn, lambda x: reverse_attention(x, "normalized"), {
        "the ReLU is missing: negative scores go through relu first, so all of them give sigmoid(4)":
            lambda x: torch.sigmoid(1 / (x + 0.125) - 4),
        "the -4 is missing: sigmoid(1 / (relu(x) + 0.125) - 4)": lambda x: torch.sigmoid(1 / (x.relu() + 0.125)),
        f"looks like Formula 1, sigmoid(-x) (0.5 at score 0): the normalised form gives sigmoid(1/0.125 - 4) = "
        f"sigmoid(4) = {1 / (1 + math.exp(-4)):.3f} there": lambda x: torch.sigmoid(-x),
        "sigmoid(-(...)): the normalised form has no minus in front":
            lambda x: torch.sigmoid(4 - 1 / (x.relu() + 0.125)),
        "0.125 missing or misplaced: 1 / (relu(x) + 0.125)": lambda x: torch.sigmoid(1 / x.relu() + 0.125 - 4),
        "+4 instead of -4: sigmoid(1 / (relu(x) + 0.125) - 4)": lambda x: torch.sigmoid(1 / (x.relu() + 0.125) + 4),
        "relu(-x): the normalised form takes relu of the original scores themselves":
            lambda x: torch.sigmoid(1 / ((-x).relu() + 0.125) - 4),
        "the sigmoid is missing: A = sigmoid(1 / (relu(x) + 0.125) - 4)": lambda x: 1 / (x.relu() + 0.125) - 4,
        "positive scores without the + 0.125 (1/x - 4, or clamp(min=0.125)): every score takes 1 / (relu(x) + 0.125)":
            lambda x: torch.where(x <= 0.125, torch.sigmoid(torch.tensor(4.0)), torch.sigmoid(1 / x - 4)),
        "abs(x) instead of relu(x): every negative score gives sigmoid(4)":
            lambda x: torch.sigmoid(1 / (x.abs() + 0.125) - 4),
        "the - 4 inside the fraction: sigmoid(1 / (relu(x) + 0.125) - 4)":
            lambda x: torch.sigmoid(1 / (x.relu() + 0.125 - 4)),
    })
    passed(f"{name}: sigmoid(4) = 0.982 for every score <= 0, decreasing above; input untouched, gradients flow")


@guarded
def check_fuse(fn) -> None:
    """Check ``fn(original, reverse, attention) -> original + attention * reverse`` (reverse already NEG'd)."""
    name = "my_fuse"
    g = torch.Generator().manual_seed(1)
    for shape in ((2, 21, 8, 8), (1, 5, 41, 41), (2, 3, 9, 13)):
        original, reverse = 4 * torch.randn(shape, generator=g), 4 * torch.randn(shape, generator=g)
        attention = torch.sigmoid(-original)
        given = [t.clone() for t in (original, reverse, attention)]
        ours = call(fn, *given, name=name)
        inputs = (original, reverse, attention)
        for what, a, b in zip(("original", "reverse", "attention"), given, inputs, strict=True):
            check_unchanged(f"{name} ({what})", a, b)
        compare(f"{name} on {shape}", ours, original + attention * reverse, {
            "NEG applied twice: reverse is already NEG(CONV_rev(f)), so fused = original + A * reverse":
                original - attention * reverse,
            "the attention is ignored: that is the subtract variant, original + reverse": original + reverse,
            "the attention applied to the original scores instead of the reverse ones":
                attention * original + reverse,
            "the original scores are missing: fused = original + A * reverse": attention * reverse,
            "(original + reverse) * A: only the reverse scores are weighted": (original + reverse) * attention,
            "1 - A: the attention is already sigmoid(-original), use it as it is":
                original + (1 - attention) * reverse,
            "(1 - A) * original + A * reverse: the original scores are not weighted, F_org + A * F_rev":
                (1 - attention) * original + attention * reverse,
            "the reverse evidence summed over the classes: the fusion is per class, elementwise":
                original + (attention * reverse).sum(1, keepdim=True),
            **({"a matrix product (@ or matmul): the fusion is elementwise, *": original + attention @ reverse}
               if shape[-1] == shape[-2] else {}),
        })
    tensors = [torch.randn(1, 3, 4, 4, requires_grad=True) for _ in range(3)]
    fused = call(fn, *tensors, name=name)
    for what, t in zip(("original", "reverse", "attention"), tensors, strict=False):
        check_gradient(name, fused, t, f"the fused scores (towards {what})")
    passed(f"{name}: original + attention * reverse, inputs untouched, gradients reach all three")
