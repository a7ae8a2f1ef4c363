"""Notebook 07's exercise on a fair comparison: the step each of RAN's losses gives the shared backbone.

- ``check_loss_gradients(my_loss_gradients)``: ``my_loss_gradients(model, images, masks)`` returns, for each term
  of ``RANLoss`` and for their sum ("total"), the L2 norm of its gradient with respect to the backbone's features
  ``f = model.backbone(images)``; checked against ``ranlib.step_size.backbone_gradient_norms`` on RAN, subtract
  and baseline models, non-square images whose sides are not multiples of 8, and masks with void pixels.
- ``check_step_control(control, step_ratio, ran, baseline)``: the ratio of RAN's total gradient to the baseline's,
  and the control arm that ratio calls for, judged on the student's own measurements.
- ``check_control_prediction(PREDICTION, metrics=None)``: before the controls run, PREDICTION must be one of
  ``PREDICTIONS`` (RAN against baseline-step, by the rule of ``LEVEL`` points); after it, with the runs' metrics,
  the check says whether it held, with both scores and the rule. A miss is reported, not rejected.
- ``check_differences(my_differences, scores=None)``: the paired differences "a - b" of ``DIFFERENCE_PAIRS`` in mIoU
  and mixed-band mIoU points, on hand-worked scores (``HAND_DIFFERENCES``) and on the student's own.
"""

from __future__ import annotations

import copy
import math

import torch

import ranlib
from ranlib.exercises._check import ExerciseError, NotDoneError, describe, fail, guarded, number, passed, student
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
            with student(name):
                got = fn(given, images.clone(), masks.clone())
        except ExerciseError as error:
            if variant == "baseline" and "KeyError" in str(error):
                fail(f"{where}: {error}\n  likely: the term names are hard-coded: the baseline's RANLoss has only "
                     "'fused'; loop over the parts it returns")
            raise
        if not isinstance(got, dict):
            fail(f"{where}: a dict {{term: norm}} expected, got {describe(got)}"
                 + ("\n  likely: a missing return" if got is None else ""))
        if set(got) != set(reference):
            extra, missing = sorted(map(str, set(got) - set(reference))), sorted(set(reference) - set(got))
            hint = ("\n  likely: the baseline has one loss term, 'fused' (RANLoss's parts): loop over the parts it "
                    "returns instead of naming three" if variant == "baseline" and extra else
                    "\n  likely: 'total' is missing: the norm of the sum of the terms' gradients"
                    if missing == ["total"] else "")
            fail(f"{where}: keys {sorted(reference)} expected, got {sorted(map(str, got))}{hint}")
        values = {k: number(f"{where}: '{k}'", got[k]) for k in reference}
        if all(abs(values[k] - reference[k]) <= 1e-3 * reference[k] + 1e-7 for k in reference):
            continue
        for mistake, wrong in _mistakes(model, images, masks, reference).items():
            if all(abs(values[k] - wrong[k]) <= 1e-3 * abs(wrong[k]) + 1e-7 for k in reference):
                fail(f"{where}: {_differs(values, reference)}\n  likely: {mistake}")
        if all(abs(values[k] - reference[k] / images.shape[0]) <= 1e-3 * reference[k] for k in reference):
            fail(f"{where}: {_differs(values, reference)}\n  likely: divided by the batch size: RANLoss already "
                 "averages over pixels; take the gradient's norm as it is")
        fail(f"{where}: {_differs(values, reference)}")
    passed(f"{name}: every term's gradient norm at the backbone's features, and their sum's, as "
           "ranlib.step_size.backbone_gradient_norms (RAN, subtract and baseline)")


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
             + (f"\n  likely: {hint}" if hint else ""))
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


# ---- Notebook 07, section 7: the controls, predicted before the run and measured after it.

# PREDICTION's options: RAN against baseline-step (the baseline at about RAN's backbone step), in mIoU points on the
# student's own models. The rule is printed before the run; LEVEL is about the paired 95% interval's half-width of
# the tuned three-seed comparison (RAN - baseline-step: -2.2 [-5.5, +1.2], docs/results.md).
LEVEL = 3.0
PREDICTIONS = {
    "ran": f"RAN's mIoU is more than {LEVEL:g} points above baseline-step's",
    "level": f"RAN and baseline-step are within {LEVEL:g} mIoU points of each other",
    "baseline-step": f"baseline-step's mIoU is more than {LEVEL:g} points above RAN's",
}


