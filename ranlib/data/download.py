"""Downloading PASCAL VOC 2012 and SBD: mirrors in order, resumable, checksummed, time-bounded, safely extracted.

``download(VOC, "data/")`` fetches ``VOCtrainval_11-May-2012.tar`` into ``data/`` and extracts
``data/VOCdevkit/VOC2012``; ``download(SBD, "data/")`` fetches ``benchmark.tgz`` and extracts
``data/benchmark_RELEASE/dataset`` (the layout of ``data/README.md``). ``cache=`` keeps the archive in another
folder (the course passes a Google Drive folder, so that a new Colab session extracts the archive it fetched
before instead of fetching it again); the dataset is still extracted under ``root``.

Each archive is fetched into ``<name>.part``; a cut connection is resumed with an HTTP ``Range`` request, from
the same mirror or the next. Time without progress is bounded: a mirror that sends nothing for ``timeout``
seconds counts as failed, and once failed attempts have used ``patience`` seconds in all, no mirror is tried
again; each failure prints one line with the seconds left. The finished file must match its MD5 before it is
extracted, with ``tarfile``'s ``data`` filter and a check that no member lands outside the root. When every
mirror fails, the error lists each mirror once with what it did, and says what to fetch by hand and where to
put it. A dataset already extracted (or put in place by hand) is left alone.

The one hook for tests (and for a private mirror): the environment variable ``RANLIB_MIRRORS_FILE`` names a
JSON file such as ``{"voc": {"mirrors": ["http://127.0.0.1:8000/VOCtrainval_11-May-2012.tar"], "md5": "..."}}``
whose entries replace the mirrors and/or the MD5 of the archives it names (``voc``, ``sbd``).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from ranlib.progress import tqdm
from ranlib.settings import MIRRORS_FILE, mirrors_file

CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    name: str  # what the CLI calls it
    filename: str  # the archive's file name, also its name under root
    md5: str  # of the whole archive
    mirrors: tuple[str, ...]  # URLs, tried in order
    extracted: str  # the folder (relative to root) that holds the dataset once extracted


# https wherever the host offers it (thor and Berkeley are torchvision's https URLs; S3 serves https).
# host.robots.ox.ac.uk, the old VOC server, is kept as a plain-http last resort: the MD5 check still guards it.
HTTP_ONLY = ("host.robots.ox.ac.uk",)
VOC = Archive("voc", "VOCtrainval_11-May-2012.tar", "6cd6e144f989b92b3379bac3b3de84fd", (
    "https://thor.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
    "https://d2l-data.s3-accelerate.amazonaws.com/VOCtrainval_11-May-2012.tar",
    "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
), "VOCdevkit/VOC2012")
SBD = Archive("sbd", "benchmark.tgz", "82b4d87ceb2ed10f6038a1cba92111cb", (
    "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz",
), "benchmark_RELEASE/dataset")


def with_overrides(archive: Archive) -> Archive:
    """``archive`` with the mirrors and MD5 that ``$RANLIB_MIRRORS_FILE`` gives for it (unchanged without one)."""
    path = mirrors_file()
    if not path:
        return archive
    try:
        entry = json.loads(open(path).read()).get(archive.name, {})
    except (OSError, ValueError, AttributeError) as err:
        raise DownloadError(f"{MIRRORS_FILE}={path} is not a readable JSON object ({err}); fix the file or unset "
                            f"{MIRRORS_FILE} to use the built-in mirrors.") from err
    unknown = set(entry) - {"mirrors", "md5"}
    if unknown:
        raise DownloadError(f"{path}: unknown keys {sorted(unknown)} for {archive.name!r}; only 'mirrors' and 'md5'.")
    return replace(archive, mirrors=tuple(entry.get("mirrors", archive.mirrors)), md5=entry.get("md5", archive.md5))


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


class _Failures:
    """Each mirror's failures, listed once (with the attempt count), and the seconds that failed attempts used."""

    def __init__(self, patience: float):
        self.patience, self.used, self.by_source = patience, 0.0, {}

    def add(self, source: str, message: str, seconds: float = 0.0, retry: bool = False, progress: bool = True) -> None:
        count, _ = self.by_source.get(source, (0, ""))
        self.by_source[source] = (count + 1, message)
        self.used += seconds
        if progress:
            then = "trying again" if retry and self.left > 0 else "next mirror" if self.left > 0 else "giving up"
            tqdm.write(f"{source}: {message}; {then} ({self.left:.0f} s of {self.patience:.0f} s left for retries)")

    @property
    def left(self) -> float:
        return max(0.0, self.patience - self.used)

    def lines(self) -> list[str]:
        return [f"{source}: {message}" + (f" ({count} attempts)" if count > 1 else "")
                for source, (count, message) in self.by_source.items()]


