"""Notebook 07's controls: the prediction check, the paired-differences check, and the tuned numbers the notebook
copies from docs/results.md.

- ``check_control_prediction``: a stub is "not done yet", a value outside the options is rejected (a near miss
  named as spelling), a held prediction passes and a missed one is reported with both scores and the rule, on
  hand-made metrics whose difference is worked out by hand (+5.0, -1.0, -4.0 points).
- ``check_differences``: the solution passes on hand-worked scores and on other scores; six wrong answers are
  rejected, five of them named.
- The notebook's table of tuned paired differences (``TUNED`` in its cell) agrees with docs/results.md.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from ranlib.exercises import ExerciseError, NotDoneError
from ranlib.exercises.controls import (
    DIFFERENCE_PAIRS,
    HAND_SCORES,
    PREDICTIONS,
    check_control_prediction,
    check_differences,
    prediction_outcome,
)

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "solutions" / "07_evaluation_and_ablation.ipynb"


def metrics_of(ran: float, step: float) -> dict:
    return {"ran": {"miou": ran}, "baseline-step": {"miou": step}, "baseline": {"miou": 0.1}}


def test_prediction_rule_by_hand():
    # RAN - baseline-step in points: +5.0 is "ran", -1.0 "level", -4.0 "baseline-step"; the borders are "level"
    assert [prediction_outcome(d) for d in (5.0, -1.0, -4.0, 3.0, -3.0)] == [
        "ran", "level", "baseline-step", "level", "level"]


@pytest.mark.parametrize(("prediction", "ran", "step", "held"), [
    ("ran", 0.30, 0.25, True), ("level", 0.30, 0.25, False), ("level", 0.24, 0.25, True),
    ("baseline-step", 0.24, 0.25, False), ("baseline-step", 0.21, 0.25, True), ("ran", 0.21, 0.25, False)])
def test_prediction_held_or_reported(prediction, ran, step, held, capsys):
    check_control_prediction(prediction, metrics_of(ran, step))
    out = capsys.readouterr().out
    difference = f"{100 * (ran - step):+.1f}"
    assert out.startswith("✓ prediction" if held else "✗ prediction"), out
    assert ("held" if held else "did not hold") in out
    assert difference in out and f"{100 * ran:.1f}" in out and f"{100 * step:.1f}" in out  # both scores
    assert "+-3 points" in out  # the rule


def test_prediction_before_the_run_states_the_rule(capsys):
    check_control_prediction("level")
    out = capsys.readouterr().out
    assert out.startswith("✓ prediction recorded: 'level'") and "above +3 points is 'ran'" in out


@pytest.mark.parametrize(("prediction", "phrase"), [
    ("RAN", "spelling"), ("baseline_step", "spelling"), ("tie", "should be one of"), (3.0, "should be one of")])
def test_prediction_rejects_what_is_not_an_option(prediction, phrase):
    with pytest.raises(ExerciseError, match=phrase):
        check_control_prediction(prediction)


def test_prediction_stub_is_not_done_yet():
    with pytest.raises(NotDoneError, match="not done yet: set PREDICTION"):
        check_control_prediction(...)
    with pytest.raises(ExerciseError, match="'ran' and 'baseline-step'"):
        check_control_prediction("ran", {"ran": {"miou": 0.3}})


def differences(scores, pairs, scale=100.0, sign=1.0, relative=False, absolute=False, swap=False, key=None):
    out = {}
    for a, b in pairs:
        row = {}
        for k in ("miou", "mixed"):
            source = {"miou": "mixed", "mixed": "miou"}[k] if swap else k
            value = (100 * (scores[a][source] / scores[b][source] - 1) if relative
                     else scale * sign * (scores[a][source] - scores[b][source]))
            row[k] = abs(value) if absolute else value
        out[key(a, b) if key else f"{a} - {b}"] = row
    return out


def test_differences_solution_passes(capsys):
    check_differences(differences)
    other = {"ran": {"miou": 0.3, "mixed": 0.1}, "baseline": {"miou": 0.2, "mixed": 0.15},
             "baseline-step": {"miou": 0.31, "mixed": 0.2}, "ran-mean": {"miou": 0.18, "mixed": 0.05}}
    check_differences(differences, other)
    assert capsys.readouterr().out.count("✓ my_differences") == 2


@pytest.mark.parametrize(("wrong", "phrase"), [
    (lambda s, p: differences(s, p, sign=-1.0), "the sign is reversed"),
    (lambda s, p: differences(s, p, scale=1.0), "in points (x 100)"),
    (lambda s, p: differences(s, p, relative=True), "a relative change"),
    (lambda s, p: differences(s, p, absolute=True), "the absolute value"),
    (lambda s, p: differences(s, p, swap=True), "the metrics swapped"),
    (lambda s, p: differences(s, p, key=lambda a, b: f"{a}-{b}"), "spaces around the minus"),
    (lambda s, p: {k: {m: v + 0.5 for m, v in row.items()} for k, row in differences(s, p).items()},
     "should be +5.00 points, got +5.5"),  # only located
])
def test_differences_wrong_answers_rejected(wrong, phrase):
    with pytest.raises(ExerciseError) as caught:
        check_differences(wrong)
    assert phrase in str(caught.value) and len(str(caught.value).splitlines()) <= 2, str(caught.value)


def test_differences_wrong_only_on_the_students_scores():
    # right on the hand-worked scores, wrong (hard-coded) on the student's own: caught by the second probe
    def hard_coded(scores, pairs):
        return differences(HAND_SCORES, pairs)

    with pytest.raises(ExerciseError, match="on your models' scores"):
        check_differences(hard_coded, {arm: {"miou": 0.5 * v["miou"], "mixed": v["mixed"]}
                                       for arm, v in HAND_SCORES.items()})


def test_differences_pairs_and_predictions_cover_the_controls():
    arms = {arm for pair in DIFFERENCE_PAIRS for arm in pair}
    assert arms == {"baseline", "ran", "baseline-step", "ran-mean"}
    assert set(PREDICTIONS) == {"ran", "level", "baseline-step"}


def tuned_from_results() -> dict[str, tuple[float, float]]:
    """{arm: (Δ mIoU, Δ mixed) against the baseline} from docs/results.md's ablation table."""
    text = (ROOT / "docs" / "results.md").read_text()
    found = {}
    for arm in ("subtract", "ran", "baseline-step", "ran-mean"):
        block = text[text.index("<!-- ablation:begin -->"):text.index("<!-- ablation:end -->")]
        rows = [[c.strip() for c in row.strip("|").split("|")]
                for row in re.findall(rf"^\| `{re.escape(arm)}` \|.*$", block, re.M)]
        cells = next(r for r in rows if len(r) == 8)  # the table reported on test
        found[arm] = tuple(float(cells[i].split()[0].replace("−", "-")) for i in (5, 6))
    return found