def prediction_outcome(difference: float) -> str:
    """The PREDICTIONS key that RAN's mIoU minus baseline-step's (in points) falls under."""
    return "ran" if difference > LEVEL else "baseline-step" if difference < -LEVEL else "level"


@guarded
def check_control_prediction(prediction, metrics: dict | None = None) -> None:
    """Before the run (no ``metrics``): is PREDICTION one of ``PREDICTIONS``? After it, with ``metrics`` =
    ``{arm: read_metrics(run)}`` holding "ran" and "baseline-step": did it hold? A prediction that did not hold is
    reported, not rejected: it is a result, and the student keeps it as written."""
    if prediction is ... or prediction is None:
        raise NotDoneError("not done yet: set PREDICTION to one of " + ", ".join(map(repr, PREDICTIONS))
                           + " in the cell above, before the controls run") from None
    if prediction not in PREDICTIONS:
        close_to = (isinstance(prediction, str) and prediction.strip().lower().replace("_", "-") in PREDICTIONS)
        fail(f"PREDICTION should be one of {', '.join(map(repr, PREDICTIONS))}, got {prediction!r}"
             + ("\n  likely: spelling: lower case, a hyphen, no spaces" if close_to else ""))
    if metrics is None:
        passed(f"prediction recorded: {prediction!r} ({PREDICTIONS[prediction]}); the rule: RAN minus baseline-step "
               f"above +{LEVEL:g} points is 'ran', below -{LEVEL:g} is 'baseline-step', in between 'level'")
        return
    if not isinstance(metrics, dict) or not {"ran", "baseline-step"} <= set(metrics):
        fail(f"metrics should be {{arm: read_metrics(run)}} with 'ran' and 'baseline-step', got {describe(metrics)}"
             + (f" with keys {sorted(map(str, metrics))}" if isinstance(metrics, dict) else ""))
    ran, step = (100 * number(f"metrics[{arm!r}]['miou']", metrics[arm]["miou"]) for arm in ("ran", "baseline-step"))
    difference = ran - step
    outcome = prediction_outcome(difference)
    measured = (f"measured RAN {ran:.1f} - baseline-step {step:.1f} = {difference:+.1f} mIoU points, which the rule "
                f"(+-{LEVEL:g} points) calls {outcome!r}")
    if prediction == outcome:
        passed(f"prediction {prediction!r} held: you predicted {PREDICTIONS[prediction]}; {measured}")
    else:
        print(f"✗ prediction {prediction!r} did not hold: you predicted {PREDICTIONS[prediction]}; {measured}. "
              "Leave PREDICTION as you wrote it: a prediction that fails is a result; the next sections say how "
              "much one seed can tell")


def _differences(scores: dict, pairs, scale: float = 100.0, sign: float = 1.0) -> dict:
    """The reference: {"a - b": {metric: scale * sign * (scores[a][metric] - scores[b][metric])}}."""
    return {f"{a} - {b}": {key: scale * sign * (scores[a][key] - scores[b][key]) for key in scores[a]}
            for a, b in pairs}


def _difference_mistakes(scores: dict, pairs) -> dict[str, dict]:
    """What plausible mistakes return on ``scores``: {description: the whole result}."""
    right = _differences(scores, pairs)
    other = {"miou": "mixed", "mixed": "miou"}
    return {
        "b - a: the sign is reversed (the pair 'a - b' is a's score minus b's)": _differences(scores, pairs, sign=-1),
        "fractions: the scores are stored as fractions (0.25); give the differences in points (x 100)":
            _differences(scores, pairs, scale=1.0),
        "a relative change (a / b - 1): the difference in points is 100 * (a - b)": {
            f"{a} - {b}": {k: 100 * (scores[a][k] / scores[b][k] - 1) if scores[b][k] else math.nan
                           for k in scores[a]} for a, b in pairs},
        "the absolute value: keep the sign, it says which arm is ahead": {
            pair: {k: abs(v) for k, v in values.items()} for pair, values in right.items()},
        "the metrics swapped: 'miou' from the scores' 'miou', 'mixed' from their 'mixed'": {
            pair: {k: values[other[k]] for k in values} for pair, values in right.items()},
    }


