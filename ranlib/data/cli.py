"""The data commands: ``python -m ranlib download voc|sbd --root data/`` and ``python -m ranlib check-data``."""

from __future__ import annotations

import argparse

from ranlib.data.checks import run_check_data
from ranlib.data.download import SBD, VOC, DownloadError, download
from ranlib.data.sbd import sbd_mask_folder


def run_download(args) -> int:
    """``download``: fetch, verify and extract one dataset; SBD's masks are converted to PNG right away."""
    archive = VOC if args.dataset == "voc" else SBD
    try:
        folder = download(archive, args.root, progress=not args.quiet)
    except DownloadError as err:
        print(err)
        return 1
    if archive is SBD:
        sbd_mask_folder(folder, progress=not args.quiet)
    print(f"{archive.name.upper()} is ready in {folder}")
    return 0


def add_parser(subparsers) -> None:
    """Add ``download`` and ``check-data`` to the ``python -m ranlib`` command line."""
    dl = subparsers.add_parser("download", help="download PASCAL VOC 2012 or SBD into data/",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dl.add_argument("dataset", choices=["voc", "sbd"], help="voc: VOC 2012 trainval (2 GB); sbd: SBD (1.4 GB)")
    dl.add_argument("--root", default="data", help="folder that receives VOCdevkit/ or benchmark_RELEASE/")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    dl.set_defaults(func=run_download)

    check = subparsers.add_parser("check-data", help="validate every image and mask of a dataset split",
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    check.add_argument("--root", required=True, help="VOC-layout root, e.g. data/VOCdevkit/VOC2012")
    check.add_argument("--split", nargs="+", default=["train", "val"], help="split(s) to check")
    check.add_argument("--sbd-root", default=None, help="SBD's dataset folder, for train_aug")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(func=run_check_data)
