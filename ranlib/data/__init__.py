"""Data: PASCAL VOC 2012 + SBD, the embedded mixed-boundary dataset, transforms, and boundary bands."""

from ranlib.data.bands import boundary_band, mixed_boundary_band
from ranlib.data.mixed_boundary import (
    CLASSES as MIXED_BOUNDARY_CLASSES,
)
from ranlib.data.mixed_boundary import (
    ensure_mixed_boundary_dataset,
    make_mixed_boundary_dataset,
    voc_palette,
)
from ranlib.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    make_loader,
    train_transforms,
    val_transforms,
)
from ranlib.data.voc import VOC_CLASSES, DataError, VOCSegmentation, class_names, train_aug_ids, voc

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "MIXED_BOUNDARY_CLASSES", "VOC_CLASSES", "DataError", "VOCSegmentation",
    "boundary_band", "class_names", "denormalize", "ensure_mixed_boundary_dataset", "make_loader",
    "make_mixed_boundary_dataset", "mixed_boundary_band", "train_aug_ids", "train_transforms", "val_transforms",
    "voc", "voc_palette",
]
