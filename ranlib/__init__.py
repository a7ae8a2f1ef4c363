"""ranlib: the Reverse Attention Network (Huang et al., BMVC 2017) for semantic segmentation.

Layout: the paper's parts at the top (``backbone``, ``heads``, ``reverse_attention``, ``model``, ``losses``),
what measures them beside them (``metrics``, ``evaluate``, ``fusion_changes``, ``attention_stats``), then
``data/`` (VOC, SBD, the embedded dataset), ``engine/`` (``fit`` and what a run needs), ``viz/`` (figures),
``course`` and ``exercises/`` (the notebooks' set-up and checks) and ``bench/`` (the speed benchmark).

The names below are imported on first use (PEP 562), so that ``python -m ranlib --help`` answers without
loading torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"RAN": "ranlib.model", "RANOutput": "ranlib.model", "ModelConfig": "ranlib.model_config",
            "build_model": "ranlib.model", "RANLoss": "ranlib.losses",
            "TrainConfig": "ranlib.engine.config", "fit": "ranlib.engine.train",
            "load_checkpoint": "ranlib.engine.checkpoint"}

__all__ = ["RAN", "RANLoss", "RANOutput", "ModelConfig", "TrainConfig", "build_model", "fit",
           "load_checkpoint"]
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ranlib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
