"""Data: PASCAL VOC 2012 (+ SBD for ``train_aug``), the embedded mixed-boundary dataset, paired transforms,
boundary bands, downloads and dataset checks.

Every dataset is read from the VOC folder layout by ``voc(root, split)``; see ``ranlib/data/voc.py``.
"""

from ranlib.data.bands import boundary_band, mixed_boundary_band
from ranlib.data.errors import DataError
from ranlib.data.labels import IGNORE_INDEX
from ranlib.data.mixed_boundary import ensure_mixed_boundary_dataset, make_mixed_boundary_dataset
from ranlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    make_loader,
    train_transforms,
    val_transforms,
)
from ranlib.data.voc import VOC_CLASSES, VOCSegmentation, class_names, voc

__all__ = [
    "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "VOC_CLASSES", "DataError", "VOCSegmentation",
    "boundary_band", "class_names", "denormalize", "ensure_mixed_boundary_dataset", "make_loader",
    "make_mixed_boundary_dataset", "mixed_boundary_band", "train_transforms", "val_transforms", "voc",
]
