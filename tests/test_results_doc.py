"""docs/results.md and the scripts that write it: every marked table has a script that writes it, each section
starts with its command, and the writing works (one script run for real, the others' tables from hand-made runs)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from ranlib.results_doc import command, read_section, write_section

ROOT = Path(__file__).parent.parent
RESULTS = ROOT / "docs" / "results.md"
SCRIPTS = ROOT / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def marked_sections(text: str) -> list[str]:
    return re.findall(r"<!-- ([a-z0-9-]+):begin -->", text)


def test_each_marked_table_has_a_script_that_writes_it():
    text = RESULTS.read_text()
    names = marked_sections(text)
    assert {"ablation", "course-models", "pretrained", "head-fov"} <= set(names), names
    sources = {path.name: path.read_text() for path in SCRIPTS.glob("*.py")}
    for name in names:
        assert text.count(f"<!-- {name}:end -->") == 1, f"{name}: one end marker"
        writers = [script for script, source in sources.items()
                   if "--write-results" in source and f'"{name}"' in source and "write_section" in source]
        assert writers, f"no script in scripts/ writes the {name!r} section of docs/results.md"


def test_each_written_section_starts_with_its_command_and_machine():
    text = RESULTS.read_text()
    for name in marked_sections(text):
        body = read_section(RESULTS, name).strip()
        if not body:  # a section its script has not written yet
            continue
        first, _, rest = body.partition("\n\n")
        found = re.fullmatch(r"`python scripts/([a-z_]+\.py)( [^`]*)?`", first)
        assert found, f"{name}: the section must start with its command in backticks, not {first[:80]!r}"
        script = SCRIPTS / found.group(1)
        assert script.exists() and "--write-results" in (found.group(2) or ""), f"{name}: {first}"
        machine = rest.split("\n\n", 1)[0]
        assert re.match(r"\d{4}-\d\d-\d\d, .*\d+ torch threads? per run", machine), f"{name}: {machine[:100]!r}"


def test_results_describe_the_software_as_it_is():
    for path in (RESULTS, ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        found = re.search(r"this session|since the last|earlier code|not re-timed", path.read_text(), re.I)
        assert not found, f"{path.name}: {found.group(0)!r}"


def test_write_section_keeps_everything_outside_the_markers(tmp_path):
    path = tmp_path / "results.md"
    path.write_text("# Results\n\n## A\n\n<!-- a:begin -->\nold\n<!-- a:end -->\n\nprose about A\n")
    write_section(path, "a", "new")
    write_section(path, "b", "table b", title="B")
    assert path.read_text() == ("# Results\n\n## A\n\n<!-- a:begin -->\nnew\n<!-- a:end -->\n\nprose about A\n\n"
                                "## B\n\n<!-- b:begin -->\ntable b\n<!-- b:end -->\n")
    assert command("model_table.py", ["--size", "64", "a b"]) == "python scripts/model_table.py --size 64 'a b'"


def test_model_table_writes_its_section_end_to_end(tmp_path, capsys):
    """The one script run for real: the model table of ResNet-18 on the meta device (seconds)."""
    path = tmp_path / "results.md"
    path.write_text("# Results\n\n## Model size\n\n<!-- model-size:begin -->\nstale\n<!-- model-size:end -->\n\nkept\n")
    argv = ["--backbones", "resnet18", "--write-results", str(path)]
    assert load_script("model_table").main(argv) == 0
    section = read_section(path, "model-size")
    assert section.startswith(f"`python scripts/model_table.py --backbones resnet18 --write-results {path}`\n\n")
    assert "| RAN-resnet18 (ran) | largefov | 96 | 11.4 | 40.1 |" in section
    assert "| torchvision deeplabv3_resnet101 | ASPP (v3) | whole image (pooling) | 58.6 | 197.8 |" in section
    assert "stale" not in path.read_text() and path.read_text().endswith("kept\n")
    assert "| RAN-resnet18 (ran) | largefov |" in capsys.readouterr().out


def test_course_models_seed_table_from_hand_made_reports(tmp_path):
    courses = load_script("measure_course_models")
    config = {"iterations": 300, "batch_size": 8, "crop_size": 64, "lr": 1e-3, "head_lr_mult": 10.0,
              "head_dilation": 0}
    for recipe, (miou, mixed_object) in {"current": (0.20, 0.07), "current-seed1": (0.30, 0.12)}.items():
        for variant in ("baseline", "subtract", "ran"):
            folder = tmp_path / recipe / variant
            folder.mkdir(parents=True)
            (folder / "course_report.json").write_text(json.dumps({
                "config": config, "wall_s": 100.0, "load_at_end": 2.0, "median_images_per_s": 28.0,
                "miou": miou, "boundary_miou": miou / 2, "mixed_miou": miou / 4, "mixed_object_iou": mixed_object,
                "interior_object_iou": 0.1, "missing_predictions": [], "zero_iou": []}))
    results = tmp_path / "results.md"
    courses.main(["--recipes", "current", "current-seed1", "--runs-root", str(tmp_path), "--table",
                  "--write-results", str(results)])
    rows = read_section(results, "course-models").splitlines()
    assert rows[0].startswith("`python scripts/measure_course_models.py --recipes current current-seed1")
    # mIoU 20 and 30: mean 25, sample sd 7.07; the second seed's mixed band is not below its interior
    assert "| `ran` | 25.0 ± 7.1 (20.0 / 30.0) | 12.5 ± 3.5 (10.0 / 15.0) | 6.2 ± 1.8 (5.0 / 7.5) | 7.0 < 10.0 / " \
           "12.0 ≥ 10.0 |" in rows


def test_head_fov_arm_table_from_hand_made_scores():
    head_fov = load_script("measure_head_fov")
    scores = [{"miou": 40.0, "boundary": 20.0, "mixed": 10.0}, {"miou": 44.0, "boundary": 22.0, "mixed": 12.0}]
    rows = [("d0-crop64", 0, "0 px", "", scores[0]), ("d0-crop64", 1, "0 px", "", scores[1]),
            ("d3-crop64", 0, "24 px", "", scores[0])]
    lines = head_fov.arm_table(rows).splitlines()
    assert lines[2] == "| `d0-crop64` | 0 px | 0 / 1 | 42.0 ± 2.8 (40.0 / 44.0) | 21.0 ± 1.4 (20.0 / 22.0) | " \
                       "11.0 ± 1.4 (10.0 / 12.0) |"
    assert lines[3] == "| `d3-crop64` | 24 px | 0 | 40.0 | 20.0 | 10.0 |"


@pytest.mark.parametrize("script", ["measure_pretrained", "measure_head_fov", "measure_mixed_boundary_gap",
                                    "measure_course_models", "model_table"])
def test_scripts_accept_write_results(script):
    source = (SCRIPTS / f"{script}.py").read_text()
    assert '"--write-results"' in source and "write_section(" in source
