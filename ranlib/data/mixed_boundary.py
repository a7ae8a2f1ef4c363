"""The embedded mixed-boundary dataset: small synthetic scenes, in VOC layout, where objects meet.

It is the offline default for tests, CI, quick modes and laptops, and it reproduces the problem RAN exists
for: class responses mix where two objects meet. Each scene has a background and two to four objects that
touch, overlap and occlude one another. A class is a *texture*, never a colour:

    1 v-stripes  a vertical grating            4 dots     a hexagonal lattice of dots (gratings at 0, 60, 120 deg)
    2 h-stripes  a horizontal grating          5 speckle  isotropic band-pass noise, no orientation
    3 checks     a checkerboard (vertical x horizontal grating)

All five share one period (6 px, jittered by 10 % per object) and each keeps its class under the training
augmentation: a horizontal flip maps every texture to one of its own kind, and the random scale (0.5-2) changes
the period of all of them alike, so neither orientation-mirrored pairs nor period alone ever tell classes apart.
Every object and the background draw their two colours from the same distribution (two colours at least 0.3
apart in RGB, so that every texture is visible), and the background is
low-frequency noise in the same colours, so colour statistics are shared and only a neighbourhood wide
enough to see the texture tells classes apart — which, near a boundary, holds two textures at once. Orientation
jitters by up to 8 degrees per object. Masks are palette PNGs with a 255 border (1 px on each side of every
object outline, as VOC marks its object borders). Generation is deterministic from the seed: scene ``i`` is
drawn from ``numpy.random.default_rng([seed, i])``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ranlib.data.errors import DataError
from ranlib.data.labels import IGNORE_INDEX
from ranlib.data.palette import voc_palette
from ranlib.file_lock import exclusive
from ranlib.progress import tqdm

CLASSES = ("background", "v-stripes", "h-stripes", "checks", "dots", "speckle")
PERIOD = 6.0  # px, shared by every texture
GENERATOR_VERSION = 2  # part of the cache stamp: a dataset drawn by an older generator is written again
DEFAULT_ROOT = Path("data") / "mixed_boundary"
DEFAULTS = {"n_train": 1000, "n_val": 200, "n_test": 200, "size": 128, "seed": 0}


def _grating(yy, xx, angle, period, phase):
    theta = np.deg2rad(angle)
    return np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)


def _band_pass_noise(shape, period, rng):
    """White noise keeping only spatial frequencies within 25 % of 1/period: speckle with no orientation."""
    spectrum = np.fft.fft2(rng.normal(size=shape))
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]), np.fft.fftfreq(shape[1]), indexing="ij")
    radius = np.hypot(fy, fx) * period  # 1 at the texture's frequency
    noise = np.fft.ifft2(spectrum * ((radius > 0.75) & (radius < 1.25))).real
    return noise / (noise.std() + 1e-12) / 1.5


def _texture(label, yy, xx, rng):
    """Class ``label``'s texture in [-1, 1] over the whole image (the object's region is cut out later)."""
    angle = rng.uniform(-8, 8)
    period = PERIOD * rng.uniform(0.9, 1.1)
    phase = lambda: rng.uniform(0, 2 * np.pi)  # noqa: E731
    if label == 1:
        t = _grating(yy, xx, angle, period, phase())
    elif label == 2:
        t = _grating(yy, xx, angle + 90, period, phase())
    elif label == 3:
        t = _grating(yy, xx, angle, period, phase()) * _grating(yy, xx, angle + 90, period, phase()) * 1.5
    elif label == 4:
        t = sum(_grating(yy, xx, angle + a, period, phase()) for a in (0, 60, 120)) / 1.5
    else:
        t = _band_pass_noise(yy.shape, period, rng)
    return np.clip(t, -1, 1)


def _smooth_noise(size, rng, cells=4):
    """Low-frequency noise in [-1, 1]: a coarse random grid, bilinearly enlarged."""
    coarse = Image.fromarray(rng.uniform(0, 255, (cells, cells)).astype(np.uint8))
    return np.asarray(coarse.resize((size, size), Image.BILINEAR), dtype=np.float64) / 127.5 - 1


def _colours(rng, min_distance=0.3):
    """Two RGB colours far enough apart (Euclidean, in [0, 1]^3) for the texture painted with them to show."""
    while True:
        low, high = rng.uniform(0.15, 0.85, 3), rng.uniform(0.15, 0.85, 3)
        if np.linalg.norm(high - low) >= min_distance:
            return low, high


def _paint(image, region, texture, colours):
    low, high = colours
    weight = (texture[..., None] + 1) / 2  # (H, W, 1) in [0, 1]
    image[region] = (low * (1 - weight) + high * weight)[region]


def make_scene(rng: np.random.Generator, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One scene: an RGB uint8 image (H, W, 3) and its label map (H, W) uint8 with 255 borders."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    image = np.zeros((size, size, 3))
    _paint(image, np.ones((size, size), bool), _smooth_noise(size, rng), _colours(rng))
    labels = np.zeros((size, size), np.uint8)
    n_objects = rng.integers(2, 5)
    centre = rng.uniform(0.3, 0.7, 2) * size
    for _ in range(n_objects):
        label = int(rng.integers(1, len(CLASSES)))
        ry, rx = rng.uniform(0.15, 0.3, 2) * size
        # The next object sits about one radius from the last centre, so objects touch or overlap.
        direction = rng.uniform(0, 2 * np.pi)
        cy, cx = centre + np.array([np.sin(direction), np.cos(direction)]) * rng.uniform(0.7, 1.1) * (ry + rx) / 2
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
        if rng.random() < 0.5:
            region = u ** 2 + v ** 2 <= 1  # ellipse
        else:
            region = (np.abs(u) <= 0.9) & (np.abs(v) <= 0.9)  # rotated rectangle
        _paint(image, region, _texture(label, yy, xx, rng), _colours(rng))
        labels[region] = label  # drawn later = in front: occlusion
        centre = np.array([cy, cx])
    image += rng.normal(0, 0.03, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), _with_borders(labels)


def _with_borders(labels: np.ndarray) -> np.ndarray:
    """Mark 255 on every pixel whose 4-neighbour has another label (a 2 px border across each outline)."""
    edge = np.zeros(labels.shape, bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[1:] |= labels[1:] != labels[:-1]
    edge[:-1] |= labels[1:] != labels[:-1]
    return np.where(edge, IGNORE_INDEX, labels).astype(np.uint8)


def _write_scene(root: Path, name: str, seed: int, size: int, palette: list[int]) -> list[int]:
    """Draw scene ``name`` (its index, zero-padded) and write its JPEG and mask; returns their sizes in bytes."""
    image, labels = make_scene(np.random.default_rng([seed, int(name)]), size)
    jpg, png = root / "JPEGImages" / f"{name}.jpg", root / "SegmentationClass" / f"{name}.png"
    Image.fromarray(image).save(jpg, quality=90)
    mask = Image.fromarray(labels)
    mask.putpalette(palette)  # turns the greyscale image into a palette ("P") PNG
    mask.save(png)
    return [jpg.stat().st_size, png.stat().st_size]


def _write_layout(root: Path, n_train: int, n_val: int, n_test: int = 0) -> list[str]:
    """The folders, classes.txt and split files; scenes ``0 .. n_train-1`` are train, the next ``n_val`` val and
    the next ``n_test`` test (so adding a test split leaves train and val as they were)."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    ids = [f"{i:06d}" for i in range(n_train + n_val + n_test)]
    splits = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "trainval": ids[:n_train + n_val]}
    if n_test:
        splits["test"] = ids[n_train + n_val:]
    for split, members in splits.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{m}\n" for m in members))
    return ids


