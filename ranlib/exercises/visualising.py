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

Section 6's checks, ``check_fusion_flips`` and ``check_flip_reasons``, live in ``fusion_flips``.
"""

from __future__ import annotations

import math

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
    likely,
    number,
    passed,
    student,
)

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
                mistake = next((m for m, v in wrong.items()
                                if v is not None and math.isclose(value, v, rel_tol=1e-5, abs_tol=1e-6)), None)
                fail(f"{name}: '{key}' should be {expected[key]:.4f}, yours is {value:.4f}" + likely(mistake))
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
        fail(f"you predicted the fusion changes the prediction {prediction}, but {seen}, and {measurement}"
             + likely(f"{why[other]}: look at the statistics again, then fix PREDICTION"))
