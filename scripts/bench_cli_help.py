"""How long ``python -m ranlib … --help`` takes: the median wall time of fresh processes, per command.

    python scripts/bench_cli_help.py [--repeats 5]

Each run is a new interpreter, as when a user types the command, so it includes Python's own start-up. The
figure to compare with is ``python -c pass`` (printed first) and ``python -c "import torch"``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (["-c", "pass"], ["-c", "import torch"], ["-m", "ranlib", "--help"], ["-m", "ranlib", "train", "--help"],
            ["-m", "ranlib", "evaluate", "--help"], ["-m", "ranlib", "check-data", "--help"],
            ["-m", "ranlib", "download", "--help"], ["-m", "ranlib", "benchmark", "--help"],
            ["-m", "ranlib", "train", "--iterations", "-5"])


def wall_time(args: list[str]) -> float:
    tic = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, check=False)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'command':<48}{'median s':>10}{'max s':>8}")
    for command in COMMANDS:
        times = [wall_time(command) for _ in range(args.repeats)]
        print(f"{'python ' + ' '.join(command):<48}{statistics.median(times):>10.3f}{max(times):>8.3f}")


if __name__ == "__main__":
    main()
