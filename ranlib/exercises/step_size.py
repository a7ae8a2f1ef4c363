"""Notebook 07's exercise on a fair comparison: the step each of RAN's losses gives the shared backbone.

- ``check_loss_gradients(my_loss_gradients)``: ``my_loss_gradients(model, images, masks)`` returns, for each term
  of ``RANLoss`` and for their sum ("total"), the L2 norm of its gradient with respect to the backbone's features
  ``f = model.backbone(images)``; checked against ``ranlib.step_size.backbone_gradient_norms`` on RAN, subtract
  and baseline models, non-square images whose sides are not multiples of 8, and masks with void pixels.
- ``check_step_control(control, step_ratio, ran, baseline)``: the ratio of RAN's total gradient to the baseline's,
  and the control arm that ratio calls for, judged on the student's own measurements.

Section 7's checks (the controls' prediction, the paired differences) live in ``controls``.
"""

from __future__ import annotations

import copy

import torch

import ranlib
from ranlib.exercises._check import ExerciseError, NotDoneError, call, describe, fail, guarded, likely, number, passed
from ranlib.losses import RANLoss
from ranlib.step_size import backbone_gradient_norms, feature_gradients

# The options as notebook 07 prints them: each says what the arm changes, in the same form, and none says which
# confound it removes (the student works that out from the measured ratio).
CONTROLS = {
    "none": "no extra arm: compare the three variants as trained",
    "baseline-step": "the baseline with its backbone's learning rate x3, its heads' unchanged",
    "ran-mean": "RAN with its three losses averaged instead of summed",
    "more-iterations": "the baseline trained for 3x the iterations",
    "head-lr": "the baseline with its heads' learning rate x3, its backbone's unchanged",
}
STEP_CONTROLS = ("baseline-step", "ran-mean")  # both give the two arms the same backbone step
SAME_STEP = 1.25  # a ratio below this (and above 1 / SAME_STEP) counts as "the same step"


def _probe_models():
    """RAN, subtract and baseline ResNet-18s (5 classes) and a non-square batch with void pixels that differ
    from image to image."""
    torch.manual_seed(0)
    images = torch.randn(2, 3, 44, 60)  # (B, 3, H, W): neither side a multiple of 8, H != W
    masks = torch.randint(0, 5, (2, 44, 60))
    masks[0, :6] = 255  # a void band in the first image only
    masks[1, :, -9:] = 255  # a void column block in the second
    for variant in ("ran", "subtract", "baseline"):
        torch.manual_seed(1)
        yield variant, ranlib.build_model("resnet18", variant=variant, num_classes=5, head_dilation=2).train(), \
            images, masks


def _mistakes(model, images, masks, reference: dict[str, float]) -> dict[str, dict[str, float]]:
    """What plausible mistakes return on the same batch: {description: {term: value}}."""
    wrong: dict[str, dict[str, float]] = {}
    terms = [k for k in reference if k != "total"]
    wrong["each term got the gradient of the summed loss: take torch.autograd.grad of each term on its own"] = {
        k: reference["total"] for k in reference}
    wrong["'total' is the sum of the terms' norms: add the gradients first, then take the norm of the sum"] = {
        k: reference[k] for k in terms} | {"total": sum(reference[k] for k in terms)}
    wrong["squared norms: take .norm() (the square root of the sum of squares), not .pow(2).sum()"] = {
        k: v ** 2 for k, v in reference.items()}
    # the mean absolute value, the features themselves, the image's gradient, eval mode: recomputed
    mod = copy.deepcopy(model)
    images_ = images.clone().requires_grad_(True)
    f = mod.backbone(images_)
    _, parts = RANLoss()(mod.classify(f), masks)
    grads = feature_gradients(parts, {}, f)
    wrong["the mean of |gradient|: the L2 norm is grad.norm()"] = {k: g.abs().mean().item() for k, g in grads.items()}
    wrong["the norm of the features f themselves: the norm of the *gradient* of each loss with respect to f"] = {
        k: f.detach().norm().item() for k in grads}
    per_image = {k: (g.flatten(1).norm(dim=1).mean().item()) for k, g in grads.items()}
    wrong["a mean of per-image norms: take the norm over the whole batch's gradient"] = per_image
    wrong["the gradient with respect to the images: differentiate with respect to f = model.backbone(images)"] = {
        k: g.norm().item() for k, g in feature_gradients(parts, {}, images_).items()}
    running, accumulated = None, {}  # backward() per term into f.grad without zeroing: each norm includes the last
    for k in terms:
        running = grads[k] if running is None else running + grads[k]
        accumulated[k] = running.norm().item()
    wrong["gradients accumulated across terms (backward() into f.grad without zeroing it): take "
          "torch.autograd.grad(term, f) of each term on its own"] = accumulated | {"total": reference["total"]}
    wrong["the norm divided by sqrt(numel) (an RMS): the L2 norm is grad.norm()"] = {
        k: g.norm().item() / g.numel() ** 0.5 for k, g in grads.items()}
    evaluated = copy.deepcopy(model).eval()
    wrong["the model was put in eval mode (BatchNorm then uses its running statistics): measure in train mode, "
          "as training does"] = backbone_gradient_norms(evaluated, images, masks)
    return wrong


