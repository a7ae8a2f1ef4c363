"""Notebook 07, section 7: the controls, predicted before the run and measured after it.

- ``check_control_prediction(PREDICTION, metrics=None)``: before the controls run, PREDICTION must be one of
  ``PREDICTIONS`` (RAN against baseline-step, by the rule of ``LEVEL`` points); after it, with the runs' metrics,
  the check says whether it held, with both scores and the rule. A miss is reported, not rejected.
- ``check_differences(my_differences, scores=None)``: the paired differences "a - b" of ``DIFFERENCE_PAIRS`` in mIoU
  and mixed-band mIoU points, on hand-worked scores (``HAND_DIFFERENCES``) and on the student's own.
"""

from __future__ import annotations

import copy
import math

from ranlib.exercises._check import NotDoneError, describe, fail, guarded, likely, number, passed, student

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
             + likely("spelling: lower case, a hyphen, no spaces" if close_to else None))
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
                 + likely("a missing return" if got is None else None))
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
        mistakes = _difference_mistakes(given, DIFFERENCE_PAIRS)
        mistake = next((m for m, wrong in mistakes.items() if _same(values, wrong)), None)
        fail(differs + likely(mistake))
    passed(f"{name}: every pair's difference in mIoU and mixed-band mIoU points, with its sign, "
           + ("on the hand-worked scores and on yours" if scores is not None else "on the hand-worked scores"))
