"""The benchmark: timing excludes warm-up, FLOPs match hand counts, the timed step is fit's, peak lookup, run
grid, like-for-like ratios and targets (DeepLabv3 on RAN's backbone), torch-free --help, --threads, CLI smoke run.

Covers ``ranlib.bench.throughput``, ``ranlib.bench.gpu_specs``, ``ranlib.bench.data``'s rates and the
``benchmark`` command (``ranlib.bench.cli``, ``ranlib.bench.benchmark``).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from ranlib.bench import gpu_specs, throughput
from ranlib.bench.benchmark import check_targets, run_grid, step_ratios
from ranlib.bench.config import RunConfig
from ranlib.bench.data import images_per_second
from ranlib.bench.throughput import median_seconds
from ranlib.data import IGNORE_INDEX
from ranlib.engine.train import StepResult

CPU = torch.device("cpu")
TINY = RunConfig(backbone="resnet18", crop=64, batch_size=2, precision="fp32", channels_last=False)


def test_median_excludes_warmup_and_takes_median():
    calls = []
    # 2 slow warm-up calls, then 3 repeats of 2 calls: 10 ms, 10 ms, 200 ms per call. Median 10 ms (mean 73 ms).
    durations = iter([0.2, 0.2, 0.01, 0.01, 0.01, 0.01, 0.2, 0.2])

    def fn():
        calls.append(1)
        time.sleep(next(durations))
    seconds = median_seconds(fn, CPU, warmup=2, repeats=3, iters=2)
    assert len(calls) == 2 + 3 * 2
    assert 0.009 < seconds < 0.05


def test_training_flops_difference_is_conv_rev_by_hand():
    """RAN minus baseline = CONV_rev forward + its two backward convolutions (input and weight gradients)."""
    rows = {v: throughput.measure_training(RunConfig(**{**TINY.__dict__, "model": v}), CPU, warmup=0,
                                          repeats=1, iters=1) for v in ("ran", "baseline")}
    b, c, k, h, w = 2, 512, 21, 64 // 8, 64 // 8
    conv_rev_forward = 2 * b * c * k * 9 * h * w  # 3x3 kernel, a multiply-add = 2 FLOPs, every output position
    diff = (rows["ran"]["train_tflop_per_step"] - rows["baseline"]["train_tflop_per_step"]) * 1e12
    assert diff == pytest.approx(3 * conv_rev_forward, rel=1e-9)
    # The meta-device count (--flops-only) agrees with the count on a real step.
    assert throughput.count_train_flops(TINY) == pytest.approx(rows["ran"]["train_tflop_per_step"] * 1e12)
    row = rows["ran"]
    assert row["images_per_s"] == pytest.approx(2 / (row["step_ms"] / 1e3))
    assert row["mfu"] is None and row["peak_memory_gib"] is None  # CPU: no datasheet peak, no CUDA stats


def test_mfu_uses_the_given_peak():
    row = throughput.measure_training(TINY, CPU, warmup=0, repeats=1, iters=1, peak=2.0)
    flops_per_s = row["train_tflop_per_step"] * 1e12 / (row["step_ms"] / 1e3)
    assert row["mfu"] == pytest.approx(flops_per_s / 2e12)


def test_training_step_changes_weights_and_loss_drops():
    """The timed step is a real SGD step: repeated on one batch, the loss goes down."""
    torch.manual_seed(0)
    model, criterion = throughput.build(TINY, CPU)
    step = throughput.make_train_step(model, criterion, "fp32", CPU)
    batches = itertools.repeat(throughput.synthetic_batch(TINY, CPU))
    results = [step(batches) for _ in range(4)]
    assert results[0].names == ("original", "reverse", "fused") and results[0].images == TINY.batch_size
    total, *parts = results[0].losses.tolist()
    assert total == pytest.approx(sum(parts), rel=1e-6)  # RANLoss: the three branches' cross-entropies, weight 1
    losses = [r.losses[0].item() for r in results]
    assert losses[-1] < losses[0]


class DictOutput(nn.Module):
    """A one-convolution segmenter that answers as torchvision's do: ``{"out": (B, K, H, W) logits}``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 21, 3, padding=1)

    def forward(self, images):
        return {"out": self.conv(images)}


