"""The student notebooks are generated from the solved ones and stop at their first exercise check.

- The generator (scripts/make_student_notebooks.py) on a small synthetic notebook: stubs in place of the
  solution spans, signature/docstring/hints kept, outputs removed, the first cell pointing at the solutions,
  ``--check`` failing on drift, broken markers named.
- The committed notebooks (once notebooks/solutions exists): ``--check`` passes, no student notebook holds a
  solution, and each student notebook, executed unchanged in quick mode, runs without error up to its first
  exercise check, which stops with "not done yet". Notebooks 07 and 08 load the course's quick models before
  their first exercise: the finished runs in runs/course_quick (tests/test_course_models.py trains them earlier in
  the suite), else capped two-iteration runs of their own (``RANLIB_MAX_ITERATIONS``, runs/course_quick_iterations2),
  since what is checked is that the notebook reaches its exercise, not what the models learned.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "make_student_notebooks.py"
SOLUTIONS = ROOT / "notebooks" / "solutions"
spec = importlib.util.spec_from_file_location("make_student_notebooks", SCRIPT)
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

FUSE = '''import torch


def my_fuse(original: torch.Tensor, reverse: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """F_RAN = F_org + A * F_rev; all (B, K, h, w)."""
    # Hint: reverse is already NEG(CONV_rev(f)).
    # BEGIN SOLUTION: write my_fuse (original + attention * reverse)
    fused = original + attention * reverse
    return fused
    # END SOLUTION'''
ATTENTION = '''def my_reverse_attention(original):
    """A = 1 / (1 + exp(original))."""
    # BEGIN SOLUTION
    return 1.0 / (1.0 + torch.exp(original))
    # END SOLUTION'''
PREDICTION = '''# BEGIN SOLUTION
# STUB: PREDICTION = ...  # "rarely" or "often"
PREDICTION = "rarely"
# END SOLUTION
print("predicted")'''


def synthetic_solved() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research."
            "google.com/github/ranlib-course/ranlib/blob/main/notebooks/solutions/99_demo.ipynb)\n\n# 99 · Demo\n"
            "<!-- BEGIN SOLVED NOTE -->\n*Solved version.*\n<!-- END SOLVED NOTE -->\n"),
        nbformat.v4.new_code_cell("x = 1\nprint(x)"),
        nbformat.v4.new_code_cell(FUSE),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nfrom ranlib.exercises import check_fuse\n\n"
                                  "check_fuse(my_fuse)"),
        nbformat.v4.new_code_cell(ATTENTION),
        nbformat.v4.new_code_cell(PREDICTION),
    ]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[1].execution_count = 3
    return nb


def test_generator_on_a_synthetic_notebook():
    solved = synthetic_solved()
    before = nbformat.writes(solved)
    student = make.student_notebook(solved, "99_demo.ipynb")
    assert nbformat.writes(solved) == before, "the solved notebook must not be modified"
    nbformat.validate(student)
    first, fuse, check, attention, prediction = (student.cells[i].source for i in (0, 2, 3, 4, 5))
    assert "blob/main/notebooks/99_demo.ipynb" in first and "notebooks/solutions/99_demo" not in first.split(")")[1]
    assert "Solved version" not in first and "(solutions/99_demo.ipynb)" in first and "Your turn" in first
    assert fuse.endswith('    # Hint: reverse is already NEG(CONV_rev(f)).\n'
                         "    raise NotImplementedError('Your turn: write my_fuse (original + attention * reverse)')")
    assert '"""F_RAN = F_org + A * F_rev; all (B, K, h, w)."""' in fuse and "fused =" not in fuse
    assert check == synthetic_solved().cells[3].source, "check cells are copied unchanged"
    assert attention.endswith("    raise NotImplementedError('Your turn: write my_reverse_attention')")
    assert "torch.exp" not in attention
    assert prediction == 'PREDICTION = ...  # "rarely" or "often"\nprint("predicted")'
    assert all(c.outputs == [] and c.execution_count is None for c in student.cells if c.cell_type == "code")
    assert not any("SOLUTION" in c.source for c in student.cells)


def test_generator_check_mode_and_broken_markers(tmp_path, capsys):
    solutions, out = tmp_path / "notebooks" / "solutions", tmp_path / "notebooks"
    solutions.mkdir(parents=True)
    nbformat.write(synthetic_solved(), solutions / "99_demo.ipynb")
    argv = ["--solutions", str(solutions), "--out", str(out)]
    assert make.main(argv + ["--check"]) == 1, "a missing student notebook is stale"
    assert make.main(argv) == 0 and (out / "99_demo.ipynb").exists()
    assert make.main(argv + ["--check"]) == 0
    nb = synthetic_solved()
    nb.cells[2].source = nb.cells[2].source.replace("attention * reverse\n", "attention * reverse * 1\n")
    nbformat.write(nb, solutions / "99_demo.ipynb")
    assert make.main(argv + ["--check"]) == 1
    assert "99_demo.ipynb differs" in capsys.readouterr().err
    nb.cells[2].source = nb.cells[2].source.replace("    # END SOLUTION", "")
    nbformat.write(nb, solutions / "99_demo.ipynb")
    assert make.main(argv) == 2
    assert "99_demo.ipynb cell 2: '# BEGIN SOLUTION' on line 7 has no '# END SOLUTION'" in capsys.readouterr().err


def quick_runs_finished() -> bool:
    """Whether the course's three quick runs in runs/course_quick are finished (the models notebooks 07 and 08 load)."""
    from ranlib import course

    with pytest.MonkeyPatch.context() as patch:
        for name in ("RANLIB_DRIVE", *course.CAPS):
            patch.delenv(name, raising=False)
        patch.chdir(ROOT)
        configs = course.configs("quick", data=ROOT / "data" / "mixed_boundary")  # reads nothing from the disk
        return all(course.finished_checkpoint(config) is not None for config in configs.values())


