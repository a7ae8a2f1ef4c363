"""PASCAL VOC 2012 segmentation read from the VOC folder layout (``train_aug`` adds SBD's masks, see ``sbd.py``).

The same code reads real VOC (``data/VOCdevkit/VOC2012``) and the embedded mixed-boundary dataset
(``data/mixed_boundary``), which is written in that layout::

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png          palette PNG: pixel value = class index, 255 = border/void
    root/ImageSets/Segmentation/<split>.txt  one id per line
    root/classes.txt                         optional: class names, one per line (VOC's 21 when absent)

``train_aug`` is DeepLab's split (10,582 ids on the real data); ``sbd.train_aug`` assembles its ids from VOC's and
SBD's splits and says where the masks of the ids VOC lacks are. Every problem with the files raises ``DataError``
(``errors.py``) naming the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ranlib.data.errors import DataError
from ranlib.data.labels import IGNORE_INDEX
from ranlib.data.sbd import TUNING_SPLITS, default_sbd_root, split_for_tuning, train_aug

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")


def class_names(root: str | Path) -> list[str]:
    """The dataset's class names: ``root/classes.txt`` if present, else VOC's 21 classes."""
    path = Path(root) / "classes.txt"
    if path.exists():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return list(VOC_CLASSES)


def read_split(root: str | Path, split: str) -> list[str]:
    """Ids listed in ``root/ImageSets/Segmentation/<split>.txt``."""
    root = Path(root)
    check_root(root)
    path = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.exists():
        available = sorted(p.stem for p in path.parent.glob("*.txt"))
        raise DataError(f"split file {path} does not exist; splits here: {', '.join(available) or 'none'}. "
                        "Pass one of them, or write the file with one image id per line.")
    ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"split file {path} is empty; it must list one image id per line.")
    return ids


def check_root(root: Path) -> None:
    """Refuse a folder that is not in VOC layout, saying what is expected there."""
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist. Download VOC with `python -m ranlib download voc "
                        "--root data/` (root data/VOCdevkit/VOC2012) or generate the embedded dataset with "
                        "ranlib.data.ensure_mixed_boundary_dataset() (root data/mixed_boundary).")
    missing = [d for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation") if not (root / d).is_dir()]
    if missing:
        hint = ""
        if (root / "VOCdevkit" / "VOC2012").is_dir():
            hint = f" Did you mean {root / 'VOCdevkit' / 'VOC2012'}?"
        raise DataError(f"{root} is not a VOC-layout dataset root: missing {', '.join(missing)}.{hint} "
                        "Download VOC with `python -m ranlib download voc --root data/` (root "
                        "data/VOCdevkit/VOC2012) or generate the embedded dataset with "
                        "ranlib.data.ensure_mixed_boundary_dataset().")


def load_image(path: Path) -> torch.Tensor:
    """An RGB JPEG as a float tensor (3, H, W) in [0, 1]."""
    if not path.exists():
        raise DataError(f"image {path} is missing; restore it or remove its id from the split file.")
    try:
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"image {path} cannot be decoded ({err}); it is corrupt or truncated: "
                        "download or regenerate it, or remove its id from the split file.") from err
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255)  # (3, H, W)


def load_mask(path: Path, num_classes: int) -> torch.Tensor:
    """A palette (or greyscale) PNG of class indices as a long tensor (H, W); 255 stays 255."""
    if not path.exists():
        raise DataError(f"mask {path} is missing; restore it or remove its id from the split file.")
    try:
        with Image.open(path) as img:
            mode = img.mode
            array = np.asarray(img)
    except (UnidentifiedImageError, OSError) as err:
        raise DataError(f"mask {path} cannot be decoded ({err}); regenerate it.") from err
    if mode not in ("P", "L"):
        kind = f"{mode} colours" if mode.startswith("RGB") else f"mode {mode}"
        raise DataError(f"mask {path} is saved as {kind}, not class indices; save it as a palette "
                        "('P') or greyscale ('L') PNG whose pixel values are class indices 0..K-1 and 255 for void "
                        "(e.g. map each VOC colour to its index with ranlib.viz's palette).")
    bad = np.setdiff1d(np.unique(array), [*range(num_classes), IGNORE_INDEX])
    if bad.size:
        raise DataError(f"mask {path} holds values {bad.tolist()[:10]} outside 0..{num_classes - 1} and 255; "
                        f"fix the mask or the class list ({num_classes} classes: root/classes.txt, or VOC's 21 "
                        "without it).")
    return torch.from_numpy(array.astype(np.int64))  # (H, W)


class VOCSegmentation(Dataset):
    """``(image (3, H, W) float, mask (H, W) long)`` pairs of one split; see the module docstring."""

    def __init__(self, root: str | Path, split: str, transforms=None, sbd_root: str | Path | None = None):
        self.root, self.split, self.transforms = Path(root), split, transforms
        self.classes = class_names(self.root)
        self.sbd_masks: Path | None = None  # train_aug only: masks of the ids VOC lacks
        if split == "train_aug" or split in TUNING_SPLITS:
            self.ids, self.sbd_masks = train_aug(read_split(self.root, "train"), read_split(self.root, "val"),
                                                 Path(sbd_root) if sbd_root else default_sbd_root(self.root))
            if split in TUNING_SPLITS:
                self.ids = split_for_tuning(self.ids)[TUNING_SPLITS.index(split)]
        else:
            self.ids = read_split(self.root, split)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.ids)

    def paths(self, index: int) -> tuple[Path, Path]:
        """The image and mask files of sample ``index``."""
        name = self.ids[index]
        mask = self.root / "SegmentationClass" / f"{name}.png"
        if not mask.exists() and self.sbd_masks is not None:
            mask = self.sbd_masks / f"{name}.png"
        return self.root / "JPEGImages" / f"{name}.jpg", mask

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The untransformed pair, checked: both files decode and have the same size."""
        image_path, mask_path = self.paths(index)
        image, mask = load_image(image_path), load_mask(mask_path, self.num_classes)
        if image.shape[1:] != mask.shape:
            raise DataError(f"image {image_path} is {tuple(image.shape[1:])} (H, W) but mask {mask_path} is "
                            f"{tuple(mask.shape)}; they must match: re-export the mask at the image's size.")
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.load(index)
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image, mask


def voc(root: str | Path, split: str, transforms=None, sbd_root: str | Path | None = None) -> VOCSegmentation:
    """The VOC-layout dataset at ``root`` (real VOC or the embedded one) for ``split``.

    ``split``: ``train``, ``val``, ``trainval``, ``test`` (the embedded dataset) or ``train_aug`` (needs SBD at
    ``sbd_root``, by default ``<root>/../../benchmark_RELEASE/dataset``, where ``python -m ranlib download sbd``
    puts it). ``train_aug_fit`` and ``train_aug_holdout`` cut ``train_aug`` for tuning (``sbd.split_for_tuning``):
    choose on the held-out part, report on ``val``.
    """
    return VOCSegmentation(root, split, transforms, sbd_root)
