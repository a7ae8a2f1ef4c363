"""How ranlib's modules import each other: each one imports on its own (no import cycle), no function imports
ranlib to dodge a cycle, a training run loads no widget library, and figure code leaves matplotlib's backend alone.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ranlib"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))

# Imports of ranlib inside a function body that are there on purpose, each with its reason:
# (file, function, imported module). A new function-level import fails test_no_function_imports_ranlib, and so
# does an entry here that no longer exists (delete it when the import moves to the module's top).
ALLOWED = {
    # The command line imports no torch at module top, so `python -m ranlib --help` and a bad flag answer at once;
    # each command imports what it runs, and the error handler the modules whose errors it names.
    ("__init__.py", "__getattr__", "<import_module>"): "ranlib.RAN etc. load on first use (PEP 562)",
    ("data/__init__.py", "__getattr__", "<import_module>"): "ranlib.data's names load on first use (PEP 562), so "
                                                            "the loss's IGNORE_INDEX loads no scipy",
    ("__main__.py", "bad_input", "ranlib.engine.checkpoint"): "loaded already when its error was raised",
    ("__main__.py", "bad_input", "ranlib.data.download"): "loaded already when its error was raised",
    ("__main__.py", "bad_input", "ranlib.data.errors"): "loaded already when its error was raised",
    ("cli.py", "train_command", "ranlib.engine"): "the train command",
    ("cli.py", "train_command", "ranlib.engine.checkpoint"): "the train command",
    ("cli.py", "train_command", "ranlib.data"): "the train command",
    ("cli.py", "train_command", "ranlib.engine.train"): "the train command",
    ("cli.py", "evaluate_command", "ranlib.engine.evaluation"): "the evaluate command",
    ("cli.py", "download_command", "ranlib.data.cli"): "the download command",
    ("cli.py", "check_data_command", "ranlib.data.checks"): "the check-data command",
    # engine/config.py is torch-free (the command line's parsers read its defaults); the model and the data load when
    # a run's model or dataset is asked for.
    ("engine/config.py", "dataset_class_names", "ranlib.data"): "torch-free module",
    ("engine/config.py", "dataset_class_names", "ranlib.data.mixed_boundary"): "torch-free module",
    ("engine/config.py", "dataset_root", "ranlib.data"): "torch-free module",
    # Optional dependencies and heavy figure libraries, loaded only where they are used.
    ("backbone.py", "build_backbone", "ranlib.efficientnet"): "timm is an optional dependency",
    ("backbone.py", "weight_names", "ranlib.efficientnet"): "loaded, as by build_backbone, only for efficientnet_lite0",
    ("viz/__init__.py", "__getattr__", "<import_module>"): "the explorer needs ipywidgets and IPython",
    ("exercises/visualising.py", "check_confusion", "ranlib.viz.regions"): "the figure helpers import matplotlib",
    ("bench/cli.py", "benchmark_command", "ranlib.bench.benchmark"): "the benchmark command; its parser imports "
                                                                     "no torch",
}

# One interpreter imports the third-party libraries once, then forks a child per module: each child starts with no
# ranlib module loaded, so a module that imports only as part of another's import chain fails in its own child.
PRELOAD = "import IPython.display, ipywidgets, matplotlib.pyplot, PIL.Image, scipy.io, torch, torchvision\n"
FORK_EACH = """
import importlib, os, sys, traceback
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            print(f"--- import {name} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print(" ".join(failed))
"""


def run_python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def function_imports(source: str, file: str) -> set[tuple[str, str, str]]:
    """(file, function, module) for every import of ranlib inside a function body of ``source``
    (``importlib.import_module`` calls count as ``<import_module>``, relative imports as ``.name``)."""
    found = set()
    for function in ast.walk(ast.parse(source, file)):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else ["." * node.level + (node.module or "")]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module":
                names = ["<import_module>"]
            else:
                continue
            found |= {(file, function.name, n) for n in names if n.split(".")[0] == "ranlib" or n[0] in ".<"}
    return found


def package_function_imports() -> set[tuple[str, str, str]]:
    return set().union(*(function_imports(p.read_text(), p.relative_to(PACKAGE).as_posix())
                         for p in PACKAGE.rglob("*.py")))


def test_module_list_is_complete():
    assert {"ranlib", "ranlib.engine.train", "ranlib.evaluate", "ranlib.data.voc", "ranlib.viz"} <= set(MODULES)
    assert len(MODULES) == len(list(PACKAGE.rglob("*.py")))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own():
    result = run_python(PRELOAD + FORK_EACH, *MODULES)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip() == "", f"modules that fail to import on their own: {result.stdout}\n" + \
        result.stderr[-4000:]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_cycle_would_be_caught(tmp_path):
    """The fork-per-module check fails for two modules that import each other at their top."""
    (tmp_path / "cyc").mkdir()
    (tmp_path / "cyc" / "__init__.py").write_text("")
    (tmp_path / "cyc" / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (tmp_path / "cyc" / "b.py").write_text("from cyc.a import A\nB = 2\n")
    result = run_python(FORK_EACH, "cyc", "cyc.a", env={"PYTHONPATH": str(tmp_path)})
    assert result.stdout.split() == ["cyc.a"] and "ImportError" in result.stderr


def test_no_function_imports_ranlib():
    found = package_function_imports()
    assert sorted(found - ALLOWED.keys()) == [], "import these at the module's top (or allow them, with a reason)"
    assert sorted(ALLOWED.keys() - found) == [], "these imports are gone: delete them from ALLOWED"


def test_function_import_scan_sees_every_form():
    source = ("import os\nimport ranlib.model\n\n"
              "def f():\n    from ranlib.engine.train import fit\n    import ranlib.data.voc, json\n    import os\n\n"
              "class C:\n    def g(self):\n        importlib.import_module('ranlib.viz.explorer')\n"
              "        from .model import RAN\n        from ranlibx import y\n")
    assert function_imports(source, "demo.py") == {
        ("demo.py", "f", "ranlib.engine.train"), ("demo.py", "f", "ranlib.data.voc"),
        ("demo.py", "g", "<import_module>"), ("demo.py", "g", ".model")}


@pytest.fixture(scope="module")
def training_imports() -> dict:
    """What a training run's imports load, and matplotlib's backend before and after a figure was drawn and saved,
    in a process whose backend MPLBACKEND chose (svg: a backend that is not matplotlib's default)."""
    code = ("import io, json, sys, matplotlib\n"
            "before = matplotlib.get_backend()\n"
            "import ranlib.engine.train, ranlib.engine.run_plots\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('IPython', 'ipywidgets')\n"
            "                or m.startswith('ranlib.viz.widgets'))\n"
            "from ranlib.viz import plot_iou_bars\n"
            "plot_iou_bars({'ran': [0.5, 0.25]}, ['background', 'cat']).savefig(io.BytesIO(), format='png')\n"
            "print(json.dumps({'before': before, 'after': matplotlib.get_backend(), 'loaded': loaded}))")
    result = run_python(code, env={"MPLBACKEND": "svg"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_training_does_not_load_the_explorer(training_imports):
    assert [m for m in training_imports["loaded"] if m.startswith("ranlib")] == []


def test_training_imports_no_widget_library(training_imports):
    assert training_imports["loaded"] == []


def test_figure_code_leaves_the_matplotlib_backend(training_imports):
    assert training_imports["before"] == training_imports["after"] == "svg"


def test_no_module_sets_the_matplotlib_backend():
    calls = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("matplotlib.use", "plt.switch_backend"):
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls == []


def test_top_level_names_are_not_shadowed_by_submodules():
    """Importing a submodule binds its name on the package: a top-level export named like a submodule (as
    ``ranlib.evaluate`` would be) would turn into the module. Each export stays the object it names."""
    code = ("import importlib, json, ranlib\n"
            f"for name in {MODULES!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps({n: type(getattr(ranlib, n)).__name__ for n in ranlib.__all__}))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    kinds = json.loads(result.stdout.splitlines()[-1])
    assert "module" not in kinds.values(), kinds


@pytest.mark.parametrize(("old", "new", "name"), [("ranlib.train", "ranlib.engine.train", "fit"),
                                                  ("ranlib.checkpoint", "ranlib.engine.checkpoint", "load_checkpoint")])
def test_old_import_paths_still_work_and_name_the_new_home(old, new, name):
    code = (f"import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print(w)\n")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert new in found.stdout, found.stdout + found.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert getattr(importlib.import_module(old), name) is getattr(importlib.import_module(new), name)