def test_deeplabv3_arm_trains_through_fits_step():
    """torchvision's dict output and ``deeplabv3_loss`` go through the same step as RAN: the step's loss is the
    cross-entropy over the labelled pixels (computed here by hand), and one SGD update is applied."""
    torch.manual_seed(0)
    model = DictOutput()
    images, masks = torch.randn(2, 3, 16, 16), torch.randint(0, 21, (2, 16, 16))
    masks[:, :4] = IGNORE_INDEX
    with torch.no_grad():
        logp = model(images)["out"].log_softmax(1)  # (B, K, H, W)
    keep = masks != IGNORE_INDEX
    expected = -logp.gather(1, masks.clamp(max=20)[:, None])[:, 0][keep].mean()
    weight = model.conv.weight.detach().clone()
    result = throughput.make_train_step(model, throughput.deeplabv3_loss, "fp32", CPU)(iter([(images, masks)]))
    assert result.names == ("fused",) and result.images == 2
    assert result.losses[0].item() == pytest.approx(expected.item(), rel=1e-5)
    assert result.losses[1].item() == pytest.approx(expected.item(), rel=1e-5)
    assert not torch.equal(model.conv.weight, weight)
    assert F.cross_entropy(model(images)["out"], masks, ignore_index=IGNORE_INDEX) < expected


def test_fed_rate_counts_the_images_the_step_trained_on():
    """``images_per_second`` with a step: the step takes its batches from the stream (here 3 images each), so
    the rate is the images trained on over the time; loader-only counts the batches' images the same way."""
    batches = [(torch.zeros(3, 3, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long))] * 2
    calls = []

    def step(stream):
        next(stream)
        calls.append(1)
        time.sleep(0.01)
        return StepResult(torch.zeros(1), (), 3)
    rate = images_per_second(batches, CPU, skip=2, count=5, step=step)
    assert len(calls) == 7
    assert 0.5 * 3 / 0.01 < rate < 3 / 0.01
    assert images_per_second(batches, CPU, skip=1, count=3) > 3 / 0.01


@pytest.mark.parametrize("name,precision,expected", [
    ("NVIDIA H100 80GB HBM3", "bf16", 989.5), ("NVIDIA H100 PCIe", "bf16", 756.5),
    ("NVIDIA H200", "tf32", 494.5), ("NVIDIA A100-SXM4-40GB", "fp32", 19.5),
    ("NVIDIA L4", "fp16", 121.0), ("Tesla T4", "bf16", None), ("Some Future GPU", "bf16", None)])
def test_peak_lookup_picks_the_specific_name_first(monkeypatch, name, precision, expected):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert gpu_specs.peak_tflops(torch.device("cuda"), precision) == expected
    assert gpu_specs.peak_tflops(CPU, precision) is None


def test_datasheet_peaks_are_ordered():
    for gpu, peaks in gpu_specs.PEAK_TFLOPS.items():
        known = [peaks[p] for p in ("fp32", "tf32", "fp16") if peaks[p] is not None]
        assert known == sorted(known), gpu  # tensor-core fp16 > tf32 > fp32 on every datasheet


def test_grid_single_changes_and_full_product():
    ref = RunConfig(crop=321, precision="bf16", channels_last=True, compile=False)
    axes = {"model": ["ran", "baseline"], "crop": [321, 513], "precision": ["bf16", "fp32", "fp16"]}
    single = run_grid(ref, axes)
    assert len(single) == 2 * (1 + 1 + 2)  # per model: reference, crop 513, fp32, fp16
    assert single[0] == ref
    assert all(sum(getattr(c, f) != getattr(ref, f) for f in ("crop", "precision")) <= 1 for c in single)
    assert len(run_grid(ref, axes, full=True)) == 2 * 2 * 3
    dl = run_grid(ref, {"model": ["deeplabv3"]})
    assert dl == [RunConfig(model="deeplabv3", backbone="resnet101", head="deeplabv3", crop=321,
                            precision="bf16", channels_last=True)]
    # DeepLabv3 runs on RAN's backbone, whichever it is: every row of the grid has the reference's backbone.
    small = run_grid(replace(ref, backbone="resnet18"), {"model": ["ran", "baseline", "deeplabv3"], "crop": [321, 513]})
    assert [(c.model, c.backbone, c.head) for c in small if c.crop == 321] == [
        ("ran", "resnet18", "largefov"), ("baseline", "resnet18", "largefov"), ("deeplabv3", "resnet18", "deeplabv3")]
    assert {c.backbone for c in small} == {"resnet18"}


