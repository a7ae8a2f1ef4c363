"""docs/results.md, written by the scripts that measure: each table sits between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` markers, and the script that regenerates it replaces what is between them.

``write_section(path, "ablation", text)`` replaces the ablation table (or appends a new section with its markers
when the file has none); ``machine()`` is the line each section's header gives: CPU model, core count, torch
threads and load.
``header(script, argv, threads)`` is both: the command that regenerates a section, then that line.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The begin and end markers of section ``name``."""
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def write_section(path: str | Path, name: str, text: str, title: str | None = None) -> Path:
    """Put ``text`` between the markers of section ``name`` in ``path``; a file or section that does not exist
    yet is created (the section at the end, under ``## title``). Everything outside the markers is kept."""
    path = Path(path)
    begin, end = markers(name)
    block = f"{begin}\n{text.strip()}\n{end}"
    old = path.read_text() if path.exists() else "# Results\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = old.rstrip("\n") + f"\n\n## {title or name}\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new if new.endswith("\n") else new + "\n")
    return path


def read_section(path: str | Path, name: str) -> str | None:
    """The text between the markers of section ``name``, or None when the file or the section is missing."""
    path = Path(path)
    if not path.exists():
        return None
    begin, end = markers(name)
    found = re.search(re.escape(begin) + r"\n?(.*?)\n?" + re.escape(end), path.read_text(), re.S)
    return found.group(1) if found else None


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s), or the platform's processor string where /proc/cpuinfo is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int, jobs: int = 1) -> str:
    """'<date>, <CPU> (<N> cores), <threads> torch thread(s) per run, <jobs> run(s) at a time, load <1-min avg>'."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{datetime.date.today().isoformat()}, {cpu_model()} ({os.cpu_count()} cores), {threads} torch "
            f"thread{'s' * (threads != 1)} per run, {jobs} run{'s' * (jobs != 1)} at a time, load {load:.1f} "
            "when the tables were written")


def command(script: str, argv: list[str] | None) -> str:
    """The command line that regenerates a section, ``python scripts/<script> <argv>``, quoted for a shell;
    ``argv`` None means the arguments this process was started with."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python", f"scripts/{script}", *(shlex.quote(a) for a in args)])


def header(script: str, argv: list[str] | None, threads: int, jobs: int = 1) -> str:
    """What each section starts with: the command in backticks, then the ``machine`` line."""
    return f"`{command(script, argv)}`\n\n{machine(threads, jobs)}.\n\n"
