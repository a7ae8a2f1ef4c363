"""Notebook 08's exercises: the confusion score, and a measurement with a prediction made beforehand.

- ``check_confusion(my_confusion)``: 1 - (p(1) - p(2)) of upsampled softmax probabilities, against
  ``ranlib.viz.regions.confusion_map``, at the feature sizes of 64 and 321 px images.
- ``check_fusion_effect(my_fusion_effect)``: how often the fusion changes the predicted class, against
  ``fusion_effect`` below, on hand-made scores with void pixels.
- ``check_fusion_prediction(prediction, effect, stats)``: the student first reads the attention statistics and
  predicts whether the fusion changes the prediction "rarely" (fewer than 1% of the labelled pixels) or "often".
  The check judges the prediction on the statistics it was made from (the same numbers, so the verdict cannot
  depend on the machine the course models were trained on) and reports what the measurement showed beside it.
  Where the fused map moved between 5% and 20% of |original| in the mixed band, either prediction follows from
  the statistics: course runs there changed from 0.25% to 1.3% of the pixels, on both sides of the 1% line. A
  prediction the statistics do not support passes only if the measurement bears it out.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from ranlib.exercises._check import (
    ExerciseError,
    NotDoneError,
    call,
    compare,
    describe,
    fail,
    guarded,
    number,
    passed,
    student,
)
from ranlib.fusion_changes import class_flips, flip_reason, fusion_flips
from ranlib.model import RANOutput

THRESHOLD = 0.01  # "rarely": the fusion changes the class of fewer than 1% of the labelled pixels
# The fused map's change in the mixed band (a fraction of |original|): below the first value the statistics say
# "rarely", above the second "often", in between either answer follows from them.
UNDECIDED = (0.05, 0.20)


@guarded
def check_confusion(fn) -> None:
    """Check ``fn(logits (K, h, w), size) -> (H, W)`` confusion in [0, 1]."""
    from ranlib.viz.regions import confusion_map  # the figure helpers import matplotlib: only load them here

    name = "my_confusion"
    g = torch.Generator().manual_seed(0)
    tie = torch.zeros(3, 2, 2)
    sure = torch.tensor([10.0, -10.0, -10.0])[:, None, None].expand(3, 2, 2).contiguous()
    random5 = 3 * torch.randn(5, 8, 8, generator=g)  # first: on random scores the mistakes differ from each other
    probes = [(random5, (64, 64)), (tie, (2, 2)), (sure, (2, 2)),
              (3 * torch.randn(21, 41, 41, generator=g), (321, 321)),
              (3 * torch.randn(4, 10, 17, generator=g), (75, 130))]
    for logits, size in probes:
        given = logits.clone()
        ours = call(fn, given, size, name=name)
        if not torch.equal(given, logits):
            fail(f"{name} changed the logits in place: compute new tensors")

        def up(x, corners=False, mode="bilinear", size=size):
            corners = corners if mode == "bilinear" else None
            return F.interpolate(x[None], size=size, mode=mode, align_corners=corners)[0]

        def score(p):
            top = p.topk(2, dim=0).values
            return 1 - (top[0] - top[1])

        probabilities = up(logits).softmax(0)
        top2 = probabilities.topk(2, dim=0).values
        wrong = {
            "align_corners=True: ranlib upsamples with align_corners=False": score(up(logits, True).softmax(0)),
            "nearest-neighbour upsampling: use mode='bilinear'": score(up(logits, mode="nearest").softmax(0)),
            "softmax before upsampling: upsample the logits, then take the softmax": score(up(logits.softmax(0))),
            "no softmax: the top two are probabilities, not logits": score(up(logits)),
            "softmax over the wrong dimension: the classes are dimension 0 of (K, H, W)": score(up(logits).softmax(-1)),
            "1 - p(1): the gap to the runner-up p(2) is missing": 1 - top2[0],
            "p(1) - p(2) without '1 -': confusion is 1 for a tie": top2[0] - top2[1],
            "H and W swapped: size is (H, W), pass it as given": score(up(logits, size=tuple(size)[::-1]).softmax(0)),
            "p(1) - p(2) with p(2) the lowest class: the runner-up is the second largest (topk(2))":
                1 - (probabilities.max(0).values - probabilities.min(0).values),
            "sigmoid instead of softmax: the probabilities over the classes come from a softmax":
                score(torch.sigmoid(up(logits))),
            "the two smallest probabilities (an ascending sort): p(1) and p(2) are the two largest, topk(2)":
                1 - (probabilities.sort(0).values[1] - probabilities.sort(0).values[0]),
        }
        compare(f"{name} for {tuple(logits.shape)} logits resized to {size}", ours,
                confusion_map(logits, size), wrong, atol=1e-5)
    passed(f"{name}: 1 for a tie, 0 for a sure decision, equal to ranlib.viz.regions.confusion_map at 64 and 321 px")


def fusion_effect(original: torch.Tensor, fused: torch.Tensor, target: torch.Tensor,
                  ignore_index: int = 255) -> dict[str, float]:
    """What the fusion does to the prediction, over the labelled pixels of a batch.

    ``original``, ``fused``: logits (B, K, H, W) at the labels' resolution; ``target``: (B, H, W) with void
    ``ignore_index``. Fractions of the labelled pixels: ``changed`` (argmax differs), ``fixed`` (the original
    branch is wrong there and the fused output right) and ``broken`` (the other way round).
    """
    labelled = target != ignore_index
    before, after = original.argmax(1), fused.argmax(1)  # (B, H, W)
    n = labelled.sum().clamp(min=1)
    right_before, right_after = (before == target) & labelled, (after == target) & labelled
    return {"changed": (((before != after) & labelled).sum() / n).item(),
            "fixed": ((~right_before & right_after).sum() / n).item(),
            "broken": ((right_before & ~right_after).sum() / n).item()}


def _probe_effect(seed: int):
    g = torch.Generator().manual_seed(seed)
    original = 3 * torch.randn(2, 5, 20, 28, generator=g)
    reverse = 3 * torch.randn(2, 5, 20, 28, generator=g)
    fused = original + torch.sigmoid(-original) * reverse
    target = original.argmax(1)
    flip = torch.rand(target.shape, generator=g) < 0.3
    target = torch.where(flip, torch.randint(0, 5, target.shape, generator=g), target)
    target[:, :3] = 255  # void rows
    target[0, 10:14, 10:14] = 255
    return original, fused, target


@guarded
def check_fusion_effect(fn) -> None:
    """Check ``fn(original, fused, target) -> {"changed", "fixed", "broken"}`` (fractions of labelled pixels)."""
    name = "my_fusion_effect"
    for seed in (0, 1):
        original, fused, target = _probe_effect(seed)
        given = [t.clone() for t in (original, fused, target)]
        try:
            ours = call(fn, *given, name=name)
        except ExerciseError as error:
            if "size of tensor a" in str(error).lower():  # (B, K, H, W) reduced over B gives (K, H, W)
                fail(f"{str(error).splitlines()[0]}\n  one possible cause: argmax over the wrong dimension: the "
                     "classes are dimension 1 of (B, K, H, W), and the result must match target's (B, H, W)")
            raise
        if any(not torch.equal(a, b) for a, b in zip(given, (original, fused, target), strict=False)):
            fail(f"{name} changed an input in place: compute new tensors")
        if not isinstance(ours, dict) or not {"changed", "fixed", "broken"} <= set(ours):
            fail(f"{name} should return a dict with 'changed', 'fixed' and 'broken', got {describe(ours)}")
        expected = fusion_effect(original, fused, target)
        everywhere = fusion_effect(original, fused, torch.where(target == 255, -1, target), ignore_index=-2)
        labelled = int((target != 255).sum())
        n_changed = expected["changed"] * labelled
        per_image = [fusion_effect(original[i:i + 1], fused[i:i + 1], target[i:i + 1]) for i in range(2)]
        for key in ("changed", "fixed", "broken"):
            value = number(f"{name}: '{key}'", ours[key])
            wrong = {
                "void pixels (255) counted: divide by and count only the labelled pixels": everywhere[key],
                "a percentage: return fractions in [0, 1]": 100 * expected[key],
                "fixed and broken swapped: fixed = wrong before and right after the fusion":
                    expected["broken" if key == "fixed" else "fixed"] if key != "changed" else None,
                "a fraction of the changed pixels: divide by the labelled pixels":
                    expected[key] * labelled / max(n_changed, 1) if key != "changed" else None,
                "compared the scores, not the classes: take argmax over the class dimension (1) first":
                    float(((original != fused).any(1) & (target != 255)).sum() / labelled)
                    if key == "changed" else None,
                "argmax over the wrong dimension: the classes are dimension 1 of (B, K, H, W)":
                    float(((original.argmax(0) != fused.argmax(0))).float().mean()) if key == "changed" else None,
                "a mean of per-image fractions: divide the batch's count by the batch's labelled pixels":
                    sum(e[key] for e in per_image) / 2,
                "a count, not a fraction: divide by the number of labelled pixels": expected[key] * labelled,
                "divided by all pixels: the denominator is the labelled pixels (target != 255)":
                    expected[key] * labelled / target.numel(),
                "void pixels counted where the argmax changed: leave target == 255 out of the counts too":
                    float((original.argmax(1) != fused.argmax(1)).sum() / labelled) if key == "changed" else None,
                "only the first image of the batch: count over all of it": per_image[0][key],
                "fixed = right after the fusion (whether or not it was wrong before): fixed is wrong before AND "
                "right after": float((((fused.argmax(1) == target) & (target != 255)).sum()) / labelled)
                if key == "fixed" else None,
            }
            if not abs(value - expected[key]) <= 1e-6:  # a nan fails too
                likely = next((m for m, v in wrong.items()
                               if v is not None and math.isclose(value, v, rel_tol=1e-5, abs_tol=1e-6)), None)
                fail(f"{name}: '{key}' should be {expected[key]:.4f}, yours is {value:.4f}"
                     + (f"\n  likely: {likely}" if likely else ""))
    passed(f"{name}: changed, fixed and broken as fractions of the labelled pixels, void ignored")


def _relative_change(stats) -> float:
    with student("stats (from attention_statistics)"):
        region = stats["mixed boundary"]
        value = region["relative_change"]
    return number("stats['mixed boundary']['relative_change']", value)


@guarded
def check_fusion_prediction(prediction: str, effect: dict, stats: dict | None = None) -> None:
    """Does the prediction ("rarely" or "often") follow from ``stats``? And what did ``effect`` measure?

    Without ``stats`` the prediction is judged on the measurement alone.
    """
    allowed = ("rarely", "often")
    if isinstance(prediction, str) and prediction.strip().lower() in allowed and prediction not in allowed:
        fail(f"PREDICTION should be 'rarely' or 'often', got {prediction!r}\n  likely: spelling: lower case, "
             "no spaces")
    if prediction not in allowed:
        if prediction is ... or prediction is None:
            raise NotDoneError("not done yet: set PREDICTION to 'rarely' or 'often' in the cell above, "
                               "before you measure") from None
        fail(f"PREDICTION should be 'rarely' or 'often', got {prediction!r}")
    if not isinstance(effect, dict) or not {"changed", "fixed", "broken"} <= set(effect):
        fail(f"effect should be the dict of my_fusion_effect ('changed', 'fixed', 'broken'), got {describe(effect)}")
    changed, fixed, broken = (number(f"effect[{k!r}]", effect[k]) for k in ("changed", "fixed", "broken"))
    measured = "rarely" if changed < THRESHOLD else "often"
    other = "often" if prediction == "rarely" else "rarely"
    measurement = (f"the fusion changed {100 * changed:.2f}% of the labelled pixels (fixed {100 * fixed:.2f}%, "
                   f"broken {100 * broken:.2f}%): {measured} by the {100 * THRESHOLD:g}% line")
    why = {"rarely": "an argmax changes only where A * F_rev outweighs the original branch's margin between its top "
                     "two classes",
           "often": "where the original branch's margin between its top two classes is small, even a small "
                    "A * F_rev overturns it"}
    if stats is None:  # nothing to judge the reasoning on: the measurement decides
        if prediction != measured:
            fail(f"you predicted the fusion changes the prediction {prediction}, but it changed "
                 f"{100 * changed:.2f}% of the labelled pixels ({measured}: the line is {100 * THRESHOLD:g}%)\n"
                 f"  {why[measured]}: look at the statistics again, then fix PREDICTION")
        passed(f"prediction '{prediction}' holds: {measurement}")
        return
    moved = _relative_change(stats)
    low, high = UNDECIDED
    supported = {"rarely"} if moved < low else {"often"} if moved > high else set(allowed)
    seen = (f"the fused map moved {100 * moved:.1f}% of |original| in the mixed band (below {100 * low:g}% the "
            f"statistics say rarely, above {100 * high:g}% often, in between either)")
    if prediction in supported:
        verdict = ("the measurement agrees" if prediction == measured else
                   f"this run went the other way ({why[measured]}; runs differ from machine to machine)")
        passed(f"prediction '{prediction}' follows from the statistics: {seen}. Measured: {measurement}; {verdict}")
    elif prediction == measured:
        passed(f"prediction '{prediction}' holds: {measurement}, although the statistics pointed to '{other}' "
               f"({seen})")
    else:
        fail(f"you predicted the fusion changes the prediction {prediction}, but {seen}, and {measurement}\n"
             f"  likely: {why[other]}: look at the statistics again, then fix PREDICTION")


# --- Catch it acting: the pixels whose class the fusion changed, and why (notebook 08, section 6) ---

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
        fail(f"{name} raised RuntimeError: {str(error).splitlines()[0][:160]}\n  likely: {hint}")


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
                     + (f"\n  likely: {mistake}" if mistake else ""))
            if value.dtype != torch.bool and not ((value == 0) | (value == 1)).all():
                fail(f"{name}: '{key}' should be True/False per pixel, got values such as {value.flatten()[0]:.3g}"
                     "\n  likely: scores or classes returned instead of the comparison")
            masks[key] = value.bool()
        wrong = _wrong_flips(output, target)
        for key, definition in FLIP_DEFINITIONS.items():
            if torch.equal(masks[key], expected[key]):
                continue
            likely = next((m for m, answer in wrong.items() if torch.equal(masks[key], answer[key])
                           and not torch.equal(answer[key], expected[key])), None)
            if likely:
                fail(f"{name}: '{key}' differs from ranlib's at {int((masks[key] != expected[key]).sum())} of "
                     f"{masks[key].numel()} pixels\n  likely: {likely}")
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
