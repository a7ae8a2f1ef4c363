"""SBD (Hariharan et al., Semantic Boundaries Dataset) masks for DeepLab's ``train_aug`` split.

SBD's ``benchmark_RELEASE/dataset`` holds ``train.txt``, ``val.txt`` and ``cls/<id>.mat`` files whose
``GTcls.Segmentation`` field is the class-index mask (no 255 borders). They are converted once to palette PNGs
in ``cls_png/`` beside ``cls/`` and read from there afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image
from tqdm.auto import tqdm

from ranlib.data.mixed_boundary import voc_palette
from ranlib.data.voc import DataError


def sbd_split(sbd_root: Path, split: str) -> list[str]:
    """Ids in SBD's ``train.txt`` or ``val.txt``."""
    path = Path(sbd_root) / f"{split}.txt"
    if not path.exists():
        raise DataError(f"SBD split file {path} is missing: train_aug needs SBD. Run "
                        "`python -m ranlib download sbd --root data/` or pass sbd_root= the folder holding "
                        "SBD's train.txt, val.txt and cls/.")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def convert_sbd_masks(sbd_root: Path) -> Path:
    """Convert every ``cls/<id>.mat`` to ``cls_png/<id>.png`` (skipping those done) and return ``cls_png``."""
    sbd_root = Path(sbd_root)
    source, target = sbd_root / "cls", sbd_root / "cls_png"
    if not source.is_dir():
        raise DataError(f"SBD mask folder {source} is missing; run `python -m ranlib download sbd --root data/`.")
    target.mkdir(exist_ok=True)
    palette = voc_palette()
    todo = [p for p in sorted(source.glob("*.mat")) if not (target / f"{p.stem}.png").exists()]
    for path in tqdm(todo, desc="SBD .mat -> PNG", disable=not todo):
        labels = scipy.io.loadmat(path)["GTcls"]["Segmentation"][0][0].astype(np.uint8)
        mask = Image.fromarray(labels)
        mask.putpalette(palette)
        partial = target / f"{path.stem}.png.part"
        mask.save(partial, format="PNG")
        partial.rename(target / f"{path.stem}.png")  # a half-written PNG never looks finished
    return target


def sbd_mask_folder(sbd_root: Path) -> Path:
    """The folder of SBD PNG masks, converting the ``.mat`` files on first use."""
    return convert_sbd_masks(sbd_root)
