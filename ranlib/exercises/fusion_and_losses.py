"""Notebook 05's exercises: the assembled RAN and its three losses.

- ``check_ran(MyRAN)``: for the three variants, ranlib's weights (heads scaled up, non-zero biases) loaded into
  the student's model, the four outputs compared one by one, and the gradient of the fused scores with respect to
  CONV_org compared with ranlib's (it flows through the attention too).
- ``check_ran_loss(my_ran_loss)``: hand-made branch outputs at the feature size of 64 and 321 px images, labels
  with a void band and absent classes, against ``ranlib.RANLoss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import ranlib
from ranlib.exercises._check import call, check_gradient, close, compare, describe, fail, passed
from ranlib.model import RANOutput
from ranlib.reverse_attention import reverse_attention


def _reference(variant: str, backbone: str, num_classes: int) -> ranlib.RAN:
    torch.manual_seed(0)
    model = ranlib.build_model(backbone=backbone, variant=variant, num_classes=num_classes).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for head in (model.conv_org, model.conv_rev):
            if head is not None:
                head.conv.weight.mul_(10)
                head.conv.bias.copy_(torch.randn(head.conv.bias.shape, generator=g))
    return model


def check_ran(cls, backbone: str = "resnet18", num_classes: int = 21) -> None:
    """Check ``cls(backbone, num_classes, variant)`` for variant "baseline", "subtract" and "ran"."""
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for variant in ("baseline", "subtract", "ran"):
        name = f"MyRAN(variant={variant!r})"
        reference = _reference(variant, backbone, num_classes)
        mine = call(cls, backbone, num_classes, variant, name=name)
        missing = set(reference.state_dict()) - set(mine.state_dict())
        unexpected = set(mine.state_dict()) - set(reference.state_dict())
        if missing or unexpected:
            fail(f"{name}: state_dict keys differ from ranlib's: missing {sorted(missing)[:3]}, unexpected "
                 f"{sorted(unexpected)[:3]}: attributes backbone, conv_org, conv_rev, each head's layer conv"
                 + ("; the baseline has no conv_rev (set it to None)" if variant == "baseline" and unexpected else ""))
        mine.load_state_dict(reference.state_dict())
        mine.eval()
        with torch.no_grad():
            ours, theirs = call(mine, images, name=f"{name}.forward"), reference(images)
        if not isinstance(ours, RANOutput):
            fail(f"{name}: forward should return a ranlib.RANOutput(original, reverse, attention, fused), got "
                 f"{describe(ours)}")
        o, r = theirs.original, theirs.reverse
        wrong = {"original": {"NEG applied to the original branch": -o} if r is not None else {}}
        if r is not None:
            wrong["reverse"] = {"NEG missing: reverse = -CONV_rev(f)": -r}
        if variant == "subtract":
            wrong["fused"] = {"NEG applied twice: fused = original + reverse (reverse is already NEG'd)": o - r,
                              "the reverse scores are not added: fused = original + reverse": o}
        if variant == "ran":
            a = theirs.attention
            wrong["attention"] = {
                "looks like sigmoid(x) instead of sigmoid(-x)": torch.sigmoid(o),
                "the normalised form: Formula 1 is sigmoid(-original)": reverse_attention(o, "normalized"),
                "attention computed from the reverse scores: A = sigmoid(-original)": torch.sigmoid(-r)}
            wrong["fused"] = {"the attention is ignored: that is the subtract variant": o + r,
                              "NEG applied twice: fused = original + A * reverse": o - a * r,
                              "the attention applied to the original scores instead of the reverse ones": a * o + r,
                              "the attention applied to the reverse scores of the wrong sign, sigmoid(x)":
                                  o + torch.sigmoid(o) * r}
        for field in RANOutput._fields:
            a_, b_ = getattr(ours, field), getattr(theirs, field)
            if b_ is None:
                if a_ is not None:
                    fail(f"{name}: '{field}' should be None (this variant has no such branch), got {describe(a_)}")
                continue
            compare(f"{name}: branch '{field}'", a_, b_, wrong.get(field), atol=1e-4)
        if variant == "ran":  # gradients of the fused scores reach CONV_org through the attention as well
            out = call(mine, images, name=f"{name}.forward")
            check_gradient(name, out.attention, mine.conv_org.conv.weight, "the attention")
            (ours_grad,) = torch.autograd.grad(out.fused.sum(), mine.conv_org.conv.weight)
            ref = reference(images)
            weight = reference.conv_org.conv.weight
            (full,) = torch.autograd.grad(ref.fused.sum(), weight, retain_graph=True)
            (detached,) = torch.autograd.grad((ref.original + ref.attention.detach() * ref.reverse).sum(), weight)
            if not close(ours_grad, full, rtol=1e-3, atol=1e-4):
                hint = ("the attention is detached inside the fusion: gradients must flow through A into CONV_org"
                        if close(ours_grad, detached, rtol=1e-3, atol=1e-4) else "check the fusion")
                fail(f"{name}: d(fused)/d(CONV_org weights) differs from ranlib's\n  likely: {hint}")
    passed("MyRAN: baseline, subtract and ran equal to ranlib.build_model branch by branch (scaled heads, "
           "non-zero biases); gradients reach CONV_org through the attention")


def _outputs(k: int, h: int, variant: str, seed: int) -> RANOutput:
    g = torch.Generator().manual_seed(seed)
    o = (3 * torch.randn(2, k, h, h, generator=g)).requires_grad_()
    if variant == "baseline":
        return RANOutput(o, None, None, o)
    r = (3 * torch.randn(2, k, h, h, generator=g)).requires_grad_()
    a = torch.sigmoid(-o)
    return RANOutput(o, r, a, o + a * r)


def _labels(size: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, k - 2, (2, size, size), generator=g)  # the last two classes are absent
    target[:, size // 2 - 2:size // 2 + 2, :] = 255  # a band of void pixels
    return target


def check_ran_loss(fn, num_classes: int = 5) -> None:
    """Check ``fn(output, target, ignore_index=255) -> (total, {"original", "reverse", "fused"})``."""
    name = "my_ran_loss"
    k = num_classes
    for variant in ("ran", "baseline"):
        for size, h in ((64, 8), (321, 41)):
            out, target = _outputs(k, h, variant, seed=size), _labels(size, k, seed=size)
            given = target.clone()
            result = call(fn, out, given, name=name)
            if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
                fail(f"{name} should return (total, dict of terms), got {describe(result)}")
            if not torch.equal(given, target):
                fail(f"{name} changed the labels in place (e.g. target[target == 255] = 0): leave them as they are")
            total, parts = result
            ref_total, ref_parts = ranlib.RANLoss()(out, target)
            where = f"{variant}, {size} px labels, {h}x{h} scores"
            if set(parts) != set(ref_parts):
                hint = ("; the baseline has only 'fused' (its reverse is None)" if variant == "baseline"
                        else "; all three branches have a loss")
                fail(f"{name} ({where}): terms {sorted(ref_parts)} expected, got {sorted(parts)}{hint}")
            branches = (out.original, out.reverse, out.fused)
            for term, logits in zip(("original", "reverse", "fused"), branches, strict=True):
                if term not in ref_parts:
                    continue

                def ce(x, t=target, mode="bilinear", corners=False, size=size, **kwargs):
                    up = F.interpolate(x, size=(size, size), mode=mode,
                                       align_corners=corners if mode == "bilinear" else None)
                    return F.cross_entropy(up, t, **kwargs)

                small = F.interpolate(target[:, None].float(), size=(h, h), mode="nearest")[:, 0].long()
                wrong = {
                    "align_corners=True: ranlib upsamples with align_corners=False": ce(logits, corners=True,
                                                                                        ignore_index=255),
                    "nearest-neighbour upsampling: use mode='bilinear'": ce(logits, mode="nearest", ignore_index=255),
                    "the labels were shrunk to the scores' size: upsample the scores to the labels' size instead":
                        F.cross_entropy(logits, small, ignore_index=255),
                    "ignore index 255 not ignored: the void pixels were counted as background; pass "
                    "ignore_index=255": ce(logits, t=target.masked_fill(target == 255, 0)),
                    "reduction='sum': the mean over the labelled pixels is expected": ce(logits, ignore_index=255,
                                                                                          reduction="sum"),
                    "computed on -logits: output.reverse is already NEG(CONV_rev(f)), use it as it is":
                        ce(-logits, ignore_index=255),
                }
                if variant == "ran":
                    wrong[f"term '{term}' computed on another branch: each term uses its own branch"] = \
                        ce(out.fused if term != "fused" else out.original, ignore_index=255)
                compare(f"{name} ({where}): term '{term}'", parts[term], ref_parts[term], wrong)
            values = list(ref_parts.values())
            compare(f"{name} ({where}): the total", total, ref_total, {
                "losses averaged instead of summed: L = L_org + L_rev + L_RAN": sum(values) / len(values),
                "only the fused loss in the total: L = L_org + L_rev + L_RAN": ref_parts["fused"],
            })
            check_gradient(name, total, out.original, "the total loss")
    passed(f"{name}: the three terms and their sum equal to ranlib.RANLoss (baseline: 'fused' only), void band "
           "ignored, labels of 64 and 321 px, absent classes")
