"""No exercise check raises anything but ``ExerciseError``, whatever the student's code does.

Every check is fed odd but legal answers: correct ones written unusually (``padding="same"``, a non-persistent
buffer, a subclass of ranlib's head, a float64 poly factor, an attention computed in float64 and cast back,
tensors where numbers are expected), which must pass (an attention returned in float64 is named instead: the
notebook's next cell compares dtypes); and
answers that return or raise the unexpected (None, strings, numpy arrays, tuples, crashes, a wrapped layer, a
separate bias parameter, reflect padding, float dilations), which must fail with one short ``ExerciseError`` that
is not the check's own bug ("the check itself failed"). Last, the fusion prediction is judged on the statistics
it was made from, on both sides of the 1% line the measurement uses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_exercises import (
    OFTEN,
    MobileNetV3Backbone,
    curve_data,
    groups_right,
    make_band_miou,
    make_bands,
    make_confusion,
    make_effect,
    make_loss,
    make_metrics,
    make_ran,
    make_ran_on_backbone,
)
from torch import nn

import ranlib
from ranlib import exercises as ex
from ranlib.exercises._check import BUG
from ranlib.heads import LargeFOVHead
from ranlib.model import RANOutput


def make_head(padding=None, reverse=False, buffer=None, bias="layer", wrap=False, dilation_type=int, mode="zeros",
              forward_returns=None):
    """A CONV_org (or reverse branch) written in one of many legal ways."""

    class Head(nn.Module):
        def __init__(self, in_channels, num_classes, dilation=12):
            super().__init__()
            conv = nn.Conv2d(in_channels, num_classes, 3, padding=dilation if padding is None else padding,
                             dilation=dilation_type(dilation), bias=bias == "layer", padding_mode=mode)
            nn.init.normal_(conv.weight, std=0.01)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            self.conv = nn.Sequential(conv) if wrap else conv
            if bias == "separate":
                self.bias = nn.Parameter(torch.zeros(num_classes))
            if buffer is not None:
                self.register_buffer("scale", torch.ones(1), persistent=buffer == "persistent")

        def not_class(self, f):
            out = self.conv(f)
            return out + self.bias[:, None, None] if bias == "separate" else out

        def forward(self, f):
            if forward_returns is not None:
                return forward_returns
            out = self.not_class(f)
            return -out if reverse else out

    return Head


class LargeFOVSubclass(LargeFOVHead):
    def not_class(self, f):
        return self.conv(f)


def odd_functions():
    """Functions that return or raise something unexpected."""

    def raises_value_error(*args, **kwargs):
        raise ValueError("something went wrong")

    def raises_index_error(*args, **kwargs):
        return [][1]

    return [
        lambda *a, **k: None,
        lambda *a, **k: "a string",
        lambda *a, **k: [1, 2, 3],
        lambda *a, **k: np.zeros(3),
        lambda *a, **k: torch.tensor(1.0),
        lambda *a, **k: torch.zeros(2, dtype=torch.long),
        lambda *a, **k: (torch.zeros(1),),
        lambda *a, **k: {"iou": "x", "miou": None, "pixel_acc": [], "changed": "a", "fixed": None, "broken": []},
        lambda *a, **k: {1: "x", 2: None, 4: [1]},
        lambda *a, **k: [{"params": 3, "lr": "x"}, {"params": [torch.zeros(1)], "lr": None}],
        lambda *a, **k: (x for x in range(3)),
        lambda *a, **k: (torch.zeros(3), {"fused": "x"}),
        raises_value_error,
        raises_index_error,
    ]


def odd_classes():
    """Module classes that are built, or answer, in unexpected ways."""

    class RaisesInInit(nn.Module):
        def __init__(self, *args, **kwargs):
            raise ValueError("bad configuration")

    class NotAModule:
        def __init__(self, *args, **kwargs):
            pass

    class Empty(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

    return [RaisesInInit, NotAModule, Empty,
            make_head(padding="valid"), make_head(mode="reflect"), make_head(dilation_type=float),
            make_head(bias="separate"), make_head(wrap=True), make_head(buffer="persistent"),
            make_head(forward_returns="scores"), make_head(forward_returns=(1, 2)), make_head(padding=(12, 1))]


FUNCTION_CHECKS = {
    "bands": ex.check_bands, "conv1d": ex.check_dilated_conv1d, "reverse attention": ex.check_reverse_attention,
    "normalised attention": ex.check_normalized_attention, "fuse": ex.check_fuse, "loss": ex.check_ran_loss,
    "param groups": ex.check_param_groups, "poly": ex.check_poly, "iou": ex.check_iou,
    "band miou": ex.check_band_miou, "confusion": ex.check_confusion, "fusion effect": ex.check_fusion_effect,
    "curve": lambda fn: ex.check_band_miou_curve(fn, *curve_data()),
    "loss gradients": ex.check_loss_gradients,
}
CLASS_CHECKS = {"conv_org": ex.check_conv_org, "reverse branch": ex.check_reverse_branch,
                "deeplab": ex.check_deeplab, "ran": ex.check_ran,
                "backbone": lambda cls: ex.check_backbone_and_ran(cls, make_ran_on_backbone()),
                "composition": lambda cls: ex.check_backbone_and_ran(MobileNetV3Backbone, cls)}


def only_exercise_errors(check, answer) -> str | None:
    """Run ``check(answer)``; return the ExerciseError's message (None if it passed); any other exception fails."""
    try:
        check(answer)
    except ex.ExerciseError as error:
        message = str(error)
        assert BUG not in message, message
        assert len(message.splitlines()) <= 2, message
        return message
    return None