def kernel_env() -> dict:
    """The environment of a student notebook's kernel: this process's, in quick mode on one torch thread. Without
    the finished quick runs, the budget is capped at two iterations (see the module docstring)."""
    return os.environ | {"RANLIB_QUICK": "1", "RANLIB_MODE": "quick", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                         "RANLIB_THREADS": "1", "RANLIB_MAX_ITERATIONS": "" if quick_runs_finished() else "2"}


def run_until_error(nb: nbformat.NotebookNode, timeout: int = 600, env: dict | None = None):
    """Execute ``nb`` in a fresh kernel from the repository root with ``env`` (default ``kernel_env()``); (index of
    the failing cell or None, its error). The kernel gets its own environment, so several can run at once."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}})
    try:
        client.execute(env=env or kernel_env())
    except CellExecutionError:
        for index, cell in enumerate(nb.cells):
            errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
            if errors:
                return index, errors[0]
        raise
    return None, None


@pytest.mark.slow  # a notebook kernel
def test_synthetic_student_notebook_stops_at_its_check_with_a_short_message():
    student = make.student_notebook(synthetic_solved(), "99_demo.ipynb")
    index, error = run_until_error(student, timeout=120)
    assert index == 3, "the first check cell should stop the notebook"
    assert error.ename == "NotDoneError"
    assert error.traceback == ["✗ not done yet: write my_fuse in the cell above, then run this check again"]


needs_solutions = pytest.mark.skipif(not SOLUTIONS.is_dir(), reason="notebooks/solutions does not exist yet")
SOLVED = sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb")) if SOLUTIONS.is_dir() else []


@needs_solutions
def test_student_notebooks_are_generated_from_the_solutions():
    result = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# Notebooks 07 and 08 load (or, without the finished quick runs, train capped runs of) the same course models, so
# they run one after the other in one lane; the other notebooks fill the remaining lanes.
SHARED_RUNS = ("07_", "08_")
STOPS_AT_FIRST_CHECK = "test_student_notebook_holds_no_solution_and_stops_at_its_first_check"


@pytest.fixture(scope="module")
def executed_students(request):
    """``{name: (student notebook, (failing cell or None, error))}`` for the notebooks this session selected, executed
    in one kernel each, ``course.cores()`` kernels at a time (one torch thread each): the kernels spend most of
    their time starting Python and importing torch, which one core does at a time."""
    from ranlib import course

    wanted = {item.callspec.params["solved"].name for item in request.session.items  # nbval's cells are items too
              if getattr(item, "originalname", None) == STOPS_AT_FIRST_CHECK}
    env = kernel_env()
    shared = [name for name in sorted(wanted) if name.startswith(SHARED_RUNS)]
    lanes = [shared] if shared else []
    for name in sorted(wanted - set(shared)):
        if len(lanes) < course.cores():
            lanes.append([name])
        else:
            min(lanes, key=len).append(name)

    def run_lane(names: list[str]) -> dict:
        done = {}
        for name in names:
            student = nbformat.read(ROOT / "notebooks" / name, as_version=4)
            done[name] = (student, run_until_error(student, env=env))
        return done

    with ThreadPoolExecutor(len(lanes)) as pool:
        return {name: result for lane in pool.map(run_lane, lanes) for name, result in lane.items()}


@needs_solutions
@pytest.mark.slow  # a notebook kernel each, two at a time on two cores
@pytest.mark.parametrize("solved", SOLVED, ids=lambda p: p.name)
def test_student_notebook_holds_no_solution_and_stops_at_its_first_check(solved, executed_students):
    student, (index, error) = executed_students[solved.name]
    assert not any("SOLUTION" in c.source for c in student.cells if c.cell_type == "code")
    stubs = [i for i, c in enumerate(student.cells)
             if c.cell_type == "code" and "NotImplementedError('Your turn" in c.source]
    if not stubs:
        assert index is None, f"{solved.name}: cell {index} failed: {error and error.evalue}"
        return
    assert index is not None, f"{solved.name}: ran to the end although it has exercises"
    assert index > stubs[0], f"{solved.name}: cell {index} failed before the first exercise: {error.evalue}"
    assert error.ename == "NotDoneError" and "not done yet" in error.evalue, (
        f"{solved.name}: cell {index} failed with {error.ename}: {error.evalue}")
    assert len(error.traceback) <= 2, "the check's message should be one or two lines"
