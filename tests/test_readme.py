"""README.md: every ```python block runs as written, on CPU, in a temporary folder; its claims that code can check
agree with the code; it stays a front door.

The blocks run in order in one namespace, as a reader pasting them into one Python session would; the README's
examples are small enough for that (6 classes, 64 px images, a generated dataset of 12 scenes, 2 training
iterations), so nothing is patched. A block whose previous line is ``<!-- needs-download -->`` is skipped: it needs
weights or data from the network. The list of flags that may change on resume is checked against
``RESUMABLE_CHANGES`` wherever the documentation gives it (``docs/training.md``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SKIP_MARK = "<!-- needs-download -->"
MAX_LINES = 260  # a front door: the details live in docs/


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


def test_readme_stays_short():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move details to docs/ (at most {MAX_LINES})"


def test_cpu_only_build_is_explained_beside_the_install_commands():
    """A reader without a GPU learns to install the CPU-only torch before running ``pip install``, in the paragraph
    just above the two commands, and only there; the README names no package index (no URL to go stale)."""
    text = README.read_text()
    before = " ".join(text[:text.index("<!-- test-command -->")].rstrip().rsplit("\n\n", 1)[-1].split())
    text = " ".join(text.split())
    assert "CPU-only build of torch" in before, "the paragraph above the test command must say how to avoid CUDA"
    assert text.count("CPU-only build") == 1, "say it once, beside the install commands"
    assert not re.search(r"index-url|download\.pytorch\.org|https?://[^ )]*whl", text)


def test_flags_that_may_change_on_resume_are_resumable_changes():
    """Each "may change on resume (…)" list in README.md and docs/ names exactly the flags of
    ``RESUMABLE_CHANGES`` (the run directory aside: it is which run resumes)."""
    from ranlib.cli import flag_of
    from ranlib.engine.config import RESUMABLE_CHANGES

    expected = {flag_of(field) for field in RESUMABLE_CHANGES if field != "run_dir"}
    lists = {}
    for path in (README, *sorted((ROOT / "docs").glob("*.md"))):
        text = " ".join(path.read_text().split())  # lists wrap across lines
        for match in re.finditer(r"may change on resume \(([^()]*)\)", text):
            lists[path.name] = set(re.findall(r"`(--[\w-]+)`", match.group(1)))
    assert lists, "no document lists the flags that may change on resume"
    for name, flags in lists.items():
        assert flags == expected, f"{name}: missing {sorted(expected - flags)}, extra {sorted(flags - expected)}"
