"""The data commands' work: ``python -m ranlib download voc|sbd --root data/`` (parsed by ``ranlib.cli``).

``check-data`` runs ``ranlib.data.checks.run_check_data``.
"""

from __future__ import annotations

from ranlib.data.download import SBD, VOC, download
from ranlib.data.sbd import sbd_mask_folder


def run_download(args) -> int:
    """``download``: fetch, verify and extract one dataset; SBD's masks are converted to PNG right away. A failed
    download raises ``DownloadError``, which the command line prints on stderr with exit status 2."""
    archive = VOC if args.dataset == "voc" else SBD
    folder = download(archive, args.root, progress=not args.quiet)
    if archive is SBD:
        sbd_mask_folder(folder, progress=not args.quiet)
    print(f"{archive.name.upper()} is ready in {folder}")
    return 0
