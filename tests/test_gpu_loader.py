"""The GPU data path, run on the CPU: parameter ranges, image/mask alignment, padding, flips, the loader, and
agreement with the CPU path it mirrors (``ranlib.data.train_transforms``): value for value given the same draws,
and in its batches' statistics."""

from __future__ import annotations

import warnings

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from ranlib.bench.data import write_voc_jpegs
from ranlib.bench.gpu_loader import CPUFallbackWarning, CropParams, GPULoader, augment_batch, draw_params
from ranlib.data import IMAGENET_MEAN, IMAGENET_STD, DataError, make_loader, train_transforms, voc

# Far-apart colours, one per class, so a pixel's class can be read back from its colour.
PALETTE = torch.tensor([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 255, 255]],
                       dtype=torch.uint8)


def blocks(height: int = 60, width: int = 80, cell: int = 20, seed: int = 0):
    """A mask of ``cell``-sized class blocks (H, W) uint8 and its image PALETTE[mask] (3, H, W) uint8."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.randint(0, len(PALETTE), (-(-height // cell), -(-width // cell)), generator=g)
    mask = grid.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[:height, :width].to(torch.uint8)
    return PALETTE[mask.long()].permute(2, 0, 1).contiguous(), mask


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised -> 0..255 float, computed independently of the loader."""
    return (images * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) * 255


def test_params_stay_in_range():
    g = torch.Generator().manual_seed(0)
    params = [draw_params(375, 500, 321, (0.5, 2.0), g) for _ in range(2000)]
    scales = torch.tensor([p.height / 375 for p in params])
    assert scales.min() >= 0.5 - 1 / 375 and scales.max() <= 2.0 + 1 / 375
    assert scales.min() < 0.55 and scales.max() > 1.95  # the whole range is used
    assert abs(scales.mean().item() - 1.25) < 0.03  # uniform on [0.5, 2]: mean 1.25, sd of the mean 0.01
    for p in params:
        assert abs(p.height / 375 - p.width / 500) < 2 / 375  # one scale for both sides
        assert 0 <= p.top <= abs(p.height - 321) and 0 <= p.left <= abs(p.width - 321)
    flips = sum(p.flip for p in params) / len(params)
    assert 0.45 < flips < 0.55  # p = 1/2; sd 0.011


def test_scale_one_without_padding_is_normalisation_and_flip():
    image, mask = blocks(48, 48)
    expected = TF.normalize(image.float() / 255, IMAGENET_MEAN, IMAGENET_STD)  # torchvision's normalisation
    for flip in (False, True):
        out, labels = augment_batch([image], [mask], [CropParams(48, 48, 0, 0, flip)], crop=48)
        want_image, want_mask = (expected.flip(-1), mask.flip(-1)) if flip else (expected, mask)
        torch.testing.assert_close(out[0], want_image, atol=1e-5, rtol=0)
        assert torch.equal(labels[0], want_mask.long())


@pytest.mark.parametrize("top,left", [(0, 0), (18, 8), (5, 3), (0, 8), (18, 0)])
def test_padding_places_the_image_as_v2_random_crop_does(top, left):
    """30x40 in a 48 crop: the canvas is padded by 18 rows and 8 columns on each side (66x56)."""
    image, mask = blocks(30, 40, cell=10)
    out, labels = augment_batch([image], [mask], [CropParams(30, 40, top, left, False)], crop=48)
    canvas = torch.full((66, 56), 255, dtype=torch.long)
    canvas[18:48, 8:48] = mask.long()
    assert torch.equal(labels[0], canvas[top:top + 48, left:left + 48])
    pad = labels[0] == 255
    assert out[0][:, pad].abs().max() < 1e-6  # the mean, normalised


def test_image_and_mask_stay_aligned_under_random_augmentation():
    image, mask = blocks()
    g = torch.Generator().manual_seed(1)
    params = [draw_params(60, 80, 48, (0.5, 2.0), g) for _ in range(24)]
    out, labels = augment_batch([image] * 24, [mask] * 24, params, crop=48)
    assert out.shape == (24, 3, 48, 48) and labels.shape == (24, 48, 48) and labels.dtype == torch.long
    pixels = denormalize(out).permute(0, 2, 3, 1)  # (B, H, W, 3)
    nearest = torch.cdist(pixels.reshape(-1, 3), PALETTE.float()).argmin(1).view(labels.shape)  # colour -> class
    # Interior pixels: the whole 5x5 neighbourhood has one label (away from block edges and resampling blur).
    padded = torch.nn.functional.pad(labels.float()[:, None], (2, 2, 2, 2), value=-1)
    lo = -torch.nn.functional.max_pool2d(-padded, 5, stride=1)[:, 0]
    hi = torch.nn.functional.max_pool2d(padded, 5, stride=1)[:, 0]
    interior = (lo == hi) & (labels != 255)
    assert interior.sum() > 0.3 * labels.numel()
    assert torch.equal(nearest[interior], labels[interior])
    assert pixels[labels == 255].sub(torch.tensor(IMAGENET_MEAN) * 255).abs().max() < 1e-3  # padding = mean
    assert set(labels.unique().tolist()) <= set(mask.unique().tolist()) | {255}


