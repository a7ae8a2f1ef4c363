"""The committed notebooks are clean: valid nbformat with cell ids, a Colab badge naming the notebook itself, no
stored errors, outputs only where nbval checks them, at least two checked cells, and no absolute paths of a machine
(Colab's /content/drive is the intended home of full runs)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECKED = "# NBVAL_CHECK_OUTPUT"
ABSOLUTE = re.compile(r"(?<![\w.:/])(/(?:home|root|tmp|work|Users)/|[A-Z]:\\\\)")


def test_the_ten_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(10)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path):
    raw = json.loads(path.read_text())
    assert all("id" in cell for cell in raw["cells"]), f"{path.name}: a cell has no id (nbformat.validator.normalize)"
    ids = [cell["id"] for cell in raw["cells"]]
    assert len(set(ids)) == len(ids), f"{path.name}: repeated cell ids"
    nb = nbformat.reads(path.read_text(), as_version=4)
    nbformat.validate(nb)
    first = "".join(nb.cells[0].source)
    assert "colab-badge.svg" in first and f"notebooks/{path.name}" in first, f"{path.name}: Colab badge"
    checked = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"{path.name} cell {index}"
        is_checked = cell.source.startswith(CHECKED)
        checked += is_checked
        assert not any(out.output_type == "error" for out in cell.outputs), f"{where}: a stored error"
        assert is_checked or not cell.outputs, f"{where}: stored output in a cell nbval does not check"
        text = cell.source + json.dumps([dict(out) for out in cell.outputs])
        assert not ABSOLUTE.search(text), f"{where}: an absolute path ({ABSOLUTE.search(text).group(0)})"
    assert checked >= 2, f"{path.name}: {checked} cells marked {CHECKED}, at least 2 wanted"
