"""ranlib.progress: a text bar whose final state is what an executed notebook keeps, tqdm's defaults elsewhere."""

from __future__ import annotations

import io

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from ranlib.progress import NOTEBOOK_MININTERVAL, in_notebook_kernel, tqdm


def test_outside_a_kernel_the_bar_keeps_tqdms_defaults(capsys):
    assert not in_notebook_kernel()
    bar = tqdm(range(3), desc="loop")
    assert bar.mininterval == 0.1 and bar.ncols is None  # tqdm's own defaults
    for _ in bar:
        pass
    captured = capsys.readouterr()
    assert "loop: 100%" in captured.err and "3/3" in captured.err and captured.out == ""
    out = io.StringIO()
    for _ in tqdm(range(5), file=out, desc="loop", mininterval=0):  # explicit arguments win
        pass
    assert out.getvalue().rstrip().split("\r")[-1].startswith("loop: 100%")


def test_an_executed_notebook_keeps_the_final_state_as_text(tmp_path):
    """nbclient runs a 40-step loop (2 s): the saved output is text ending at 40/40, redrawn about once a second,
    and no widget (tqdm's widget bar would be saved at its first state, 0/40)."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell("import time\nfrom ranlib.progress import in_notebook_kernel, tqdm\n"
                              "print('kernel:', in_notebook_kernel())\n"
                              "for _ in tqdm(range(40), desc='steps'):\n    time.sleep(0.05)")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")
    outputs = nbformat.read(tmp_path / "executed.ipynb", as_version=4).cells[0].outputs
    assert {o.output_type for o in outputs} == {"stream"}, outputs  # no display_data: no widget
    text = "".join(o.text for o in outputs if o.name == "stdout")
    assert text.startswith("kernel: True\n"), text
    states = [s for s in text.split("\r") if s.strip()][1:]  # after the first line, one state per redraw
    assert states[-1].startswith("steps: 100%") and "40/40" in states[-1], states
    # about one redraw a second (plus the first and the final ones), not tqdm's ten a second
    assert len(states) <= 2 / NOTEBOOK_MININTERVAL + 4, states


def test_a_nested_bar_in_a_notebook_prints_no_cursor_moves(tmp_path):
    """Evaluation's bar inside training's: an output cell cannot move the cursor up, so no ESC[A may reach it."""
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.cells = [new_code_cell("from ranlib.progress import tqdm\n"
                              "for _ in tqdm(range(3), desc='train', mininterval=0):\n"
                              "    for _ in tqdm(range(4), desc='evaluate', mininterval=0):\n        pass")]
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert "\x1b" not in text, repr(text)
    states = [s for s in text.split("\r") if s.strip()]
    assert states[-1].startswith("train: 100%") and "3/3" in states[-1], states