def test_loader_batches_are_reproducible(tmp_path):
    root = write_voc_jpegs(tmp_path, 5, size=(75, 100))
    loader = GPULoader(root, batch_size=2, crop_size=64, device="cpu", seed=3)
    batches = list(loader)
    assert len(loader) == len(batches) == 2  # 5 images, the short batch dropped
    images, labels = batches[0]
    assert images.shape == (2, 3, 64, 64) and images.dtype == torch.float32
    assert labels.shape == (2, 64, 64) and labels.dtype == torch.long
    assert set(labels.unique().tolist()) <= set(range(21)) | {255}
    again = next(iter(GPULoader(root, batch_size=2, crop_size=64, device="cpu", seed=3)))
    other = next(iter(GPULoader(root, batch_size=2, crop_size=64, device="cpu", seed=4)))
    assert torch.equal(again[0], images) and not torch.equal(other[0], images)
    assert len(GPULoader(root, batch_size=2, crop_size=64, device="cpu", drop_last=False)) == 3


def test_falls_back_to_cpu_with_a_warning(tmp_path, monkeypatch, capsys):
    root = write_voc_jpegs(tmp_path, 2, size=(40, 50))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(CPUFallbackWarning, match="no CUDA device") as caught:
        loader = GPULoader(root, batch_size=2, crop_size=32)
    ours = [w for w in caught if w.category is CPUFallbackWarning]
    assert len(ours) == 1 and ours[0].filename == __file__  # one warning, pointed at the caller's line
    assert loader.device == torch.device("cpu")
    assert capsys.readouterr().err == ""  # a warning, not a print
    assert next(iter(loader))[0].device.type == "cpu"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CPUFallbackWarning)
        GPULoader(root, batch_size=2, crop_size=32, device="cpu")  # asked for: no warning


def test_missing_files_raise_the_datasets_errors(tmp_path):
    with pytest.raises(DataError, match="not a VOC-layout dataset root"):
        GPULoader(tmp_path, device="cpu")
    root = write_voc_jpegs(tmp_path / "voc", 2, size=(40, 50))
    (root / "JPEGImages" / "000001.jpg").unlink()
    with pytest.raises(DataError, match="000001.jpg is missing"):
        GPULoader(root, device="cpu")


def test_image_and_mask_of_different_sizes_are_refused(tmp_path):
    root = write_voc_jpegs(tmp_path, 2, size=(40, 50))
    loader = GPULoader(root, batch_size=2, crop_size=32, device="cpu")
    loader.masks[1] = loader.masks[1][:20]
    with pytest.raises(ValueError, match="same size"):
        loader.batch([0, 1])


def test_same_output_as_cpu_transforms_without_scaling():
    """scale 1, crop = image size: both paths give the normalised image, flipped or not."""
    image, mask = blocks(48, 48)
    ref = TF.normalize(image.float() / 255, IMAGENET_MEAN, IMAGENET_STD)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        cpu_image, cpu_mask = train_transforms(48, scale_range=(1.0, 1.0))(image.float() / 255, mask.long())
        gpu_image, gpu_mask = augment_batch([image], [mask], [draw_params(48, 48, 48, (1.0, 1.0), g)], 48)
        for out, labels in ((cpu_image, cpu_mask), (gpu_image[0], gpu_mask[0])):
            flipped = not torch.allclose(out, ref, atol=1e-5)
            torch.testing.assert_close(out, ref.flip(-1) if flipped else ref, atol=1e-5, rtol=0)
            assert torch.equal(labels, mask.long().flip(-1) if flipped else mask.long())


def test_padding_and_position_statistics_match_cpu_transforms():
    """Over many draws, both paths pad as much and centre the image alike (v2 pads both ends, so the
    labelled pixels' mean row is the crop's centre row 23.5 by symmetry)."""
    image, mask = blocks(30, 40, cell=10)  # no 255 in the source: every 255 is padding
    rows = torch.arange(48.0).view(48, 1)

    def stats(labels):  # (fraction of padding, mean row of the labelled pixels)
        keep = labels != 255
        return 1 - keep.float().mean().item(), (rows * keep).sum().item() / keep.sum().item()
    torch.manual_seed(0)
    transform = train_transforms(48)
    cpu = torch.tensor([stats(transform(image.float() / 255, mask.long())[1]) for _ in range(300)])
    g = torch.Generator().manual_seed(0)
    params = [draw_params(30, 40, 48, (0.5, 2.0), g) for _ in range(300)]
    gpu = torch.tensor([stats(labels) for labels in augment_batch([image] * 300, [mask] * 300, params, 48)[1]])
    # Means over 300 draws; the per-draw sd of the padding fraction is ~0.25 and of the mean row ~5.
    assert abs(cpu[:, 0].mean() - gpu[:, 0].mean()) < 0.06
    assert abs(cpu[:, 1].mean() - 23.5) < 1.2 and abs(gpu[:, 1].mean() - 23.5) < 1.2