def _fetch_with_resume(url: str, part: Path, attempts: int, timeout: float, progress: bool,
                       failures: _Failures) -> bool:
    """Fetch ``url`` into ``part``, resuming up to ``attempts`` times after a cut; False if it never completed.

    Attempts stop early once the failed ones have used up ``failures.patience`` seconds.
    """
    for attempt in range(attempts):
        if failures.left <= 0:
            return False
        tic = time.monotonic()
        try:
            fetch(url, part, min(timeout, failures.left), progress)
            return True
        except urllib.error.HTTPError as err:
            if err.code == 416 and part.exists():  # nothing left to fetch: the part is whole (the MD5 decides)
                return True
            failures.add(url, str(err), time.monotonic() - tic, progress=progress)
            return False  # 404 and the like will not change on a retry
        except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
            reason = getattr(err, "reason", None) or err or type(err).__name__
            failures.add(url, f"{reason}", time.monotonic() - tic, retry=attempt + 1 < attempts, progress=progress)
    return False


def manual_instructions(archive: Archive, root: Path, mirrors: tuple[str, ...], errors: list[str],
                        folder: Path | None = None) -> str:
    """The message when every mirror failed: what each mirror did, what to fetch by hand, its MD5, where it goes."""
    folder = root if folder is None else folder
    tried = "\n".join(f"  {e}" for e in errors)
    return (f"could not download {archive.name.upper()} from any mirror:\n{tried}\n"
            f"Fetch it by hand from one of\n" + "".join(f"  {m}\n" for m in mirrors) +
            f"(md5 {archive.md5}), put it at {folder / archive.filename}, and run "
            f"`python -m ranlib download {archive.name} --root {root}` again: it checks the file and extracts "
            f"{root / archive.extracted}.")


def download(archive: Archive, root: str | Path = "data", mirrors: tuple[str, ...] | None = None,
             attempts: int = 3, timeout: float = 30.0, progress: bool = True, patience: float = 120.0,
             cache: str | Path | None = None) -> Path:
    """Fetch (if needed), verify and extract ``archive`` under ``root``; returns the extracted dataset folder.

    ``mirrors`` replaces the archive's list; ``cache`` is the folder that keeps the archive (default ``root``);
    ``timeout`` bounds the silence of one attempt and ``patience`` the seconds all failed attempts may use.
    """
    archive = with_overrides(archive)
    root = Path(root)
    folder = root if cache is None else Path(cache)
    mirrors = archive.mirrors if mirrors is None else tuple(mirrors)
    dataset, done = root / archive.extracted, root / f"{archive.filename}.extracted"
    path, part = folder / archive.filename, folder / f"{archive.filename}.part"
    if dataset.is_dir() and (done.exists() or not (path.exists() or part.exists())):
        return dataset  # extracted here before, or put here by hand (this code never deletes its archive)
    root.mkdir(parents=True, exist_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    failures = _Failures(patience)
    if path.exists() and (found := md5sum(path)) != archive.md5:  # e.g. a file put there by hand, or cut off
        failures.add(str(path), f"md5 {found} is not {archive.md5}; removed", progress=progress)
        path.unlink()
    for url in mirrors if not path.exists() else ():
        if not _fetch_with_resume(url, part, attempts, timeout, progress, failures):
            continue
        if (found := md5sum(part)) == archive.md5:
            part.replace(path)
            break
        failures.add(url, f"md5 {found} is not {archive.md5}; discarded", progress=progress)
        part.unlink()
    if not path.exists():
        untried = [m for m in mirrors if m not in failures.by_source]
        lines = failures.lines() + [f"{m}: not tried, {patience:.0f} s of retries used up" for m in untried]
        raise DownloadError(manual_instructions(archive, root, mirrors, lines, folder))
    if progress and cache is not None:
        tqdm.write(f"extracting {path} into {root}")
    extract(path, root)
    done.write_text(archive.md5 + "\n")
    return dataset