def test_deeplabv3_on_ranlib_backbone_is_torchvisions():
    """``deeplabv3_on`` (torchvision's DeepLabv3 head on ranlib's backbone, what the benchmark runs on backbones
    torchvision has no DeepLabv3 for) gives the same outputs as torchvision's ``deeplabv3_resnet50`` with the same
    weights: so on ResNet-18 the benchmark compares RAN with DeepLabv3 as torchvision would build it."""
    torch.manual_seed(0)
    reference = torchvision.models.segmentation.deeplabv3_resnet50(weights=None, weights_backbone=None,
                                                                   num_classes=21).eval()
    composed = throughput.deeplabv3_on("resnet50").eval()
    theirs, ours = reference.state_dict(), composed.state_dict()
    assert [t.shape for t in theirs.values()] == [t.shape for t in ours.values()]  # same layers, same order
    composed.load_state_dict(dict(zip(ours, theirs.values(), strict=True)))
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        assert torch.allclose(composed(images)["out"], reference(images)["out"], atol=1e-5)
    # ResNet-18 (no torchvision DeepLabv3): torchvision's head on ranlib's 512-channel, stride-8 features.
    model, _ = throughput.build(replace(TINY, model="deeplabv3", head="deeplabv3"), CPU)
    assert model.classifier[0].convs[0][0].in_channels == 512
    assert model.eval()(torch.randn(1, 3, 64, 64))["out"].shape == (1, 21, 64, 64)
    assert isinstance(throughput.build(replace(TINY, model="deeplabv3", backbone="resnet101"), CPU)[0],
                      torchvision.models.segmentation.DeepLabV3)


def test_ratios_pair_rows_with_the_same_setting():
    def row(model, precision, ms, tflop):
        return {"model": model, "backbone": "resnet101", "crop": 321, "batch_size": 10, "precision": precision,
                "channels_last": True, "compile": False, "step_ms": ms, "train_tflop_per_step": tflop}
    rows = [row("ran", "bf16", 103.0, 4.4), row("baseline", "bf16", 100.0, 4.0), row("deeplabv3", "bf16", 206.0, 8.8),
            row("baseline", "fp32", 1.0, 1.0), {"model": "ran", "error": "out of memory"}]
    other_backbone = {**row("deeplabv3", "bf16", 50.0, 2.0), "backbone": "resnet18"}
    ratios = {r["ran_vs"]: r for r in step_ratios(rows)}
    assert set(ratios) == {"baseline", "deeplabv3"}  # fp32 baseline has no RAN partner
    assert step_ratios([rows[0], other_backbone]) == []  # never RAN on one backbone against another
    assert ratios["baseline"]["step_time_ratio"] == pytest.approx(1.03)
    assert ratios["deeplabv3"]["step_time_ratio"] == pytest.approx(0.5)
    assert ratios["baseline"]["flop_ratio"] == pytest.approx(1.1)


