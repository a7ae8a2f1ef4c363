"""Whole-dataset validation behind ``python -m ranlib check-data``: every problem found, reported at once.

Training stops at the first bad file it meets, possibly an hour in; this reads every image and mask of a split
up front, with the same checks as ``voc.VOCSegmentation.load`` (files present, JPEG decodes, mask holds class
indices in ``0..K-1`` or 255, sizes match), and lists every problem with its file and fix.
"""

from __future__ import annotations

from pathlib import Path

from tqdm.auto import tqdm

from ranlib.data.voc import DataError, voc


def check_dataset(root: str | Path, split: str, sbd_root: str | Path | None = None,
                  progress: bool = True) -> list[str]:
    """The problems of ``split`` at ``root``, one message per bad file; empty when the split is sound."""
    try:
        dataset = voc(root, split, sbd_root=sbd_root)
    except DataError as err:  # wrong root, missing or empty split file, SBD absent: nothing further to read
        return [str(err)]
    problems = []
    for index in tqdm(range(len(dataset)), desc=f"checking {split}", disable=not progress):
        try:
            dataset.load(index)
        except DataError as err:
            problems.append(str(err))
    return problems


def run_check_data(args) -> int:
    """``check-data``: print every problem of every split asked for; exit code 1 if there is any."""
    failed = False
    for split in args.split:
        problems = check_dataset(args.root, split, args.sbd_root, progress=not args.quiet)
        for problem in problems:
            print(f"[{split}] {problem}")
        print(f"{split}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        failed |= bool(problems)
    return 1 if failed else 0
