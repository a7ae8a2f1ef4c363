"""The library stays readable in one sitting: no module in ranlib/ over 300 lines and no function over 60 (issue 33).

Data tables (the exercise checks' cases, the presets) are module-level assignments, not functions, so they count
only towards their file. A function's length runs from its ``def`` line (decorators included) to its last line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parent.parent / "ranlib"
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60
MODULES = sorted(LIBRARY.rglob("*.py"))


def long_functions(source: str, limit: int) -> list[str]:
    """``name (N lines, line L)`` for each function or method in ``source`` longer than ``limit`` lines."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = node.end_lineno - first + 1
            if length > limit:
                found.append(f"{node.name} ({length} lines, line {first})")
    return found


def test_long_functions_are_found_with_their_length():
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    source = f"@decorator\ndef long():\n{body}\n\n\ndef short():\n    return 1\n"
    assert long_functions(source, 60) == ["long (62 lines, line 1)"]
    assert long_functions(source, 62) == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(LIBRARY.parent)))
def test_module_is_short_and_so_are_its_functions(path):
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_FILE_LINES, f"{path.name} has {lines} lines; split it by concern (at most {MAX_FILE_LINES})"
    too_long = long_functions(source, MAX_FUNCTION_LINES)
    assert not too_long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(too_long)}"
