"""Data-pipeline benchmark: the CPU loader with N workers against ``ranlib.bench.gpu_loader``, and training fed by each.

The images are VOC-sized JPEGs (500 x 375 by default) written by ``write_voc_jpegs`` into a VOC-layout
folder, so no download is needed; ``--data-root`` points the benchmark at real VOC instead. Rates are
images/s after the first batches (worker start-up, cuDNN autotuning) are excluded; the device is
synchronised before the clock is read. "Fed" training runs ``fit``'s training step
(``ranlib.bench.throughput.make_train_step``) on the loader's batches, to compare with the synthetic-tensor
rate of ``ranlib.bench.throughput.measure_training``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import encode_jpeg

from ranlib.bench.config import RunConfig
from ranlib.bench.gpu_loader import GPULoader
from ranlib.bench.throughput import build, make_train_step, memory_format_of, set_tf32, synchronize
from ranlib.data import make_loader, train_transforms, voc
from ranlib.engine.train import StepResult


def write_voc_jpegs(root: str | Path, n: int, size: tuple[int, int] = (375, 500), num_classes: int = 21,
                    quality: int = 90, seed: int = 0) -> Path:
    """Write ``n`` synthetic (H, W) = ``size`` JPEGs and palette-PNG masks as VOC's ``train`` split.

    Each image has a smooth background, a few filled ellipses of random classes and mild noise (so its JPEG
    size and decode cost are photo-like rather than those of a flat image); masks carry the ellipses' class
    indices and a 255 band on their borders, as VOC's do. Returns ``root``.
    """
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    ids = [f"{i:06d}" for i in range(n)]
    for name in ids:
        image = (rng.uniform(40, 200, 3)[:, None, None] + 40 * np.sin(xx / rng.uniform(20, 80))
                 * np.cos(yy / rng.uniform(20, 80)))  # (3, H, W)
        mask = np.zeros((h, w), np.uint8)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)  # centre
            ry, rx = rng.uniform(h / 12, h / 2), rng.uniform(w / 12, w / 2)  # radii
            r = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2  # (H, W), < 1 inside the ellipse
            label = rng.integers(1, num_classes)
            image[:, r < 1] = rng.uniform(0, 255, 3)[:, None]
            mask[r < 1] = label
            mask[(r >= 0.9) & (r < 1.1)] = 255  # VOC's "void" border
        image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(
            encode_jpeg(torch.from_numpy(image), quality=quality).numpy().tobytes())
        png = Image.fromarray(mask, mode="P")
        png.putpalette(palette.tobytes())
        png.save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def images_per_second(batches: Iterable, device: torch.device, skip: int, count: int,
                      step: Callable[[Iterator], StepResult] | None = None) -> float:
    """Images/s over ``count`` batches after ``skip`` batches, cycling ``batches`` (an epoch iterable).

    ``step`` (``ranlib.bench.throughput.make_train_step``) takes each batch from the stream and trains on it;
    without it the batches are only made and moved to ``device``.
    """
    stream = itertools.chain.from_iterable(itertools.repeat(batches))  # epoch after epoch
    seen = 0
    for i in range(skip + count):
        if i == skip:
            synchronize(device)
            start, seen = time.perf_counter(), 0
        if step is None:
            images, masks = next(stream)
            images.to(device, non_blocking=True)  # the copy that a training step makes
            masks.to(device, non_blocking=True)
            seen += images.shape[0]
        else:
            seen += step(stream).images
    synchronize(device)
    return seen / (time.perf_counter() - start)


def cpu_loader(root: str | Path, crop: int, batch_size: int, workers: int):
    """The CPU path: ``ranlib.data.voc`` with ``train_transforms`` in a ``make_loader`` DataLoader."""
    dataset = voc(root, "train", transforms=train_transforms(crop))
    return make_loader(dataset, batch_size, shuffle=True, drop_last=True, num_workers=workers)


def measure_data(root: str | Path, config: RunConfig, device: torch.device, workers: int,
                 batches: int = 10, synthetic_images_per_s: float | None = None) -> list[dict]:
    """Rows: loader-only and training-fed images/s for the CPU loader and the GPU loader on ``device``.

    ``synthetic_images_per_s``, the training rate on synthetic tensors for ``config``, adds each fed rate's
    fraction of it (the GPU path's target is >= 0.9).
    """
    loaders = {f"cpu loader ({workers} workers)": cpu_loader(root, config.crop, config.batch_size, workers),
               f"gpu_loader on {device.type}": GPULoader(root, "train", config.batch_size, config.crop,
                                                         device=device)}
    set_tf32(config.precision != "fp32")
    rows = []
    for name, loader in loaders.items():
        rate = images_per_second(loader, device, skip=2, count=batches)
        rows.append({"pipeline": name, "with_training": False, "images_per_s": rate})
        model, criterion = build(config, device)
        step = make_train_step(model.train(), criterion, config.precision, device, config.compile,
                               memory_format_of(config))
        rate = images_per_second(loader, device, skip=2, count=batches, step=step)
        fraction = rate / synthetic_images_per_s if synthetic_images_per_s else None
        rows.append({"pipeline": name, "with_training": True, "images_per_s": rate,
                     "fraction_of_synthetic": fraction})
    return rows
