"""Paired transforms keep image and mask aligned; padding, normalisation and nearest-neighbour masks."""

import torch

from ranlib.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    boundary_band,
    denormalize,
    make_loader,
    train_transforms,
    val_transforms,
)


def _blocky_pair(seed: int, size: int = 48):
    """An image whose red channel is 0/1 in 6-px blocks, and the mask derived from it (red > 0.5)."""
    g = torch.Generator().manual_seed(seed)
    red = torch.kron(torch.randint(0, 2, (size // 6, size // 6), generator=g), torch.ones(6, 6)).float()
    image = torch.stack([red, torch.rand(size, size, generator=g), torch.full((size, size), 0.3)])  # (3, H, W)
    return image, red.long()


def test_mask_derived_from_image_survives_train_augmentation():
    transform = train_transforms(crop_size=40)
    for seed in range(12):
        torch.manual_seed(seed)
        image, mask = _blocky_pair(seed)
        out_image, out_mask = transform(image, mask)
        assert out_image.shape == (3, 40, 40) and out_mask.shape == (40, 40)
        assert out_mask.dtype == torch.long
        assert set(out_mask.unique().tolist()) <= {0, 1, 255}  # nearest neighbour: no blended labels
        valid = out_mask != 255
        red = denormalize(out_image)[0]
        # Bilinear resizing blurs the block edges, so compare away from them (the band of width 1);
        # a flipped, shifted or differently scaled mask would disagree inside the blocks too.
        inside = valid & ~boundary_band(out_mask, 1)
        agree = ((red > 0.5).long() == out_mask)[inside].float().mean()
        assert inside.sum() > 100 and agree > 0.99, (seed, agree)
        # Padding: the image is the mean pixel (0 after normalisation) where the mask is 255.
        assert torch.allclose(out_image[:, ~valid], torch.zeros(1), atol=1e-6)


def test_padding_when_scaled_below_crop():
    image, mask = _blocky_pair(0, size=24)
    out_image, out_mask = train_transforms(crop_size=40, scale_range=(1.0, 1.0))(image, mask)
    assert (out_mask == 255).sum() == 40 * 40 - 24 * 24
    assert torch.equal(torch.sort(out_mask[out_mask != 255]).values, torch.sort(mask.flatten()).values)


def test_scale_range_respected_and_masks_keep_their_values():
    # A crop larger than any scaled image: the whole scaled image is in the output, the rest is padding.
    g = torch.Generator().manual_seed(0)
    blocks = torch.tensor([0, 3, 7])[torch.randint(0, 3, (8, 8), generator=g)]
    blocks[3, 4] = 255  # one void block, inside: the outline of the non-void pixels is the scaled image's
    mask = torch.kron(blocks, torch.ones(6, 6, dtype=torch.long))  # (48, 48)
    image = torch.rand(3, 48, 48, generator=g)
    transform = train_transforms(crop_size=80, scale_range=(0.5, 1.5))
    sides = []
    for seed in range(30):
        torch.manual_seed(seed)
        _, out_mask = transform(image, mask)
        assert set(out_mask.unique().tolist()) <= {0, 3, 7, 255}
        content = (out_mask != 255).nonzero()  # the scaled image's pixels that are not void
        height = int(content[:, 0].max() - content[:, 0].min() + 1)
        width = int(content[:, 1].max() - content[:, 1].min() + 1)
        assert height == width  # one factor for both sides
        sides.append(height)
    # A 48-px side scaled by s in [0.5, 1.5] is round(48 s) px: 24..72.
    assert 24 <= min(sides) and max(sides) <= 72
    assert min(sides) < 0.7 * 48 and max(sides) > 1.3 * 48  # the whole range is used, not one fixed factor


def test_val_transform_is_imagenet_normalisation_only():
    image, mask = _blocky_pair(1)
    out_image, out_mask = val_transforms()(image, mask)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(out_image, (image - mean) / std, atol=1e-6)
    assert torch.equal(out_mask, mask)
    assert torch.allclose(denormalize(out_image), image, atol=1e-6)


def test_make_loader_batches_in_process():
    pairs = [val_transforms()(*_blocky_pair(i)) for i in range(5)]
    loader = make_loader(pairs, batch_size=2, shuffle=False, num_workers=0)
    images, masks = next(iter(loader))
    assert images.shape == (2, 3, 48, 48) and masks.shape == (2, 48, 48)
    assert len(loader) == 3 and len(make_loader(pairs, 2, shuffle=True, drop_last=True, num_workers=0)) == 2
