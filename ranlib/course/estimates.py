"""How long a course run takes on a GPU, estimated: counted FLOPs over the datasheet peak at an assumed
utilisation, or the CPU loader's time if longer. No GPU has run the course; ``python -m ranlib.course`` prints the
modes' table (docs/results.md)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

import torch

from ranlib.bench.gpu_specs import PEAK_TFLOPS
from ranlib.bench.throughput import RunConfig, count_train_flops
from ranlib.course.modes import MODES, device
from ranlib.engine.config import TrainConfig

VAL_IMAGES = 1449  # VOC 2012 val, for the estimate
VAL_PIXELS = 500 * 375  # a typical VOC image
# Model-FLOP utilisation assumed for the estimates (not measured: no GPU has run this code yet). A T4 is a
# 70 W card whose clocks drop under sustained load; the larger cards reach more of their peak.
ASSUMED_UTILISATION = {"T4": (0.08, 0.15), "default": (0.20, 0.40)}
# The CPU loader bounds a fast GPU: decoding a 500x375 JPEG and augmenting it to a 321 px crop took 29 ms on one
# thread of an Intel Xeon (2 cores, load 4: measured under load), about 34 images/s per vCPU. Colab gives a T4
# 2 vCPUs; the bigger cards are assumed to come with 8.
LOADER_IMAGES_PER_S_PER_CPU = 34
ASSUMED_CPUS = {"T4": 2, "default": 8}


@lru_cache(maxsize=32)
def train_tflop_per_step(backbone: str, head: str, variant: str, crop_size: int, batch_size: int) -> float:
    """Counted TFLOP of one training step (forward and backward), on the meta device: seconds, any machine."""
    model = "baseline" if variant == "baseline" else "ran"  # subtract has RAN's two heads, hence its FLOPs
    run = RunConfig(model=model, backbone=backbone, head=head, crop=crop_size, batch_size=batch_size,
                    precision="fp32", channels_last=False)
    return count_train_flops(run) / 1e12


class Estimate(NamedTuple):
    gpu: str  # the key of ranlib.bench.gpu_specs.PEAK_TFLOPS
    precision: str  # fp16 | bf16
    minutes: tuple[float, float]  # (fast, slow) at the high and low assumed utilisation
    tflop: float  # counted: training steps plus evaluations


def estimate(config: TrainConfig, gpu: str) -> Estimate:
    """How long ``config`` trains on ``gpu`` (a ``PEAK_TFLOPS`` key such as "T4"): counted FLOPs over the
    datasheet peak at ``ASSUMED_UTILISATION``, or the CPU loader's time if longer. An estimate, not a measurement."""
    precision = "fp16" if gpu == "T4" else "bf16"  # the T4 is compute capability 7.5: no native bf16
    peak = PEAK_TFLOPS[gpu][precision]
    step = train_tflop_per_step(config.backbone, config.head, config.variant, config.crop_size, config.batch_size)
    evaluations = config.iterations // config.eval_every if config.eval_every else 0
    evaluations += config.eval_every == 0 or config.iterations % config.eval_every != 0  # the final one
    forward_per_image = step / 3 / config.batch_size * VAL_PIXELS / config.crop_size ** 2  # backward ~ 2x forward
    tflop = step * config.iterations + evaluations * VAL_IMAGES * forward_per_image
    low, high = ASSUMED_UTILISATION.get(gpu, ASSUMED_UTILISATION["default"])
    cpus = ASSUMED_CPUS.get(gpu, ASSUMED_CPUS["default"])
    loader_s = config.iterations * config.batch_size / (LOADER_IMAGES_PER_S_PER_CPU * cpus)
    fast, slow = (max(tflop / (peak * u), loader_s) / 60 for u in (high, low))
    return Estimate(gpu, precision, (fast, slow), tflop)


def gpu_key(dev: torch.device | None = None) -> str | None:
    """The ``PEAK_TFLOPS`` key of this machine's GPU, None on a CPU or an unlisted GPU."""
    dev = dev or device()
    if dev.type != "cuda":
        return None
    name = torch.cuda.get_device_name(dev)
    return next((key for key in PEAK_TFLOPS if key in name), None)


def estimate_text(config: TrainConfig, dev: torch.device | None = None) -> str:
    """One line for the notebook before a run starts: how long it will take on this GPU (estimated)."""
    what = f"training {config.variant}: {config.iterations} iterations of {config.batch_size} x {config.crop_size} px"
    key = gpu_key(dev)
    if key is None:
        return f"{what} on {dev or device()} (no estimate for this device; quick mode takes minutes on a CPU)"
    est = estimate(config, key)
    return (f"{what}: about {est.minutes[0]:.0f}-{est.minutes[1]:.0f} min on this {key} (estimated from "
            f"{est.tflop / 1e3:.1f} counted PFLOP at an assumed utilisation, not measured)")


def minutes_range(fast: float, slow: float) -> str:
    """Estimated minutes as printed: "3-6", or "2" when both ends round to the same minute."""
    low, high = f"{fast:.0f}", f"{slow:.0f}"
    return low if low == high else f"{low}-{high}"


def modes_table() -> str:
    """The modes as a Markdown table: each one's budget and estimated minutes per variant on each listed GPU."""
    gpus = ("T4", "L4", "A100", "H100")
    lines = ["| mode | backbone | data | crop x batch | iterations | " + " | ".join(
        f"{g} min/variant (est.)" for g in gpus) + " |", "|---" * (5 + len(gpus)) + "|"]
    for mode in ("colab", "paper"):
        config = replace(MODES[mode], variant="ran")
        cells = [minutes_range(*estimate(config, g).minutes) for g in gpus]
        lines.append(f"| {mode} | {config.backbone} ({config.weights_backbone}) | VOC {config.train_split} | "
                     f"{config.crop_size} x {config.batch_size} | {config.iterations:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