def damaged_scenes(root: str | Path) -> list[str]:
    """Scenes of a generated dataset whose JPEG or mask is missing or differs in size from when it was written
    (a quick check by file size; ``check-data`` decodes every file)."""
    root = Path(root)
    sizes = json.loads((root / "COMPLETE.json").read_text()).get("sizes", {})
    damaged = []
    for name, expected in sizes.items():
        files = (root / "JPEGImages" / f"{name}.jpg", root / "SegmentationClass" / f"{name}.png")
        if [f.stat().st_size if f.exists() else -1 for f in files] != expected:
            damaged.append(name)
    return damaged


def repair_mixed_boundary_dataset(root: str | Path, names=(), progress: bool = False) -> list[str]:
    """Generate the scenes ``names`` of the dataset at ``root`` again, with every scene ``damaged_scenes`` finds,
    and rewrite its split files; returns the scenes written. Generation is deterministic, so a repaired scene is
    the one that was there. Raises ``DataError`` when ``root`` holds no generated dataset (no COMPLETE.json)."""
    root = Path(root)
    stamp = root / "COMPLETE.json"
    if not stamp.exists():
        raise DataError(f"{root} holds no generated mixed-boundary dataset (no COMPLETE.json), so it cannot be "
                        "repaired; generate it with python -c \"from ranlib.data import "
                        f"make_mixed_boundary_dataset as m; m('{root}')\"")
    saved = json.loads(stamp.read_text())
    _write_layout(root, saved["n_train"], saved["n_val"], saved.get("n_test", 0))
    todo = sorted(set(names) | set(damaged_scenes(root)))
    sizes, palette = saved.setdefault("sizes", {}), voc_palette()
    for name in tqdm(todo, desc="repairing scenes", disable=not progress):
        sizes[name] = _write_scene(root, name, saved["seed"], saved["size"], palette)
    stamp.write_text(json.dumps(saved))
    return todo


