"""The training engine's shape (issue 33): each concern in a module of its own, short enough to read in one sitting.

``fit`` reads as set-up, loop and finish (tests/test_structure.py holds every module of ranlib/ to 300 lines and
every function to 60); torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) is read in ``ranlib.engine.distributed``
only, the run directory is checked by ``ranlib.engine.run_dir.check_run_dir`` alone, and ``config.json`` is written
by ``ranlib.engine.run_dir.save_config`` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ranlib"


def functions(path: Path):
    """(name, lines) of every function and method defined in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_fit_reads_in_one_screen():
    lines = dict(functions(PACKAGE / "engine" / "train.py"))
    assert lines["fit"] <= 60 and lines["train_loop"] <= 60


def string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_torchrun_environment_is_read_in_engine_distributed_only():
    readers = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
               if string_constants(p) & {"RANK", "WORLD_SIZE", "LOCAL_RANK"}]
    assert readers == ["engine/distributed.py"]


def test_config_json_is_written_in_one_place():
    writers = [p.relative_to(PACKAGE).as_posix() for p in sorted(PACKAGE.rglob("*.py"))
               if "config.json" in string_constants(p) and ".write_text(" in p.read_text()]
    assert writers == ["engine/run_dir.py"]
