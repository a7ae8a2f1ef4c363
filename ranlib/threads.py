"""``--threads N``: how many CPU threads a command's torch work may use (train, evaluate, benchmark).

Torch's default is one thread per core. On a machine shared with other jobs that default can crawl, because
OpenMP threads that wait on one another spin while the cores are busy elsewhere; one thread per job is then
faster. Torch-free until ``set_threads`` runs, so the parsers stay fast.
"""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type of a whole number >= 1: ``--threads``, and ``evaluate --batch-size`` (``ranlib.cli``)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text} is not allowed; it must be a whole number >= 1")
    return int(text)


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` to a command's parser."""
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="CPU threads for torch (default: the cores torch would use); on a machine shared "
                             "with other jobs, 1 per job is often faster")


def set_threads(threads: int | None) -> None:
    """Let torch use ``threads`` CPU threads (None: leave torch's default)."""
    if threads is None:
        return
    import torch

    torch.set_num_threads(threads)
