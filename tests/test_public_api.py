"""The README's stable import paths import: every ``module: name, …`` it lists, and the deprecated aliases, which
still import with a DeprecationWarning naming the new home and give the new home's objects.

The list is read from the README itself (its "**Stable import paths.**" paragraph), so a path that moves or is
renamed fails here, named, until the README and the code agree again.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
START = "**Stable import paths.**"
MISSING = object()


def listed_paths(text: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """({module: [name, …]}, [(deprecated alias, new home), …]) from the README's list of stable import paths.

    Each bullet holds one or more ``\\`module\\`: \\`name\\`, \\`name\\``` groups separated by ``;``; the deprecated
    bullet holds ``\\`alias\\` → \\`home\\``` pairs. A bullet may continue on indented lines.
    """
    lines = text[text.index(START):].splitlines()[1:]
    bullets: list[str] = []
    for line in lines:
        if line.startswith("- "):
            bullets.append(line[2:])
        elif line.startswith("  ") and bullets:
            bullets[-1] += " " + line.strip()
        elif bullets:  # the first line after the list ends it
            break
    modules: dict[str, list[str]] = {}
    aliases: list[tuple[str, str]] = []
    for bullet in bullets:
        if bullet.startswith("deprecated"):
            aliases += re.findall(r"`(ranlib[\w.]*)` → `(ranlib[\w.]*)`", bullet)
            continue
        for group in bullet.split(";"):
            module, _, names = group.partition(":")
            modules.setdefault(module.strip().strip("`"), []).extend(re.findall(r"`([\w.]+)`", names))
    return modules, aliases


def test_the_list_is_read():
    text = ("intro\n\n**Stable import paths.** words\n\n- `a`: `X`, `Y.z`; `b.c`: `W`\n- `d`: `V`,\n  `U`\n"
            "- deprecated, warning: `ranlib.old` → `ranlib.new`, `ranlib.o2` →\n  `ranlib.n2`\n\n## next\n- `e`: `T`\n")
    assert listed_paths(text) == ({"a": ["X", "Y.z"], "b.c": ["W"], "d": ["V", "U"]},
                                  [("ranlib.old", "ranlib.new"), ("ranlib.o2", "ranlib.n2")])


def test_every_listed_path_imports():
    modules, aliases = listed_paths(README.read_text())
    assert len(modules) >= 10 and sum(map(len, modules.values())) >= 30, "the README's list lost its entries"
    missing = []
    for module, names in modules.items():
        try:
            home = importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{module} ({error})")
            continue
        for name in names:
            value = home
            for part in name.split("."):  # TrainConfig.for_dataset: an attribute of an attribute
                value = getattr(value, part, MISSING)
            if value is MISSING:
                missing.append(f"{module}.{name}")
    assert not missing, f"the README lists import paths that do not exist: {', '.join(missing)}"


def test_top_level_names_are_the_listed_ones():
    """``ranlib``'s own names (``__all__``, loaded on first use) are exactly the README's first bullet."""
    import ranlib

    modules, _ = listed_paths(README.read_text())
    assert sorted(modules["ranlib"]) == sorted(ranlib.__all__)


def test_deprecated_aliases_warn_with_the_new_home(monkeypatch):
    modules, aliases = listed_paths(README.read_text())
    assert sorted(aliases) == [("ranlib.checkpoint", "ranlib.engine.checkpoint"),
                               ("ranlib.train", "ranlib.engine.train")]
    for alias, home in aliases:
        monkeypatch.delitem(sys.modules, alias, raising=False)  # import it afresh, as a new session would
        with pytest.warns(DeprecationWarning, match=re.escape(home)):
            old = importlib.import_module(alias)
        new = importlib.import_module(home)
        for name in modules[home]:
            assert getattr(old, name) is getattr(new, name), f"{alias}.{name} is not {home}.{name}"


ROOT = README.parent
FROM_RANLIB = re.compile(r"^[ \t]*from (ranlib[\w.]*) import \(?([\w ,\n]+?)\)?[ \t]*(?:#.*)?$", re.M)


def ranlib_imports(source: str) -> list[tuple[str, str]]:
    """Every ``(module, name)`` of a ``from ranlib… import name, …`` statement in ``source`` (parenthesised too)."""
    found = []
    for module, names in FROM_RANLIB.findall(source):
        parts = [name.split(" as ")[0].strip() for name in names.replace("\n", " ").split(",")]
        found += [(module, name) for name in parts if name]
    return found


def test_ranlib_imports_are_found():
    source = ("x = 1\nfrom ranlib.precision import autocast, resolve_amp as r  # note\n"
              "    from ranlib import (\n    course,\n)\n")
    assert ranlib_imports(source) == [("ranlib.precision", "autocast"), ("ranlib.precision", "resolve_amp"),
                                      ("ranlib", "course")]


def test_every_name_the_notebooks_and_docs_import_from_ranlib_exists():
    """A refactor that moves a name must move the notebooks' and the docs' imports with it (notebook 06 imported
    ``autocast`` from ``ranlib.engine.train`` after it had stopped living there); the kernels would only find out
    minutes into the notebook run."""
    import json

    missing = []
    for path in sorted([*ROOT.glob("notebooks/**/*.ipynb"), README, *ROOT.glob("docs/*.md")]):
        text = path.read_text()
        sources = (["".join(c["source"]) for c in json.loads(text)["cells"] if c["cell_type"] == "code"]
                   if path.suffix == ".ipynb" else [text])
        for module, name in {pair for source in sources for pair in ranlib_imports(source)}:
            home = importlib.import_module(module)
            if getattr(home, name, MISSING) is MISSING and importlib.util.find_spec(f"{module}.{name}") is None:
                missing.append(f"{path.relative_to(ROOT)}: from {module} import {name}")
    assert not missing, "names that no longer exist where these files import them: " + "; ".join(sorted(missing))
