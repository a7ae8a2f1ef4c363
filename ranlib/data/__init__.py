"""Data: PASCAL VOC 2012 (+ SBD for ``train_aug``), the embedded mixed-boundary dataset, paired transforms,
boundary bands, downloads and dataset checks.

Every dataset is read from the VOC folder layout by ``voc(root, split)``; see ``ranlib/data/voc.py``.

The names below are imported from their submodule on first use (PEP 562): ``from ranlib.data.labels import
IGNORE_INDEX`` (what the loss needs) then loads neither scipy, PIL nor torchvision.
"""

from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "boundary_band": "bands", "mixed_boundary_band": "bands",
    "DataError": "errors",
    "IGNORE_INDEX": "labels",
    "ensure_mixed_boundary_dataset": "mixed_boundary", "make_mixed_boundary_dataset": "mixed_boundary",
    "IMAGENET_MEAN": "transforms", "IMAGENET_STD": "transforms", "denormalize": "transforms",
    "make_loader": "transforms", "train_transforms": "transforms", "val_transforms": "transforms",
    "VOC_CLASSES": "voc", "VOCSegmentation": "voc", "class_names": "voc", "voc": "voc",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"ranlib.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'ranlib.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Package(types.ModuleType):
    """``ranlib.data.voc`` is the function ``voc(root, split)``, although a submodule has that name too: the import
    system binds a submodule on its package when it first loads it, and this package keeps its export instead."""

    def __setattr__(self, name: str, value) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