def test_targets_read_the_reference_setting():
    ref = RunConfig(crop=321, precision="bf16")
    common = {"crop": 321, "batch_size": 10, "precision": "bf16", "channels_last": True, "compile": False}
    results = {
        "train": [{"model": "ran", **common, "mfu": 0.41}, {"model": "ran", **common, "crop": 513, "mfu": 0.1}],
        "ratios": [{"ran_vs": "baseline", **common, "step_time_ratio": 1.05},
                   {"ran_vs": "deeplabv3", **common, "step_time_ratio": 0.70},
                   {"ran_vs": "baseline", **common, "crop": 513, "step_time_ratio": 1.0}],
        "data": [{"pipeline": "cpu loader (2 workers)", "with_training": True, "fraction_of_synthetic": 0.95},
                 {"pipeline": "gpu_loader on cuda", "with_training": False, "images_per_s": 999.0},
                 {"pipeline": "gpu_loader on cuda", "with_training": True, "fraction_of_synthetic": 0.85}]}
    results = {**results, "train": [{**r, "backbone": "resnet101"} for r in results["train"]],
               "ratios": [{**r, "backbone": "resnet101"} for r in results["ratios"]]}
    rows = check_targets(results, ref)
    assert [(r["measured"], r["met"]) for r in rows] == [(0.41, True), (0.70, True), (1.05, False), (0.85, False)]
    assert rows[1]["target"] == "RAN-resnet101 / DeepLabv3-resnet101 step time <= 0.75"  # both backbones named
    assert [r["met"] for r in check_targets({"train": [], "ratios": [], "data": []}, ref)] == [None] * 4
    # At another reference backbone, rows measured on ResNet-101 are not the reference's: nothing is judged.
    other = check_targets(results, replace(ref, backbone="resnet18"))
    assert other[1]["target"] == "RAN-resnet18 / DeepLabv3-resnet18 step time <= 0.75"
    assert [r["met"] for r in other[:3]] == [None] * 3


def test_bad_precision_names_the_choices():
    with pytest.raises(ValueError, match="fp32, tf32, bf16, fp16"):
        throughput.amp_of("fp8")


def test_benchmark_parser_imports_no_torch():
    """``ranlib.bench.cli`` builds the whole ``benchmark`` parser, and prints its --help, without torch."""
    code = """
import argparse, contextlib, io, sys
from ranlib.bench.cli import add_parser
parser = argparse.ArgumentParser(prog="ranlib")
add_parser(parser.add_subparsers(dest="command"))
args = parser.parse_args(["benchmark", "--precisions", "tf32", "--compile", "on", "off"])
assert args.precisions == ["tf32"] and args.compile == [True, False], args
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    parser.parse_args(["benchmark", "--help"])
assert "--flops-only" in out.getvalue(), out.getvalue()
assert "torch" not in sys.modules, "ranlib.bench.cli imported torch"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_cli_quick_writes_json(tmp_path):
    from ranlib.__main__ import main
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--quick", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert {r["model"] for r in results["train"]} == {"ran", "baseline", "deeplabv3"}
    assert all(r["images_per_s"] > 0 for r in results["train"] + results["inference"])
    assert {r["ran_vs"] for r in results["ratios"]} == {"baseline", "deeplabv3"}
    pipelines = {(r["pipeline"], r["with_training"]) for r in results["data"]}
    assert len(pipelines) == 4 and all(r["images_per_s"] > 0 for r in results["data"])


def test_cli_threads_and_like_for_like_targets(tmp_path):
    """The real entry point: ``--threads 1`` reaches torch (the JSON records the count the run used), every model
    runs on the quick run's ResNet-18, and the targets name that backbone on both sides. ``--threads 0`` is bad input:
    exit 2 with argparse's usage and one error line naming the flag."""
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "ranlib", "benchmark", "--quick", "--flops-only", "--threads", "1",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["threads"] == 1 and "1 CPU thread" in done.stdout
    assert {(r["model"], r["backbone"]) for r in results["train"]} == {
        ("ran", "resnet18"), ("baseline", "resnet18"), ("deeplabv3", "resnet18")}
    assert "| RAN-resnet18 / DeepLabv3-resnet18 step time <= 0.75 |" in done.stdout
    assert "resnet101" not in done.stdout
    bad = subprocess.run([sys.executable, "-m", "ranlib", "benchmark", "--threads", "0"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines()[-1].endswith("argument --threads: 0 is not allowed; it must be a whole number >= 1")
