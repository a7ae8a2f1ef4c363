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
from ranlib.exercises._check import (
    call,
    check_gradient,
    close,
    compare,
    describe,
    fail,
    guarded,
    passed,
    student,
)
from ranlib.exercises.heads import check_head_layer
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


def _state(name: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    with student(f"{name}.state_dict"):
        return {k: v.detach().clone() for k, v in module.state_dict().items()}


@guarded
def check_ran(cls, backbone: str = "resnet18", num_classes: int = 21) -> None:
    """Check ``cls(backbone, num_classes, variant)`` for variant "baseline", "subtract" and "ran".

    The heads' layers and initialisation are checked as in notebook 02; then ranlib's weights (heads scaled up,
    non-zero biases) are loaded and the outputs compared on 75x100 px images (features 10x13); the subtract
    variant is built with 5 classes. Gradients of the fused scores must reach the backbone and both heads.
    """
    images = torch.randn(2, 3, 75, 100, generator=torch.Generator().manual_seed(0))
    # the subtract variant is also built on a second backbone (32 channels), so that no width can be fixed
    for variant, net in (("baseline", backbone), ("subtract", backbone), ("ran", backbone), ("subtract", "tiny")):
        classes = 5 if variant == "subtract" else num_classes
        name = f"MyRAN({net!r}, {classes}, variant={variant!r})"
        reference = _reference(variant, net, classes)
        mine = call(cls, net, classes, variant, name=name)
        if not isinstance(mine, torch.nn.Module):
            fail(f"{name}: an nn.Module expected, got {describe(mine)}")
        with student(f"{name}.conv_org"):
            heads = {head: getattr(mine, head, None) for head in ("conv_org", "conv_rev")}
        channels = reference.backbone.out_channels
        for head, module in heads.items():
            if module is None and (head == "conv_org" or variant != "baseline"):
                fail(f"{name}: self.{head} is missing (None)" + ("; only the baseline has no conv_rev"
                                                                if head == "conv_rev" else ""))
            if module is not None and (head == "conv_org" or variant != "baseline"):
                check_head_layer(f"{name}.{head}", module, channels, classes, 12)
        if heads["conv_org"] is heads["conv_rev"]:
            fail(f"{name}: conv_org and conv_rev are the same module: build two heads, each with its own weights")
        keys = set(_state(name, mine))
        missing, unexpected = set(reference.state_dict()) - keys, keys - set(reference.state_dict())
        if missing or unexpected:
            fail(f"{name}: state_dict keys differ from ranlib's: missing {sorted(missing)[:3]}, unexpected "
                 f"{sorted(unexpected)[:3]}: attributes backbone, conv_org, conv_rev, each head's layer conv"
                 + ("\n  likely: the baseline has no conv_rev (set it to None)"
                    if variant == "baseline" and any(k.startswith("conv_rev") for k in unexpected) else ""))
        with student(f"{name}.load_state_dict"):
            mine.load_state_dict(reference.state_dict())
            mine.eval()
        before = _state(name, mine)
        with torch.no_grad():
            ours, theirs = call(mine, images, name=f"{name}.forward"), reference(images)
            f = reference.backbone(images)
        changed = [k for k, v in _state(name, mine).items() if k in before and not torch.equal(v, before[k])
                   and "running_" not in k and "num_batches" not in k]
        if changed:
            fail(f"{name}: calling forward changed {changed[0]}\n  likely: a layer is (re-)initialised inside "
                 "forward: build and initialise the heads in __init__ only")
        if not isinstance(ours, RANOutput):
            fail(f"{name}: forward should return a ranlib.RANOutput(original, reverse, attention, fused), got "
                 f"{describe(ours)}")
        o, r = theirs.original, theirs.reverse
        with torch.no_grad():
            rev_of_neg_f = -reference.conv_rev(-f) if r is not None else None
        wrong = {"original": {"NEG applied to the original branch": -o} if r is not None else {}}
        wrong["original"]["H and W swapped (a transpose or permute): keep (B, K, h, w)"] = o.transpose(-1, -2)
        if r is not None:
            wrong["original"]["conv_org and conv_rev swapped: original = CONV_org(f)"] = -r
            wrong["reverse"] = {"NEG missing: reverse = -CONV_rev(f)": -r,
                                "NEG applied to the features, CONV_rev(-f): negate CONV_rev's output": -rev_of_neg_f,
                                "conv_org and conv_rev swapped: reverse = -CONV_rev(f)": -o}
        if variant == "subtract":
            wrong["fused"] = {"NEG applied twice: fused = original + reverse (reverse is already NEG'd)": o - r,
                              "the reverse scores are not added: fused = original + reverse": o,
                              "the attention applied: the subtract variant has none, fused = original + reverse":
                                  o + torch.sigmoid(-o) * r}
        if variant == "ran":
            a = theirs.attention
            wrong["attention"] = {
                "looks like sigmoid(x) instead of sigmoid(-x)": torch.sigmoid(o),
                "the normalised form: Formula 1 is sigmoid(-original)": reverse_attention(o, "normalized"),
                "attention computed from the reverse scores: A = sigmoid(-original)": torch.sigmoid(-r),
                "a softmax over the classes: Formula 1 is an elementwise sigmoid(-original)": torch.softmax(-o, 1),
                "attention computed from the fused scores: A = sigmoid(-original)": torch.sigmoid(-(o + r))}
            wrong["fused"] = {"the attention is ignored: that is the subtract variant": o + r,
                              "NEG applied twice: fused = original + A * reverse": o - a * r,
                              "the attention applied to the original scores instead of the reverse ones": a * o + r,
                              "the attention applied to the reverse scores of the wrong sign, sigmoid(x)":
                                  o + torch.sigmoid(o) * r,
                              "the original scores are missing: fused = original + A * reverse": a * r}
        if variant == "baseline":
            wrong["fused"] = {"NEG applied: the baseline's fused scores are the original ones": -o}
        for field in RANOutput._fields:  # a branch upsampled to the image
            if getattr(theirs, field) is not None:
                wrong.setdefault(field, {})["upsampled to the image: RANOutput holds every branch at the features' "
                                            "resolution (1/8), the loss upsamples"] = F.interpolate(
                    getattr(theirs, field), size=images.shape[-2:], mode="bilinear", align_corners=False)
        for field in RANOutput._fields:
            a_, b_ = getattr(ours, field), getattr(theirs, field)
            if b_ is None:
                if a_ is not None:
                    fail(f"{name}: '{field}' should be None (this variant has no such branch), got {describe(a_)}")
                continue
            if a_ is None and field == "fused":
                fail(f"{name}: 'fused' is None\n  likely: every variant fills fused (the baseline: fused = original)")
            compare(f"{name}: branch '{field}'", a_, b_, wrong.get(field), atol=1e-4)
        # the training cells need gradients from the fused scores into the backbone and both heads
        out = call(mine, images[:1, :, :64, :64], name=f"{name}.forward")
        with student(f"{name}.parameters"):
            targets = {"the backbone": next(p for p in mine.backbone.parameters() if p.requires_grad),
                       "CONV_org": mine.conv_org.conv.weight}
            if variant != "baseline":
                targets["CONV_rev"] = mine.conv_rev.conv.weight
        for what, weight in targets.items():
            check_gradient(name, getattr(out, "fused", None), weight, f"the fused scores (into {what})")
        if variant == "ran":  # gradients of the fused scores reach CONV_org through the attention as well
            out = call(mine, images, name=f"{name}.forward")
            check_gradient(name, out.attention, mine.conv_org.conv.weight, "the attention")
            with student(f"{name} (gradient of the fused scores)"):
                (ours_grad,) = torch.autograd.grad(out.fused.sum(), mine.conv_org.conv.weight)
            ref = reference(images)
            weight = reference.conv_org.conv.weight
            (full,) = torch.autograd.grad(ref.fused.sum(), weight, retain_graph=True)
            (detached,) = torch.autograd.grad((ref.original + ref.attention.detach() * ref.reverse).sum(), weight)
            if not close(ours_grad, full, rtol=1e-3, atol=1e-4):
                hint = ("the attention is detached inside the fusion: gradients must flow through A into CONV_org"
                        if close(ours_grad, detached, rtol=1e-3, atol=1e-4) else "check the fusion")
                fail(f"{name}: d(fused)/d(CONV_org weights) differs from ranlib's\n  likely: {hint}")
    passed("MyRAN: heads 3x3, dilation 12, N(0, 0.01); baseline, subtract and ran equal to ranlib.build_model "
           "branch by branch on 75x100 px images (scaled heads, non-zero biases); gradients reach the backbone, "
           "both heads, and CONV_org through the attention")


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
    k = num_classes
    for variant in ("ran", "baseline"):
        for size, hw in LOSS_SIZES:
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
            branches = (out.original, out.reverse, out.fused)
            for term, logits in zip(("original", "reverse", "fused"), branches, strict=True):
                if term not in ref_parts:
                    continue

                def ce(x, t=target, mode="bilinear", corners=False, size=size, **kwargs):
                    up = F.interpolate(x, size=size, mode=mode,
                                       align_corners=corners if mode == "bilinear" else None)
                    return F.cross_entropy(up, t, **kwargs)

                with torch.no_grad():
                    small = F.interpolate(target[:, None].float(), size=hw, mode="nearest")[:, 0].long()
                    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
                    wrong = {
                        "align_corners=True: ranlib upsamples with align_corners=False": ce(logits, corners=True,
                                                                                            ignore_index=255),
                        "nearest-neighbour upsampling: use mode='bilinear'": ce(logits, mode="nearest",
                                                                                ignore_index=255),
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
                    if variant == "ran":
                        wrong[f"term '{term}' computed on another branch: each term uses its own branch"] = \
                            ce(out.fused if term != "fused" else out.original, ignore_index=255)
                compare(f"{name} ({where}): term '{term}'", parts[term], ref_parts[term], wrong)
            values = list(ref_parts.values())
            compare(f"{name} ({where}): the total", total, ref_total, {
                "losses averaged instead of summed: L = L_org + L_rev + L_RAN": sum(values) / len(values),
                "only the fused loss in the total: L = L_org + L_rev + L_RAN": ref_parts["fused"],
                "the fused loss counted twice: L = L_org + L_rev + L_RAN": sum(values) + ref_parts["fused"],
            })
            check_gradient(name, total, out.original, "the total loss")
            for term, logits in zip(("original", "reverse", "fused"), branches, strict=True):
                if term in ref_parts:
                    check_gradient(name, parts[term], logits, f"the term '{term}'")
    # the ignore_index argument: void marked with another label, the last (absent) class
    out, target = _outputs(k, (8, 8), "ran", seed=3), _labels((64, 64), k, seed=3)
    target = target.masked_fill(target == 255, k - 1)
    result = call(fn, out, target.clone(), ignore_index=k - 1, name=name)
    total = result[0] if isinstance(result, tuple) and len(result) == 2 else result
    expected = ranlib.RANLoss(ignore_index=k - 1)(out, target)[0]
    if not close(total, expected):
        hint = ("\n  likely: the ignore_index argument is not used (a fixed 255): cross_entropy(..., "
                "ignore_index=ignore_index)" if close(total, ranlib.RANLoss()(out, target)[0]) else "")
        fail(f"{name}(output, target, ignore_index={k - 1}): total {expected.item():.4g} expected, got "
             f"{total.item() if isinstance(total, torch.Tensor) else total}: the pixels labelled {k - 1} must not "
             f"count{hint}")
    passed(f"{name}: the three terms and their sum equal to ranlib.RANLoss (baseline: 'fused' only), void pixels "
           "ignored (different in each image), labels of 64, 75x130 and 321 px, absent classes, another "
           "ignore_index; gradients flow")
