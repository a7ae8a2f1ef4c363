"""The toy scenes of notebooks 03 and 05, which train a branch before any real data: a red disc and a blue square
that overlaps the disc's lower right, so two objects share a boundary, on grey background with pixel noise."""

from __future__ import annotations

import torch

TOY_CLASSES = ("background", "disc", "square")
TOY_COLOURS = torch.tensor([[0.5, 0.5, 0.5], [0.85, 0.2, 0.2], [0.2, 0.3, 0.85]])  # RGB in [0, 1], by class


def toy_scenes(n: int, size: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noisy toy images (n, 3, size, size) in [0, 1] and their masks (n, size, size): background 0, a disc 1
    and a square 2 drawn over the disc's lower right (``TOY_CLASSES``, coloured ``TOY_COLOURS``); the same scenes
    for the same ``seed``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images, masks = [], []
    for _ in range(n):
        radius = size * (0.18 + 0.08 * torch.rand(1, generator=g))
        cy, cx = (size * (0.3 + 0.25 * torch.rand(2, generator=g))).tolist()
        side = int(size * (0.25 + 0.15 * torch.rand(1, generator=g)))
        mask = torch.zeros(size, size, dtype=torch.long)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = 1
        mask[int(cy):int(cy) + side, int(cx):int(cx) + side] = 2
        image = TOY_COLOURS[mask].permute(2, 0, 1) + 0.15 * torch.randn(3, size, size, generator=g)  # (3, H, W)
        images.append(image.clamp(0, 1))
        masks.append(mask)
    return torch.stack(images), torch.stack(masks)