def _same(values: dict, expected: dict) -> bool:
    """Every {pair: {metric: points}} value of ``values`` within 1e-6 (relative) of ``expected``'s."""
    return all(abs(values[p][k] - expected[p][k]) <= 1e-6 * max(1.0, abs(expected[p][k]))
               for p in expected for k in expected[p])


DIFFERENCE_PAIRS = (("ran", "baseline"), ("ran", "baseline-step"), ("ran-mean", "baseline"),
                    ("baseline-step", "baseline"), ("ran", "ran-mean"))
# Hand-worked: RAN 25.0 / 10.0, baseline 20.0 / 8.0, baseline-step 27.5 / 12.0, ran-mean 21.0 / 8.5 (mIoU / mixed):
# ran - baseline = +5.0 / +2.0, ran - baseline-step = -2.5 / -2.0, ran-mean - baseline = +1.0 / +0.5,
# baseline-step - baseline = +7.5 / +4.0, ran - ran-mean = +4.0 / +1.5.
HAND_SCORES = {"ran": {"miou": 0.25, "mixed": 0.10}, "baseline": {"miou": 0.20, "mixed": 0.08},
               "baseline-step": {"miou": 0.275, "mixed": 0.12}, "ran-mean": {"miou": 0.21, "mixed": 0.085}}
HAND_DIFFERENCES = {"ran - baseline": {"miou": 5.0, "mixed": 2.0},
                    "ran - baseline-step": {"miou": -2.5, "mixed": -2.0},
                    "ran-mean - baseline": {"miou": 1.0, "mixed": 0.5},
                    "baseline-step - baseline": {"miou": 7.5, "mixed": 4.0},
                    "ran - ran-mean": {"miou": 4.0, "mixed": 1.5}}


@guarded
def check_differences(fn, scores: dict | None = None) -> None:
    """Check ``fn(scores, pairs) -> {"a - b": {"miou": points, "mixed": points}}`` on the hand-worked scores (and on
    the student's own ``scores`` when given), where ``scores = {arm: {"miou": fraction, "mixed": fraction}}``."""
    name = "my_differences"
    probes = [("the hand-worked scores", HAND_SCORES, HAND_DIFFERENCES)]
    if scores is not None:
        probes.append(("your models' scores", scores, _differences(scores, DIFFERENCE_PAIRS)))
    for label, given, reference in probes:
        with student(name):
            got = fn(copy.deepcopy(given), DIFFERENCE_PAIRS)
        where = f"{name} on {label}"
        if not isinstance(got, dict):
            fail(f"{where}: a dict {{'a - b': {{'miou': ..., 'mixed': ...}}}} expected, got {describe(got)}"
                 + ("\n  likely: a missing return" if got is None else ""))
        if set(got) != set(reference):
            missing = sorted(set(reference) - set(map(str, got)))
            fail(f"{where}: keys {sorted(reference)} expected, got {sorted(map(str, got))}\n  likely: name each "
                 f"pair f\"{{a}} - {{b}}\" (spaces around the minus), e.g. {missing[0]!r}")
        for pair, expected in reference.items():
            if not isinstance(got[pair], dict) or set(got[pair]) != set(expected):
                fail(f"{where}: {pair!r} should be a dict with keys {sorted(expected)}, got {describe(got[pair])}"
                     + (f" with keys {sorted(map(str, got[pair]))}" if isinstance(got[pair], dict) else ""))
        values = {pair: {key: number(f"{where}: {pair!r}[{key!r}]", got[pair][key]) for key in expected}
                  for pair, expected in reference.items()}
        if _same(values, reference):
            continue
        pair, key = next((p, k) for p in reference for k in reference[p]
                         if abs(values[p][k] - reference[p][k]) > 1e-6 * max(1.0, abs(reference[p][k])))
        differs = (f"{where}: {pair!r}[{key!r}] should be {reference[pair][key]:+.2f} points, "
                   f"got {values[pair][key]:+.4g}")
        for mistake, wrong in _difference_mistakes(given, DIFFERENCE_PAIRS).items():
            if _same(values, wrong):
                fail(f"{differs}\n  likely: {mistake}")
        fail(differs)
    passed(f"{name}: every pair's difference in mIoU and mixed-band mIoU points, with its sign, "
           + ("on the hand-worked scores and on yours" if scores is not None else "on the hand-worked scores"))
