"""Dense peak TFLOPS of common NVIDIA GPUs, the denominator of model-FLOP utilisation (MFU).

MFU = model FLOPs per training step / step time / the device's dense peak for the precision used. The peaks
come from the vendor datasheets below; ``python -m ranlib benchmark --peak-tflops X`` overrides them for a
GPU that is not listed.
"""

from __future__ import annotations

import torch

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


def peak_tflops(device: torch.device, precision: str) -> float | None:
    """The dense peak of this GPU for ``precision`` from ``PEAK_TFLOPS``; None on CPU or an unknown GPU."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            return peaks[precision]
    return None
