"""SBD (Hariharan et al., "Semantic contours from inverse detectors", ICCV 2011): the extra VOC masks of ``train_aug``.

SBD ships its class masks as MATLAB files, ``benchmark_RELEASE/dataset/cls/<id>.mat``, whose struct
``GTcls.Segmentation`` holds the label map (0 background, 1..20 VOC classes, no void border). Its images are all
in VOC 2012's ``JPEGImages``, so only the masks are needed: they are converted once to palette PNGs in
``<sbd_root>/cls_png/`` and read from there like VOC's own masks. ``<sbd_root>/train.txt`` and ``val.txt`` list
SBD's splits; ``voc.train_aug_ids`` combines them with VOC's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from ranlib.data.palette import voc_palette
from ranlib.data.voc import DataError
from ranlib.progress import tqdm

FIX = "download it with `python -m ranlib download sbd --root data/` or pass sbd_root=<.../benchmark_RELEASE/dataset>"


def sbd_split(sbd_root: str | Path, split: str) -> list[str]:
    """Ids in SBD's ``train.txt`` or ``val.txt``."""
    path = Path(sbd_root) / f"{split}.txt"
    if not path.exists():
        raise DataError(f"SBD split file {path} is missing (train_aug needs SBD): {FIX}.")
    ids = path.read_text().split()
    if not ids:
        raise DataError(f"SBD split file {path} is empty; download SBD again: {FIX}.")
    return ids


def read_sbd_mat(path: Path) -> np.ndarray:
    """The class label map (H, W) uint8 stored in one SBD ``cls/<id>.mat``."""
    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
        labels = np.asarray(mat["GTcls"].Segmentation)
    except (OSError, ValueError, KeyError, AttributeError) as err:
        raise DataError(f"SBD mask {path} cannot be read as GTcls.Segmentation ({err}); download SBD again.") from err
    if labels.ndim != 2:
        raise DataError(f"SBD mask {path} holds a {labels.ndim}-D Segmentation, not a label map; download SBD again.")
    return labels.astype(np.uint8)


def sbd_mask_folder(sbd_root: str | Path, progress: bool = True) -> Path:
    """``<sbd_root>/cls_png``, holding every ``cls/*.mat`` as a palette PNG (converted on first use)."""
    sbd_root = Path(sbd_root)
    source, target = sbd_root / "cls", sbd_root / "cls_png"
    done = target / "COMPLETE"
    if done.exists():
        return target
    mats = sorted(source.glob("*.mat"))
    if not mats:
        raise DataError(f"SBD masks {source}/*.mat not found: {FIX}.")
    target.mkdir(exist_ok=True)
    palette = voc_palette()
    for mat in tqdm(mats, desc="SBD .mat -> PNG", disable=not progress):
        png = target / f"{mat.stem}.png"
        if png.exists():
            continue
        image = Image.fromarray(read_sbd_mat(mat), mode="P")
        image.putpalette(palette)
        partial = png.with_suffix(".part.png")
        image.save(partial)
        partial.replace(png)  # a cut conversion never leaves a half-written mask under the final name
    done.write_text(f"{len(mats)}\n")
    return target