def recorded_draws(transform):
    """Make ``train_transforms``' random steps keep what they drew; the returned function gives the last call's
    draws as the ``CropParams`` that ``augment_batch`` takes."""
    scale, _, crop, flip = transform.pipeline.transforms  # RandomScale, Normalize, RandomCrop, RandomHorizontalFlip
    drawn = {}

    def keep(name, make_params):
        def wrapped(flat_inputs):
            drawn[name] = make_params(flat_inputs)
            return drawn[name]
        return wrapped
    for name, step in (("scale", scale), ("crop", crop), ("flip", flip)):  # flip draws params only when it flips
        step.make_params = keep(name, step.make_params)

    def last() -> CropParams:
        (height, width), window = drawn.pop("scale")["size"], drawn.pop("crop")
        return CropParams(height, width, window["top"], window["left"], drawn.pop("flip", None) is not None)
    return last


@pytest.mark.parametrize("height,width", [(30, 40), (60, 80)])
def test_same_crop_as_cpu_transforms_for_the_same_draws(height, width):
    """torchvision's v2 pipeline (the CPU path) with its random draws read back, and ``augment_batch`` given
    those draws: the same labels exactly and the same normalised pixels, scaled, padded, cropped and flipped."""
    image, mask = blocks(height, width, cell=10)
    transform = train_transforms(48)
    last_draws = recorded_draws(transform)
    torch.manual_seed(0)
    draws = []
    for _ in range(30):
        cpu_image, cpu_mask = transform(image.float() / 255, mask.long())
        draws.append(last_draws())
        gpu_image, gpu_mask = augment_batch([image], [mask], draws[-1:], 48)
        assert torch.equal(gpu_mask[0], cpu_mask), draws[-1]
        torch.testing.assert_close(gpu_image[0], cpu_image, atol=1e-5, rtol=0, msg=str(draws[-1]))
    # Both branches of each step were taken: flipped and not, padded and not, scaled up and down.
    assert 0 < sum(p.flip for p in draws) < 30
    assert 0 < sum(p.height < 48 or p.width < 48 for p in draws) < 30
    assert min(p.height for p in draws) < height < max(p.height for p in draws)


def test_loader_batches_have_the_cpu_loaders_statistics(tmp_path):
    """``GPULoader`` and the CPU path (``voc`` + ``train_transforms`` in ``make_loader``) over the same JPEGs, 25
    epochs each: the same share of 255 (padding and VOC's void border) and of background, the labelled pixels
    centred alike (v2 pads both ends) and of the same mean colour."""
    root = write_voc_jpegs(tmp_path, 8, size=(60, 80))
    crop, epochs = 64, 25
    gpu = GPULoader(root, batch_size=4, crop_size=crop, device="cpu", seed=0)
    torch.manual_seed(0)
    cpu = make_loader(voc(root, "train", transforms=train_transforms(crop)), 4, shuffle=True, drop_last=True,
                      num_workers=0)
    rows, cols = torch.arange(crop).view(crop, 1).float(), torch.arange(crop).view(1, crop).float()

    def stats(loader) -> torch.Tensor:  # per crop: 255 share, background share, mean row, mean column, mean RGB
        out = []
        for images, labels in (batch for _ in range(epochs) for batch in loader):
            for image, label in zip(denormalize(images), labels, strict=True):
                keep = (label != 255).float()
                n = keep.sum()
                out.append(torch.stack([1 - keep.mean(), (label == 0).float().mean(), (rows * keep).sum() / n,
                                        (cols * keep).sum() / n, *((image * keep).sum((1, 2)) / n)]))
        return torch.stack(out)  # (crops, 7)
    gpu_stats, cpu_stats = stats(gpu), stats(cpu)
    assert len(gpu_stats) == len(cpu_stats) == epochs * 8
    # Tolerances: 4 standard errors of the difference of the two means (200 crops each).
    tolerance = 4 * (gpu_stats.var(0) / len(gpu_stats) + cpu_stats.var(0) / len(cpu_stats)).sqrt()
    difference = (gpu_stats.mean(0) - cpu_stats.mean(0)).abs()
    assert (difference < tolerance).all(), (difference, tolerance)
    # The centring is not just within noise: both mean positions sit at the crop's centre, 31.5.
    assert (gpu_stats[:, 2:4].mean(0) - 31.5).abs().max() < 2.5
