"""Notebook 03's exercise: the reverse branch, CONV_rev followed by NEG.

``check_reverse_branch(MyReverseBranch)`` checks the layer as for CONV_org, then loads ranlib's ``conv_rev``
weights with non-zero biases (so that ``self.conv(-f)``, which negates only the weights' part, cannot pass) and
compares ``not_class(f) = CONV_rev(f)`` and ``forward(f) = NEG(CONV_rev(f))`` on features of realistic size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ranlib
from ranlib.exercises._check import call, compare, fail, passed
from ranlib.exercises.heads import check_head_layer, load_with_bias, realistic_features


def check_reverse_branch(cls, in_channels: int = 512, num_classes: int = 21) -> None:
    """Check ``cls(in_channels, num_classes, dilation=12)`` with ``not_class(f)`` and ``forward(f)``."""
    name = "MyReverseBranch"
    mine = call(cls, in_channels, num_classes, name=name)
    conv = check_head_layer(name, mine, in_channels, num_classes, 12)
    if not callable(getattr(mine, "not_class", None)):
        fail(f"{name}: a method not_class(f) returning CONV_rev(f) is missing")
    reference = ranlib.heads.LargeFOVHead(in_channels, num_classes)
    if set(mine.state_dict()) != set(reference.state_dict()):
        fail(f"{name}: state_dict keys {sorted(reference.state_dict())} expected, got {sorted(mine.state_dict())}")
    load_with_bias(mine, reference)
    for image_size, size in ((64, 8), (321, 41)):
        f = realistic_features(in_channels, size, batch=1, seed=size)
        with torch.no_grad():
            scores = reference(f)  # CONV_rev(f)
            flipped_input = F.conv2d(-f, conv.weight, conv.bias, 1, 12, 12)
            where = f"on features of a {image_size} px image"
            compare(f"{name}.not_class(f) {where}", call(mine.not_class, f, name=f"{name}.not_class"), scores, {
                "NEG applied in not_class: not_class(f) is CONV_rev(f) itself, forward negates it": -scores,
                "self.conv(-f): NEG belongs after the convolution": flipped_input,
            })
            compare(f"{name}.forward(f) {where}", call(mine, f, name=f"{name}.forward"), -scores, {
                "NEG missing: forward must return -CONV_rev(f)": scores,
                "NEG applied to the input, self.conv(-f): that negates the weights' part but not the bias; "
                "negate the convolution's output instead": flipped_input,
                "a sigmoid or ReLU after NEG: the reverse scores are logits, -CONV_rev(f) and nothing more":
                    (-scores).relu(),
            })
    passed(f"{name}: not_class = CONV_rev(f), forward = NEG(CONV_rev(f)) with non-zero biases, at 64 and 321 px")
