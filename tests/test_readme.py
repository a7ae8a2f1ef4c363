"""Every ```python block of README.md runs as written, on CPU, in a temporary folder.

The blocks run in order in one namespace, as a reader pasting them into one Python session would; the README's
examples are small enough for that (6 classes, 64 px images, a generated dataset of 12 scenes, 2 training
iterations), so nothing is patched. A block whose previous line is ``<!-- needs-download -->`` is skipped: it needs
weights or data from the network.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
SKIP_MARK = "<!-- needs-download -->"


def python_blocks(text: str) -> list[tuple[int, str, bool]]:
    """(line number, code, needs a download) of each ```python block."""
    blocks = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
        before = text[:match.start()].rstrip("\n").splitlines()
        blocks.append((len(before) + 2, match.group(1), bool(before) and before[-1].strip() == SKIP_MARK))
    return blocks


def test_readme_has_python_examples():
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 4, "the API quick start lost its examples"
    names = "".join(code for _, code, _ in blocks)
    for name in ("build_model", "RAN(", "RANLoss", "fit(", "TrainConfig(", "load_checkpoint", "predict(",
                 "evaluate("):
        assert name in names, f"the README's examples no longer show {name}"


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    monkeypatch.chdir(tmp_path)  # the examples write data/ and runs/ where they run
    namespace: dict = {"__name__": "__readme__"}
    for line, code, needs_download in python_blocks(README.read_text()):
        if needs_download:
            continue
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as error:  # name the block, not this loop
            pytest.fail(f"the README's Python block at line {line} failed: {type(error).__name__}: {error}")


def test_skip_mark_is_read():
    text = f"```python\na = 1\n```\n\n{SKIP_MARK}\n```python\nb = 2\n```\n"
    assert [skip for _, _, skip in python_blocks(text)] == [False, True]
