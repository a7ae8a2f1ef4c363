"""Execute the solved notebooks in quick mode and store their outputs, figures included, so that a reader on GitHub
sees what a run shows.

Each notebook runs top to bottom in a fresh kernel (quick mode, one torch thread: the setting CI's nbval uses), then
its outputs are made fit to commit: the repository's absolute path becomes ``<repo>`` (tests/test_notebooks_clean.py
refuses a machine's paths), progress bars (stderr and widgets) are dropped, and a notebook over ``--max-mb`` is
refused. The quick models are loaded from ``runs/course_quick`` when they are there, else trained first.

    python scripts/store_notebook_outputs.py                 # all ten solved notebooks
    python scripts/store_notebook_outputs.py 07 08           # the notebooks whose names start with these
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SOLVED = ROOT / "notebooks" / "solutions"
WIDGET = "application/vnd.jupyter.widget-view+json"


def clean_output(output: nbformat.NotebookNode) -> nbformat.NotebookNode | None:
    """The output as committed, or None to drop it: no stderr (progress bars), no widget views, no absolute
    repository paths in text."""
    if output.output_type == "stream" and output.name == "stderr":
        return None
    if output.output_type in ("display_data", "execute_result"):
        if WIDGET in output.data:  # a progress bar: its text fallback is a frozen bar
            return None
        for key in ("text/plain", "text/html", "text/markdown"):
            if key in output.data:
                output.data[key] = output.data[key].replace(str(ROOT), "<repo>")
    if output.output_type == "stream":
        output.text = output.text.replace(str(ROOT), "<repo>")
    return output


def store(path: Path, max_mb: float, timeout: int) -> tuple[float, float]:
    """Execute ``path`` in place and store its cleaned outputs; (seconds, megabytes)."""
    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(RANLIB_MODE="quick", RANLIB_THREADS="1")
    os.environ.pop("MPLBACKEND", None)  # the inline backend, so figures become PNG outputs
    start = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    seconds = time.perf_counter() - start
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [out for out in map(clean_output, cell.outputs) if out is not None]
    nb.metadata.pop("widgets", None)
    text = nbformat.writes(nb) + "\n"
    megabytes = len(text.encode()) / 1e6
    if megabytes > max_mb:
        raise SystemExit(f"{path.name}: {megabytes:.1f} MB with its outputs, above --max-mb {max_mb}; lower the "
                         "figures' dpi or size in the notebook, then run this again")
    path.write_text(text)
    return seconds, megabytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefixes", nargs="*", help="notebook name prefixes such as 07 (default: all)")
    parser.add_argument("--max-mb", type=float, default=2.0, help="refuse a notebook larger than this (MB)")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds a cell may run")
    args = parser.parse_args(argv)
    paths = [p for p in sorted(SOLVED.glob("[0-9][0-9]_*.ipynb"))
             if not args.prefixes or any(p.name.startswith(x) for x in args.prefixes)]
    if not paths:
        raise SystemExit(f"no solved notebook in {SOLVED} starts with {' or '.join(args.prefixes)}")
    for path in paths:
        seconds, megabytes = store(path, args.max_mb, args.timeout)
        print(f"{path.name}: {seconds:.0f} s, {megabytes:.2f} MB stored")
    return 0


if __name__ == "__main__":
    sys.exit(main())
