"""The embedded mixed-boundary dataset: VOC layout, determinism from the seed, cache, scenes where objects meet."""

import os

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torchvision.transforms.v2 import functional as TF

from ranlib.data import class_names, make_mixed_boundary_dataset, mixed_boundary_band, voc
from ranlib.data.mixed_boundary import CLASSES, _texture


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return make_mixed_boundary_dataset(tmp_path_factory.mktemp("mb") / "a", n_train=6, n_val=2, size=64, seed=3,
                                       progress=False)


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(small, tmp_path):
    again = make_mixed_boundary_dataset(tmp_path / "b", n_train=6, n_val=2, size=64, seed=3, progress=False)
    assert _files(small) == _files(again)
    other = make_mixed_boundary_dataset(tmp_path / "c", n_train=6, n_val=2, size=64, seed=4, progress=False)
    for name in ("SegmentationClass/000000.png", "JPEGImages/000000.jpg"):
        assert (small / name).read_bytes() != (other / name).read_bytes()


def test_cached_when_complete_rewritten_when_parameters_change(small, tmp_path):
    root = make_mixed_boundary_dataset(tmp_path / "d", n_train=2, n_val=1, size=32, progress=False)
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:  # an old time stamp, which any rewrite would replace
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    make_mixed_boundary_dataset(root, n_train=2, n_val=1, size=32, progress=False)
    assert all(path.stat().st_mtime_ns == 1_000_000_000 for path in files)
    make_mixed_boundary_dataset(root, n_train=3, n_val=1, size=32, progress=False)
    assert len(voc(root, "train")) == 3
    make_mixed_boundary_dataset(root, n_train=3, n_val=1, size=40, progress=False)
    assert voc(root, "val")[0][1].shape == (40, 40)


def test_voc_layout_palette_masks_and_classes(small):
    assert class_names(small) == list(CLASSES)
    train, val = voc(small, "train"), voc(small, "val")
    assert train.ids == ["000000", "000001", "000002", "000003", "000004", "000005"]
    assert val.ids == ["000006", "000007"] and voc(small, "trainval").ids == train.ids + val.ids
    image, mask = train[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert mask.shape == (64, 64) and mask.dtype == torch.int64
    # The reader returns the PNG's values untouched.
    with Image.open(small / "SegmentationClass" / "000000.png") as png:
        np.testing.assert_array_equal(mask.numpy(), np.asarray(png))
    with Image.open(small / "SegmentationClass" / f"{train.ids[0]}.png") as png:
        assert png.mode == "P"
        assert png.getpalette()[3 * 1:3 * 2] == [128, 0, 0]  # VOC's colour of label 1
    values = set()
    for i in range(len(train)):
        values |= set(train[i][1].unique().tolist())
    assert values <= set(range(len(CLASSES))) | {255} and 255 in values and 0 in values


def test_objects_meet_in_most_scenes(small):
    # RAN is about pixels where two object classes meet: most scenes must have such pixels.
    train = voc(small, "train")
    meeting = [bool(mixed_boundary_band(train[i][1], 2).any()) for i in range(len(train))]
    assert np.mean(meeting) >= 0.5


def _orientation_histogram(texture: np.ndarray, bins: int = 36) -> np.ndarray:
    """Share of the texture's spectral power per orientation (0-180 degrees, DC excluded), blurred by 10 degrees
    (circularly) so that the textures' orientation jitter of up to 8 degrees barely moves it."""
    power = np.abs(np.fft.fft2(texture - texture.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(texture.shape[0]), np.fft.fftfreq(texture.shape[1]), indexing="ij")
    angle = np.degrees(np.arctan2(fy, fx)) % 180
    hist = np.bincount((angle // (180 / bins)).astype(int).ravel(), weights=power.ravel(), minlength=bins)
    hist = ndimage.gaussian_filter1d(hist, sigma=10 / (180 / bins), mode="wrap")
    return hist / hist.sum()


def test_classes_survive_flip_and_scale():
    # The training augmentation flips and rescales (0.5-2): every class must still be recognisable after either,
    # i.e. no class may be the mirror image or a rescaled copy of another. Nearest class-mean orientation
    # spectrum (scale-free) recognises each flipped or rescaled texture as its own class.
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float64)
    labels = range(1, len(CLASSES))
    means = {k: np.mean([_orientation_histogram(_texture(k, yy, xx, np.random.default_rng([k, i])))
                         for i in range(8)], axis=0) for k in labels}
    for k in labels:
        for i in range(4):
            texture = torch.from_numpy(_texture(k, yy, xx, np.random.default_rng([k, 100 + i])))[None]  # (1, H, W)
            # Resized as the training transform does (bilinear, antialiased).
            variants = {"flipped": texture[0].flip(-1), "half size": TF.resize(texture, [64, 64], antialias=True)[0],
                        "double size": TF.resize(texture, [256, 256], antialias=True)[0]}
            for name, variant in variants.items():
                hist = _orientation_histogram(variant.numpy())
                nearest = min(labels, key=lambda c: np.abs(hist - means[c]).sum())
                assert nearest == k, (CLASSES[k], name, CLASSES[nearest])
