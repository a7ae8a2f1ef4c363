"""Whole-dataset validation behind ``python -m ranlib check-data``: every problem found, reported at once.

Training stops at the first bad file it meets, possibly an hour in; this reads every image and mask of a split
up front, with the same checks as ``voc.VOCSegmentation.load`` (files present, JPEG decodes, mask holds class
indices in ``0..K-1`` or 255, sizes match), and lists every problem, one line per file, each naming the file,
the problem and the fix. A sound split gets a summary instead: images, classes, pixels per class, and the share
of labelled pixels in the mixed-boundary band (width 4), the pixels RAN is about.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ranlib.data.bands import mixed_boundary_band
from ranlib.data.errors import DataError
from ranlib.data.labels import IGNORE_INDEX
from ranlib.data.mixed_boundary import repair_mixed_boundary_dataset
from ranlib.data.voc import load_image, load_mask, voc
from ranlib.progress import tqdm

BAND_WIDTH = 4


@dataclass
class DatasetReport:
    """What ``check_dataset`` found in one split."""

    split: str
    classes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per bad file: file, problem, fix
    bad_ids: set[str] = field(default_factory=set)  # image ids with a problem
    images: int = 0
    class_pixels: list[int] = field(default_factory=list)  # per class index
    void_pixels: int = 0  # 255
    mixed_band_pixels: int = 0  # labelled pixels in mixed_boundary_band(mask, BAND_WIDTH)

    def summary(self) -> str:
        """A table of the split's contents (meaningful when there are no problems)."""
        labelled = sum(self.class_pixels)
        lines = [f"{self.split}: {self.images} images, {len(self.classes)} classes, no problems"]
        for name, count in [*zip(self.classes, self.class_pixels, strict=True), ("void (255)", self.void_pixels)]:
            share = count / max(labelled + self.void_pixels, 1)
            lines.append(f"  {name:<16} {count:>12,d} px  {share:6.1%}")
        lines.append(f"  mixed-boundary band (width {BAND_WIDTH}): {self.mixed_band_pixels / max(labelled, 1):.1%} "
                     "of labelled pixels")
        return "\n".join(lines)


def check_dataset(root: str | Path, split: str, sbd_root: str | Path | None = None,
                  progress: bool = True) -> DatasetReport:
    """Read every file of ``split`` at ``root``; the report lists each problem and counts the pixels."""
    report = DatasetReport(split)
    try:
        dataset = voc(root, split, sbd_root=sbd_root)
    except DataError as err:  # wrong root, missing or empty split file, SBD absent: nothing further to read
        report.problems.append(str(err))
        return report
    report.classes, report.images = dataset.classes, len(dataset)
    k = dataset.num_classes
    pixels = torch.zeros(k, dtype=torch.long)
    seen = set()
    for index in tqdm(range(len(dataset)), desc=f"checking {split}", disable=not progress):
        name = dataset.ids[index]
        image_path, mask_path = dataset.paths(index)
        if name in seen:
            report.problems.append(f"split {split} lists {name} twice; remove the duplicate line from "
                                   f"{dataset.root / 'ImageSets' / 'Segmentation' / f'{split}.txt'}.")
            continue
        seen.add(name)
        image = mask = None
        try:
            image = load_image(image_path)
        except DataError as err:
            report.problems.append(str(err))
        try:
            mask = load_mask(mask_path, k)
        except DataError as err:
            report.problems.append(str(err))
        if image is None or mask is None:
            report.bad_ids.add(name)
            continue
        if image.shape[1:] != mask.shape:
            report.problems.append(f"mask {mask_path} is {tuple(mask.shape)} (H, W) but image {image_path} is "
                                   f"{tuple(image.shape[1:])}; they must match: re-export the mask at the image's "
                                   "size.")
            report.bad_ids.add(name)
            continue
        labelled = mask != IGNORE_INDEX
        pixels += torch.bincount(mask[labelled], minlength=k)
        report.void_pixels += int((~labelled).sum())
        report.mixed_band_pixels += int((mixed_boundary_band(mask, BAND_WIDTH) & labelled).sum())
    report.class_pixels = pixels.tolist()
    return report


def fix_hint(root: str | Path) -> str:
    """What to run to fix the files of the dataset at ``root``: repair a generated dataset, download VOC again."""
    root = Path(root)
    if (root / "COMPLETE.json").exists():
        return f"fix: python -m ranlib check-data --root {root} --repair (generates the damaged scenes again)"
    return (f"fix: restore the files listed, or download the dataset again (python -m ranlib download voc --root "
            f"{root.parent.parent if root.parent.name == 'VOCdevkit' else 'data'})")


def run_check_data(args) -> int:
    """``check-data``: print every problem of every split asked for (or its summary). Exit status 1 when a
    problem remains, 2 (a ``DataError``) when ``--root`` is not a folder; ``--repair`` first generates the
    damaged scenes of the embedded dataset again."""
    root = Path(args.root)
    if not root.is_dir():
        raise DataError(f"dataset root {root} does not exist; pass the folder that holds JPEGImages/ and "
                        "SegmentationClass/ (e.g. data/mixed_boundary or data/VOCdevkit/VOC2012)")
    reports = [check_dataset(root, split, args.sbd_root, progress=not args.quiet) for split in args.split]
    if getattr(args, "repair", False) and any(r.problems for r in reports):
        if not (root / "COMPLETE.json").exists():
            raise DataError(f"--repair generates only the embedded dataset again, and {root} is not one (no "
                            f"COMPLETE.json); {fix_hint(root)[5:]}")
        repaired = repair_mixed_boundary_dataset(root, set().union(*(r.bad_ids for r in reports)),
                                                 progress=not args.quiet)
        print(f"repaired {len(repaired)} scene(s): {', '.join(repaired) or 'the split files'}")
        reports = [check_dataset(root, split, args.sbd_root, progress=not args.quiet) for split in args.split]
    for report in reports:
        for problem in report.problems:
            print(f"[{report.split}] {problem}")
        print(f"{report.split}: {len(report.problems)} problem(s)" if report.problems else report.summary())
    if any(r.problems for r in reports):
        print(fix_hint(root))
        return 1
    return 0
