"""Command line: ``python -m ranlib <command> …`` (also installed as ``ranlib``).

The parsers live in ``ranlib.cli``, which imports no torch, so ``--help`` and a bad flag answer at once. ``main``
gives every command one convention: exit status 0 on success, 1 when a check found problems (or the command
failed), 2 for bad input or usage; an error is one line on stderr, and ``--debug`` shows its traceback. Training
stopped by SIGINT (Ctrl-C) or SIGTERM saves a checkpoint, says so in one line and exits with 128 + the signal's
number: 130 or 143, as a shell reports a process that the signal ended.
"""

from __future__ import annotations

import signal
import sys

from ranlib.cli import bad_flag, build_parser
from ranlib.engine.config import ConfigError
from ranlib.engine.run_dir import RunDirConflict, UnwritableRunDir


def bad_input(err: Exception) -> bool:
    """True for errors that mean the user's input needs fixing: a flag, a run directory, data, a checkpoint."""
    if isinstance(err, ConfigError | RunDirConflict | UnwritableRunDir):
        return True
    # These modules import torch; an error of theirs means they are loaded already.
    from ranlib.data.download import DownloadError
    from ranlib.data.errors import DataError
    from ranlib.engine.checkpoint import CheckpointError

    return isinstance(err, CheckpointError | DataError | DownloadError)


def interrupted(err: KeyboardInterrupt, command: str) -> tuple[str, int]:
    """The line to print and the exit status for Ctrl-C or SIGTERM: training's ``TrainingInterrupted`` (saved,
    resumable) or a KeyboardInterrupt anywhere else."""
    signals = sys.modules.get("ranlib.engine.signals")  # loaded already when training raised it
    if signals is not None and isinstance(err, signals.TrainingInterrupted):
        return f"interrupted at iteration {err.iteration}; rerun the same command to resume", 128 + err.signal
    return f"{command}: interrupted", 128 + signal.SIGINT


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status (0 success, 1 problems found or failed, 2 bad input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, before or after the command
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints one line and exits 2
    prefix = f"{parser.prog} {args.command}: error:"
    try:
        return args.func(args) or 0
    except KeyboardInterrupt as err:
        if debug:
            raise
        line, status = interrupted(err, f"{parser.prog} {args.command}")
        # Under torchrun every process stops and rank 0 says so (train loads ranlib.engine.distributed early).
        distributed = sys.modules.get("ranlib.engine.distributed")
        if distributed is None or distributed.launched_rank() == 0:
            print(line, file=sys.stderr)
        return status
    except Exception as err:
        if debug:
            raise
        if isinstance(err, ConfigError):
            print(f"{prefix} {bad_flag(err)}", file=sys.stderr)
            return 2
        if bad_input(err):
            print(f"{prefix} {err}", file=sys.stderr)
            return 2
        print(f"{prefix} {type(err).__name__}: {err}\n(run it again with --debug for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
