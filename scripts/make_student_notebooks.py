"""Generate the student notebooks (notebooks/NN_name.ipynb) from the solved ones (notebooks/solutions/).

In a solved notebook the answer of an exercise sits between two marker lines (nbgrader style)::

    def my_fuse(original, reverse, attention):
        \"\"\"F_RAN = F_org + A * F_rev ...\"\"\"  # the signature, docstring and hints stay
        # BEGIN SOLUTION: write my_fuse: original + attention * reverse
        return original + attention * reverse
        # END SOLUTION

The student version replaces the span by ``raise NotImplementedError("Your turn: <text after the colon>")`` at
the marker's indentation (without a text: "Your turn: write <the enclosing function or class>"). A span may
instead give the student a placeholder line: lines inside it that start with ``# STUB: `` are kept, uncommented,
and no ``raise`` is added (e.g. ``# STUB: PREDICTION = ...``). Everything else is copied; outputs and execution
counts are removed, the Colab badge points at the student notebook, a ``<!-- BEGIN SOLVED NOTE -->`` ...
``<!-- END SOLVED NOTE -->`` block of the first cell is dropped, and the first cell says where the solutions are.

    python scripts/make_student_notebooks.py           # write notebooks/NN_name.ipynb
    python scripts/make_student_notebooks.py --check   # exit 1 if a committed student notebook is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<message>.*?))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
STUB = re.compile(r"^\s*# STUB: (?P<code>.*)$")
ENCLOSING = re.compile(r"^\s*(?:def|class)\s+(?P<name>\w+)")
SOLVED_NOTE = re.compile(r"\n?<!-- BEGIN SOLVED NOTE -->.*?<!-- END SOLVED NOTE -->\n?", re.S)


class MarkerError(ValueError):
    """A BEGIN/END SOLUTION pair is broken; the message names the notebook and the cell."""


def student_source(source: str, where: str) -> str:
    """The cell's code with every solution span replaced by its stub."""
    out: list[str] = []
    lines = source.split("\n")
    i = 0
    while i < len(lines):
        begin = BEGIN.match(lines[i])
        if END.match(lines[i]):
            raise MarkerError(f"{where}: '# END SOLUTION' without a '# BEGIN SOLUTION' above it (line {i + 1})")
        if not begin:
            out.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if END.match(lines[j]) or BEGIN.match(lines[j])), None)
        if end is None or BEGIN.match(lines[end]):
            raise MarkerError(f"{where}: '# BEGIN SOLUTION' on line {i + 1} has no '# END SOLUTION' after it")
        indent = begin.group("indent")
        stubs = [m.group("code") for m in map(STUB.match, lines[i + 1:end]) if m]
        if stubs:
            out.extend(indent + code for code in stubs)
        else:
            message = begin.group("message")
            if not message:
                name = next((m.group("name") for m in map(ENCLOSING.match, reversed(out)) if m), None)
                message = f"write {name}" if name else "fill in this cell"
            out.append(f"{indent}raise NotImplementedError({('Your turn: ' + message)!r})")
        i = end + 1
    return "\n".join(out)


def student_notebook(solved: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student version of a solved notebook (a new object; ``solved`` is not modified)."""
    nb = nbformat.from_dict(solved)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source = student_source(cell.source, f"notebooks/solutions/{name} cell {index}")
            cell.outputs = []
            cell.execution_count = None
    first = nb.cells[0]
    if first.cell_type == "markdown":
        text = SOLVED_NOTE.sub("\n", first.source).replace("notebooks/solutions/", "notebooks/").rstrip()
        has_exercises = any(BEGIN.match(line) for c in solved.cells if c.cell_type == "code"
                            for line in c.source.split("\n"))
        note = (f"*Exercise version: the cells marked **Your turn** stop with `NotImplementedError` until you write "
                f"them, and the check below each one says what is still wrong. The solved notebook is "
                f"[`solutions/{name}`](solutions/{name}).*" if has_exercises else
                f"*The same notebook with its outputs is [`solutions/{name}`](solutions/{name}).*")
        first.source = f"{text}\n\n{note}"
    return nb


def generate(solutions: Path, students: Path) -> dict[Path, str]:
    """{student notebook path: its text} for every solved notebook."""
    if not solutions.is_dir():
        raise SystemExit(f"{solutions} does not exist: the solved notebooks live there")
    texts = {}
    for path in sorted(solutions.glob("[0-9][0-9]_*.ipynb")):
        solved = nbformat.read(path, as_version=4)
        texts[students / path.name] = nbformat.writes(student_notebook(solved, path.name)) + "\n"
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a student notebook is stale")
    parser.add_argument("--solutions", type=Path, default=ROOT / "notebooks" / "solutions")
    parser.add_argument("--out", type=Path, default=ROOT / "notebooks")
    args = parser.parse_args(argv)
    try:
        texts = generate(args.solutions, args.out)
    except MarkerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stale = [p for p, text in texts.items() if not p.exists() or p.read_text() != text]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(args.out.parent) if p.is_relative_to(args.out.parent) else p} differs from "
                  "its solved notebook's generation", file=sys.stderr)
        if stale:
            print("run: python scripts/make_student_notebooks.py", file=sys.stderr)
        return 1 if stale else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for p in stale:
        p.write_text(texts[p])
    print(f"{len(texts)} student notebooks, {len(stale)} rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
