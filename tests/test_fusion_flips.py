"""Notebook 08's "catch it acting": the pixels whose class the fusion changed, each class's scores there, and why.

- ``fusion_flips`` on a hand-made case whose masks are counted by hand;
- ``check_fusion_flips`` accepts the right answer (written two ways) and rejects plausible wrong answers, each with
  a message that names that mistake (or, where no single cause can be named, the kind of pixel it gets wrong);
- ``scores_at``, ``flip_reason``, ``format_scores_at`` and ``check_flip_reasons`` on hand-made scores;
- ``plot_fusion_flips`` draws a figure with the flip counts of each crop in its titles.
"""

from __future__ import annotations

import pytest
import torch

from ranlib.exercises import ExerciseError
from ranlib.exercises.fusion_flips import check_flip_reasons, check_fusion_flips
from ranlib.fusion_changes import flip_reason, format_scores_at, fusion_flips, scores_at
from ranlib.model import RANOutput

# One image, one row of 6 pixels, 3 classes. Original and fused classes, and labels (255: void), by hand:
BEFORE = [0, 1, 2, 1, 0, 2]
AFTER = [1, 1, 0, 2, 2, 0]
LABEL = [1, 1, 2, 0, 255, 2]
# pixel 0: 0 -> 1, label 1: fixed;   pixel 1: unchanged;   pixel 2: 2 -> 0, label 2: broken;
# pixel 3: 1 -> 2, label 0: still wrong;   pixel 4: changed but void;   pixel 5: 2 -> 0, label 2: broken.


def _logits(classes: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(classes), 3).T[None, :, None, :].float() * 4 - 2  # (1, 3, 1, 6)


def test_fusion_flips_by_hand():
    flips = fusion_flips(_logits(BEFORE), _logits(AFTER), torch.tensor([[LABEL]]))
    assert flips["changed"][0, 0].tolist() == [True, False, True, True, False, True]
    assert flips["fixed"][0, 0].tolist() == [True, False, False, False, False, False]
    assert flips["broken"][0, 0].tolist() == [False, False, True, False, False, True]


def right(output, target):
    labelled = target != 255
    before, after = output.original.argmax(1), output.fused.argmax(1)
    return {"changed": (before != after) & labelled, "fixed": (before != target) & (after == target) & labelled,
            "broken": (before == target) & (after != target) & labelled}


def right_other_way(output, target):  # another correct answer: integer masks built from the changed pixels
    before, after = output.fused.softmax(1).argmax(dim=1), output.original.argmax(dim=1)
    before, after = after, before
    changed = (before != after) & (target != 255)
    return {"changed": changed.long(), "fixed": changed & (after == target), "broken": changed & (before == target)}


def test_the_right_answers_pass(capsys):
    check_fusion_flips(right)
    check_fusion_flips(right_other_way)
    assert capsys.readouterr().out.count("✓ my_fusion_flips") == 2


def _variant(**changes):
    """The right answer with some of its pieces replaced: functions of (output, target, before, after, labelled)."""
    def fn(output, target):
        labelled = target != 255
        before = changes.get("before", lambda o, t: o.original.argmax(1))(output, target)
        after = changes.get("after", lambda o, t: o.fused.argmax(1))(output, target)
        masks = {"changed": (before != after) & labelled, "fixed": (before != target) & (after == target) & labelled,
                 "broken": (before == target) & (after != target) & labelled}
        for key in ("changed", "fixed", "broken"):
            if key in changes:
                masks[key] = changes[key](output, target, before, after, labelled)
        return masks
    return fn


def _swapped(output, target):
    masks = right(output, target)
    return {**masks, "fixed": masks["broken"], "broken": masks["fixed"]}


def _counts(output, target):
    return {k: int(v.sum()) for k, v in right(output, target).items()}


def _in_place(output, target):
    target[target == 255] = 0
    return right(output, target)


def _void_as_background(output, target):  # void turned into class 0 and never left out
    y = torch.where(target == 255, 0, target)
    before, after = output.original.argmax(1), output.fused.argmax(1)
    return {"changed": (before != after) & (target != 255), "fixed": (before != y) & (after == y),
            "broken": (before == y) & (after != y)}


WRONG = {
    "ignores the void label 255": (_variant(changed=lambda o, t, b, a, lab: b != a), "void pixels (label 255) counted"),
    "fixed and broken swapped": (_swapped, "fixed and broken swapped"),
    "a change where both are wrong counted as fixed": (
        _variant(fixed=lambda o, t, b, a, lab: (b != a) & (b != t) & lab),
        "a change where both classes are wrong counted as fixed"),
    "a change where both are wrong counted as broken": (
        _variant(broken=lambda o, t, b, a, lab: (b != a) & (a != t) & lab),
        "a change where both classes are wrong counted as broken"),
    "fixed = fused right": (_variant(fixed=lambda o, t, b, a, lab: (a == t) & lab),
                            "fixed = fused right, changed or not"),
    "changed = fixed or broken": (
        _variant(changed=lambda o, t, b, a, lab: ((b != t) & (a == t) | (b == t) & (a != t)) & lab),
        "changed leaves out the changes where both classes are wrong"),
    "scores compared instead of argmax": (
        _variant(changed=lambda o, t, b, a, lab: (o.original != o.fused).any(1) & lab),
        "compared the scores, not the classes"),
    "reverse instead of fused": (_variant(after=lambda o, t: o.reverse.argmax(1)), "used output.reverse instead"),
    "original + reverse instead of fused": (_variant(after=lambda o, t: (o.original + o.reverse).argmax(1)),
                                            "the subtract variant"),
    "argmax over dim 0": (_variant(before=lambda o, t: o.original.argmax(0), after=lambda o, t: o.fused.argmax(0)),
                          "still has the class dimension (K = 5)"),
    "argmax over the last dim": (_variant(before=lambda o, t: o.original.argmax(-1),
                                          after=lambda o, t: o.fused.argmax(-1)),
                                 "the argmax went over a spatial dimension"),
    "argmax with keepdim": (_variant(before=lambda o, t: o.original.argmax(1, keepdim=True),
                                     after=lambda o, t: o.fused.argmax(1, keepdim=True)), "keepdim=True"),
    "scores compared with the labels, no argmax": (
        _variant(before=lambda o, t: o.original, after=lambda o, t: o.fused), "still has the class dimension"),
    "counts instead of masks": (_counts, "a count or a fraction"),
    "edits the labels in place": (_in_place, "changed its input in place"),
    "void treated as background (no cause to name: the kind of pixel)": (_void_as_background,
                                                                          "where void (label 255)"),
}


