"""Paired image/mask transforms (torchvision.transforms.v2 with ``tv_tensors.Mask``) and the DataLoader.

DeepLab's training augmentation: random scale in [0.5, 2.0], pad to the crop size (the image with the mean
pixel, the mask with 255), random crop, horizontal flip, ImageNet normalisation. Validation only normalises
(no crop). Masks are only ever resized with nearest neighbour: v2 does so for every ``tv_tensors.Mask``.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from ranlib.data.labels import IGNORE_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def denormalize(image: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation: (…, 3, H, W) back to [0, 1] for display."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    return (image * std + mean).clamp(0, 1)


class RandomScale(v2.Transform):
    """Resize by a factor drawn uniformly from ``scale_range`` (bilinear images, nearest masks)."""

    def __init__(self, scale_range: tuple[float, float] = (0.5, 2.0)):
        super().__init__()
        self.scale_range = scale_range

    def make_params(self, flat_inputs):
        height, width = v2.query_size(flat_inputs)
        low, high = self.scale_range
        scale = low + (high - low) * torch.rand(()).item()  # torch's RNG, seeded per DataLoader worker
        return {"size": [max(1, round(height * scale)), max(1, round(width * scale))]}

    def transform(self, inpt, params):
        return TF.resize(inpt, params["size"], antialias=True)


class PairTransform:
    """Wrap a v2 pipeline so it takes and returns plain ``(image (3,H,W) float, mask (H,W) long)`` tensors."""

    def __init__(self, pipeline: v2.Transform):
        self.pipeline = pipeline

    def __call__(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pipeline(tv_tensors.Image(image), tv_tensors.Mask(mask))
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)

    def __repr__(self) -> str:
        return f"PairTransform({self.pipeline})"


def train_transforms(crop_size: int, scale_range: tuple[float, float] = (0.5, 2.0)) -> PairTransform:
    """Random scale, normalise, pad (mean pixel = 0 after normalising; mask 255), random crop, flip."""
    return PairTransform(v2.Compose([
        RandomScale(scale_range),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomCrop(crop_size, pad_if_needed=True, fill={tv_tensors.Image: 0.0, tv_tensors.Mask: IGNORE_INDEX}),
        v2.RandomHorizontalFlip(),
    ]))


def val_transforms() -> PairTransform:
    """ImageNet normalisation only: evaluation sees the whole image."""
    return PairTransform(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, drop_last: bool = False, sampler=None,
                num_workers: int | None = None, generator: torch.Generator | None = None) -> DataLoader:
    """A DataLoader with defaults that fit Colab: workers from ``os.cpu_count()``, pinned memory on CUDA,
    persistent workers. Pass ``num_workers=0`` for a loader that runs in the calling process."""
    if num_workers is None:
        num_workers = min(os.cpu_count() or 1, 8)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle if sampler is None else False,
                      sampler=sampler, drop_last=drop_last, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0,
                      generator=generator)
