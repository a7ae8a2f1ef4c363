"""GPU data path: a dataset's JPEG bytes and masks held in memory, batches decoded and augmented on the GPU.

Benchmark-only: ``python -m ranlib benchmark`` uses it to measure how fast the training step could be fed when
the CPU does no per-image work (its "fed" rate against the synthetic-tensor rate). ``fit`` never uses it and reads
its batches through ``ranlib.data``'s CPU loader, because only that path has what training relies on: data order
and augmentation keyed by (seed, epoch, index) (``ranlib.engine.data_order``), so that a resumed run ends
bit-identical; each process's share of the data under DDP; micro-batches for gradient accumulation; and a bounded
host memory (this loader keeps the whole split in memory). Moving it into training would need all four.

The CPU path (``ranlib.data.voc`` + ``train_transforms`` in ``make_loader`` workers) decodes and augments
each image in a worker process; with Colab's 2 CPU cores that can starve a GPU. ``GPULoader`` keeps the
encoded JPEGs (far smaller than the decoded pixels) and the decoded masks in host memory, decodes a whole
batch with ``torchvision.io.decode_jpeg(device="cuda")`` and mirrors ``ranlib.data.transforms.train_transforms``
(``RandomScale``, ``v2.Normalize``, ``v2.RandomCrop(pad_if_needed=True)``, ``v2.RandomHorizontalFlip``) with
tensor ops on the device:

1. random scale s ~ U(scale_range), size round(H s) x round(W s): image bilinear (antialiased), mask
   nearest neighbour (``RandomScale``);
2. a side shorter than the crop is padded by the shortfall on *both* ends (as ``v2.RandomCrop`` with
   ``pad_if_needed`` does), the image with the ImageNet mean (0 once normalised, as the CPU path pads after
   ``v2.Normalize``), the mask with 255;
3. a random crop x crop window of the padded canvas; 4. horizontal flip with probability 1/2;
5. ImageNet normalisation.

Given the same draws, the two paths give the same crop value for value (tests/test_gpu_loader.py). They differ in
where the draws come from (one ``torch.Generator`` here, torch's global RNG in each DataLoader worker there) and
in the JPEG decoder (nvJPEG on the GPU, PIL on the CPU), which may round some pixels differently.

The same code runs with ``device="cpu"`` (CPU decode, CPU tensor ops), which is how it is tested; without a
GPU, ``device=None`` falls back to that with a ``CPUFallbackWarning``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from ranlib.data import IGNORE_INDEX, IMAGENET_MEAN, IMAGENET_STD, DataError, voc
from ranlib.data.voc import load_mask
from ranlib.precision import resolve_device
from ranlib.progress import tqdm


class CPUFallbackWarning(UserWarning):
    """``GPULoader(device=None)`` found no CUDA device and runs on the CPU: the benchmark's "fed" rate is then the
    CPU's, not the GPU data path's."""


class CropParams(NamedTuple):
    """One image's random augmentation: scaled size, crop window origin in the padded canvas, flip.

    A scaled side ``n`` shorter than the crop ``c`` is padded by ``c - n`` on both ends, so the canvas side is
    ``n + 2 (c - n)``; either way the window origin ranges over ``0 .. |n - c|``.
    """

    height: int  # after scaling
    width: int
    top: int  # crop window origin in the padded canvas
    left: int
    flip: bool


def read_voc_split(root: str | Path, split: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The encoded JPEGs (1-D uint8 tensors) and masks ((H, W) uint8) of a split, in ``voc(root, split)`` order.

    Files are found and checked as ``ranlib.data.voc`` does (``train_aug`` included), with the same errors.
    Host memory: the JPEG files' size plus H x W bytes per mask (about 2 GB for VOC's 10,582 train_aug masks).
    """
    dataset = voc(root, split)
    jpegs, masks = [], []
    for index in tqdm(range(len(dataset)), desc=f"reading {split}", disable=len(dataset) < 1000):
        image_path, mask_path = dataset.paths(index)
        if not image_path.exists():
            raise DataError(f"image {image_path} is missing; restore it or remove its id from the split file.")
        jpegs.append(read_file(str(image_path)))
        masks.append(load_mask(mask_path, dataset.num_classes).to(torch.uint8))  # values 0..K-1 and 255
    return jpegs, masks


