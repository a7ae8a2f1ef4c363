"""The committed notebooks are clean, in both folders.

- ``notebooks/solutions/NN_name.ipynb`` (solved, executed by CI under nbval): valid nbformat with cell ids, a Colab
  badge naming the solved notebook itself, stored executed (``scripts/store_notebook_outputs.py``: every code
  cell run in order, its figures kept, so a reader on GitHub sees them) with no stored errors, progress bars or
  widget views, under 2 MB, at least two checked cells (``# NBVAL_CHECK_OUTPUT``), and no absolute paths of a
  machine (Colab's /content/drive is the intended home of full runs).
- ``notebooks/NN_name.ipynb`` (the student's, generated from the solved one): valid nbformat with cell ids, a Colab
  badge naming the student notebook, no outputs and no execution counts at all, no absolute paths.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

FOLDER = Path(__file__).parent.parent / "notebooks"
STUDENT = sorted(FOLDER.glob("[0-9][0-9]_*.ipynb"))
SOLVED = sorted((FOLDER / "solutions").glob("[0-9][0-9]_*.ipynb"))
CHECKED = "# NBVAL_CHECK_OUTPUT"
WIDGET = "application/vnd.jupyter.widget-view+json"
MAX_BYTES = 2_000_000
ABSOLUTE = re.compile(r"(?<![\w.:/])(/(?:home|root|tmp|work|Users)/|[A-Z]:\\\\)")
BADGE = re.compile(r"\(https://colab\.research\.google\.com/github/[^)\s]*/blob/main/(?P<path>notebooks/[^)\s]+)\)")


@pytest.mark.parametrize("notebooks", [STUDENT, SOLVED], ids=["student", "solutions"])
def test_the_ten_notebooks_are_there(notebooks):
    assert [p.name[:2] for p in notebooks] == [f"{i:02d}" for i in range(10)]


def test_each_student_notebook_has_a_solved_one():
    assert [p.name for p in STUDENT] == [p.name for p in SOLVED]


def read_checked(path: Path) -> nbformat.NotebookNode:
    """The notebook, after checking that it is valid nbformat with unique cell ids."""
    raw = json.loads(path.read_text())
    assert all("id" in cell for cell in raw["cells"]), f"{path}: a cell has no id (nbformat.validator.normalize)"
    ids = [cell["id"] for cell in raw["cells"]]
    assert len(set(ids)) == len(ids), f"{path}: repeated cell ids"
    nb = nbformat.reads(path.read_text(), as_version=4)
    nbformat.validate(nb)
    return nb


def badge_path(nb: nbformat.NotebookNode) -> str | None:
    """The repository path that the first cell's Colab badge opens, or None without a badge."""
    first = "".join(nb.cells[0].source)
    found = BADGE.search(first) if "colab-badge.svg" in first else None
    return found.group("path") if found else None


def no_absolute_path(where: str, cell: nbformat.NotebookNode) -> None:
    text = cell.source + json.dumps([dict(out) for out in cell.get("outputs", [])])
    assert not ABSOLUTE.search(text), f"{where}: an absolute path ({ABSOLUTE.search(text).group(0)})"


@pytest.mark.parametrize("path", SOLVED, ids=lambda p: p.name)
def test_solved_notebook_is_clean(path):
    nb = read_checked(path)
    name = f"solutions/{path.name}"
    assert badge_path(nb) == f"notebooks/solutions/{path.name}", f"{name}: Colab badge opens {badge_path(nb)}"
    assert path.stat().st_size < MAX_BYTES, f"{name}: {path.stat().st_size / 1e6:.1f} MB stored, at most 2 wanted"
    rerun = f"run python scripts/store_notebook_outputs.py {path.name[:2]}"
    checked, counts, images = 0, [], 0
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index}"
        no_absolute_path(where, cell)
        if cell.cell_type != "code":
            continue
        is_checked = cell.source.startswith(CHECKED)
        checked += is_checked
        counts.append(cell.execution_count)
        assert not any(out.output_type == "error" for out in cell.outputs), f"{where}: a stored error"
        assert not any(out.get("name") == "stderr" or WIDGET in out.get("data", {}) for out in cell.outputs), (
            f"{where}: a stored progress bar; {rerun}")
        assert not is_checked or cell.outputs, f"{where}: a {CHECKED} cell without its stored output"
        images += sum("image/png" in out.get("data", {}) for out in cell.outputs)
    assert counts == list(range(1, len(counts) + 1)), f"{name}: not stored as one run from the top; {rerun}"
    assert checked >= 2, f"{name}: {checked} cells marked {CHECKED}, at least 2 wanted"
    draws = any("plt." in c.source or "plot_" in c.source or "show_" in c.source
                for c in nb.cells if c.cell_type == "code")
    assert images or not draws, f"{name}: it draws figures but none is stored; {rerun}"


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.name)
def test_student_notebook_is_clean(path):
    nb = read_checked(path)
    assert badge_path(nb) == f"notebooks/{path.name}", f"{path.name}: Colab badge opens {badge_path(nb)}"
    assert f"(solutions/{path.name})" in nb.cells[0].source, f"{path.name}: the first cell should link its solutions"
    for index, cell in enumerate(nb.cells):
        where = f"{path.name} cell {index}"
        no_absolute_path(where, cell)
        if cell.cell_type == "code":
            assert not cell.outputs, f"{where}: a student notebook stores no outputs (regenerate it)"
            assert cell.execution_count is None, f"{where}: a stored execution count (regenerate it)"
