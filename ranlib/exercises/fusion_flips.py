"""Notebook 08, section 6, "catch it acting": the pixels whose class the fusion changed, and why.

- ``check_fusion_flips(my_fusion_flips)``: boolean masks (B, H, W) of the labelled pixels whose class the fusion
  changed, split into fixed and broken against the label, compared with ``ranlib.fusion_changes.fusion_flips`` on
  probes with every kind of pixel; a wrong mask is named by the mistake that gives it, else by the kind of pixel
  it gets wrong.
- ``check_flip_reasons(REASONS, pixel_scores, class_names)``: the student's reading of the printed scores, whether
  the fusion raised the new class or lowered the old one, against ``ranlib.fusion_changes.flip_reason``.
"""

from __future__ import annotations

import re

import torch

from ranlib.exercises._check import NotDoneError, describe, error_line, fail, guarded, likely, passed, student
from ranlib.fusion_changes import class_flips, flip_reason, fusion_flips
from ranlib.model import RANOutput

FLIP_DEFINITIONS = {
    "changed": "labelled pixels where argmax over the classes (dim 1) of fused != that of original",
    "fixed": "labelled pixels where the original class is wrong AND the fused class equals the label",
    "broken": "labelled pixels where the original class equals the label AND the fused class is wrong",
}


def _probe_flips(seed: int, quiet: bool = False):
    """A RANOutput (B, K, H, W) = (2, 5, 7, 9), all four sizes different so that an argmax over the wrong
    dimension shows in the shape, and labels chosen so that every kind of pixel occurs: fixed, broken, still
    wrong, unchanged right and wrong, void where the class changed and where it did not. ``quiet``: no flips."""
    g = torch.Generator().manual_seed(seed)
    original = 2 * torch.randn(2, 5, 7, 9, generator=g)
    reverse = (0 if quiet else 4) * torch.randn(2, 5, 7, 9, generator=g)
    attention = torch.sigmoid(-original)
    fused = original + attention * reverse
    before, after = original.argmax(1).flatten(), fused.argmax(1).flatten()
    target = torch.empty_like(before)
    changed_kinds, same_kinds = ("fixed", "still", "broken", "fixed", "void"), ("right", "wrong", "right", "void")
    n_changed = n_same = 0
    for i, (b, a) in enumerate(zip(before.tolist(), after.tolist(), strict=True)):
        if a != b:
            kind, n_changed = changed_kinds[n_changed % len(changed_kinds)], n_changed + 1
        else:
            kind, n_same = same_kinds[n_same % len(same_kinds)], n_same + 1
        third = min({0, 1, 2} - {a, b})  # a class that is neither the original's nor the fused one
        target[i] = {"fixed": a, "broken": b, "still": third, "void": 255, "right": b, "wrong": third}[kind]
    return RANOutput(original, reverse, attention, fused), target.view(2, 7, 9)


def _wrong_flips(output, target) -> dict[str, dict[str, torch.Tensor]]:
    """Plausible wrong answers of my_fusion_flips on one probe: {description: the masks that answer returns}."""
    labelled = target != 255
    before, after = output.original.argmax(1), output.fused.argmax(1)
    right = class_flips(before, after, target)
    right_before, right_after = before == target, after == target
    changed = before != after
    return {
        "void pixels (label 255) counted: keep only the labelled pixels (target != 255)":
            {**right, "changed": changed},
        "fixed and broken swapped: fixed = original wrong AND fused right, broken = the other way round":
            {**right, "fixed": right["broken"], "broken": right["fixed"]},
        "a change where both classes are wrong counted as fixed: fixed also needs the fused class to equal the label":
            {**right, "fixed": changed & ~right_before & labelled},
        "a change where both classes are wrong counted as broken: broken needs the original class to equal the label":
            {**right, "broken": changed & ~right_after & labelled},
        "fixed = fused right, changed or not: fixed needs the original class wrong too":
            {**right, "fixed": right_after & labelled},
        "broken = original right, changed or not: broken needs the fused class wrong too":
            {**right, "broken": right_before & labelled},
        "changed leaves out the changes where both classes are wrong: changed = argmax differs, whatever the label":
            {**right, "changed": right["fixed"] | right["broken"]},
        "compared the scores, not the classes: take the argmax over the classes (dim 1) of both, then compare":
            {**right, "changed": (output.original != output.fused).any(1) & labelled},
        "used output.reverse instead of output.fused: RAN's prediction is the argmax of fused":
            class_flips(before, output.reverse.argmax(1), target),
        "used original + reverse (the subtract variant): RAN's prediction is output.fused = original + A * reverse":
            class_flips(before, (output.original + output.reverse).argmax(1), target),
        "used output.attention instead of output.fused: RAN's prediction is the argmax of fused":
            class_flips(before, output.attention.argmax(1), target),
        "compared with the reverse branch instead of the original: the change is from argmax(original) to "
        "argmax(fused)": class_flips(output.reverse.argmax(1), after, target),
    }


