"""The precision rule: bf16 only where the GPU has bf16 tensor cores (compute capability >= 8.0)."""

import pytest
import torch

from ranlib.precision import amp_for_device, resolve_amp


@pytest.mark.parametrize(("name", "capability", "expected"), [
    ("Tesla T4", (7, 5), "fp16"),
    ("Tesla V100-SXM2-16GB", (7, 0), "fp16"),
    ("NVIDIA A100-SXM4-40GB", (8, 0), "bf16"),
    ("NVIDIA L4", (8, 9), "bf16"),
    ("NVIDIA H100 80GB HBM3", (9, 0), "bf16"),
])
def test_amp_follows_the_compute_capability(monkeypatch, name, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # A T4 reports bf16 "supported" (emulated); the rule must not listen to that.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp_for_device("cuda") == expected, name
    assert resolve_amp("auto", "cuda:0") == expected


def test_cpu_trains_in_fp32_and_explicit_choices_stay():
    assert amp_for_device("cpu") == "off"
    assert resolve_amp("auto", "cpu") == "off"
    assert resolve_amp("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="amp must be one of"):
        resolve_amp("fp8", "cpu")
