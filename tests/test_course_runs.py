"""ranlib.course's runs beyond the three variants: notebook 07's two controls, the torch threads a notebook takes,
and runs trained side by side in processes giving the same weights as training in this process."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ranlib import course
from ranlib.course import runs as course_runs
from ranlib.engine.config import TrainConfig
from ranlib.engine.run_dir import RunDirConflict
from ranlib.engine.train import fit


def test_threads_from_the_environment_or_the_free_cores(monkeypatch):
    assert course.threads({"RANLIB_THREADS": "3"}) == 3
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match=f"RANLIB_THREADS='{bad}' must be a whole number >= 1"):
            course.threads({"RANLIB_THREADS": bad})
    cores = course.cores()
    monkeypatch.setattr(course_runs.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert course.threads({}) == cores  # an idle machine: every core
    monkeypatch.setattr(course_runs.os, "getloadavg", lambda: (cores + 5.0, 0.0, 0.0))
    assert course.threads({}) == 1  # a busy one: never fewer than one


def test_setup_sets_the_threads(monkeypatch, tmp_path):
    monkeypatch.setenv("RANLIB_MODE", "quick")
    monkeypatch.setenv("RANLIB_THREADS", "1")
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        course.setup()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_controls_move_only_the_step_they_control(tmp_path):
    runs = course.configs("quick", data=tmp_path)
    controls = course.control_configs("quick", data=tmp_path)
    assert tuple(controls) == course.CONTROLS
    base, step = runs["baseline"], controls["baseline-step"]
    # the backbone's lr x3, the heads' lr (lr x head_lr_mult) unchanged, nothing else
    assert step.lr == pytest.approx(3 * base.lr)
    assert step.lr * step.head_lr_mult == pytest.approx(base.lr * base.head_lr_mult)
    assert replace(step, lr=base.lr, head_lr_mult=base.head_lr_mult, run_dir=base.run_dir) == base
    ran, mean = runs["ran"], controls["ran-mean"]
    assert mean.loss_weights == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert replace(mean, loss_weights=ran.loss_weights, run_dir=ran.run_dir) == ran
    assert len({c.run_dir for c in (*runs.values(), *controls.values())}) == 5


def two_iterations(data) -> TrainConfig:
    """Two iterations of ResNet-18 on the tiny dataset: a real backbone, so the processes' arithmetic is torch's."""
    return TrainConfig.for_dataset("voc", data_root=str(data), train_split="train", backbone="resnet18",
                                   head_dilation=0, crop_size=32, batch_size=2, eval_batch_size=2, iterations=2,
                                   checkpoint_every=2, eval_every=0, num_workers=0, amp="off", device="cpu")


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_side_by_side_runs_equal_runs_trained_here(tiny_data, tmp_path, monkeypatch):
    """Two runs trained as processes (one thread each) hold the same weights as the same configurations trained by
    ``fit`` in this process on one thread; a finished run is loaded, not trained again."""
    base = two_iterations(tiny_data)
    configs = {v: replace(base, variant=v, run_dir=str(tmp_path / "side" / v)) for v in ("baseline", "ran")}
    monkeypatch.setattr(course_runs, "cores", lambda: 2)  # two cores: the two runs go side by side
    models = course.trained_models(configs, dev=torch.device("cpu"))
    assert all((tmp_path / "side" / v / "train.out").is_file() for v in configs)  # they did train as processes

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for variant, config in configs.items():
            here = replace(config, run_dir=str(tmp_path / "here" / variant))
            fit(here)
            expected = _weights(course.trained_model(variant, config=here, dev=torch.device("cpu")))
            got = _weights(models[variant])
            assert got.keys() == expected.keys()
            for name in got:
                assert torch.equal(got[name], expected[name]), f"{variant}: {name} differs from the in-process run"
    finally:
        torch.set_num_threads(threads)

    stamp = (tmp_path / "side" / "ran" / "train.out").stat().st_mtime_ns
    course.trained_models(configs, dev=torch.device("cpu"))  # finished: loaded, nothing trained
    assert (tmp_path / "side" / "ran" / "train.out").stat().st_mtime_ns == stamp


def test_side_by_side_refuses_a_folder_of_another_configuration_first(tiny_data, tmp_path, monkeypatch):
    base = two_iterations(tiny_data)
    other = replace(base, run_dir=str(tmp_path / "taken"))
    fit(replace(other, lr=0.01))  # the folder now holds another lr
    monkeypatch.setattr(course_runs, "cores", lambda: 2)
    fresh = replace(base, run_dir=str(tmp_path / "fresh"))
    with pytest.raises(RunDirConflict, match="lr"):
        course.trained_models({"fresh": fresh, "taken": other}, dev=torch.device("cpu"))
    assert not (tmp_path / "fresh").exists()  # refused before anything trained
