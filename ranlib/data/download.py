"""Downloading PASCAL VOC 2012 and SBD: mirrors in order, resumable, checksummed, safely extracted.

``download(VOC, "data/")`` fetches ``VOCtrainval_11-May-2012.tar`` into ``data/`` and extracts
``data/VOCdevkit/VOC2012``; ``download(SBD, "data/")`` fetches ``benchmark.tgz`` and extracts
``data/benchmark_RELEASE/dataset`` (the layout of ``data/README.md``). Each archive is fetched into
``<name>.part``; a cut connection is resumed with an HTTP ``Range`` request, from the same mirror or the next.
The finished file must match its MD5 before it is extracted, with ``tarfile``'s ``data`` filter and a check
that no member lands outside the root. When every mirror fails, the error says what to fetch by hand and where
to put it. A dataset already extracted (or put in place by hand) is left alone. ``mirrors=`` overrides the list
(the tests serve archives from 127.0.0.1).
"""

from __future__ import annotations

import hashlib
import http.client
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ranlib.progress import tqdm

CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    name: str  # what the CLI calls it
    filename: str  # the archive's file name, also its name under root
    md5: str  # of the whole archive
    mirrors: tuple[str, ...]  # URLs, tried in order
    extracted: str  # the folder (relative to root) that holds the dataset once extracted


VOC = Archive("voc", "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", (
    "http://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "http://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",
), "VOCdevkit/VOC2012")
SBD = Archive("sbd", "benchmark.tgz", "82b4d87ceb2ed10f6038a1cba92111cb", (
    "http://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
), "benchmark_RELEASE/dataset")


class DownloadError(RuntimeError):
    """No mirror delivered the archive; the message says how to fetch it by hand."""


def md5sum(path: Path) -> str:
    """The MD5 of a file, read in 1 MiB blocks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, part: Path, timeout: float = 30.0, progress: bool = True) -> None:
    """Append ``url``'s bytes to ``part``, resuming after the bytes already there (HTTP Range)."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = response.status == 206
        if start and not resumed:
            start = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                             desc=part.name, disable=not progress) as bar:
            while block := response.read(CHUNK):
                f.write(block)
                bar.update(len(block))
    if total is not None and part.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def extract(archive: Path, root: Path) -> None:
    """Extract a tar archive into ``root``, refusing any member that would land outside it.

    Names are checked before anything is written; ``tarfile``'s ``data`` filter then refuses links that point
    outside, device files and the like, and its error is turned into a ``DownloadError`` that names the archive.
    """
    root = root.resolve()
    refuse = f"the file is not the expected dataset: delete {archive} and download again."
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if not (root / member.name).resolve().is_relative_to(root):  # "../x" and "/x" alike
                    raise DownloadError(f"archive {archive} holds {member.name!r}, which would land outside "
                                        f"{root}; {refuse}")
            tar.extractall(root, filter="data")
    except tarfile.FilterError as err:
        raise DownloadError(f"archive {archive} holds an unsafe member ({err}); {refuse}") from err
    except tarfile.ReadError as err:
        raise DownloadError(f"archive {archive} is not a readable tar file ({err}); {refuse}") from err


def _fetch_with_resume(url: str, part: Path, attempts: int, timeout: float, progress: bool,
                       errors: list[str]) -> bool:
    """Fetch ``url`` into ``part``, resuming up to ``attempts`` times after a cut; False if it never completed."""
    for _ in range(attempts):
        try:
            fetch(url, part, timeout, progress)
            return True
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # nothing left to fetch: the part is whole (the MD5 decides)
                return True
            errors.append(f"{url}: {err}")
            return False  # 404 and the like will not change on a retry
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            errors.append(f"{url}: {err}")
    return False


def manual_instructions(archive: Archive, root: Path, mirrors: tuple[str, ...], errors: list[str]) -> str:
    """The message when every mirror failed: what each mirror did, what to fetch by hand, its MD5, where it goes."""
    tried = "\n".join(f"  {e}" for e in errors)
    return (f"could not download {archive.name.upper()} from any mirror:\n{tried}\n"
            f"Fetch it by hand from one of\n" + "".join(f"  {m}\n" for m in mirrors) +
            f"(md5 {archive.md5}), put it at {root / archive.filename}, and run "
            f"`python -m ranlib download {archive.name} --root {root}` again: it checks the file and extracts "
            f"{root / archive.extracted}.")


def download(archive: Archive, root: str | Path = "data", mirrors: tuple[str, ...] | None = None,
             attempts: int = 3, timeout: float = 30.0, progress: bool = True) -> Path:
    """Fetch (if needed), verify and extract ``archive`` under ``root``; returns the extracted dataset folder."""
    root = Path(root)
    mirrors = archive.mirrors if mirrors is None else tuple(mirrors)
    dataset, done = root / archive.extracted, root / f"{archive.filename}.extracted"
    path, part = root / archive.filename, root / f"{archive.filename}.part"
    if dataset.is_dir() and (done.exists() or not (path.exists() or part.exists())):
        return dataset  # extracted here before, or put here by hand (this code never deletes its archive)
    root.mkdir(parents=True, exist_ok=True)
    errors = []
    if path.exists() and (found := md5sum(path)) != archive.md5:  # e.g. a file put there by hand
        errors.append(f"{path}: md5 {found} is not {archive.md5}; removed")
        path.unlink()
    for url in mirrors if not path.exists() else ():
        if not _fetch_with_resume(url, part, attempts, timeout, progress, errors):
            continue
        if (found := md5sum(part)) == archive.md5:
            part.replace(path)
            break
        errors.append(f"{url}: md5 {found} is not {archive.md5}; discarded")
        part.unlink()
    if not path.exists():
        raise DownloadError(manual_instructions(archive, root, mirrors, errors))
    extract(path, root)
    done.write_text(archive.md5 + "\n")
    return dataset
