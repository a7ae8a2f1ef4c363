"""Timed training and inference steps on a fixed synthetic batch: images/s, peak memory, FLOPs and MFU.

Three models on the same backbone under the same batch, crop and precision: RAN, its ``baseline`` variant (plain
DeepLab) and DeepLabv3 (``deeplabv3``: torchvision's ``deeplabv3_resnet50/101`` on those backbones, torchvision's
DeepLabv3 head on ranlib's backbone on the others; no weights, 21 classes). The training step timed is ``fit``'s own,
``ranlib.engine.train.train_step``, fed the same synthetic batch every time. How it measures: warm-up steps
excluded, the device synchronised around every timed repeat, the median of the repeats reported. FLOPs come
from ``torch.utils.flop_counter.FlopCounterMode`` on one real training step of the eager model (a multiply-add
counts 2; forward and backward); MFU divides them by the step time and ``ranlib.bench.gpu_specs``' peak.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

from ranlib.backbone import build_backbone
from ranlib.bench.config import MODELS, RunConfig, amp_of
from ranlib.bench.gpu_specs import peak_tflops
from ranlib.data import IGNORE_INDEX
from ranlib.engine.step import StepResult, StepSetup, train_step
from ranlib.losses import RANLoss
from ranlib.model import build_model
from ranlib.precision import autocast


def memory_format_of(config: RunConfig) -> torch.memory_format:
    """NHWC (``torch.channels_last``) when ``config.channels_last``, else NCHW."""
    return torch.channels_last if config.channels_last else torch.contiguous_format


# torchvision's own DeepLabv3 models, by backbone; on any other backbone the benchmark composes one (deeplabv3_on).
TORCHVISION_DEEPLABV3 = {"resnet50": torchvision.models.segmentation.deeplabv3_resnet50,
                         "resnet101": torchvision.models.segmentation.deeplabv3_resnet101}


class FeaturesAsDict(nn.Module):
    """A ranlib backbone answering as torchvision's segmentation models expect: ``{"out": (B, C, H/8, W/8)}``."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.body = backbone

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": self.body(images)}


def deeplabv3_on(backbone: str, num_classes: int = 21) -> DeepLabV3:
    """torchvision's DeepLabv3 (its ``DeepLabV3`` model and ``DeepLabHead``: ASPP with image pooling) on ranlib's
    dilated ``backbone``, so that RAN is compared with DeepLabv3 on the same features. On ResNet-50/101 it is
    torchvision's ``deeplabv3_resnet50/101`` layer for layer (tested); no weights."""
    features = build_backbone(backbone)
    return DeepLabV3(FeaturesAsDict(features), DeepLabHead(features.out_channels, num_classes))


def build(config: RunConfig, device: torch.device) -> tuple[nn.Module, Callable]:
    """The model of ``config`` on ``device`` and its loss ``(output, masks) -> (total, parts)``."""
    if config.model == "deeplabv3":  # on RAN's backbone: torchvision's own model where it has one
        if config.backbone in TORCHVISION_DEEPLABV3:
            model = TORCHVISION_DEEPLABV3[config.backbone](weights=None, weights_backbone=None, num_classes=21)
        else:
            model = deeplabv3_on(config.backbone)
        criterion = deeplabv3_loss
    elif config.model in ("ran", "baseline"):
        model = build_model(config.backbone, config.head, config.model, num_classes=21)
        criterion = RANLoss()
    else:
        raise ValueError(f"unknown model {config.model!r}; choose one of {', '.join(MODELS)}")
    return model.to(device, memory_format=memory_format_of(config)), criterion


def deeplabv3_loss(output: dict[str, torch.Tensor], masks: torch.Tensor):
    """Cross-entropy on torchvision's full-resolution ``output["out"]``, shaped like ``RANLoss``'s result."""
    loss = F.cross_entropy(output["out"].float(), masks, ignore_index=IGNORE_INDEX)
    return loss, {"fused": loss}


def set_tf32(enabled: bool) -> None:
    """Allow or forbid TF32 tensor cores for convolutions and matmuls, for the rest of the process (CUDA only).

    Each measurement sets it from its precision: off for "fp32", on otherwise (PyTorch's default for cuDNN).
    """
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def make_train_step(model: nn.Module, criterion: Callable, precision: str, device: torch.device,
                    compile: bool = False,
                    memory_format: torch.memory_format = torch.contiguous_format) -> Callable[[Iterator], StepResult]:
    """``step(batches) -> StepResult``: ``fit``'s optimisation step (``ranlib.engine.train.train_step``) on the
    next ``(images, masks)`` of ``batches``, with an optimiser and loss scaler of its own.

    SGD with momentum 0.9 and weight decay 5e-4 as in ``fit``, at one fixed learning rate (it does not change
    the cost); fp16 through a GradScaler; ``torch.compile`` on the model only. ``criterion(output, masks)``
    returns ``(loss, parts)`` (``RANLoss``, ``deeplabv3_loss``). The step leaves its losses on the device and
    reads nothing back, so nothing waits on the device inside it (except fp16's GradScaler, which checks the
    gradients for inf as it does in ``fit``).
    """
    amp = amp_of(precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    forward = torch.compile(model) if compile else model
    setup = StepSetup(forward, criterion, optimizer, scaler, device, amp, memory_format)

    def step(batches: Iterator) -> StepResult:
        return train_step(setup, batches)
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
    return images.to(device, memory_format=memory_format_of(config)), masks.to(device)


def measure_training(config: RunConfig, device: torch.device, warmup: int = 3, repeats: int = 5,
                     iters: int = 10, peak: float | None = None) -> dict:
    """Train on one fixed synthetic batch; a row with step time, images/s, peak memory, FLOPs and MFU.

    The first step runs under ``FlopCounterMode`` on the eager model (it also warms up); the model is
    compiled after that when ``config.compile``. ``peak`` (TFLOPS) overrides the ``PEAK_TFLOPS`` table.
    """
    set_tf32(config.precision != "fp32")
    model, criterion = build(config, device)
    model.train()
    batches = itertools.repeat(synthetic_batch(config, device))  # the same batch every step
    step = make_train_step(model, criterion, config.precision, device, memory_format=memory_format_of(config))
    with FlopCounterMode(display=False) as counter:
        step(batches)
    flops = counter.get_total_flops()
    if config.compile:
        step = make_train_step(model, criterion, config.precision, device, True, memory_format_of(config))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = median_seconds(lambda: step(batches), device, warmup, repeats, iters)
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
    model, criterion = build(config, device)
    step = make_train_step(model.train(), criterion, "fp32", device)
    with FlopCounterMode(display=False) as counter:
        step(itertools.repeat(synthetic_batch(config, device)))
    return counter.get_total_flops()
