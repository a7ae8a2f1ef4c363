"""Notebook 05's first exercise: the assembled RAN (its three losses are checked in ``ran_loss``).

``check_ran(MyRAN)``: for the three variants, ranlib's weights (heads scaled up, non-zero biases) loaded into the
student's model, the four outputs compared one by one, and the gradient of the fused scores with respect to CONV_org
compared with ranlib's (it flows through the attention too).
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
    likely,
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
        _load_ran(name, mine, reference, variant)
        _compare_branches(name, mine, reference, images)
        _check_ran_gradients(name, mine, reference, images, variant)
    passed("MyRAN: heads 3x3, dilation 12, N(0, 0.01); baseline, subtract and ran equal to ranlib.build_model "
           "branch by branch on 75x100 px images (scaled heads, non-zero biases); gradients reach the backbone, "
           "both heads, and CONV_org through the attention")


def _load_ran(name: str, mine, reference: ranlib.RAN, variant: str) -> None:
    """Check the student's heads (a CONV_rev unless the baseline), then load ranlib's weights (eval mode)."""
    if not isinstance(mine, torch.nn.Module):
        fail(f"{name}: an nn.Module expected, got {describe(mine)}")
    with student(f"{name}.conv_org"):
        heads = {head: getattr(mine, head, None) for head in ("conv_org", "conv_rev")}
    for head, module in heads.items():
        if head == "conv_rev" and variant == "baseline":
            continue
        if module is None:
            fail(f"{name}: self.{head} is missing (None)" + ("; only the baseline has no conv_rev"
                                                            if head == "conv_rev" else ""))
        check_head_layer(f"{name}.{head}", module, reference.backbone.out_channels, reference.num_classes, 12)
    if heads["conv_org"] is heads["conv_rev"]:
        fail(f"{name}: conv_org and conv_rev are the same module: build two heads, each with its own weights")
    keys = set(_state(name, mine))
    missing, unexpected = set(reference.state_dict()) - keys, keys - set(reference.state_dict())
    if missing or unexpected:
        fail(f"{name}: state_dict keys differ from ranlib's: missing {sorted(missing)[:3]}, unexpected "
             f"{sorted(unexpected)[:3]}: attributes backbone, conv_org, conv_rev, each head's layer conv"
             + likely("the baseline has no conv_rev (set it to None)"
                      if variant == "baseline" and any(k.startswith("conv_rev") for k in unexpected) else None))
    with student(f"{name}.load_state_dict"):
        mine.load_state_dict(reference.state_dict())
        mine.eval()


def _compare_branches(name: str, mine, reference: ranlib.RAN, images: torch.Tensor) -> None:
    """The student's forward leaves the weights alone and returns ranlib's RANOutput, branch by branch."""
    before = _state(name, mine)
    with torch.no_grad():
        ours, theirs = call(mine, images, name=f"{name}.forward"), reference(images)
        f = reference.backbone(images)
        rev_of_neg_f = -reference.conv_rev(-f) if theirs.reverse is not None else None
    changed = [k for k, v in _state(name, mine).items() if k in before and not torch.equal(v, before[k])
               and "running_" not in k and "num_batches" not in k]
    if changed:
        fail(f"{name}: calling forward changed {changed[0]}\n  likely: a layer is (re-)initialised inside "
             "forward: build and initialise the heads in __init__ only")
    if not isinstance(ours, RANOutput):
        fail(f"{name}: forward should return a ranlib.RANOutput(original, reverse, attention, fused), got "
             f"{describe(ours)}")
    wrong = _branch_mistakes(theirs, rev_of_neg_f, images.shape[-2:])
    for field in RANOutput._fields:
        a_, b_ = getattr(ours, field), getattr(theirs, field)
        if b_ is None and a_ is not None:
            fail(f"{name}: '{field}' should be None (this variant has no such branch), got {describe(a_)}")
        if b_ is None:
            continue
        if a_ is None and field == "fused":
            fail(f"{name}: 'fused' is None\n  likely: every variant fills fused (the baseline: fused = original)")
        compare(f"{name}: branch '{field}'", a_, b_, wrong.get(field), atol=1e-4)


def _branch_mistakes(theirs: RANOutput, rev_of_neg_f, size) -> dict[str, dict[str, torch.Tensor]]:
    """What plausible mistakes give in each branch of ranlib's output ``theirs``: {field: {mistake: value}}."""
    o, r, a = theirs.original, theirs.reverse, theirs.attention
    wrong = {"original": {"NEG applied to the original branch": -o} if r is not None else {}}
    wrong["original"]["H and W swapped (a transpose or permute): keep (B, K, h, w)"] = o.transpose(-1, -2)
    if r is not None:
        wrong["original"]["conv_org and conv_rev swapped: original = CONV_org(f)"] = -r
        wrong["reverse"] = {"NEG missing: reverse = -CONV_rev(f)": -r,
                            "NEG applied to the features, CONV_rev(-f): negate CONV_rev's output": -rev_of_neg_f,
                            "conv_org and conv_rev swapped: reverse = -CONV_rev(f)": -o}
    if r is not None and a is None:  # the subtract variant
        wrong["fused"] = {"NEG applied twice: fused = original + reverse (reverse is already NEG'd)": o - r,
                          "the reverse scores are not added: fused = original + reverse": o,
                          "the attention applied: the subtract variant has none, fused = original + reverse":
                              o + torch.sigmoid(-o) * r}
    if a is not None:
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
    if r is None:  # the baseline
        wrong["fused"] = {"NEG applied: the baseline's fused scores are the original ones": -o}
    for field in RANOutput._fields:  # a branch upsampled to the image
        if getattr(theirs, field) is not None:
            wrong.setdefault(field, {})["upsampled to the image: RANOutput holds every branch at the features' "
                                        "resolution (1/8), the loss upsamples"] = F.interpolate(
                getattr(theirs, field), size=size, mode="bilinear", align_corners=False)
    return wrong


def _check_ran_gradients(name: str, mine, reference: ranlib.RAN, images: torch.Tensor, variant: str) -> None:
    """The training cells need gradients from the fused scores into the backbone and both heads; in RAN they
    reach CONV_org through the attention as well, as ranlib's do."""
    out = call(mine, images[:1, :, :64, :64], name=f"{name}.forward")
    with student(f"{name}.parameters"):
        targets = {"the backbone": next(p for p in mine.backbone.parameters() if p.requires_grad),
                   "CONV_org": mine.conv_org.conv.weight}
        if variant != "baseline":
            targets["CONV_rev"] = mine.conv_rev.conv.weight
    for what, weight in targets.items():
        check_gradient(name, getattr(out, "fused", None), weight, f"the fused scores (into {what})")
    if variant != "ran":
        return
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
        fail(f"{name}: d(fused)/d(CONV_org weights) differs from ranlib's" + likely(hint))