@pytest.mark.parametrize("mistake", list(WRONG))
def test_each_wrong_answer_is_rejected_with_its_mistake_named(mistake):
    fn, expected = WRONG[mistake]
    with pytest.raises(ExerciseError) as error:
        check_fusion_flips(fn)
    message = str(error.value)
    assert expected in message, f"{mistake}: {message}"
    assert len(message.splitlines()) <= 2, message


def test_a_stub_is_not_done_yet():
    def stub(output, target):
        raise NotImplementedError("Your turn")

    with pytest.raises(ExerciseError, match="not done yet"):
        check_fusion_flips(stub)


def _output_at_one_pixel():
    # 3 classes at one pixel (1x1): original [2.0, 1.5, -1.0], reverse [-1.0, 3.0, 0.5]; A = sigmoid(-original).
    original = torch.tensor([2.0, 1.5, -1.0]).view(1, 3, 1, 1)
    reverse = torch.tensor([-1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    attention = torch.sigmoid(-original)
    return RANOutput(original, reverse, attention, original + attention * reverse)


def test_scores_at_and_why_the_class_changed_by_hand():
    scores = scores_at(_output_at_one_pixel(), (0, 0, 0))
    # A = sigmoid(-2) = 0.1192, sigmoid(-1.5) = 0.1824, sigmoid(1) = 0.7311; added = A * reverse
    assert scores["attention"].tolist() == pytest.approx([0.1192, 0.1824, 0.7311], abs=1e-4)
    assert scores["added"].tolist() == pytest.approx([-0.1192, 0.5473, 0.3655], abs=1e-4)
    # class 0 (2.0 -> 1.881) loses to class 1 (1.5 -> 2.047): class 1 gained 0.547, class 0 lost 0.119: raised
    assert flip_reason(scores) == "raised"
    table = format_scores_at(scores, label=1, class_names=["a", "b", "c"])
    assert "a -> b (fixed)" in table and "<- label, fused class" in table and "<- original's class" in table
    check_flip_reasons(["raised"], [scores])
    with pytest.raises(ExerciseError, match="the new class gained more than the old one lost"):
        check_flip_reasons(["lowered"], [scores])
    with pytest.raises(ExerciseError, match="one answer per pixel"):
        check_flip_reasons(["raised", "raised"], [scores])
    with pytest.raises(ExerciseError, match="not done yet"):
        check_flip_reasons(..., [scores])
    with pytest.raises(ExerciseError, match="not done yet"):
        check_flip_reasons([...], [scores])  # the exercise version's stub
    with pytest.raises(ExerciseError, match="should be 'raised' or 'lowered'"):
        check_flip_reasons(["up"], [scores])


def test_lowered_when_the_old_class_loses_more():
    original = torch.tensor([-0.2, -0.5, -3.0]).view(1, 3, 1, 1)  # A: 0.550, 0.622, 0.953
    reverse = torch.tensor([-2.0, 0.1, 0.0]).view(1, 3, 1, 1)  # added: -1.100, +0.062, 0
    attention = torch.sigmoid(-original)
    scores = scores_at(RANOutput(original, reverse, attention, original + attention * reverse), (0, 0, 0))
    assert flip_reason(scores) == "lowered"


def test_plot_fusion_flips(tmp_path):
    from ranlib.viz.fusion_changes import plot_fusion_flips

    g = torch.Generator().manual_seed(0)
    original, reverse = torch.randn(1, 3, 20, 30, generator=g), 3 * torch.randn(1, 3, 20, 30, generator=g)
    attention = torch.sigmoid(-original)
    output = RANOutput(original, reverse, attention, original + attention * reverse)
    mask = output.fused[0].argmax(0)
    mask[:2] = 255
    flips = fusion_flips(output.original, output.fused, mask[None])
    y, x = (int(i) for i in flips["fixed"][0].nonzero()[0])
    fig = plot_fusion_flips([(torch.rand(3, 20, 30), mask, output, (y, x))], class_names=["a", "b", "c"],
                            crop_size=16)
    titles = [ax.get_title() for ax in fig.axes]
    n_fixed = int(flips["fixed"][0][max(0, min(y - 8, 4)):, :].sum())  # sanity: the crop holds fixed pixels
    assert n_fixed > 0 and any(t.startswith("changed by the fusion\nfixed ") for t in titles)
    fig.savefig(tmp_path / "flips.png")