@pytest.mark.parametrize("name", list(FUNCTION_CHECKS))
def test_odd_functions_give_one_line(name, one_thread, capsys):
    for answer in odd_functions():
        assert only_exercise_errors(FUNCTION_CHECKS[name], answer) is not None


@pytest.mark.parametrize("name", list(CLASS_CHECKS))
def test_odd_classes_give_one_line(name, one_thread, capsys):
    classes = odd_classes()
    if name in ("backbone", "composition", "deeplab", "ran"):
        classes = classes[:4]  # the model checks build a ResNet or MobileNet per answer: the crashing ones
    for answer in classes:
        assert only_exercise_errors(CLASS_CHECKS[name], answer) is not None


@pytest.mark.parametrize(("wrong", "phrase"), [
    (make_head(padding="valid"), "'valid'"),
    (make_head(mode="reflect"), "zeros"),
    (make_head(dilation_type=float), "float"),
    (make_head(bias="separate"), "separate bias parameter"),
    (make_head(wrap=True), "wrapped"),
    (make_head(buffer="persistent"), "persistent=False"),
])
def test_odd_heads_are_named(wrong, phrase, one_thread):
    for check in (ex.check_conv_org, ex.check_reverse_branch):
        message = only_exercise_errors(check, wrong)
        assert message is not None and phrase in message, message


def test_correct_but_unusual_answers_pass(one_thread, capsys):
    """Right answers written unusually pass: string padding, a non-persistent buffer, ranlib's own head, ..."""
    passing = [
        (ex.check_conv_org, make_head(padding="same")),
        (ex.check_conv_org, make_head(buffer="non-persistent")),
        (ex.check_conv_org, LargeFOVHead),
        (ex.check_reverse_branch, make_head(padding="same", reverse=True)),
        (ex.check_reverse_branch, make_head(buffer="non-persistent", reverse=True)),
        (ex.check_reverse_attention, lambda x: (1 / (1 + torch.exp(x.double()))).to(x.dtype)),
        (ex.check_reverse_attention, lambda x: torch.sigmoid(-x)),
        (ex.check_normalized_attention, lambda x: torch.sigmoid(1 / (x.clamp(min=0) + 0.125) - 4)),
        (ex.check_fuse, lambda o, r, a: torch.addcmul(o, a, r)),
        (ex.check_dilated_conv1d, lambda x, w, r: F.conv1d(x[None, None], w[None, None], padding="same",
                                                            dilation=r)[0, 0]),
        (ex.check_ran_loss, lambda out, t, ignore_index=255: make_loss()(out, t, ignore_index)),
        (ex.check_iou, lambda C: {k: torch.tensor(v) for k, v in make_metrics()(C).items()}),
        (ex.check_band_miou, lambda *a: torch.tensor(make_band_miou()(*a))),
        (ex.check_param_groups, lambda m, lr, mult=10.0: tuple(groups_right(m, lr, mult))),
        (ex.check_poly, lambda t, T, p=0.9: torch.tensor((1 - t / T) ** p, dtype=torch.float64)),
        (ex.check_bands, make_bands()),
        (ex.check_confusion, make_confusion()),
        (ex.check_fusion_effect, make_effect()),
        (ex.check_ran, make_ran()),
        (lambda fn: ex.check_backbone_and_ran(MobileNetV3Backbone, fn), same_padding_ran_on_backbone),
    ]
    for check, answer in passing:
        check(answer)
        assert capsys.readouterr().out.startswith("✓ "), (check, answer)


def test_attention_in_another_dtype_is_named(one_thread):
    """A float64 attention is rejected: notebook 04's next cell compares it with RANOutput.attention (float32)
    through torch.testing.assert_close, which checks the dtype and would fail there with no word about it."""
    with pytest.raises(ex.ExerciseError, match="dtype torch.float32 expected"):
        ex.check_reverse_attention(lambda x: 1 / (1 + torch.exp(x.double())))


