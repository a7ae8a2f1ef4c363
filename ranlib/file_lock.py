"""One process at a time on a shared folder: an exclusive lock on a file beside it, held for a ``with`` block.

Two processes that write the same folder at once damage it: two kernels generating the embedded dataset, or two
notebooks (or a notebook and a test) training the same course run. ``exclusive(path)`` makes the second one wait
for the first, printing once what it waits for, and then see the first one's finished work. The lock is the
operating system's (``fcntl.flock`` on Linux and macOS, ``msvcrt.locking`` on Windows): it goes with the process,
so a killed process leaves no stale lock behind, only the empty ``.lock`` file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

if sys.platform == "win32":  # pragma: no cover - the CI runs on Linux
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _wait_lock(fd: int) -> None:
        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # tries for about 10 s, then raises: try again
                return
            except OSError:
                continue

    def _unlock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _wait_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


def lock_path(path: str | Path) -> Path:
    """The lock file for ``path``: ``<path>.lock`` beside it (``runs/course_quick/ran`` -> ``ran.lock``)."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextmanager
def exclusive(path: str | Path, what: str = "") -> Iterator[None]:
    """Hold ``path``'s lock for the block; while another process holds it, wait, saying once what for."""
    fd = _lock(lock_path(path), what or f"using {path}")
    try:
        yield
    finally:
        if fd is not None:
            _unlock(fd)
            os.close(fd)


def _lock(lock: Path, what: str) -> int | None:
    """The open, locked file descriptor of ``lock`` (waiting for it when another process holds it), or None where
    the folder cannot hold a lock: a read-only folder (nothing there can be written, so nothing to guard) or a file
    system without locks (some network mounts), where the block goes on unguarded, as before locks."""
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        free = _try_lock(fd)
    except OSError:
        os.close(fd)
        return None
    if not free:
        print(f"waiting for another process {what} (lock {lock})", flush=True)
        _wait_lock(fd)
    return fd