def make_mixed_boundary_dataset(root: str | Path = DEFAULT_ROOT, n_train: int = 1000, n_val: int = 200,
                                size: int = 128, seed: int = 0, progress: bool = True, n_test: int = 0) -> Path:
    """Write the dataset in VOC layout under ``root`` and return ``root``.

    Splits: ``train`` (``n_train`` scenes), ``val`` (``n_val``: every choice of recipe is made on it), ``test``
    (``n_test``: only reported, never used to choose) and ``trainval``; disjoint, each scene drawn from its index.

    A dataset already complete there with the same parameters is kept as it is (a cache); one written with
    other parameters, or left half-written, is written again. The ``COMPLETE.json`` stamp records each file's
    size: a cached scene whose file went missing or changed size is generated again.
    """
    root = Path(root)
    params = {"n_train": n_train, "n_val": n_val, "n_test": n_test, "size": size, "seed": seed,
              "version": GENERATOR_VERSION}
    if _complete(root, params) and not damaged_scenes(root):
        return root
    # Another process (a second kernel, a test worker) may be writing the same folder: one writes, the other
    # waits and then finds the stamp.
    with exclusive(root, f"writing the dataset in {root}"):
        return _write_dataset(root, params, progress)


def _complete(root: Path, params: dict) -> bool:
    """Whether ``root`` holds a finished dataset written with ``params`` (its ``COMPLETE.json`` stamp says so)."""
    stamp = root / "COMPLETE.json"
    return stamp.exists() and {k: json.loads(stamp.read_text()).get(k) for k in params} == params


def _write_dataset(root: Path, params: dict, progress: bool) -> Path:
    """Write (or repair) the dataset under ``root``; the caller holds the folder's lock."""
    if _complete(root, params):
        if damaged_scenes(root):
            repair_mixed_boundary_dataset(root, progress=progress)
        return root
    stamp = root / "COMPLETE.json"
    stamp.unlink(missing_ok=True)
    n_train, n_val, n_test, size, seed = (params[k] for k in ("n_train", "n_val", "n_test", "size", "seed"))
    ids = _write_layout(root, n_train, n_val, n_test)
    palette = voc_palette()
    sizes = {name: _write_scene(root, name, seed, size, palette)
             for name in tqdm(ids, desc="mixed-boundary dataset", disable=not progress)}
    stamp.write_text(json.dumps(params | {"sizes": sizes}))
    return root


def ensure_mixed_boundary_dataset(root: str | Path = DEFAULT_ROOT) -> Path:
    """The default embedded dataset at ``root``, generated on first use (1,400 scenes at 128 px: 1,000 train,
    200 val, 200 test)."""
    return make_mixed_boundary_dataset(root, **DEFAULTS)

