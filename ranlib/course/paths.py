"""Where the course's files land, and its datasets prepared there.

``data/`` and ``runs/`` under the repository root when working in a clone of ranlib, else under the current folder
(Colab: ``/content``). With a Drive (``RANLIB_DRIVE``, or Google Drive in Colab) the runs of the GPU modes and the
downloaded archives go to the Drive, so they survive the session, and the datasets are extracted to local disk in
each session."""

from __future__ import annotations

import sys
from pathlib import Path

from ranlib import settings
from ranlib.course.modes import MODES, detect_mode
from ranlib.data.download import SBD, VOC, download
from ranlib.data.mixed_boundary import ensure_mixed_boundary_dataset
from ranlib.data.sbd import sbd_mask_folder

COLAB_DRIVE = Path("/content/drive")


def home() -> Path:
    """The folder that receives ``data/`` and ``runs/``: the root of a ranlib clone around the current folder,
    else the current folder itself (Colab: ``/content``)."""
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "ranlib" / "course" / "__init__.py").is_file():
            return folder
    return cwd


def drive(mount: bool = True) -> Path | None:
    """The folder that stands for Google Drive: ``$RANLIB_DRIVE``, or in Colab ``/content/drive/MyDrive/ranlib``
    (mounted on first use when ``mount``); None elsewhere."""
    folder = settings.drive_folder()
    if folder:
        return folder
    if "google.colab" not in sys.modules:
        return None
    if mount and not (COLAB_DRIVE / "MyDrive").is_dir():
        from google.colab import drive as colab_drive  # noqa: PLC0415 (exists only in Colab)

        colab_drive.mount(str(COLAB_DRIVE))
    return COLAB_DRIVE / "MyDrive" / "ranlib"


def runs_dir(mode: str | None = None, mount: bool = True) -> Path:
    """Where this mode's runs live: ``<drive>/runs/course_<mode>`` with a Drive, else ``runs/course_<mode>``;
    capped budgets add a suffix, so a capped run never mixes with a real one."""
    mode = mode or detect_mode()
    found = settings.caps()
    suffix = "".join(f"_{key}{value}" for key, value in sorted(found.items()))
    base = drive(mount) if mode != "quick" else None
    return (base / "runs" if base else home() / "runs") / f"course_{mode}{suffix}"


def data_dir() -> Path:
    """The local folder that datasets are generated or extracted into: ``<home>/data``."""
    return home() / "data"


def archive_cache(mount: bool = True) -> Path | None:
    """Where downloaded archives are kept across sessions: ``<drive>/archives``, or None (kept in data/)."""
    base = drive(mount)
    return base / "archives" if base else None


def data_root(mode: str | None = None, progress: bool = True) -> Path:
    """The VOC-layout root of this mode's dataset, prepared on first use.

    quick: the embedded dataset (generated into ``data/mixed_boundary``; split ``val_quick`` = its first 50
    validation ids). colab/paper: PASCAL VOC 2012, downloaded once (the archive cached on the Drive when there
    is one, checksum verified) and extracted to ``data/VOCdevkit/VOC2012``. ``RANLIB_MAX_VAL_IMAGES`` writes the
    shorter validation split that ``configs`` then uses.
    """
    mode = mode or detect_mode()
    if mode == "quick":
        root = ensure_mixed_boundary_dataset(data_dir() / "mixed_boundary")
        _write_split(root, "val", "val_quick", 50)
    else:
        root = download(VOC, data_dir(), cache=archive_cache(), progress=progress)
    val_images = settings.caps().get("val_images")
    if val_images:
        _write_split(root, MODES[mode].val_split, f"val_first{val_images}", val_images)
    return root


def sbd_root(progress: bool = True) -> Path:
    """SBD's dataset folder beside VOC (``data/benchmark_RELEASE/dataset``), downloaded like VOC and its masks
    converted to PNG: what ``train_aug`` needs on top of VOC."""
    folder = download(SBD, data_dir(), cache=archive_cache(), progress=progress)
    sbd_mask_folder(folder, progress=progress)
    return folder


def _write_split(root: Path, source: str, name: str, count: int) -> None:
    """Write ``ImageSets/Segmentation/<name>.txt``: the first ``count`` ids of split ``source``."""
    splits = Path(root) / "ImageSets" / "Segmentation"
    ids = (splits / f"{source}.txt").read_text().split()[:count]
    target = splits / f"{name}.txt"
    text = "".join(f"{i}\n" for i in ids)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
