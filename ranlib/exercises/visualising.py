"""Notebook 08's exercises: the confusion score, and a measurement with a prediction made beforehand.

- ``check_confusion(my_confusion)``: 1 - (p(1) - p(2)) of upsampled softmax probabilities, against
  ``ranlib.viz.regions.confusion_map``, at the feature sizes of 64 and 321 px images.
- ``check_fusion_effect(my_fusion_effect)``: how often the fusion changes the predicted class, against
  ``fusion_effect`` below, on hand-made scores with void pixels.
- ``check_fusion_prediction(prediction, effect)``: the student first reads the attention statistics and predicts
  whether the fusion changes the prediction "rarely" (fewer than 1% of the labelled pixels) or "often"; the check
  says whether the measurement bears that out and why.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ranlib.exercises._check import NotDoneError, call, compare, describe, fail, passed

THRESHOLD = 0.01  # "rarely": the fusion changes the class of fewer than 1% of the labelled pixels


def check_confusion(fn) -> None:
    """Check ``fn(logits (K, h, w), size) -> (H, W)`` confusion in [0, 1]."""
    from ranlib.viz.regions import confusion_map  # the figure helpers import matplotlib: only load them here

    name = "my_confusion"
    g = torch.Generator().manual_seed(0)
    tie = torch.zeros(3, 2, 2)
    sure = torch.tensor([10.0, -10.0, -10.0])[:, None, None].expand(3, 2, 2).contiguous()
    probes = [(tie, (2, 2)), (sure, (2, 2)), (3 * torch.randn(5, 8, 8, generator=g), (64, 64)),
              (3 * torch.randn(21, 41, 41, generator=g), (321, 321))]
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
    original = 3 * torch.randn(2, 5, 24, 24, generator=g)
    reverse = 3 * torch.randn(2, 5, 24, 24, generator=g)
    fused = original + torch.sigmoid(-original) * reverse
    target = original.argmax(1)
    flip = torch.rand(target.shape, generator=g) < 0.3
    target = torch.where(flip, torch.randint(0, 5, target.shape, generator=g), target)
    target[:, :3] = 255  # void rows
    target[0, 10:14, 10:14] = 255
    return original, fused, target


def check_fusion_effect(fn) -> None:
    """Check ``fn(original, fused, target) -> {"changed", "fixed", "broken"}`` (fractions of labelled pixels)."""
    name = "my_fusion_effect"
    for seed in (0, 1):
        original, fused, target = _probe_effect(seed)
        given = [t.clone() for t in (original, fused, target)]
        ours = call(fn, *given, name=name)
        if any(not torch.equal(a, b) for a, b in zip(given, (original, fused, target), strict=False)):
            fail(f"{name} changed an input in place: compute new tensors")
        if not isinstance(ours, dict) or not {"changed", "fixed", "broken"} <= set(ours):
            fail(f"{name} should return a dict with 'changed', 'fixed' and 'broken', got {describe(ours)}")
        expected = fusion_effect(original, fused, target)
        everywhere = fusion_effect(original, fused, torch.where(target == 255, -1, target), ignore_index=-2)
        labelled = int((target != 255).sum())
        n_changed = expected["changed"] * labelled
        for key in ("changed", "fixed", "broken"):
            value = float(ours[key])
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
            }
            if abs(value - expected[key]) > 1e-6:
                likely = next((m for m, v in wrong.items() if v is not None and abs(value - v) < 1e-6), None)
                fail(f"{name}: '{key}' should be {expected[key]:.4f}, yours is {value:.4f}"
                     + (f"\n  likely: {likely}" if likely else ""))
    passed(f"{name}: changed, fixed and broken as fractions of the labelled pixels, void ignored")


def check_fusion_prediction(prediction: str, effect: dict, stats: dict | None = None) -> None:
    """Was the prediction ("rarely" or "often") borne out by the measured ``effect["changed"]``?"""
    allowed = ("rarely", "often")
    if prediction not in allowed:
        if prediction is ... or prediction is None:
            raise NotDoneError("not done yet: set PREDICTION to 'rarely' or 'often' in the cell above, "
                               "before you measure") from None
        fail(f"PREDICTION should be 'rarely' or 'often', got {prediction!r}")
    changed = float(effect["changed"])
    measured = "rarely" if changed < THRESHOLD else "often"
    opened = ""
    if stats is not None:
        s = stats["mixed boundary"]
        opened = (f"; the attention of the other classes opened (A > 0.5) at {100 * s['open_other']:.1f}% of their "
                  f"scores in the mixed band and the fused map moved {100 * s['relative_change']:.1f}% of |original|")
    if prediction != measured:
        why = ("an argmax changes only where A * F_rev outweighs the original branch's margin between its top two "
               "classes" if measured == "rarely" else
               "open attention with strong reverse scores is enough to overturn the original branch's margin")
        fail(f"you predicted the fusion changes the prediction {prediction}, but it changed "
             f"{100 * changed:.2f}% of the labelled pixels ({measured}: the line is {100 * THRESHOLD:g}%){opened}\n"
             f"  {why}: look at the statistics again, then fix PREDICTION")
    passed(f"prediction '{prediction}' holds: the fusion changed {100 * changed:.2f}% of the labelled pixels "
           f"(fixed {100 * effect['fixed']:.2f}%, broken {100 * effect['broken']:.2f}%){opened}")