def _shape_mistake(shape: tuple[int, ...], b: int, k: int, h: int, w: int) -> str | None:
    return {(k, h, w): "argmax over dim 0 (the batch): the classes are dim 1 of (B, K, H, W)",
            (b, k, w): "argmax over dim 2 (the rows): the classes are dim 1 of (B, K, H, W)",
            (b, k, h): "argmax over the last dim (the columns): the classes are dim 1 of (B, K, H, W)",
            (b, 1, h, w): "argmax with keepdim=True: drop the class dimension (keepdim=False)",
            (b, b, h, w): "argmax with keepdim=True (a (B, 1, H, W) mask met the (B, H, W) labels): keepdim=False",
            (b, k, h, w): "one value per class: take the argmax over the classes (dim 1) before comparing",
            (h, w): "one image's mask: keep the batch dimension (B, H, W)"}.get(shape)


def _call_flips(fn, output, target, name: str):
    """``fn(output, target)``; a crash where two sizes could not be matched is told by the sizes it names."""
    b, k, h, w = output.original.shape
    try:
        return fn(output, target)
    except RuntimeError as error:
        sizes = {int(n) for n in re.findall(r"\((\d+)\)", str(error))}
        hint = (f"a tensor that still has the class dimension (K = {k}) met one of shape (B, H, W): reduce the "
                "classes with argmax over dim 1 first" if "must match the size" in str(error) and k in sizes else
                "a (B, H, W) shape lost H or W: the argmax went over a spatial dimension, not the classes (dim 1)"
                if "must match the size" in str(error) and sizes == {h, w} else None)
        if hint is None:
            with student(name):
                raise
        fail(f"{name} raised {error_line(error, 160, hint)}")


@guarded
def check_fusion_flips(fn) -> None:
    """Check ``fn(output, target) -> {"changed", "fixed", "broken"}``, boolean masks (B, H, W) of the labelled
    pixels whose class the fusion changed, split against the label (``ranlib.fusion_changes.fusion_flips``)."""
    name = "my_fusion_flips"
    for seed, quiet in ((0, False), (1, False), (2, True)):
        output, target = _probe_flips(seed, quiet)
        given = [t.clone() for t in (*output, target)]
        ours = _call_flips(fn, type(output)(*given[:4]), given[4], name)
        if any(not torch.equal(a, b) for a, b in zip(given, (*output, target), strict=True)):
            fail(f"{name} changed its input in place: compute new tensors")
        if not isinstance(ours, dict) or not set(FLIP_DEFINITIONS) <= set(ours):
            fail(f"{name} should return a dict with 'changed', 'fixed' and 'broken' (boolean masks (B, H, W)), "
                 f"got {describe(ours)}" + (f" with keys {sorted(map(str, ours))}" if isinstance(ours, dict) else ""))
        expected = fusion_flips(output.original, output.fused, target)
        b, k, h, w = output.original.shape
        masks = {}
        for key in FLIP_DEFINITIONS:
            value = ours[key]
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                fail(f"{name}: '{key}' should be a boolean mask (B, H, W), one value per pixel, got {describe(value)}"
                     "\n  likely: a count or a fraction: return the mask itself (the counts come later)")
            if tuple(value.shape) != (b, h, w):
                mistake = _shape_mistake(tuple(value.shape), b, k, h, w)
                fail(f"{name}: '{key}' should have shape (B, H, W) = {(b, h, w)}, got {tuple(value.shape)}"
                     + likely(mistake))
            if value.dtype != torch.bool and not ((value == 0) | (value == 1)).all():
                fail(f"{name}: '{key}' should be True/False per pixel, got values such as {value.flatten()[0]:.3g}"
                     "\n  likely: scores or classes returned instead of the comparison")
            masks[key] = value.bool()
        wrong = _wrong_flips(output, target)
        for key, definition in FLIP_DEFINITIONS.items():
            if torch.equal(masks[key], expected[key]):
                continue
            mistake = next((m for m, answer in wrong.items() if torch.equal(masks[key], answer[key])
                            and not torch.equal(answer[key], expected[key])), None)
            if mistake:
                fail(f"{name}: '{key}' differs from ranlib's at {int((masks[key] != expected[key]).sum())} of "
                     f"{masks[key].numel()} pixels" + likely(mistake))
            fail(_flip_symptom(name, key, masks[key], expected, output, target) + f"\n  '{key}' = {definition}")
    passed(f"{name}: changed, fixed and broken pixels, void left out, on probes with every kind of pixel")


