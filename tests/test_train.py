"""The training engine: one step by hand, metrics against torchmetrics, exact resume, DDP, the CLI, AMP."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
import torchmetrics

from ranlib import RANLoss, build_model
from ranlib.__main__ import main
from ranlib.checkpoint import CheckpointError, list_checkpoints, load_state
from ranlib.data import make_mixed_boundary_dataset
from ranlib.metrics import ConfusionMatrix
from ranlib.train import TrainConfig, build_optimizer, fit, load_checkpoint, poly_lr_factor


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_mixed_boundary_dataset(tmp_path_factory.mktemp("data"), n_train=8, n_val=2, size=32, seed=3,
                                       progress=False)


def tiny_config(root, run_dir, **overrides) -> TrainConfig:
    return replace(TrainConfig(dataset="voc", data_root=str(root), run_dir=str(run_dir), crop_size=32, batch_size=2,
                               iterations=6, checkpoint_every=2, eval_every=0, log_every=1, num_workers=0,
                               deterministic=True, device="cpu", eval_batch_size=2), **overrides)


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


# --------------------------------------------------------------------------------------------------- metrics
def test_confusion_matrix_on_a_hand_made_example():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 1]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(3)
    cm.update(prediction, target)
    # rows = truth, columns = prediction: class 0: 1 right, 1 as class 1; class 1: 3 right; class 2: 1 right, 1 as 0
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    m = cm.compute()
    assert m["pixel_acc"] == pytest.approx(5 / 7)
    assert m["mean_class_acc"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert m["iou"] == pytest.approx([1 / 3, 3 / 4, 1 / 2])
    assert m["miou"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert m["fwiou"] == pytest.approx(2 / 7 * 1 / 3 + 3 / 7 * 3 / 4 + 2 / 7 * 1 / 2)
    banded = ConfusionMatrix(3)
    banded.update(prediction, target, mask=torch.tensor([[True, True, False, False], [False] * 4]))
    assert banded.matrix.tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    assert banded.compute()["iou"][2] != banded.compute()["iou"][2]  # nan: class 2 absent from both


def test_confusion_matrix_agrees_with_torchmetrics():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 20, 20), generator=g)
    target[:, :3] = 255
    prediction = torch.where(torch.rand(4, 20, 20, generator=g) < 0.6, target.clamp(max=4),
                             torch.randint(0, 5, (4, 20, 20), generator=g))
    cm = ConfusionMatrix(5)
    cm.update(prediction[:2], target[:2])
    cm.update(prediction[2:], target[2:])
    m = cm.compute()
    kwargs = {"num_classes": 5, "ignore_index": 255}
    iou = torchmetrics.classification.MulticlassJaccardIndex(average="none", **kwargs)(prediction, target)
    assert m["iou"] == pytest.approx(iou.tolist(), abs=1e-6)
    assert m["miou"] == pytest.approx(iou.mean().item(), abs=1e-6)
    acc = torchmetrics.classification.MulticlassAccuracy(average="micro", **kwargs)(prediction, target)
    assert m["pixel_acc"] == pytest.approx(acc.item(), abs=1e-6)
    class_acc = torchmetrics.classification.MulticlassAccuracy(average="macro", **kwargs)(prediction, target)
    assert m["mean_class_acc"] == pytest.approx(class_acc.item(), abs=1e-6)


# ----------------------------------------------------------------------------------------- resume and files
def _weights(run_dir):
    return load_state(list_checkpoints(run_dir / "checkpoints")[-1])["model"]


def test_interrupted_and_resumed_run_is_bit_identical(tiny_data, tmp_path):
    whole = fit(tiny_config(tiny_data, tmp_path / "whole"))
    # "Interrupt" after 3 iterations: the last checkpoint is at 2, so the resumed run redoes iteration 3.
    fit(tiny_config(tiny_data, tmp_path / "parts", iterations=6))  # same config; then cut back to iteration 2
    parts = tmp_path / "parts"
    for path in list_checkpoints(parts / "checkpoints"):
        if not path.name.endswith("0000002.pt"):
            path.unlink()
    resumed = fit(tiny_config(tiny_data, parts))
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (parts / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:] if r.split(",")[2]] == ["1", "2", "3", "4", "5", "6"]


def test_run_directory_contents_and_loading(tiny_data, tmp_path):
    run_dir = fit(tiny_config(tiny_data, tmp_path / "run", iterations=2, keep_checkpoints=1, variant="subtract"))
    for name in ("config.json", "metrics.json", "log.csv", "loss_curves.png", "per_class_iou.png",
                 "predictions_0.png"):
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["iter_0000002.pt"]  # keep 1
    model, config, state = load_checkpoint(run_dir / "checkpoints" / "iter_0000002.pt")
    assert config.variant == "subtract" and model.config.num_classes == 6 and state["iteration"] == 2
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["mixed_miou"]) == {"2", "4", "8", "16"} and 0 <= metrics["miou"] <= 1


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"model": Exploit()}))
    with pytest.raises(CheckpointError, match="refusing to load"):
        load_state(path)


def test_amp_bf16_runs_on_cpu(tiny_data, tmp_path):
    run_dir = fit(tiny_config(tiny_data, tmp_path / "bf16", iterations=2, amp="bf16", deterministic=False,
                              channels_last=True))
    assert (run_dir / "metrics.json").exists()


# ------------------------------------------------------------------------------------- CLI and distributed
@pytest.mark.slow
def test_cli_train_then_evaluate(tiny_data, tmp_path, capsys):
    run_dir = tmp_path / "cli"
    assert main(["train", "--dataset", "voc", "--data-root", str(tiny_data), "--run-dir", str(run_dir),
                 "--iterations", "2", "--crop-size", "32", "--batch-size", "2", "--workers", "0",
                 "--variant", "baseline", "--device", "cpu", "--eval-batch-size", "2"]) == 0
    assert "mixed-boundary mIoU" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(run_dir / "checkpoints" / "iter_0000002.pt"),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "mixed-boundary mIoU (4 px)" in out and "stripes" in out


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
    flags = ["train", "--dataset", "voc", "--data-root", str(root), "--iterations", "3", "--crop-size", "32",
             "--batch-size", "4", "--workers", "0", "--device", "cpu", "--freeze-bn", "--eval-every", "0",
             "--eval-batch-size", "1", "--deterministic"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    scale = ["--scale-range", "1", "1"]
    one = subprocess.run([sys.executable, "-m", "ranlib", *flags, *scale, "--run-dir", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "ranlib", *flags, *scale, "--run-dir", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for key in a:
        torch.testing.assert_close(a[key].float(), b[key].float(), rtol=1e-4, atol=1e-5, msg=key)
