"""Notebook 05's second exercise: RAN's three losses.

``check_ran_loss(my_ran_loss)``: hand-made branch outputs at the feature size of 64 and 321 px images, labels with
a void band and absent classes, against ``ranlib.RANLoss``; then the ``ignore_index`` argument.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ranlib
from ranlib.exercises._check import call, check_gradient, close, compare, describe, fail, guarded, likely, passed
from ranlib.model import RANOutput


def _outputs(k: int, size: tuple[int, int], variant: str, seed: int) -> RANOutput:
    g = torch.Generator().manual_seed(seed)
    o = (3 * torch.randn(2, k, *size, generator=g)).requires_grad_()
    if variant == "baseline":
        return RANOutput(o, None, None, o)
    r = (3 * torch.randn(2, k, *size, generator=g)).requires_grad_()
    a = torch.sigmoid(-o)
    return RANOutput(o, r, a, o + a * r)


def _labels(size: tuple[int, int], k: int, seed: int) -> torch.Tensor:
    """Two label maps with different void patterns (so a mean of per-image losses differs from the batch's)."""
    g = torch.Generator().manual_seed(seed)
    h, w = size
    target = torch.randint(0, k - 2, (2, h, w), generator=g)  # the last two classes are absent
    target[0, h // 2 - 2:h // 2 + 2, :] = 255  # a band of void pixels in the first image
    target[1, :, : w // 3] = 255  # a third of the second image is void
    target[1][torch.rand(h, w, generator=g) < 0.1] = 255  # and scattered void pixels
    return target


# (label H x W, score h x w): the feature sizes of a 64 px, a 75x130 px and a 321 px image
LOSS_SIZES = (((64, 64), (8, 8)), ((75, 130), (10, 17)), ((321, 321), (41, 41)))


@guarded
def check_ran_loss(fn, num_classes: int = 5) -> None:
    """Check ``fn(output, target, ignore_index=255) -> (total, {"original", "reverse", "fused"})``."""
    name = "my_ran_loss"
    for variant in ("ran", "baseline"):
        for size, hw in LOSS_SIZES:
            _check_loss_case(fn, name, variant, size, hw, num_classes)
    # the ignore_index argument: void marked with another label, the last (absent) class
    k = num_classes
    out, target = _outputs(k, (8, 8), "ran", seed=3), _labels((64, 64), k, seed=3)
    target = target.masked_fill(target == 255, k - 1)
    result = call(fn, out, target.clone(), ignore_index=k - 1, name=name)
    total = result[0] if isinstance(result, tuple) and len(result) == 2 else result
    expected = ranlib.RANLoss(ignore_index=k - 1)(out, target)[0]
    if not close(total, expected):
        hint = ("the ignore_index argument is not used (a fixed 255): cross_entropy(..., ignore_index=ignore_index)"
                if close(total, ranlib.RANLoss()(out, target)[0]) else None)
        fail(f"{name}(output, target, ignore_index={k - 1}): total {expected.item():.4g} expected, got "
             f"{total.item() if isinstance(total, torch.Tensor) else total}: the pixels labelled {k - 1} must not "
             f"count{likely(hint)}")
    passed(f"{name}: the three terms and their sum equal to ranlib.RANLoss (baseline: 'fused' only), void pixels "
           "ignored (different in each image), labels of 64, 75x130 and 321 px, absent classes, another "
           "ignore_index; gradients flow")


TERMS = ("original", "reverse", "fused")


def _check_loss_case(fn, name: str, variant: str, size: tuple[int, int], hw: tuple[int, int], k: int) -> None:
    """One variant's branch scores of ``hw`` against labels of ``size``: each term, the total and the gradients."""
    out, target = _outputs(k, hw, variant, seed=size[1]), _labels(size, k, seed=size[1])
    given = target.clone()
    result = call(fn, out, given, name=name)
    if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
        fail(f"{name} should return (total, dict of terms), got {describe(result)}")
    if not torch.equal(given, target):
        fail(f"{name} changed the labels in place (e.g. target[target == 255] = 0): leave them as they are")
    total, parts = result
    ref_total, ref_parts = ranlib.RANLoss()(out, target)
    where = f"{variant}, {size[0]}x{size[1]} labels, {hw[0]}x{hw[1]} scores"
    if set(parts) != set(ref_parts):
        hint = ("; the baseline has only 'fused' (its reverse is None)" if variant == "baseline"
                else "; all three branches have a loss")
        fail(f"{name} ({where}): terms {sorted(ref_parts)} expected, got {sorted(parts)}{hint}")
    branches = {term: getattr(out, term) for term in TERMS if term in ref_parts}
    for term, logits in branches.items():
        other = out.fused if term != "fused" else out.original
        compare(f"{name} ({where}): term '{term}'", parts[term], ref_parts[term],
                _loss_mistakes(logits, target, other if variant == "ran" else None, term, k))
    values = list(ref_parts.values())
    compare(f"{name} ({where}): the total", total, ref_total, {
        "losses averaged instead of summed: L = L_org + L_rev + L_RAN": sum(values) / len(values),
        "only the fused loss in the total: L = L_org + L_rev + L_RAN": ref_parts["fused"],
        "the fused loss counted twice: L = L_org + L_rev + L_RAN": sum(values) + ref_parts["fused"],
    })
    check_gradient(name, total, out.original, "the total loss")
    for term, logits in branches.items():
        check_gradient(name, parts[term], logits, f"the term '{term}'")


def _loss_mistakes(logits: torch.Tensor, target: torch.Tensor, other: torch.Tensor | None, term: str,
                   k: int) -> dict[str, torch.Tensor]:
    """What plausible mistakes give for the term of ``logits``; ``other``: another branch's scores (RAN only)."""
    size = target.shape[-2:]

    def ce(x, t=target, mode="bilinear", corners=False, **kwargs):
        up = F.interpolate(x, size=size, mode=mode, align_corners=corners if mode == "bilinear" else None)
        return F.cross_entropy(up, t, **kwargs)

    with torch.no_grad():
        small = F.interpolate(target[:, None].float(), size=logits.shape[-2:], mode="nearest")[:, 0].long()
        up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        wrong = {
            "align_corners=True: ranlib upsamples with align_corners=False": ce(logits, corners=True,
                                                                                ignore_index=255),
            "nearest-neighbour upsampling: use mode='bilinear'": ce(logits, mode="nearest", ignore_index=255),
            "the labels were shrunk to the scores' size: upsample the scores to the labels' size instead":
                F.cross_entropy(logits, small, ignore_index=255),
            "ignore index 255 not ignored: the void pixels were counted as background; pass "
            "ignore_index=255": ce(logits, t=target.masked_fill(target == 255, 0)),
            **{f"the void pixels (255) counted as class {c} (clamped or replaced): pass "
               "ignore_index=ignore_index so that they do not count":
               ce(logits, t=target.masked_fill(target == 255, c)) for c in range(1, k)},
            "reduction='sum': the mean over the labelled pixels is expected": ce(logits, ignore_index=255,
                                                                                  reduction="sum"),
            "computed on -logits: output.reverse is already NEG(CONV_rev(f)), use it as it is":
                ce(-logits, ignore_index=255),
            "a mean of per-image losses: one cross_entropy over the batch averages over all its "
            "labelled pixels (the images have different numbers of them)":
                sum(F.cross_entropy(up[i:i + 1], target[i:i + 1], ignore_index=255) for i in range(2)) / 2,
            "a softmax before cross_entropy: F.cross_entropy takes the logits (it applies log-softmax)":
                F.cross_entropy(up.softmax(1), target, ignore_index=255),
            "nll_loss on the logits: use F.cross_entropy (nll_loss expects log-probabilities)":
                F.nll_loss(up, target, ignore_index=255),
        }
        if other is not None:
            wrong[f"term '{term}' computed on another branch: each term uses its own branch"] = \
                ce(other, ignore_index=255)
    return wrong
