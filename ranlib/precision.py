"""Which mixed precision a device runs natively.

bf16 has tensor-core support only from compute capability 8.0 (Ampere: A100, RTX 30xx; Hopper: H100). Turing
(compute capability 7.5, e.g. Colab's T4) and Volta run fp16 natively and emulate bf16, although
``torch.cuda.is_bf16_supported()`` counts that emulation and returns True there. fp16 needs a loss scale
(``torch.amp.GradScaler``); bf16 has fp32's exponent range and needs none. A CPU trains in fp32.
"""

from __future__ import annotations

import torch

AMP_CHOICES = ("auto", "off", "bf16", "fp16")


def amp_for_device(device: str | torch.device) -> str:
    """The precision to train in on ``device``: "bf16" from compute capability 8.0, "fp16" below, "off" on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return "off"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def resolve_amp(amp: str, device: str | torch.device) -> str:
    """``amp`` itself, or the device's native precision when ``amp`` is "auto"."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, not {amp!r}")
    return amp_for_device(device) if amp == "auto" else amp
