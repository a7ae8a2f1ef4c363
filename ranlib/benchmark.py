"""Throughput benchmark: training and inference images/s, peak memory, model-FLOP utilisation, data pipelines.

What it compares (``python -m ranlib benchmark``): RAN against its own ``baseline`` variant (plain DeepLab)
and against torchvision's ``deeplabv3_resnet101`` (no weights, 21 classes) under the same batch, crop and
precision; crops, precisions (fp32 / tf32 / bf16 / fp16), channels_last and torch.compile on and off. By
default every model runs at a reference setting (the first value of each axis) and at each single-axis
change from it; ``--full`` runs the whole product. The data side compares the CPU loader (``ranlib.data``
with N workers) with ``ranlib.gpu_loader`` (JPEG bytes in memory, decoded and augmented on the device), and
trains from the latter to see whether it keeps up with synthetic tensors.

How it measures: warm-up steps excluded, the device synchronised around every timed repeat, the median of
the repeats reported. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one real training
step of the eager model (a multiply-add counts 2; forward and backward). MFU = FLOPs per step / step time /
the device's dense peak for the precision (``PEAK_TFLOPS``, or ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from ranlib.losses import RANLoss
from ranlib.model import build_model

MODELS = ("ran", "baseline", "deeplabv3")  # deeplabv3 = torchvision's deeplabv3_resnet101, the reference
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

# Dense (no 2:4 sparsity) peak TFLOPS from NVIDIA's datasheets; the datasheets quote tensor-core figures
# "with sparsity", which are twice the dense ones, so those are halved here. T4 (Turing) has no bf16/tf32.
#   T4:   https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/t4-tensor-core-datasheet-951643.pdf
#   L4:   https://www.nvidia.com/en-us/data-center/l4/  (L4 Tensor Core GPU datasheet)
#   A100: https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf
#   H100 (SXM, PCIe, NVL): https://www.nvidia.com/en-us/data-center/h100/  (H100 Tensor Core GPU datasheet)
#   H200 (SXM, NVL):       https://www.nvidia.com/en-us/data-center/h200/
# Matched against torch.cuda.get_device_name() in this order (the more specific names first).
PEAK_TFLOPS = {
    "H100 PCIe": {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5, "fp16": 756.5},
    "H100 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "H100": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},  # SXM5
    "H200 NVL": {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5},
    "H200": {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5, "fp16": 989.5},  # SXM
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0},
    "L4": {"fp32": 30.3, "tf32": 60.0, "bf16": 121.0, "fp16": 121.0},
    "T4": {"fp32": 8.1, "tf32": None, "bf16": None, "fp16": 65.0},
}


@dataclass(frozen=True)
class RunConfig:
    model: str = "ran"  # ran | baseline (RAN's variant without the reverse branch) | deeplabv3 (torchvision)
    backbone: str = "resnet101"  # RAN's backbone (deeplabv3 always has torchvision's ResNet-101)
    head: str = "largefov"  # RAN's CONV_org / CONV_rev structure (deeplabv3: its own ASPP head)
    crop: int = 321  # square training crop, pixels
    batch_size: int = 10
    precision: str = "bf16"  # fp32 (TF32 off) | tf32 | bf16 | fp16 (autocast; fp16 with a GradScaler)
    channels_last: bool = True  # model and images in NHWC memory format
    compile: bool = False  # torch.compile the model


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The dense peak of this GPU for ``precision`` from ``PEAK_TFLOPS``; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks[precision]
    return None


def build(config: RunConfig, device: torch.device) -> tuple[nn.Module, Callable]:
    """The model of ``config`` on ``device`` and its loss ``(output, masks) -> (total, parts)``."""
    if config.model == "deeplabv3":
        model = torchvision.models.segmentation.deeplabv3_resnet101(
            weights=None, weights_backbone=None, num_classes=21)
        loss_fn = deeplabv3_loss
    elif config.model in ("ran", "baseline"):
        model = build_model(config.backbone, config.head, config.model, num_classes=21)
        loss_fn = RANLoss()
    else:
        raise ValueError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return model.to(device, memory_format=memory_format), loss_fn


def deeplabv3_loss(output: dict[str, torch.Tensor], masks: torch.Tensor):
    """Cross-entropy on torchvision's full-resolution ``output["out"]``, shaped like ``RANLoss``'s result."""
    loss = F.cross_entropy(output["out"].float(), masks, ignore_index=255)
    return loss, {"fused": loss}


def autocast(precision: str, device: torch.device):
    """The autocast context for ``precision`` (a no-op for fp32 and tf32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision in ("bf16", "fp16"):
        return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return nullcontext()


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 tensor cores for convolutions and matmuls, for the rest of the process (CUDA only).

    Each measurement sets it from its precision: off for "fp32", on otherwise (PyTorch's default for cuDNN).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_train_step(model: nn.Module, loss_fn: Callable, precision: str, device: torch.device,
                    compile: bool = False) -> Callable:
    """One training step ``step(images, masks) -> loss``: forward, loss, backward, SGD update.

    The step of ``ranlib.train.fit`` (which has no separate step function): autocast around the forward
    only, the loss outside it, ``torch.compile`` on the model only, SGD with momentum 0.9 and weight decay
    5e-4, fp16 through a GradScaler. Unlike ``fit`` it reads no ``.item()`` per step, so nothing waits on
    the device inside the step. The learning rate does not change the cost, so it is fixed.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    forward = torch.compile(model) if compile else model

    def step(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(precision, device):
            output = forward(images)
        loss, _ = loss_fn(output, masks)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()
    return step


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int,
                   iters: int) -> float:
    """Median over ``repeats`` of the mean time of ``iters`` calls of ``fn``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        synchronize(device)
        times.append((time.perf_counter() - start) / iters)
    return statistics.median(times)


def synthetic_batch(config: RunConfig, device: torch.device, seed: int = 0):
    """Random ImageNet-normalised-like images (B, 3, S, S) and labels (B, S, S) with some 255 pixels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(config.batch_size, 3, config.crop, config.crop, generator=g)
    masks = torch.randint(0, 21, (config.batch_size, config.crop, config.crop), generator=g)
    masks[:, :, : config.crop // 16] = 255  # a padded strip, as random crops produce
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    return images.to(device, memory_format=memory_format), masks.to(device)


def measure_training(config: RunConfig, device: torch.device, warmup: int = 3, repeats: int = 5,
                     iters: int = 10, peak: float | None = None) -> dict:
    """Train on one fixed synthetic batch; a row with step time, images/s, peak memory, FLOPs and MFU.

    The first step runs under ``FlopCounterMode`` on the eager model (it also warms up); the model is
    compiled after that when ``config.compile``. ``peak`` (TFLOPS) overrides the ``PEAK_TFLOPS`` table.
    """
    set_tf32(config.precision != "fp32")
    model, loss_fn = build(config, device)
    model.train()
    images, masks = synthetic_batch(config, device)
    step = make_train_step(model, loss_fn, config.precision, device)
    with FlopCounterMode(display=False) as counter:
        step(images, masks)
    flops = counter.get_total_flops()
    if config.compile:
        step = make_train_step(model, loss_fn, config.precision, device, compile=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(lambda: step(images, masks), device, warmup, repeats, iters)
    peak = peak if peak is not None else peak_tflops(device, config.precision)
    return {**asdict(config), "step_ms": 1e3 * seconds, "images_per_s": config.batch_size / seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "train_tflop_per_step": flops / 1e12,
            "mfu": flops / seconds / (peak * 1e12) if peak else None, "peak_tflops": peak}


def measure_inference(config: RunConfig, device: torch.device, warmup: int = 3, repeats: int = 5,
                      iters: int = 10) -> dict:
    """Forward passes in eval mode to full-resolution logits (RAN: ``fused`` upsampled); images/s."""
    set_tf32(config.precision != "fp32")
    model, _ = build(config, device)
    model.eval()
    if config.compile:
        model = torch.compile(model)
    images, _ = synthetic_batch(config, device)

    @torch.inference_mode()
    def forward():
        with autocast(config.precision, device):
            out = model(images)
            return out["out"] if isinstance(out, dict) else F.interpolate(
                out.fused, size=images.shape[-2:], mode="bilinear", align_corners=False)
    seconds = median_seconds(forward, device, warmup, repeats, iters)
    return {**asdict(config), "batch_ms": 1e3 * seconds, "images_per_s": config.batch_size / seconds}


def run_grid(reference: RunConfig, axes: dict[str, list], full: bool = False) -> list[RunConfig]:
    """Configurations to run: for every model, the reference and each single-axis change (or the product).

    ``axes`` maps a ``RunConfig`` field (``crop``, ``precision``, …) to its values; ``axes["model"]`` lists
    the models. ``full=True`` gives every combination instead.
    """
    axes = {name: list(values) for name, values in axes.items()}
    if full:
        configs = [replace(reference, **dict(zip(axes, combo, strict=True)))
                   for combo in itertools.product(*axes.values())]
    else:
        configs = []
        for model in axes.get("model", [reference.model]):
            base = replace(reference, model=model)
            configs.append(base)
            for name, values in axes.items():
                configs += [replace(base, **{name: v}) for v in values
                            if name != "model" and v != getattr(base, name)]
    # torchvision's model has its own backbone and head: say so in its rows.
    configs = [replace(c, backbone="resnet101", head="deeplabv3") if c.model == "deeplabv3" else c
               for c in configs]
    return list(dict.fromkeys(configs))  # drop duplicates, keep order


def step_ratios(rows: list[dict]) -> list[dict]:
    """RAN's step time and FLOPs over baseline's and deeplabv3's at the same crop/batch/precision/layout.

    Rows without ``step_ms`` (``--flops-only``) give only the FLOP ratio; failed (out of memory) runs none.
    """
    setting = ("crop", "batch_size", "precision", "channels_last", "compile")
    rows = [r for r in rows if "train_tflop_per_step" in r]
    ran = {tuple(r[k] for k in setting): r for r in rows if r["model"] == "ran"}
    out = []
    for row in rows:
        other = ran.get(tuple(row[k] for k in setting))
        if row["model"] != "ran" and other is not None:
            timed = "step_ms" in row and "step_ms" in other
            out.append({"ran_vs": row["model"], "ran_backbone": other["backbone"], **{k: row[k] for k in setting},
                        "step_time_ratio": other["step_ms"] / row["step_ms"] if timed else None,
                        "flop_ratio": other["train_tflop_per_step"] / row["train_tflop_per_step"]})
    return out


def count_train_flops(config: RunConfig) -> int:
    """FLOPs of one training step of ``config`` counted on the meta device (shapes only, nothing computed)."""
    device = torch.device("meta")
    model, loss_fn = build(config, device)
    step = make_train_step(model.train(), loss_fn, "fp32", device)
    with FlopCounterMode(display=False) as counter:
        step(*synthetic_batch(config, device))
    return counter.get_total_flops()


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` (dicts) with the given columns; floats to 3 significant digits."""
    def cell(v):
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.3g}"
        return "-" if v is None else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def add_parser(subparsers) -> None:
    """Register ``python -m ranlib benchmark``."""
    p = subparsers.add_parser(
        "benchmark", help="training/inference images/s, peak memory, MFU and data-pipeline rates",
        description="Training and inference images/s, peak memory and MFU of RAN, its baseline and torchvision's "
                    "deeplabv3_resnet101; CPU loader against the GPU data path. The first value of each list "
                    "is the reference setting; every other value is run as a single change from it "
                    "(--full: every combination). Prints markdown tables and writes JSON.")
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke test: resnet18, crop 64, batch 2, fp32, 2 repeats, no compile, tiny data")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--backbone", default="resnet101", help="RAN's backbone (default resnet101)")
    p.add_argument("--head", default="largefov", help="largefov or aspp")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--crops", nargs="+", type=int, default=[321, 513])
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp32", "fp16"], choices=PRECISIONS)
    p.add_argument("--channels-last", nargs="+", type=on_off, default=[True, False], metavar="on|off")
    p.add_argument("--compile", nargs="+", type=on_off, default=[False, True], metavar="on|off")
    p.add_argument("--full", action="store_true", help="run every combination instead of single changes")
    p.add_argument("--flops-only", action="store_true",
                   help="only count training FLOPs per step on the meta device (seconds, any machine)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (compile happens here)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--iters", type=int, default=10, help="steps per timed repeat")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOPS for MFU (default: the datasheet table for the detected GPU)")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline comparison")
    p.add_argument("--data-root", default=None,
                   help="VOC-layout folder for the data benchmark (default: synthetic 500x375 JPEGs in a temp dir)")
    p.add_argument("--data-images", type=int, default=200, help="synthetic JPEGs to write")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="CPU loader workers")
    p.add_argument("--data-batches", type=int, default=20, help="timed batches per data measurement")
    p.add_argument("--json", default="runs/benchmark.json", help="where to write the results")
    p.set_defaults(func=run)


