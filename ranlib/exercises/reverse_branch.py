"""Notebook 03's exercise: the reverse branch, CONV_rev followed by NEG.

``check_reverse_branch(MyReverseBranch)`` checks the layer as for CONV_org, then loads ranlib's ``conv_rev``
weights with non-zero biases (so that ``self.conv(-f)``, which negates only the weights' part, cannot pass) and
compares ``not_class(f) = CONV_rev(f)`` and ``forward(f) = NEG(CONV_rev(f))`` on features of realistic size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ranlib.exercises._check import compare, fail, guarded, passed, student
from ranlib.exercises.heads import head_gradient, head_probes, run_head


@guarded
def check_reverse_branch(cls) -> None:
    """Check ``cls(in_channels, num_classes, dilation=12)`` with ``not_class(f)`` and ``forward(f)``.

    Built as ``cls(512, 21)`` and ``cls(64, 5, dilation=6)``, as CONV_org in notebook 02.
    """
    name = "MyReverseBranch"
    for label, mine, reference, f, where in head_probes(name, cls):
        with student(f"{label}.not_class"):
            not_class = getattr(mine, "not_class", None)
        if not callable(not_class):
            fail(f"{label}: a method not_class(f) returning CONV_rev(f) is missing")
        w, b, d = reference.conv.weight, reference.conv.bias, reference.conv.dilation[0]
        with torch.no_grad():
            scores = reference(f)  # CONV_rev(f)
            flipped_input = F.conv2d(-f, w, b, 1, d, d)
            compare(f"{label}.not_class(f) {where}", run_head(label, not_class, mine, f), scores, {
                "NEG applied in not_class: not_class(f) is CONV_rev(f) itself, forward negates it": -scores,
                "self.conv(-f): NEG belongs after the convolution": flipped_input,
                "the bias is not added: not_class(f) = self.conv(f)": F.conv2d(f, w, None, 1, d, d),
                "a sigmoid in not_class: the scores are logits": torch.sigmoid(scores),
            })
            compare(f"{label}.forward(f) {where}", run_head(label, mine, mine, f), -scores, {
                "NEG missing (or applied twice): forward must return -CONV_rev(f) = -self.not_class(f)": scores,
                "NEG applied to the input, self.conv(-f): that negates the weights' part but not the bias; "
                "negate the convolution's output instead": flipped_input,
                "a sigmoid or ReLU after NEG: the reverse scores are logits, -CONV_rev(f) and nothing more":
                    (-scores).relu(),
                "a sigmoid after NEG: the reverse scores are logits, -CONV_rev(f) and nothing more":
                    torch.sigmoid(-scores),
                "a softmax after NEG: the reverse scores are logits (the loss applies the softmax)":
                    (-scores).softmax(1),
                "NEG as 1 - x: NEG multiplies by -1": 1 - scores,
                "only the bias negated (or only the weights): negate the whole output, -self.conv(f)":
                    F.conv2d(f, w, -b, 1, d, d),
                "H and W swapped (a transpose or permute): keep (B, K, h, w) as it comes": -scores.transpose(-1, -2),
                **({} if d == 12 else {"a fixed dilation 12 in forward: use self.conv": -F.conv2d(f, w, b, 1, 12, 12)}),
            })
    head_gradient(label, mine, f)
    passed(f"{name}: not_class = CONV_rev(f), forward = NEG(CONV_rev(f)) with non-zero biases, at dilations 12 and "
           "6, on square and non-square maps; gradients flow")