def draw_params(height: int, width: int, crop: int, scale_range: tuple[float, float],
                generator: torch.Generator) -> CropParams:
    """Random scale, crop origin and flip for one ``height`` x ``width`` image (CPU random numbers)."""
    lo, hi = scale_range
    scale = lo + (hi - lo) * torch.rand((), generator=generator).item()
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    top = torch.randint(0, abs(h - crop) + 1, (), generator=generator).item()
    left = torch.randint(0, abs(w - crop) + 1, (), generator=generator).item()
    flip = bool(torch.rand((), generator=generator).item() < 0.5)
    return CropParams(h, w, top, left, flip)


def augment_batch(images: list[torch.Tensor], masks: list[torch.Tensor], params: list[CropParams],
                  crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale, pad, crop, flip and normalise decoded images ((3, H, W) uint8) and masks ((H, W) uint8).

    All on the images' device. Returns ImageNet-normalised images (B, 3, crop, crop) float and labels
    (B, crop, crop) long; padding is the mean in the image (0 after normalisation) and 255 in the mask.
    """
    device = images[0].device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    out_images = mean.expand(len(images), 3, crop, crop).clone()  # (B, 3, crop, crop), padding = mean
    out_masks = torch.full((len(images), crop, crop), IGNORE_INDEX, dtype=torch.uint8, device=device)
    for b, (image, mask, p) in enumerate(zip(images, masks, params, strict=True)):
        image = F.interpolate(image[None].float() / 255, size=(p.height, p.width), mode="bilinear",
                              align_corners=False, antialias=True)[0]  # (3, h, w) in [0, 1]
        mask = F.interpolate(mask[None, None], size=(p.height, p.width), mode="nearest")[0, 0]  # (h, w)
        # Window origin relative to the image (the image sits at (pad_top, pad_left) in the canvas).
        dy, dx = p.top - max(crop - p.height, 0), p.left - max(crop - p.width, 0)
        y0, y1 = max(dy, 0), min(dy + crop, p.height)  # image rows inside the window
        x0, x1 = max(dx, 0), min(dx + crop, p.width)
        out_images[b, :, y0 - dy:y1 - dy, x0 - dx:x1 - dx] = image[:, y0:y1, x0:x1]
        out_masks[b, y0 - dy:y1 - dy, x0 - dx:x1 - dx] = mask[y0:y1, x0:x1]
    flip = torch.tensor([p.flip for p in params], device=device)
    out_images = torch.where(flip.view(-1, 1, 1, 1), out_images.flip(-1), out_images)
    out_masks = torch.where(flip.view(-1, 1, 1), out_masks.flip(-1), out_masks)
    return (out_images - mean) / std, out_masks.long()


class GPULoader:
    """Training batches ``(images (B, 3, crop, crop), labels (B, crop, crop))`` made on ``device``.

    Iterating gives one epoch (reshuffled each time when ``shuffle``); ``drop_last`` drops the short batch.
    Random numbers come from one generator seeded with ``seed``, so two loaders with the same seed agree.
    """

    def __init__(self, root: str | Path, split: str = "train", batch_size: int = 10, crop_size: int = 321,
                 scale_range: tuple[float, float] = (0.5, 2.0), device: str | torch.device | None = None,
                 shuffle: bool = True, drop_last: bool = True, seed: int = 0):
        self.jpegs, self.masks = read_voc_split(root, split)
        if not self.jpegs:
            raise ValueError(f"split {split!r} of {root} lists no images")
        self.batch_size, self.crop_size, self.scale_range = batch_size, crop_size, scale_range
        self.shuffle, self.drop_last = shuffle, drop_last
        self.device = resolve_device(device)
        if device is None and self.device.type == "cpu":
            warnings.warn("no CUDA device: GPULoader decodes and augments on the CPU", CPUFallbackWarning,
                          stacklevel=2)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.jpegs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.jpegs)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self.batch(order[start:start + self.batch_size].tolist())

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode and augment the images ``indices`` as one batch on the loader's device."""
        images = decode_jpeg([self.jpegs[i] for i in indices], mode=ImageReadMode.RGB, device=self.device)
        masks = [self.masks[i].to(self.device) for i in indices]  # (H, W) uint8 each, ~0.2 MB
        for i, image, mask in zip(indices, images, masks, strict=True):
            if image.shape[-2:] != mask.shape:
                raise ValueError(f"image {i} of the split is {tuple(image.shape[-2:])} but its mask is "
                                 f"{tuple(mask.shape)}: the JPEG and PNG of one id must have the same size")
        params = [draw_params(m.shape[0], m.shape[1], self.crop_size, self.scale_range, self.generator)
                  for m in masks]
        return augment_batch(images, masks, params, self.crop_size)
