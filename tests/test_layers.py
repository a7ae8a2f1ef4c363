"""ranlib's layers point down: each module imports only modules of its own layer or of the layers below it.

``LAYERS`` lists the layers bottom to top. The paper's parts come first, then what measures them, then the
figures, the training engine, and on top what the course, the notebooks' checks and the command line put
together. Every ``import`` counts, at a module's top and inside functions, and so does a string naming a ranlib
module (the PEP 562 packages import those on first use). A module that imports one of a higher layer fails the
test with the importing file and the imported module named.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ranlib"

# Bottom to top. A name covers the module and everything under it ("ranlib.data": the whole data package);
# "ranlib" alone is the package's __init__, whose lazy names include the engine's fit and TrainConfig.
LAYERS = [
    # no ranlib import at all
    ("ranlib.progress", "ranlib.threads", "ranlib.results_doc", "ranlib.settings", "ranlib.file_lock"),
    ("ranlib.data",),  # datasets, transforms, bands
    ("ranlib.model_config",),
    ("ranlib.efficientnet",),
    ("ranlib.backbone",),
    ("ranlib.heads", "ranlib.reverse_attention"),
    ("ranlib.model",),
    ("ranlib.distributed", "ranlib.precision"),  # torch-level helpers: ranks, sums over processes, autocast
    ("ranlib.losses", "ranlib.metrics", "ranlib.fusion_changes"),
    ("ranlib.step_size", "ranlib.attention_stats"),
    ("ranlib.evaluate",),
    ("ranlib.viz",),
    ("ranlib.engine", "ranlib.train", "ranlib.checkpoint", "ranlib"),  # the run directory's plots draw with viz
    ("ranlib.bench",),  # times the engine's training step
    ("ranlib.seed_tables",),  # compares finished runs: loads their checkpoints
    ("ranlib.exercises",),
    ("ranlib.course",),  # the notebooks' set-up: engine, evaluation and the benchmark's FLOP counts
    ("ranlib.cli",),
    ("ranlib.__main__",),
]
# The paper's core and what measures it, which the issue names: none of them may import these.
CORE = ("ranlib.model_config", "ranlib.backbone", "ranlib.efficientnet", "ranlib.heads", "ranlib.reverse_attention",
        "ranlib.model", "ranlib.losses", "ranlib.metrics", "ranlib.fusion_changes", "ranlib.attention_stats",
        "ranlib.evaluate", "ranlib.step_size")
ABOVE_CORE = ("ranlib.engine", "ranlib.bench", "ranlib.course", "ranlib.cli", "ranlib.viz")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The index in ``LAYERS`` of ``module`` (its longest listed prefix), None when no layer lists it."""
    best = None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or (name != "ranlib" and module.startswith(name + "."))) and (
                    best is None or len(name) > len(best[1])):
                best = (index, name)
    return None if best is None else best[0]


def imported_modules(source: str, module: str, is_package: bool, modules=MODULES) -> set[str]:
    """Every ranlib module that ``source`` (the module ``module``) imports, anywhere in the file: ``import x``,
    ``from x import y`` (``x.y`` when that is a module), relative imports, and strings naming a ranlib module."""
    found = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            children = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
            found |= children or {base}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("ranlib.") \
                and node.value in modules:
            found.add(node.value)
    return {name for name in found if name.split(".")[0] == "ranlib"}


def upward_imports(sources: dict[str, tuple[str, str, bool]]) -> list[str]:
    """``importer file imports module`` for each import of a higher layer; ``sources`` maps module names to
    (file shown in the message, source, whether it is a package's __init__)."""
    problems = []
    for module, (file, source, is_package) in sorted(sources.items()):
        own = layer_of(module)
        for imported in sorted(imported_modules(source, module, is_package)):
            theirs = layer_of(imported)
            if theirs is not None and own is not None and theirs > own:
                problems.append(f"{file} imports {imported} (layer {'/'.join(LAYERS[theirs])}, above "
                                f"{'/'.join(LAYERS[own])})")
    return problems


def package_sources() -> dict[str, tuple[str, str, bool]]:
    return {name: (path.relative_to(ROOT).as_posix(), path.read_text(), path.name == "__init__.py")
            for name, path in MODULES.items()}


def test_every_module_has_a_layer():
    missing = [name for name in MODULES if layer_of(name) is None]
    assert missing == [], f"add these modules to LAYERS in tests/test_layers.py: {missing}"
    assert all(layer_of(name) is not None for names in LAYERS for name in names if name in MODULES)


