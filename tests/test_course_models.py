"""The course's quick-mode models are worth comparing: the baseline, subtract and RAN models that notebooks 01 and
06-09 share, trained once per machine through ``ranlib.course.trained_model``, with notebook 07's two controls
beside them (so the notebooks load all five runs from runs/course_quick), each variant on the quick validation
split:

(a) predict every class somewhere;
(b) score a per-class IoU above zero for every class;
(c) show the course's problem: object-class IoU in 4-px mixed-boundary bands below object-class IoU in object
    interiors (labelled pixels farther than 4 px from any class boundary).

The configuration checked is whatever ``ranlib.course.configs("quick")`` holds. Its head must also fit its
training crop, so that training learns the network that evaluation runs (no ``HeadReachWarning``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from ranlib import course
from ranlib.metrics import ConfusionMatrix
from ranlib.model import HeadReachWarning, check_head_fits_crop

REPO = Path(__file__).parent.parent
WIDTH = 4
ENV = ("RANLIB_MODE", "RANLIB_QUICK", "RANLIB_DRIVE", *course.CAPS)


def test_object_iou_by_hand():
    cm = ConfusionMatrix(4)
    truth = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])
    guess = torch.tensor([1, 0, 1, 1, 2, 2, 0, 0])
    cm.update(guess, truth)
    # class 1: tp 2, fp 1 (a background pixel), fn 1 -> 2/4; class 2: tp 1, fp 1, fn 1 -> 1/3; class 3 absent
    assert cm.object_miou() == pytest.approx((2 / 4 + 1 / 3) / 2)


@pytest.fixture(scope="module")
def quick_env():
    """Quick mode with no budget caps, working from the repository (runs/course_quick, as the notebooks)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ENV:
            patch.delenv(name, raising=False)
        patch.setenv("RANLIB_MODE", "quick")
        patch.chdir(REPO)
        yield course.configs("quick")


def test_quick_heads_fit_their_training_crops(quick_env):
    for variant, config in quick_env.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", HeadReachWarning)
            problem = check_head_fits_crop(config.model_config, config.crop_size)
        assert problem is None, f"quick mode's {variant} head does not fit its {config.crop_size}-px crops: {problem}"


@pytest.fixture(scope="module")
def quick_models(quick_env):
    """The five quick runs, loaded, after training those not finished, each as the notebooks train it: the
    baseline in this process on torch's default threads, one per core (notebook 01's kernel on an idle machine),
    then subtract and RAN (notebook 06) and the two controls (notebook 07) side by side, one thread each
    (``course.trained_models``)."""
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    torch.set_num_threads(course.cores())  # torch's default, whatever an earlier test's course.setup() chose
    try:
        baseline = course.trained_model("baseline", config=quick_env["baseline"], dev=cpu)
    finally:
        torch.set_num_threads(threads)
    others = {v: config for v, config in quick_env.items() if v != "baseline"}
    controls = course.control_configs("quick", data=Path(quick_env["ran"].data_root))
    return {"baseline": baseline} | course.trained_models(others | controls, dev=cpu)


@pytest.mark.slow  # minutes on a clean clone: it trains the five quick models that the notebooks then reuse
@pytest.mark.parametrize("variant", course.VARIANTS)
def test_course_model_is_worth_comparing(quick_env, quick_models, variant):
    config = quick_env[variant]
    model = quick_models[variant]
    got = course.model_report(model.to("cpu"), Path(config.data_root), config.val_split, WIDTH)
    where = f"quick-mode {variant} model ({config.run_dir}, split {config.val_split})"
    for name, pixels, iou in zip(got["classes"], got["predicted_pixels"], got["iou"], strict=True):
        assert pixels > 0, f"{where} never predicts class {name!r}"
        assert iou > 0, f"{where} scores IoU {iou} for class {name!r}"
    mixed, interior = got["mixed_object_iou"], got["interior_object_iou"]
    assert mixed < interior, (
        f"{where}: object-class IoU in {WIDTH}-px mixed-boundary bands ({100 * mixed:.1f}%) is not below "
        f"object-class IoU in object interiors ({100 * interior:.1f}%)")
