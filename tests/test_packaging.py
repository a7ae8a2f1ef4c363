"""Packaging: pyproject.toml and environment.yml list the same dependencies; CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    pip_lines = re.findall(r"^\s+- (\S.*)$", pip_section, flags=re.M)
    conda = {line.strip() for line in pip_lines if not line.startswith("-e")}
    assert conda == declared, f"only in environment.yml: {conda - declared}; only in pyproject: {declared - conda}"
    assert "-e .[dev]" in {line.strip() for line in pip_lines}, "environment.yml must install ranlib editable"


def test_torch_is_not_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        if _name(requirement) in {"torch", "torchvision"}:
            assert "==" not in requirement and ">=" in requirement, requirement


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    block = re.search(r"<!-- test-command -->\s*```(?:bash)?\n(.*?)```", readme, flags=re.S)
    assert block, "README.md must hold the test command in a code block after <!-- test-command -->"
    for line in block.group(1).strip().splitlines():
        for part in line.split(" && "):
            assert part.strip() in ci, f"{part!r} from the README is not run by .ci/run"
