"""The device to run on, the mixed precision it runs natively, and the one autocast context.

bf16 has tensor-core support only from compute capability 8.0 (Ampere: A100, RTX 30xx; Hopper: H100). Turing
(compute capability 7.5, e.g. Colab's T4) and Volta run fp16 natively and emulate bf16, although
``torch.cuda.is_bf16_supported()`` counts that emulation and returns True there. fp16 needs a loss scale
(``torch.amp.GradScaler``); bf16 has fp32's exponent range and needs none. A CPU trains in fp32.

Training, evaluation and the benchmark all run their forward passes inside ``autocast(device, amp)``.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ranlib.model_config import AMP_CHOICES, ConfigError, check_choice


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device called ``name``; for "auto" (or None) CUDA when it is available, else the CPU. A device this
    machine lacks is refused (``check_device``)."""
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(str(name))
    return torch.device(name)


def check_device(name: str) -> None:
    """Refuse a device this machine does not have (cuda:N against the number of CUDA devices too)."""
    kind, _, index = name.partition(":")
    if kind == "cuda":
        count = torch.cuda.device_count()  # 0 without a driver; initialises nothing
        if count == 0:
            raise ConfigError("device", name, "cpu or auto: this machine has no CUDA device (no NVIDIA GPU or driver "
                              "that torch can use)")
        if index and int(index) >= count:
            indices = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ConfigError("device", name, f"{indices}, cuda, cpu or auto: this machine has {count} CUDA "
                              f"device{'s' if count > 1 else ''}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", name, "cpu or auto: this machine has no MPS (Apple GPU) device")


def amp_for_device(device: str | torch.device) -> str:
    """The precision to train in on ``device``: "bf16" from compute capability 8.0, "fp16" below, "off" on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return "off"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def resolve_amp(amp: str, device: str | torch.device) -> str:
    """``amp`` itself, or the device's native precision when ``amp`` is "auto"."""
    check_choice("amp", amp, AMP_CHOICES)
    return amp_for_device(device) if amp == "auto" else amp


def autocast(device: str | torch.device, amp: str):
    """The one mixed-precision context: ``torch.autocast`` to bf16 or fp16 on CUDA and CPU alike; for "off" a
    no-op (``nullcontext``, which also works on the meta device)."""
    if amp == "auto":
        raise ValueError("autocast needs a resolved precision: pass resolve_amp('auto', device)")
    check_choice("amp", amp, AMP_CHOICES)
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp == "off":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtypes[amp])