def test_layers_only_point_down():
    problems = upward_imports(package_sources())
    assert problems == [], "imports of a higher layer:\n" + "\n".join(problems)


def test_the_core_imports_no_engine_bench_course_cli_or_viz():
    """What the issue names, stated apart from the order: the paper's parts and their measurements stand alone."""
    core = {name: value for name, value in package_sources().items()
            if any(name == c or name.startswith(c + ".") for c in CORE)}
    assert len(core) == len(CORE)
    bad = [f"{file} imports {imported}" for name, (file, source, is_package) in sorted(core.items())
           for imported in sorted(imported_modules(source, name, is_package))
           if any(imported == a or imported.startswith(a + ".") for a in ABOVE_CORE)]
    assert bad == []


def test_the_checker_catches_an_upward_import():
    """A fake metrics module that imports the engine inside a function, the course by ``from ranlib import``, and
    the root package (whose lazy names reach the engine) fails with each import named; its legal imports pass."""
    source = ("from ranlib.data.labels import IGNORE_INDEX\nfrom .model import RAN\nimport torch\n\n"
              "def reduce():\n    from ranlib.engine.distributed import all_reduce_sum\n\n"
              "def report():\n    from ranlib import course\n    import ranlib\n")
    problems = upward_imports({"ranlib.metrics": ("fake/metrics.py", source, False)})
    assert [p.split(" (")[0] for p in problems] == [
        "fake/metrics.py imports ranlib", "fake/metrics.py imports ranlib.course",
        "fake/metrics.py imports ranlib.engine.distributed"]
    assert "above ranlib.losses/ranlib.metrics/ranlib.fusion_changes" in problems[0]
    assert upward_imports({"ranlib.metrics": ("fake/metrics.py", source.split("\n\n")[0], False)}) == []


def test_the_checker_resolves_relative_imports_and_lazy_names():
    assert imported_modules("from . import transforms\nfrom ..model import RAN\n", "ranlib.data", True) == {
        "ranlib.data.transforms", "ranlib.model"}
    assert imported_modules("X = {'fit': 'ranlib.engine.train'}\nY = 'ranlib is fine'\n", "ranlib", True) == {
        "ranlib.engine.train"}
    assert layer_of("ranlib") == layer_of("ranlib.engine.train") > layer_of("ranlib.viz.widgets")
    assert layer_of("ranlib.nothing_here") is None


def test_importing_the_loss_loads_no_scipy():
    """The loss needs ``IGNORE_INDEX`` from ``ranlib.data.labels``; the data package's other names load on first
    use, so scipy (SBD's .mat reader) stays unloaded. The issue's own command line, as it is written."""
    code = "import ranlib.losses, sys; assert 'scipy' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    check = ("import ranlib.losses, sys; import ranlib.data as d; print('scipy' in sys.modules); d.voc; "
             "print('scipy' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]  # the check can see scipy load


def test_the_data_package_keeps_every_name():
    """Every name ``ranlib.data`` exported before it turned lazy is there, in ``__all__`` and ``dir()``; ``voc`` is
    the function, also after the submodule of that name was imported."""
    code = ("import ranlib.data.voc, ranlib.data as d\nfrom ranlib.data import voc, IGNORE_INDEX\n"
            "print(callable(voc), voc is d.voc, type(d.voc).__name__, IGNORE_INDEX)\n"
            "print(' '.join(d.__all__)); print(set(d.__all__) <= set(dir(d)))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = result.stdout.splitlines()
    assert lines[0] == "True True function 255", result.stderr[-2000:]
    assert set(lines[1].split()) == {
        "IGNORE_INDEX", "IMAGENET_MEAN", "IMAGENET_STD", "VOC_CLASSES", "DataError", "VOCSegmentation",
        "boundary_band", "class_names", "denormalize", "ensure_mixed_boundary_dataset", "make_loader",
        "make_mixed_boundary_dataset", "mixed_boundary_band", "train_transforms", "val_transforms", "voc"}
    assert lines[2] == "True"


def test_scripts_import_the_library_not_each_other():
    """What two scripts share lives in ranlib (e.g. ranlib.seed_tables), so each script runs on its own."""
    scripts = {p.stem: p for p in (ROOT / "scripts").glob("*.py")}
    found = []
    for name, path in scripts.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"scripts/{name}.py imports {n}" for n in names if n.split(".")[0] in scripts]
    assert not found, "; ".join(found)
