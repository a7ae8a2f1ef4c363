"""Command line: ``python -m ranlib <command> …`` (also installed as ``ranlib``).

A thin argparse layer: each command's module adds its own sub-parser with ``add_parser(subparsers)`` and sets
``func``, the function that runs it.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ranlib", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    # Each owning module registers its commands here, one explicit line each.
    from ranlib import benchmark, evaluate, train
    train.add_parser(subparsers)
    evaluate.add_parser(subparsers)
    benchmark.add_parser(subparsers)
    from ranlib.data import cli as data_cli
    data_cli.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. A problem with the user's input (data, checkpoint, download) is printed as one line
    naming the file and the fix, with exit status 2; anything else keeps its traceback."""
    from ranlib.checkpoint import CheckpointError
    from ranlib.data.download import DownloadError
    from ranlib.data.voc import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except (CheckpointError, DataError, DownloadError) as err:
        print(f"python -m ranlib {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
