"""What one benchmark run measures (``RunConfig``) and the benchmark's names for its models and precisions.

Torch-free, as ``ranlib.engine.config`` is for training: the ``benchmark`` command's parser
(``ranlib.bench.cli``) takes its choices from here, so ``python -m ranlib benchmark --help`` loads no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

MODELS = ("ran", "baseline", "deeplabv3")  # deeplabv3: DeepLabv3 on RAN's backbone (ranlib.bench.throughput.build)
# The benchmark speaks of precisions, training of autocast modes (``ranlib.precision.autocast``). fp32 and tf32
# both run without autocast and differ only in whether convolutions and matmuls may use TF32 tensor cores
# (``ranlib.bench.throughput.set_tf32``); tf32 has no autocast mode of its own, hence the benchmark's own names.
AMP_OF_PRECISION = {"fp32": "off", "tf32": "off", "bf16": "bf16", "fp16": "fp16"}
PRECISIONS = tuple(AMP_OF_PRECISION)


@dataclass(frozen=True)
class RunConfig:
    model: str = "ran"  # ran | baseline (RAN's variant without the reverse branch) | deeplabv3 (torchvision's)
    backbone: str = "resnet101"  # every model's, so that the three compare like for like
    head: str = "largefov"  # RAN's CONV_org / CONV_rev structure (deeplabv3: its own ASPP head)
    crop: int = 321  # square training crop, pixels
    batch_size: int = 10
    precision: str = "bf16"  # fp32 (TF32 off) | tf32 | bf16 | fp16 (autocast; fp16 with a GradScaler)
    channels_last: bool = True  # model and images in NHWC memory format
    compile: bool = False  # torch.compile the model


def amp_of(precision: str) -> str:
    """The autocast mode that ``precision`` runs its forward passes in ("off" for fp32 and tf32)."""
    if precision not in AMP_OF_PRECISION:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return AMP_OF_PRECISION[precision]
