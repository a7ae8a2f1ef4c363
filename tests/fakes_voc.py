"""Small synthetic archives laid out exactly like PASCAL VOC 2012's ``VOCtrainval_11-May-2012.tar`` and SBD's
``benchmark.tgz``, and torchvision-format ImageNet weight files, for rehearsing the full course offline.

VOC: ``VOCdevkit/VOC2012/{Annotations, ImageSets/{Main,Segmentation}, JPEGImages, SegmentationClass,
SegmentationObject}``; 500x375 JPEGs, palette PNG masks whose objects have a 255 (void) border, the split files.
SBD: ``benchmark_RELEASE/dataset/{cls, inst, img}`` and ``train.txt`` / ``val.txt``; each ``cls/<id>.mat`` holds
the struct ``GTcls`` with ``Boundaries`` (one sparse map per class), ``Segmentation`` and ``CategoriesPresent``,
as SBD's MATLAB files do. Every image of SBD is also in VOC's JPEGImages, as in the real data.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse
import torch
from PIL import Image, ImageDraw

from ranlib.data.palette import voc_palette

# VOC segmentation train / val, SBD train / val. train_aug = VOC train + SBD train + SBD val - VOC val.
VOC_TRAIN = ["2007_000032", "2007_000039", "2008_000002", "2008_000003"]
VOC_VAL = ["2007_000033", "2008_000009"]
SBD_TRAIN = ["2007_000032", "2008_000015", "2008_000019", "2008_000023"]  # one id also in VOC train
SBD_VAL = ["2008_000009", "2008_000026"]  # one id in VOC val: it must stay out of train_aug
TRAIN_AUG = sorted({*VOC_TRAIN, *SBD_TRAIN, *SBD_VAL} - set(VOC_VAL))
SIZE = (500, 375)  # (W, H) of a typical VOC image


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) and its class map (H, W): two touching objects on a textured background."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    labels = Image.new("L", SIZE, 0)
    draw = ImageDraw.Draw(labels)
    classes = rng.choice(np.arange(1, 21), size=2, replace=False)
    x0, y0 = int(rng.integers(40, 160)), int(rng.integers(40, 120))
    draw.ellipse([x0, y0, x0 + 200, y0 + 180], fill=int(classes[0]))
    draw.rectangle([x0 + 150, y0 + 40, x0 + 320, y0 + 230], fill=int(classes[1]))  # overlaps: a mixed boundary
    labels = np.asarray(labels)
    colours = rng.integers(30, 225, (21, 3))
    image = colours[labels] + rng.normal(0, 12, (h, w, 3))
    return np.clip(image, 0, 255).astype(np.uint8), labels


def with_void_border(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """VOC's masks: 255 on a band of ``width`` pixels along every boundary between two labels."""
    padded = np.pad(labels, width, mode="edge")
    h, w = labels.shape
    border = np.zeros_like(labels, dtype=bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            border |= padded[width + dy:width + dy + h, width + dx:width + dx + w] != labels
    return np.where(border, 255, labels).astype(np.uint8)


def png(array: np.ndarray, palette: bool = True) -> bytes:
    image = Image.fromarray(array, mode="P" if palette else "L")
    if palette:
        image.putpalette(voc_palette())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def sbd_mat(labels: np.ndarray) -> bytes:
    """SBD's ``cls/<id>.mat``: struct GTcls {Boundaries (20x1 cell of sparse), Segmentation, CategoriesPresent}."""
    boundaries = np.empty((20, 1), dtype=object)
    for c in range(20):
        edge = (labels == c + 1) & (with_void_border(labels, 1) == 255)
        boundaries[c, 0] = scipy.sparse.csc_matrix(edge.astype(np.uint8))
    present = np.unique(labels[labels > 0]).astype(np.uint8)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"GTcls": {"Boundaries": boundaries, "Segmentation": labels,
                                        "CategoriesPresent": present}})
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        folders = sorted({str(Path(name).parents[i]) for name in members for i in range(len(Path(name).parents) - 1)})
        for folder in folders:  # directory entries first, as tar -c writes them
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def voc_and_sbd_archives(folder: Path) -> dict[str, Path]:
    """Write ``VOCtrainval_11-May-2012.tar`` and ``benchmark.tgz`` into ``folder``; returns {"voc": ..., "sbd": ...}."""
    voc, sbd = "VOCdevkit/VOC2012", "benchmark_RELEASE/dataset"
    ids = sorted({*VOC_TRAIN, *VOC_VAL, *SBD_TRAIN, *SBD_VAL})
    voc_members, sbd_members = {}, {}
    for seed, name in enumerate(ids):
        image, labels = scene(seed)
        voc_members[f"{voc}/JPEGImages/{name}.jpg"] = jpeg(image)
        annotation = f"<annotation><filename>{name}.jpg</filename></annotation>"
        voc_members[f"{voc}/Annotations/{name}.xml"] = annotation.encode()
        if name in VOC_TRAIN or name in VOC_VAL:
            voc_members[f"{voc}/SegmentationClass/{name}.png"] = png(with_void_border(labels))
            voc_members[f"{voc}/SegmentationObject/{name}.png"] = png(with_void_border((labels > 0) * (1 + labels % 2)))
        if name in SBD_TRAIN or name in SBD_VAL:
            sbd_members[f"{sbd}/cls/{name}.mat"] = sbd_mat(labels)
            sbd_members[f"{sbd}/inst/{name}.mat"] = sbd_mat(labels)
            sbd_members[f"{sbd}/img/{name}.jpg"] = voc_members[f"{voc}/JPEGImages/{name}.jpg"]
    splits = {"train": VOC_TRAIN, "val": VOC_VAL, "trainval": sorted(VOC_TRAIN + VOC_VAL)}
    for split, names in splits.items():
        voc_members[f"{voc}/ImageSets/Segmentation/{split}.txt"] = "".join(f"{n}\n" for n in names).encode()
        voc_members[f"{voc}/ImageSets/Main/{split}.txt"] = "".join(f"{n}\n" for n in names).encode()
    sbd_members[f"{sbd}/train.txt"] = "".join(f"{n}\n" for n in SBD_TRAIN).encode()
    sbd_members[f"{sbd}/val.txt"] = "".join(f"{n}\n" for n in SBD_VAL).encode()
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"voc": folder / "VOCtrainval_11-May-2012.tar", "sbd": folder / "benchmark.tgz"}
    paths["voc"].write_bytes(tar_bytes(voc_members, "w"))
    paths["sbd"].write_bytes(tar_bytes(sbd_members, "w:gz"))
    return paths


def imagenet_weight_file(torch_home: Path, weights) -> Path:
    """Random weights saved under the file name torchvision's ``weights`` (e.g. ResNet50_Weights.IMAGENET1K_V1)
    downloads to, in ``<torch_home>/hub/checkpoints``: torchvision then loads it without a network."""
    import torchvision

    builder = {"ResNet18_Weights": torchvision.models.resnet18, "ResNet50_Weights": torchvision.models.resnet50,
               "ResNet101_Weights": torchvision.models.resnet101}[type(weights).__name__]
    path = torch_home / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = builder()
    for module in model.modules():  # non-trivial BN statistics, so that loading them can be recognised
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), path)
    return path
