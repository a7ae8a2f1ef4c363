"""Timed training and inference steps on a fixed synthetic batch: images/s, peak memory, FLOPs and MFU.

Three models under the same batch, crop and precision: RAN, its ``baseline`` variant (plain DeepLab) and
torchvision's ``deeplabv3_resnet101`` (no weights, 21 classes). How it measures: warm-up steps excluded,
the device synchronised around every timed repeat, the median of the repeats reported. FLOPs come from
``torch.utils.flop_counter.FlopCounterMode`` on one real training step of the eager model (a multiply-add
counts 2; forward and backward); MFU divides them by the step time and ``ranlib.bench.gpu_specs``' peak.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ranlib.bench.gpu_specs import peak_tflops
from ranlib.data import IGNORE_INDEX
from ranlib.losses import RANLoss
from ranlib.model import build_model
from ranlib.precision import autocast

MODELS = ("ran", "baseline", "deeplabv3")  # deeplabv3 = torchvision's deeplabv3_resnet101, the reference
# Each precision's autocast mode (``ranlib.precision.autocast``): fp32 and tf32 run without autocast, and differ
# only in whether convolutions and matmuls may use TF32 tensor cores (``set_tf32``).
AMP_OF_PRECISION = {"fp32": "off", "tf32": "off", "bf16": "bf16", "fp16": "fp16"}
PRECISIONS = tuple(AMP_OF_PRECISION)


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
    loss = F.cross_entropy(output["out"].float(), masks, ignore_index=IGNORE_INDEX)
    return loss, {"fused": loss}


def amp_of(precision: str) -> str:
    """The autocast mode that ``precision`` runs its forward passes in ("off" for fp32 and tf32)."""
    if precision not in AMP_OF_PRECISION:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return AMP_OF_PRECISION[precision]


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 tensor cores for convolutions and matmuls, for the rest of the process (CUDA only).

    Each measurement sets it from its precision: off for "fp32", on otherwise (PyTorch's default for cuDNN).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_train_step(model: nn.Module, loss_fn: Callable, precision: str, device: torch.device,
                    compile: bool = False) -> Callable:
    """One training step ``step(images, masks) -> loss``: forward, loss, backward, SGD update.

    The step of ``ranlib.engine.train.fit`` (which has no separate step function): autocast around the forward
    only, the loss outside it, ``torch.compile`` on the model only, SGD with momentum 0.9 and weight decay
    5e-4, fp16 through a GradScaler. Unlike ``fit`` it reads no ``.item()`` per step, so nothing waits on
    the device inside the step. The learning rate does not change the cost, so it is fixed.
    """
    amp = amp_of(precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    forward = torch.compile(model) if compile else model

    def step(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
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
    """Random ImageNet-normalised-like images (B, 3, S, S) and labels (B, S, S) with some ignored pixels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(config.batch_size, 3, config.crop, config.crop, generator=g)
    masks = torch.randint(0, 21, (config.batch_size, config.crop, config.crop), generator=g)
    masks[:, :, : config.crop // 16] = IGNORE_INDEX  # a padded strip, as random crops produce
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
        with autocast(device, amp_of(config.precision)):
            out = model(images)
            return out["out"] if isinstance(out, dict) else F.interpolate(
                out.fused, size=images.shape[-2:], mode="bilinear", align_corners=False)
    seconds = median_seconds(forward, device, warmup, repeats, iters)
    return {**asdict(config), "batch_ms": 1e3 * seconds, "images_per_s": config.batch_size / seconds}


def count_train_flops(config: RunConfig) -> int:
    """FLOPs of one training step of ``config`` counted on the meta device (shapes only, nothing computed)."""
    device = torch.device("meta")
    model, loss_fn = build(config, device)
    step = make_train_step(model.train(), loss_fn, "fp32", device)
    with FlopCounterMode(display=False) as counter:
        step(*synthetic_batch(config, device))
    return counter.get_total_flops()
