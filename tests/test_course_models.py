"""The course's quick-mode models are worth comparing: the baseline, subtract and RAN models that notebooks 01 and
06-09 share, trained once per machine through ``ranlib.course.trained_model`` (so the notebooks reuse these runs
in runs/course_quick), each on the quick validation split:

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
from ranlib.data import boundary_band, class_names, make_loader, mixed_boundary_band, val_transforms, voc
from ranlib.evaluate import predict_logits
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


@torch.no_grad()
def scores(model, config) -> dict:
    """Per-class IoU, predicted pixels per class, and object-class IoU in mixed-boundary bands and interiors."""
    root = Path(config.data_root)
    k = len(class_names(root))
    cms = {name: ConfusionMatrix(k) for name in ("all", "mixed", "interior")}
    model = model.to("cpu").eval()
    for images, masks in make_loader(voc(root, config.val_split, val_transforms()), 10, shuffle=False,
                                     num_workers=0):
        prediction = predict_logits(model, images).argmax(1)
        cms["all"].update(prediction, masks)
        cms["mixed"].update(prediction, masks, mixed_boundary_band(masks, WIDTH))
        cms["interior"].update(prediction, masks, ~boundary_band(masks, WIDTH))
    return {"iou": cms["all"].compute()["iou"], "predicted": cms["all"].matrix.sum(0).tolist(),
            "mixed": cms["mixed"].object_miou(), "interior": cms["interior"].object_miou(), "names": class_names(root)}


@pytest.mark.parametrize("variant", course.VARIANTS)
def test_course_model_is_worth_comparing(quick_env, variant):
    config = quick_env[variant]
    model = course.trained_model(variant, config=config, dev=torch.device("cpu"))
    got = scores(model, config)
    where = f"quick-mode {variant} model ({config.run_dir}, split {config.val_split})"
    for name, pixels, iou in zip(got["names"], got["predicted"], got["iou"], strict=True):
        assert pixels > 0, f"{where} never predicts class {name!r}"
        assert iou > 0, f"{where} scores IoU {iou} for class {name!r}"
    assert got["mixed"] < got["interior"], (
        f"{where}: object-class IoU in {WIDTH}-px mixed-boundary bands ({100 * got['mixed']:.1f}%) is not below "
        f"object-class IoU in object interiors ({100 * got['interior']:.1f}%)")