@guarded
def check_loss_gradients(fn) -> None:
    """Check ``fn(model, images, masks) -> {"original": ..., "reverse": ..., "fused": ..., "total": ...}``."""
    name = "my_loss_gradients"
    for variant, model, images, masks in _probe_models():
        reference_model = copy.deepcopy(model)
        reference = backbone_gradient_norms(reference_model, images, masks)
        given = copy.deepcopy(model)
        where = f"{name} ({variant} model, a {tuple(images.shape)} batch)"
        try:
            got = call(fn, given, images.clone(), masks.clone(), name=name)
        except ExerciseError as error:
            if variant == "baseline" and "KeyError" in str(error):
                fail(f"{where}: {error}\n  likely: the term names are hard-coded: the baseline's RANLoss has only "
                     "'fused'; loop over the parts it returns")
            raise
        if not isinstance(got, dict):
            fail(f"{where}: a dict {{term: norm}} expected, got {describe(got)}"
                 + likely("a missing return" if got is None else None))
        if set(got) != set(reference):
            extra, missing = sorted(map(str, set(got) - set(reference))), sorted(set(reference) - set(got))
            hint = ("the baseline has one loss term, 'fused' (RANLoss's parts): loop over the parts it returns "
                    "instead of naming three" if variant == "baseline" and extra else
                    "'total' is missing: the norm of the sum of the terms' gradients" if missing == ["total"] else None)
            fail(f"{where}: keys {sorted(reference)} expected, got {sorted(map(str, got))}{likely(hint)}")
        values = {k: number(f"{where}: '{k}'", got[k]) for k in reference}
        if all(abs(values[k] - reference[k]) <= 1e-3 * reference[k] + 1e-7 for k in reference):
            continue
        mistake = _norms_mistake(values, reference, model, images, masks)
        fail(f"{where}: {_differs(values, reference)}" + likely(mistake))
    passed(f"{name}: every term's gradient norm at the backbone's features, and their sum's, as "
           "ranlib.step_size.backbone_gradient_norms (RAN, subtract and baseline)")


def _norms_mistake(values: dict[str, float], reference: dict[str, float], model, images, masks) -> str | None:
    """The plausible mistake that gives the student's norms ``values`` on this batch, if one does."""
    mistake = next((m for m, wrong in _mistakes(model, images, masks, reference).items()
                    if all(abs(values[k] - wrong[k]) <= 1e-3 * abs(wrong[k]) + 1e-7 for k in reference)), None)
    if mistake is None and all(abs(values[k] - reference[k] / images.shape[0]) <= 1e-3 * reference[k]
                               for k in reference):
        return "divided by the batch size: RANLoss already averages over pixels; take the gradient's norm as it is"
    return mistake


def _differs(values: dict[str, float], reference: dict[str, float]) -> str:
    key = max(reference, key=lambda k: abs(values[k] - reference[k]) / (reference[k] + 1e-12))
    return f"'{key}' should be {reference[key]:.4g}, got {values[key]:.4g}"


@guarded
def check_step_control(control, step_ratio, ran: dict, baseline: dict) -> None:
    """Check the student's ratio ``ran["total"] / baseline["total"]`` and the control arm it calls for; judged on
    the measurements the student passes (``my_loss_gradients`` of a RAN and of a baseline)."""
    for label, d in (("ran", ran), ("baseline", baseline)):
        if not isinstance(d, dict) or "total" not in d:
            fail(f"check_step_control: {label} should be my_loss_gradients' dict (with 'total'), got {describe(d)}")
    if control is ...:
        raise NotDoneError("not done yet: set CONTROL to one of the keys printed above, then run this check again")
    ratio = number("STEP_RATIO", step_ratio)
    expected_base = number("baseline['total']", baseline["total"])
    if expected_base <= 0:
        fail(f"baseline['total'] should be a positive gradient norm, got {expected_base}")
    expected = number("ran['total']", ran["total"]) / expected_base
    if abs(ratio - expected) > 1e-3 * expected:
        terms = sum(number(f"ran[{k!r}]", v) for k, v in ran.items() if k != "total")
        fused = number("ran['fused']", ran["fused"]) if "fused" in ran else float("nan")
        hint = ("the baseline's over RAN's: RAN's total divided by the baseline's" if abs(ratio * expected - 1) < 1e-3
                else "the sum of RAN's per-term norms: the backbone moves along the *summed* gradient, 'total'"
                if abs(ratio - terms / expected_base) < 1e-3 * ratio
                else "only the fused terms: RAN's backbone receives all three terms, 'total'"
                if abs(ratio - fused / expected_base) < 1e-3 * ratio
                else "a percentage: STEP_RATIO is the plain ratio (2.0 for twice, not 200)"
                if abs(ratio - 100 * expected) < 1e-3 * ratio else None)
        fail(f"STEP_RATIO should be {expected:.3g} (ran['total'] / baseline['total']), got {ratio:.3g}"
             + likely(hint))
    if not isinstance(control, str) or control not in CONTROLS:
        fail(f"CONTROL should be one of {', '.join(map(repr, CONTROLS))}, got {control!r}")
    same = 1 / SAME_STEP < expected < SAME_STEP
    if same and control in ("none", *STEP_CONTROLS):
        passed(f"CONTROL = {control!r}: your batch gives both backbones about the same step ({expected:.2f}x), "
               "so the step is not a confound here")
        return
    if control == "none":
        fail(f"CONTROL 'none': RAN's backbone gets {expected:.2f}x the baseline's gradient, so a RAN lead could come "
             "from that larger step alone\n  likely: pick an arm that gives both the same backbone step")
    if control in ("more-iterations", "head-lr"):
        fail(f"CONTROL {control!r} changes something both arms already share or that is not shared: the confound is "
             f"the backbone's step ({expected:.2f}x)\n  likely: scale the baseline's backbone lr, or average RAN's "
             "losses")
    passed(f"CONTROL = {control!r}: {CONTROLS[control]}, which gives both arms the same backbone step "
           f"(RAN's is {expected:.2f}x the baseline's on your batch)")