def run(args) -> int:
    """The ``benchmark`` command: measure, print tables, write JSON."""
    if args.quick:
        args.backbone, args.batch_size, args.crops, args.precisions = "resnet18", 2, [64], ["fp32"]
        args.channels_last, args.compile, args.warmup, args.repeats, args.iters = [False], [False], 1, 2, 2
        args.data_images, args.data_batches, args.workers = 8, 3, 1
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    reference = RunConfig(args.models[0], args.backbone, args.head, args.crops[0], args.batch_size,
                          args.precisions[0], args.channels_last[0], args.compile[0])
    axes = {"model": args.models, "crop": args.crops, "precision": args.precisions,
            "channels_last": args.channels_last, "compile": args.compile}
    configs = run_grid(reference, axes, args.full)
    timing = {"warmup": args.warmup, "repeats": args.repeats, "iters": args.iters}
    train, inference = [], []
    for config in tqdm(configs, desc="benchmark"):
        if args.flops_only:
            train.append({**asdict(config), "train_tflop_per_step": count_train_flops(config) / 1e12})
            continue
        try:
            train.append(measure_training(config, device, **timing, peak=args.peak_tflops))
            if not args.no_inference:
                inference.append(measure_inference(config, device, **timing))
        except torch.OutOfMemoryError:
            train.append({**asdict(config), "error": "out of memory"})
        if device.type == "cuda":
            torch.cuda.empty_cache()
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "cpu_count": os.cpu_count(), "torch": torch.__version__, "settings": vars(args) | {"func": None},
               "train": train, "inference": inference, "ratios": step_ratios(train), "data": []}
    if not (args.no_data or args.flops_only):
        from ranlib.benchmark_data import measure_data, write_voc_jpegs
        with tempfile.TemporaryDirectory() as tmp:
            root = args.data_root or write_voc_jpegs(tmp, args.data_images)
            synthetic = next((r.get("images_per_s") for r in train  # the reference run's rate
                              if all(r[k] == v for k, v in asdict(reference).items())), None)
            results["data"] = measure_data(root, reference, device, args.workers, args.data_batches, synthetic)
    print(f"\ndevice: {results['device']}, torch {torch.__version__}\n")
    setting = ["model", "backbone", "crop", "batch_size", "precision", "channels_last", "compile"]
    print(format_table(train, setting + ["step_ms", "images_per_s", "peak_memory_gib", "train_tflop_per_step",
                                         "mfu", "error"]))
    print()
    print(format_table(results["ratios"], ["ran_vs", "ran_backbone", "crop", "precision", "channels_last", "compile",
                                           "step_time_ratio", "flop_ratio"]))
    if inference:
        print()
        print(format_table(inference, setting + ["batch_ms", "images_per_s"]))
    if results["data"]:
        print()
        print(format_table(results["data"], ["pipeline", "with_training", "images_per_s", "fraction_of_synthetic"]))
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path}")
    return 0