def same_padding_ran_on_backbone(backbone, num_classes):
    head = make_head(padding="same")
    d = 96 // backbone.output_stride
    return ranlib.RAN(backbone, head(backbone.out_channels, num_classes, dilation=d),
                      head(backbone.out_channels, num_classes, dilation=d))


def test_odd_ran_outputs_give_one_line(one_thread):
    for fuse in (lambda o, r, a: None, lambda o, r, a: "x", lambda o, r, a: (o + a * r).numpy(force=True)):
        assert only_exercise_errors(ex.check_ran, make_ran(fuse=fuse)) is not None


def test_fusion_prediction_odd_inputs(capsys):
    for prediction, measured, statistics in [
        ("Often", OFTEN, None), (3, OFTEN, None), ("often", None, None), ("often", {"changed": "x"}, None),
        ("often", {"changed": "a", "fixed": 0, "broken": 0}, None), ("often", OFTEN, {}),
        ("often", OFTEN, {"mixed boundary": {}}), ("often", OFTEN, {"mixed boundary": {"relative_change": "x"}}),
    ]:
        assert only_exercise_errors(lambda p, m=measured, s=statistics: ex.check_fusion_prediction(p, m, s),
                                    prediction) is not None
    ex.check_fusion_prediction("often", {k: torch.tensor(v) for k, v in OFTEN.items()},
                               {"mixed boundary": {"relative_change": torch.tensor(0.3), "open_other": 0.2}})
    assert capsys.readouterr().out.startswith("✓ ")


def stats(relative_change):
    return {"mixed boundary": {"relative_change": relative_change, "open_other": 0.2},
            "rest": {"relative_change": 0.02, "open_other": 0.1}}


def effect(changed):
    return {"changed": changed, "fixed": changed / 2, "broken": changed / 4}


def solution_rule(s):
    return "often" if s["mixed boundary"]["relative_change"] > 0.1 else "rarely"


@pytest.mark.parametrize(("relative_change", "changed"), [
    (0.117, 0.0094),  # the run: "often" by the rule, 0.94% measured (rarely by the 1% line)
    (0.13, 0.013),  # the course's quick runs
    (0.09, 0.0025), (0.15, 0.0042),  # the README's main job
    (0.40, 0.006),  # a pretrained run: a large move, few changed pixels
    (0.03, 0.012), (0.03, 0.002), (0.30, 0.05),  # clearly on one side, the measurement either way
])
def test_solution_rule_passes_on_any_run(relative_change, changed, capsys):
    """The solution's rule passes whatever the run measured: the check judges it on the same statistics."""
    s = stats(relative_change)
    ex.check_fusion_prediction(solution_rule(s), effect(changed), s)
    out = capsys.readouterr().out
    assert out.startswith("✓ ") and f"{100 * changed:.2f}%" in out, out  # the measurement is reported


@pytest.mark.parametrize(("prediction", "relative_change", "changed"), [
    ("often", 0.02, 0.003),  # a tiny move and few changed pixels
    ("rarely", 0.30, 0.05),  # a large move and many changed pixels
])
def test_prediction_against_statistics_and_measurement_fails(prediction, relative_change, changed):
    with pytest.raises(ex.ExerciseError, match=f"you predicted the fusion changes the prediction {prediction}"):
        ex.check_fusion_prediction(prediction, effect(changed), stats(relative_change))


def test_prediction_borne_out_by_the_measurement_passes(capsys):
    ex.check_fusion_prediction("rarely", effect(0.006), stats(0.40))  # the statistics said often, it was rare
    assert "although the statistics pointed to 'often'" in capsys.readouterr().out


def test_ran_output_type_is_named(one_thread):
    class TupleRAN(make_ran()):
        def forward(self, images):
            return tuple(super().forward(images))

    message = only_exercise_errors(ex.check_ran, TupleRAN)
    assert "RANOutput" in message
    assert RANOutput._fields == ("original", "reverse", "attention", "fused")


@pytest.mark.parametrize("answer", [
    (None, 2.5, {"total": 2.5}, {"total": 1.0}), ("none", "2.5", {"total": 2.5}, {"total": 1.0}),
    ("none", torch.tensor([1.0, 2.0]), {"total": 2.5}, {"total": 1.0}), ("none", 2.5, None, {"total": 1.0}),
    ("none", 2.5, {"total": 2.5}, [1.0]), (["baseline-step"], 2.5, {"total": 2.5}, {"total": 1.0}),
    ("none", 2.5, {"total": "a lot"}, {"total": 1.0}),
])
def test_step_control_odd_answers_give_one_line(answer):
    assert only_exercise_errors(lambda a: ex.check_step_control(*a), answer) is not None
