"""The training engine: one step by hand, exact resume (with and without workers), DDP, the CLI, AMP.

The runs train the tiny backbone (conftest.py's ``tiny_config``); the step by hand checks the optimiser on
ResNet-18's parameters."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from ranlib import RANLoss, build_model
from ranlib.__main__ import main
from ranlib.data import make_mixed_boundary_dataset
from ranlib.engine.checkpoint import final_path, list_checkpoints, load_checkpoint, load_state
from ranlib.engine.train import TrainConfig, build_optimizer, fit, poly_lr_factor
from ranlib.model import HeadReachWarning

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


# ---------------------------------------------------------------------------------------------- optimisation
def test_one_sgd_step_matches_hand_computation():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3)
    config = TrainConfig(lr=0.01, head_lr_mult=10, momentum=0.9, weight_decay=5e-4, iterations=10, poly_power=0.9)
    optimizer, scheduler = build_optimizer(model, config)
    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))
    w_backbone = model.backbone.layer1[0].conv1.weight.detach().clone()
    w_head = model.conv_rev.conv.weight.detach().clone()
    for iteration in range(2):
        optimizer.zero_grad()
        loss, _ = RANLoss()(model(x), y)
        loss.backward()
        g_backbone = model.backbone.layer1[0].conv1.weight.grad.clone()
        g_head = model.conv_rev.conv.weight.grad.clone()
        optimizer.step()
        scheduler.step()
        # By hand: d = g + wd * w; buffer = d (first step) or 0.9 * buffer + d; w -= lr_t * buffer,
        # with lr_t = base * (1 - t / T) ** 0.9 and base 10x for the heads.
        lr_t = 0.01 * (1 - iteration / 10) ** 0.9
        d_b, d_h = g_backbone + 5e-4 * w_backbone, g_head + 5e-4 * w_head
        if iteration == 0:
            buf_b, buf_h = d_b, d_h
        else:
            buf_b, buf_h = 0.9 * buf_b + d_b, 0.9 * buf_h + d_h
        w_backbone, w_head = w_backbone - lr_t * buf_b, w_head - 10 * lr_t * buf_h
        torch.testing.assert_close(model.backbone.layer1[0].conv1.weight, w_backbone)
        torch.testing.assert_close(model.conv_rev.conv.weight, w_head)
    assert scheduler.get_last_lr() == pytest.approx([0.01 * 0.8 ** 0.9, 0.1 * 0.8 ** 0.9])
    assert poly_lr_factor(5, 10, 0.9) == pytest.approx(0.5 ** 0.9)


# ----------------------------------------------------------------------------------------- resume and files
def _weights(run_dir):
    return load_state(final_path(run_dir))["model"]


class Interrupted(Exception):
    pass


def interrupted_fit(config, monkeypatch):
    """Run ``fit`` until its final evaluation, and stop it there, before the last checkpoint and final.pt."""
    import ranlib.engine.train as train_module

    def stop(*args, **kwargs):
        raise Interrupted

    with monkeypatch.context() as patch:
        patch.setattr(train_module, "evaluate", stop)
        with pytest.raises(Interrupted):
            fit(config)


@pytest.mark.usefixtures("no_run_plots")
def test_interrupted_and_resumed_run_is_bit_identical(tiny_config, tmp_path, monkeypatch):
    whole = fit(tiny_config(tmp_path / "whole"))
    parts = tmp_path / "parts"
    interrupted_fit(tiny_config(parts), monkeypatch)  # stopped at iteration 6, before its checkpoint
    # During a run the newest checkpoint and the one before it are kept.
    assert [p.name for p in list_checkpoints(parts / "checkpoints")] == ["iter_0000002.pt", "iter_0000004.pt"]
    (parts / "checkpoints" / "iter_0000004.pt").unlink()  # back to iteration 2: the resumed run redoes 3 to 6
    # Resumed with two loader workers: augmentation is seeded per sample, so workers change nothing.
    resumed = fit(tiny_config(parts, num_workers=2))
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (parts / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:] if r.split(",")[2]] == ["1", "2", "3", "4", "5", "6"]


@pytest.mark.usefixtures("no_run_plots")
def test_resume_puts_back_every_rng_the_checkpoint_holds(tiny_config, tmp_path, monkeypatch):
    """The tiny run draws nothing from the global RNGs after it resumes (augmentation is keyed by the sample), so
    the bit-identical resume above cannot see a lost RNG state; a backbone with dropout (VGG16's fc6/fc7) would."""
    import random

    from ranlib.engine.resumable import resume
    from ranlib.engine.train import build_state

    config = tiny_config(tmp_path / "run")
    interrupted_fit(config, monkeypatch)
    saved = load_state(list_checkpoints(tmp_path / "run" / "checkpoints")[-1])["rng"][0]
    state = build_state(config, torch.device("cpu"), "off", torch.contiguous_format)
    torch.manual_seed(1234), np.random.seed(1234), random.seed(1234)  # somewhere else entirely
    assert resume(tmp_path / "run", state)[0] == 4
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    assert np.array_equal(np.random.get_state()[1], saved["numpy"][1].numpy().astype(np.uint32))
    assert list(random.getstate()[1]) == saved["python"]


def test_run_directory_contents_and_loading(tiny_config, tmp_path, monkeypatch):
    run_dir = fit(tiny_config(tmp_path / "run", iterations=2, variant="subtract"))
    for name in ("config.json", "metrics.json", "log.csv", "loss_curves.png", "per_class_iou.png",
                 "predictions_0.png", "final.pt", "final.pt.sha256"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert not (run_dir / "checkpoints").exists()  # the resumable checkpoints go once final.pt is written
    model, config, state = load_checkpoint(run_dir / "final.pt")
    assert config.variant == "subtract" and model.config.num_classes == 6 and state["iteration"] == 2
    assert set(state) == {"model", "iteration", "config", "model_config"}  # weights only: no optimiser, RNG
    # A rerun of the finished run loads nothing and trains nothing, and leaves its files as they are.
    import ranlib.engine.resumable as resumable_module
    import ranlib.engine.train as train_module

    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    monkeypatch.setattr(resumable_module, "load_state", lambda *a, **k: pytest.fail("a finished run was loaded"))
    monkeypatch.setattr(train_module, "RAN", lambda *a, **k: pytest.fail("a finished run built a model"))
    assert fit(tiny_config(run_dir, iterations=2, variant="subtract")) == run_dir
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["mixed_miou"]) == {"2", "4", "8", "16"} and 0 <= metrics["miou"] <= 1


@pytest.mark.usefixtures("no_run_plots")
def test_images_per_second_leaves_evaluation_and_saving_out(tiny_config, tmp_path, monkeypatch):
    """A fake clock: each training step takes 1 s, each evaluation 100 s; the logged rate must see only steps."""
    import ranlib.engine.train as train_module

    clock = {"now": 0.0}
    real_evaluate, real_step = train_module.evaluate, torch.optim.SGD.step

    def slow_evaluate(*args, **kwargs):
        clock["now"] += 100.0
        return real_evaluate(*args, **kwargs)

    def slow_step(self, *args, **kwargs):
        clock["now"] += 1.0
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(train_module.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(train_module, "evaluate", slow_evaluate)
    monkeypatch.setattr(torch.optim.SGD, "step", slow_step)
    run_dir = fit(tiny_config(tmp_path / "rate", iterations=4, eval_every=1, log_every=2))
    rows = [r for r in csv.DictReader(open(run_dir / "log.csv")) if r["images_per_s"]]
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    for row in rows:  # 2 iterations of batch 2 in 2 s of steps, though 200 s of evaluation passed meanwhile
        assert float(row["images_per_s"]) == pytest.approx(2.0)


@pytest.mark.usefixtures("no_run_plots")
def test_amp_bf16_runs_on_cpu(tiny_config, tmp_path):
    run_dir = fit(tiny_config(tmp_path / "bf16", iterations=2, amp="bf16", deterministic=False, channels_last=True))
    assert (run_dir / "metrics.json").exists()


@pytest.mark.usefixtures("no_run_plots")
def test_fit_gives_back_the_torch_settings_it_changes(tiny_config, tmp_path, monkeypatch):
    """deterministic=True switches deterministic algorithms on for the run only: afterwards (returned or raised)
    they are as they were, warn-only mode included, and so is cuDNN's benchmark mode."""
    import ranlib.engine.train as train_module

    def settings():
        return (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark)

    outside = settings()
    try:
        for before in ((False, False, False), (True, True, True)):
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])
            torch.backends.cudnn.benchmark = before[2]
            fit(tiny_config(tmp_path / f"run{before[0]}", iterations=1, checkpoint_every=1))
            assert settings() == before
        with monkeypatch.context() as patch:  # an error at the final evaluation
            patch.setattr(train_module, "evaluate", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("evaluation")))
            with pytest.raises(RuntimeError, match="evaluation"):
                fit(tiny_config(tmp_path / "raised", iterations=1, checkpoint_every=1))
        assert settings() == (True, True, True)
    finally:
        torch.use_deterministic_algorithms(outside[0], warn_only=outside[1])
        torch.backends.cudnn.benchmark = outside[2]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fit switches cuDNN's benchmark mode on for CUDA runs")