def notebook_constants() -> dict:
    """TUNED and SEED_RANGE, as the notebook's cell defines them."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = next(c.source for c in nb.cells if c.cell_type == "code" and "TUNED = {" in c.source)
    namespace: dict = {}
    exec(source[source.index("TUNED = {"):source.index("\n", source.index("SEED_RANGE = "))], namespace)
    return namespace


def test_notebook_seed_range_agrees_with_results():
    text = (ROOT / "docs" / "results.md").read_text()
    table = text[text.index("<!-- course-models:begin -->"):text.index("<!-- course-models:end -->")]
    ranges = {"miou": 0.0, "mixed": 0.0}
    for row in re.findall(r"^\| `\w+` \|.*$", table, re.M):
        cells = [c.strip() for c in row.strip("|").split("|")]
        for key, i in (("miou", 1), ("mixed", 3)):
            seeds = [float(v) for v in re.search(r"\((.*?)\)", cells[i]).group(1).split(" / ")]
            ranges[key] = max(ranges[key], round(max(seeds) - min(seeds), 1))
    assert notebook_constants()["SEED_RANGE"] == ranges


def test_notebook_tuned_numbers_agree_with_results():
    tuned, results = notebook_constants()["TUNED"], tuned_from_results()
    for arm in ("ran", "ran-mean", "baseline-step"):
        assert tuned[f"{arm} - baseline"][:2] == results[arm], arm
    # RAN - baseline-step and RAN - ran-mean are written in the prose of "Where RAN's lead comes from"
    prose = " ".join((ROOT / "docs" / "results.md").read_text().split())
    assert "RAN minus `baseline-step` is −2.2 [−5.5, +1.2] mIoU and −1.0 [−7.9, +5.8]" in prose
    assert tuned["ran - baseline-step"][:2] == (-2.2, -1.0)
    assert "6.9 [+3.2, +10.5] below RAN" in prose and tuned["ran - ran-mean"][0] == 6.9