def _flip_symptom(name: str, key: str, mask: torch.Tensor, expected: dict, output, target) -> str:
    """Where the student's mask is wrong, by kind of pixel (a fact, not a guess): 'True at 3 void pixels'."""
    labelled = target != 255
    right_before = output.original.argmax(1) == target
    still = expected["changed"] & ~expected["fixed"] & ~expected["broken"]
    kinds = (("void (label 255)", ~labelled),
             ("the fusion did not change the class and it is right", labelled & ~expected["changed"] & right_before),
             ("the fusion did not change the class and it is wrong", labelled & ~expected["changed"] & ~right_before),
             ("the fusion turned a wrong class into the label (fixed)", expected["fixed"]),
             ("the fusion turned the label into a wrong class (broken)", expected["broken"]),
             ("the fusion turned one wrong class into another (still wrong)", still))
    for kind, where in kinds:
        bad = where & (mask != expected[key])
        if bad.any():
            b, y, x = (int(i) for i in bad.nonzero()[0])
            should = bool(expected[key][b, y, x])
            return (f"{name}: '{key}' is {not should} at {int(bad.sum())} pixel(s) where {kind}, first at "
                    f"(b, y, x) = {(b, y, x)}; it should be {should} there")
    raise AssertionError("no differing pixel found")  # unreachable: the masks differ somewhere


REASONS = ("raised", "lowered")


@guarded
def check_flip_reasons(reasons, pixel_scores: list[dict], class_names: list[str] | None = None) -> None:
    """Check the student's reading of the printouts: for each pixel of ``pixel_scores`` (``scores_at`` dicts),
    "raised" when the fusion added more to the new class than it took from the original winner, else "lowered"."""
    if reasons is ... or reasons is None or isinstance(reasons, list) and ... in reasons:
        raise NotDoneError("not done yet: set REASONS to a list of 'raised' or 'lowered', one per printed pixel")
    if isinstance(reasons, str) or not isinstance(reasons, (list, tuple)):
        fail(f"REASONS should be a list of 'raised' or 'lowered', one per printed pixel, got {describe(reasons)}")
    if len(reasons) != len(pixel_scores):
        fail(f"REASONS has {len(reasons)} answer(s) for {len(pixel_scores)} printed pixel(s): one answer per pixel, "
             "in the order printed")
    for i, (answer, scores) in enumerate(zip(reasons, pixel_scores, strict=True), start=1):
        if answer not in REASONS:
            fail(f"REASONS[{i - 1}] should be 'raised' or 'lowered', got {answer!r}")
        truth = flip_reason(scores)
        if answer != truth:
            old, new = int(scores["original"].argmax()), int(scores["fused"].argmax())
            names = class_names or [f"class {c}" for c in range(len(scores["original"]))]
            gain, loss = float(scores["added"][new]), -float(scores["added"][old])
            why = ("the new class gained more than the old one lost" if truth == "raised" else
                   "the old class lost more than the new one gained")
            fail(f"pixel {i} ({names[old]} -> {names[new]}): you wrote {answer!r}, but the fusion added "
                 f"{gain:+.2f} to {names[new]} and {-loss:+.2f} to {names[old]}\n  read the A*F_rev column: {why}")
    passed(f"REASONS: {', '.join(reasons)}, as the printouts' A*F_rev columns show")