@pytest.mark.usefixtures("no_run_plots")
def test_fit_on_cuda_gives_back_cudnn_benchmark_mode(tiny_config, tmp_path):
    benchmark = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        fit(tiny_config(tmp_path / "cuda", iterations=1, checkpoint_every=1, device="cuda", deterministic=False))
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = benchmark


def test_model_config_generates_nothing(tmp_path):
    """Reading a run's ModelConfig touches no disk: the embedded dataset is not generated for it."""
    config = TrainConfig(data_root=str(tmp_path / "mixed"), run_dir=str(tmp_path / "run"))
    assert config.model_config.num_classes == 6 and config.model_config.head_dilation == 0
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "voc").mkdir()
    (tmp_path / "voc" / "classes.txt").write_text("background\ncat\ndog\n")
    assert TrainConfig(dataset="voc", data_root=str(tmp_path / "voc")).model_config.num_classes == 3
    assert TrainConfig(dataset="voc", data_root=str(tmp_path / "absent")).model_config.num_classes == 21


@pytest.mark.usefixtures("no_run_plots")
def test_fit_warns_when_the_head_outreaches_the_crop(tiny_config, tmp_path):
    """32-px crops give a 4x4 feature map: DeepLab's dilation 12 trains as a 1x1 head; a 1x1 head fits."""
    with pytest.warns(HeadReachWarning, match="zero padding"):
        fit(tiny_config(tmp_path / "d12", iterations=1, checkpoint_every=1, head_dilation=12))
    with warnings.catch_warnings():
        warnings.simplefilter("error", HeadReachWarning)
        fit(tiny_config(tmp_path / "d0", iterations=1, checkpoint_every=1, head_dilation=0))


