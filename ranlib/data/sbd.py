"""SBD (Hariharan et al., "Semantic contours from inverse detectors", ICCV 2011): the extra VOC masks of ``train_aug``.

SBD ships its class masks as MATLAB files, ``benchmark_RELEASE/dataset/cls/<id>.mat``, whose struct
``GTcls.Segmentation`` holds the label map (0 background, 1..20 VOC classes, no void border). Its images are all
in VOC 2012's ``JPEGImages``, so only the masks are needed: they are converted once to palette PNGs in
``<sbd_root>/cls_png/`` and read from there like VOC's own masks. ``<sbd_root>/train.txt`` and ``val.txt`` list
SBD's splits; ``train_aug`` combines them with VOC's into DeepLab's ``train_aug`` split, which
``ranlib.data.voc(root, "train_aug")`` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from ranlib.data.errors import DataError
from ranlib.data.palette import voc_palette
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


def default_sbd_root(voc_root: Path) -> Path:
    """SBD's folder beside a VOC root ``<data>/VOCdevkit/VOC2012``: ``<data>/benchmark_RELEASE/dataset``, where
    ``python -m ranlib download sbd`` puts it."""
    return voc_root.resolve().parent.parent / "benchmark_RELEASE" / "dataset"


def train_aug_ids(voc_train: list[str], voc_val: list[str], sbd_train: list[str], sbd_val: list[str]) -> list[str]:
    """DeepLab's ``train_aug``: VOC train + SBD train + SBD val, minus VOC val, sorted."""
    return sorted((set(voc_train) | set(sbd_train) | set(sbd_val)) - set(voc_val))


TUNING_HOLDOUT = 0.1  # share of train_aug held out to choose a recipe on VOC (VOC's val is then the test split)
TUNING_SPLITS = ("train_aug_fit", "train_aug_holdout")


def split_for_tuning(ids: list[str], holdout: float | int = TUNING_HOLDOUT,
                     seed: int = 0) -> tuple[list[str], list[str]]:
    """``train_aug`` cut for tuning: ``(fit, holdout)``. ``holdout`` is a share of the ids (a float; 10 %: 1,058 of
    the real train_aug's 10,582) or a count (an int), at least one id, drawn by a seeded permutation; both lists
    keep the order of ``ids``. Choose the learning rate (or anything else) by training on ``train_aug_fit`` and scoring
    on ``train_aug_holdout``; then train on all of ``train_aug`` and report VOC's ``val``, which the choice never
    saw."""
    count = holdout if isinstance(holdout, int) else max(1, round(holdout * len(ids)))
    order = np.random.default_rng(seed).permutation(len(ids))
    held = set(order[:count].tolist())
    return ([i for k, i in enumerate(ids) if k not in held], [i for k, i in enumerate(ids) if k in held])


def train_aug(voc_train: list[str], voc_val: list[str], sbd_root: str | Path) -> tuple[list[str], Path]:
    """The ids of ``train_aug`` given VOC's train and val ids, and the folder of SBD's masks (as PNGs) for the ids
    whose mask VOC lacks. Raises ``DataError`` when SBD is not at ``sbd_root``."""
    ids = train_aug_ids(voc_train, voc_val, sbd_split(sbd_root, "train"), sbd_split(sbd_root, "val"))
    return ids, sbd_mask_folder(sbd_root)
