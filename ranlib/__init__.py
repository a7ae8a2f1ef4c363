"""ranlib: the Reverse Attention Network (Huang et al., BMVC 2017) for semantic segmentation.

The names below are imported on first use (PEP 562), so that ``python -m ranlib --help`` answers without
loading torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"RAN": "ranlib.model", "RANOutput": "ranlib.model", "ModelConfig": "ranlib.model",
            "build_model": "ranlib.model", "RANLoss": "ranlib.losses"}

__all__ = ["RAN", "RANLoss", "RANOutput", "ModelConfig", "build_model"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ranlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