# ------------------------------------------------------------------------------------- CLI and distributed
def test_cli_train_then_evaluate(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "cli"
    assert main(["train", "--dataset", "voc", "--data-root", str(tiny_data), "--run-dir", str(run_dir),
                 "--train-split", "train", "--iterations", "2", "--crop-size", "32", "--batch-size", "2",
                 "--workers", "0", "--variant", "baseline", "--device", "cpu", "--eval-batch-size", "2",
                 "--backbone", "tiny"]) == 0
    assert "mixed-boundary mIoU" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(run_dir / "final.pt"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mixed-boundary mIoU (4 px)" in out and "stripes" in out and "fused branch" in out


def test_cli_reports_bad_input_in_one_line(tiny_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: nothing to suggest instead
    missing = tmp_path / "run" / "checkpoints" / "iter_0000002.pt"
    assert main(["evaluate", "--checkpoint", str(missing), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m ranlib evaluate: error: no checkpoint file at") and str(missing) in err
    assert "Traceback" not in err and "train first" in err
    assert main(["train", "--dataset", "voc", "--data-root", str(tmp_path / "no-voc"), "--run-dir",
                 str(tmp_path / "r"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "dataset root" in err and "no-voc" in err and "python -m ranlib download voc" in err


def test_cli_help_shows_the_config_defaults(capsys):
    with pytest.raises(SystemExit) as exit_code:
        main(["train", "--help"])
    assert exit_code.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    defaults = TrainConfig()
    for flag, value in (("--iterations", defaults.iterations), ("--lr", defaults.lr),
                        ("--eval-every", defaults.eval_every), ("--variant", defaults.variant)):
        assert f"default: {value}" in text.split(flag, 2)[2].split(" --", 1)[0], flag


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    # No 255 pixels and no rescaling, so each process's mean loss covers as many pixels as the other's,
    # and the average of the two equals the one-process mean; frozen BN makes batch statistics irrelevant.
    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=8, n_val=2, size=32, seed=5, progress=False)
    for png in (root / "SegmentationClass").glob("*.png"):
        from PIL import Image

        with Image.open(png) as img:
            palette, pixels = img.getpalette(), np.array(img)
        pixels[pixels == 255] = 0
        out = Image.fromarray(pixels)
        out.putpalette(palette)
        out.save(png)
    flags = ["train", "--dataset", "voc", "--data-root", str(root), "--train-split", "train", "--iterations", "3",
             "--crop-size", "32", "--batch-size", "4", "--workers", "0", "--device", "cpu", "--freeze-bn",
             "--eval-every", "0", "--eval-batch-size", "1", "--deterministic", "--backbone", "tiny"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    scale = ["--scale-range", "1", "1"]
    one_err = open(tmp_path / "one.err", "w")  # a file, not a pipe: nobody reads it while the run goes on
    one = subprocess.Popen([sys.executable, "-m", "ranlib", *flags, *scale, "--run-dir", str(tmp_path / "one")],
                           env=env, stdout=subprocess.DEVNULL, stderr=one_err)  # and meanwhile, on two processes:
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "ranlib", *flags, *scale, "--run-dir", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert one.wait(timeout=300) == 0, (tmp_path / "one.err").read_text()[-2000:]
    one_err.close()
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5, msg=key)
    # Each process evaluated one of the two val images; the summed confusion matrix counts both.
    m1, m2 = (json.loads((tmp_path / run / "metrics.json").read_text()) for run in ("one", "two"))
    assert np.sum(m2["confusion"]) == np.sum(m1["confusion"]) == 2 * 32 * 32
    assert m2["miou"] == pytest.approx(m1["miou"], abs=1e-3)
