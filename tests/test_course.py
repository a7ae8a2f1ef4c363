"""ranlib.course: the mode from the environment (never from the hardware under a test), budget caps that only
shrink, precision from faked device properties, where data/ and runs/ land (a Drive when there is one),
load-or-train, the time estimate's arithmetic, nbval kernels inheriting notebooks/conftest.py's quick mode, a GPU mode
on a CPU as a warning, and every RANLIB_* variable read in ranlib/settings.py and listed in docs/course.md."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from ranlib import course, settings
from ranlib.bench.gpu_specs import PEAK_TFLOPS
from ranlib.course import paths as course_paths
from ranlib.course import runs as course_runs
from ranlib.data.bands import mixed_boundary_band
from ranlib.engine.run_dir import RunDirConflict
from ranlib.model import RAN
from ranlib.model_config import VARIANTS as MODEL_VARIANTS
from ranlib.precision import resolve_amp

REPO = Path(__file__).parent.parent
ENV = ("RANLIB_MODE", "RANLIB_QUICK", "RANLIB_DRIVE", *course.CAPS)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No course variable set, and an empty working folder outside any clone."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize(("env", "cuda", "expected"), [
    ({}, False, "quick"), ({}, True, "colab"), ({"RANLIB_QUICK": "1"}, True, "quick"),
    ({"RANLIB_MODE": "paper"}, False, "paper"), ({"RANLIB_MODE": "Quick"}, True, "quick"),
    ({"RANLIB_MODE": "colab", "RANLIB_QUICK": "1"}, False, "colab"),  # the explicit mode wins
])
def test_mode_from_environment_then_hardware(env, cuda, expected):
    assert course.detect_mode(env, cuda=cuda) == expected


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="RANLIB_MODE='fast'.*quick, colab, paper"):
        course.detect_mode({"RANLIB_MODE": "fast"}, cuda=False)


def test_caps_only_shrink_and_get_their_own_run_folder(clean_env, monkeypatch):
    monkeypatch.setenv("RANLIB_MAX_ITERATIONS", "5")
    monkeypatch.setenv("RANLIB_MAX_CROP_SIZE", "65")
    configs = course.configs("colab", data=clean_env / "voc")
    ran = configs["ran"]
    assert (ran.iterations, ran.crop_size, ran.batch_size) == (5, 65, 10)
    assert ran.checkpoint_every == 5 and ran.eval_every == 0
    assert Path(ran.run_dir) == clean_env / "runs" / "course_colab_crop_size65_iterations5" / "ran"
    monkeypatch.setenv("RANLIB_MAX_ITERATIONS", "50000")
    with pytest.raises(ValueError, match="RANLIB_MAX_ITERATIONS=50000 is above colab mode's 3000.*only shrink"):
        course.configs("colab", data=clean_env / "voc")
    monkeypatch.setenv("RANLIB_MAX_ITERATIONS", "0")
    with pytest.raises(ValueError, match="at least 1"):
        course.configs("quick", data=clean_env / "mb")


def test_quick_mode_is_small_offline_and_machine_independent(clean_env):
    ran = course.configs("quick", data=clean_env / "mb")["ran"]
    assert (ran.backbone, ran.weights_backbone, ran.dataset) == ("resnet18", None, "mixed_boundary")  # no download
    assert ran.iterations * ran.batch_size <= 4000, "quick mode trains three models inside the test command"
    assert ran.val_split == "val_quick" and ran.amp == "off"
    assert Path(ran.run_dir) == clean_env / "runs" / "course_quick" / "ran"


@pytest.mark.parametrize(("capability", "amp"), [((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_gpu_modes_take_the_native_precision(clean_env, monkeypatch, capability, amp):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    cuda = torch.device("cuda", 0)
    for mode in ("colab", "paper"):
        stored = course.configs(mode, data=clean_env / "voc")["ran"].amp
        assert stored == "auto", "GPU runs store 'auto', so a run resumes on another GPU"
        assert resolve_amp(stored, cuda) == amp  # what fit trains in on this GPU
    assert course.configs("quick", data=clean_env / "mb")["ran"].amp == "off"  # machine-independent


def test_full_modes_follow_the_recipe_and_colab_fits_a_t4_in_30_minutes():
    colab, paper = course.MODES["colab"], course.MODES["paper"]
    for config in (colab, paper):
        assert config.weights_backbone == "IMAGENET1K_V1" and config.train_split == "train_aug"
        assert config.crop_size >= 321 and config.freeze_bn and config.eval_batch_size == 1
        assert config.keep_checkpoints == 1  # Drive keeps only what resuming needs
    assert (paper.backbone, paper.iterations) == ("resnet101", 20_000)
    for variant in course.VARIANTS:
        fast, slow = course.estimate(replace(colab, variant=variant), "T4").minutes
        assert fast < slow <= 30, f"{variant}: {fast:.0f}-{slow:.0f} min on a T4"


def test_estimate_arithmetic_by_hand():
    # one step of 10 crops at 321 px, no evaluation but the final one, on an A100 (312 TFLOPS bf16, 20-40 %)
    config = replace(course.MODES["paper"], variant="ran", iterations=1000, eval_every=0)
    step = course.train_tflop_per_step("resnet101", "largefov", "ran", 321, 10)
    assert 4.0 < step < 5.0  # 3 x (forward 148 GFLOP per image, scripts/model_table.py) x 10 images = 4.4
    forward = step / 3 / 10 * (500 * 375) / 321 ** 2
    tflop = 1000 * step + 1449 * forward
    est = course.estimate(config, "A100")
    assert est.precision == "bf16" and est.tflop == pytest.approx(tflop)
    assert est.minutes == pytest.approx((tflop / (312 * 0.40) / 60, tflop / (312 * 0.20) / 60))
    assert course.estimate(config, "T4").precision == "fp16" and PEAK_TFLOPS["T4"]["bf16"] is None


def test_runs_and_archives_go_to_the_drive(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("RANLIB_DRIVE", str(tmp_path / "drive"))
    assert course.runs_dir("colab") == tmp_path / "drive" / "runs" / "course_colab"
    assert course.archive_cache() == tmp_path / "drive" / "archives"
    assert course.runs_dir("quick") == clean_env / "runs" / "course_quick"  # quick runs stay local
    assert course.data_dir() == clean_env / "data"  # datasets are extracted to local disk


def test_setup_prints_where_data_and_runs_land(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("RANLIB_MODE", "quick")
    inside = REPO / "notebooks"
    monkeypatch.chdir(inside)
    mode, quick, device, seed = course.setup()
    assert (mode, quick, seed) == ("quick", True, 0) and Path.cwd() == REPO  # a clone: its root
    printed = capsys.readouterr().out
    assert "mode quick (RANLIB_MODE)" in printed
    assert f"data/ -> {REPO / 'data'}" in printed and f"runs/ -> {REPO / 'runs' / 'course_quick'}" in printed
    monkeypatch.chdir(clean_env)
    course.setup()
    assert Path.cwd() == clean_env and f"data/ -> {clean_env / 'data'}" in capsys.readouterr().out


def test_a_gpu_mode_on_a_cpu_warns_and_the_summary_stays_printed(clean_env, monkeypatch, capsys):
    monkeypatch.setenv("RANLIB_MODE", "colab")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="colab mode on a CPU: training will be very slow"):
        course.setup()
    printed = capsys.readouterr().out
    assert "mode colab (RANLIB_MODE), device cpu" in printed and "very slow" not in printed


def environ_reads(source: str) -> list[tuple[int, str]]:
    """(line, key) for each use of ``os.environ`` or ``os.getenv`` in ``source``: the key read (``"?"`` when it is
    not a string constant), or ``"copy"`` where the whole environment is passed on (``os.environ | {...}``)."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and ast.unparse(node) in ("os.environ", "os.getenv")):
            continue
        use, key = parents[node], None
        if isinstance(use, ast.Attribute) and isinstance(parents[use], ast.Call):  # os.environ.get(KEY, ...)
            key = parents[use].args[0] if parents[use].args else None
        elif isinstance(use, ast.Call) and use.func is node:  # os.getenv(KEY)
            key = use.args[0]
        elif isinstance(use, ast.Subscript):  # os.environ[KEY]
            key = use.slice
        elif isinstance(use, ast.Compare):  # KEY in os.environ
            key = use.left
        elif isinstance(use, ast.BinOp):
            found.append((node.lineno, "copy"))
            continue
        constant = isinstance(key, ast.Constant) and isinstance(key.value, str)
        found.append((node.lineno, key.value if constant else "?"))
    return sorted(found)


def test_only_ranlib_settings_reads_ranlib_variables():
    """Every ``RANLIB_*`` variable is read in ranlib/settings.py: elsewhere in ranlib the environment is read only
    by a named key that is not ranlib's (torchrun's RANK), or passed on whole to a subprocess."""
    bad = [f"{path.relative_to(REPO)}:{line} reads {key}" for path in sorted((REPO / "ranlib").rglob("*.py"))
           if path != REPO / "ranlib" / "settings.py"
           for line, key in environ_reads(path.read_text()) if key == "?" or key.startswith("RANLIB_")]
    assert bad == [], "read these through ranlib.settings:\n" + "\n".join(bad)
    assert environ_reads("import os\nos.environ.get(NAME)\nx = os.environ | {}\n'RANK' in os.environ\n") == [
        (2, "?"), (3, "copy"), (4, "RANK")]


def test_docs_list_every_variable_that_settings_reads():
    names = {value for value in vars(settings).values() if isinstance(value, str) and value.startswith("RANLIB_")}
    names |= set(settings.CAPS)
    assert len(names) == 9
    text = (REPO / "docs" / "course.md").read_text()
    assert [name for name in sorted(names) if f"`{name}" not in text] == []


def write_run(config, name: str) -> Path:
    """A run folder holding ``name`` (a checkpoint loadable by ranlib.load_checkpoint) and config.json."""
    run_dir = Path(config.run_dir)
    path = run_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    model = RAN.from_config(config.model_config)
    torch.save({"model": model.state_dict(), "config": asdict(config), "model_config": asdict(config.model_config),
                "iteration": config.iterations}, path)
    (run_dir / "config.json").write_text(json.dumps(asdict(config)))
    return path


@pytest.fixture
def quick_config(clean_env):
    # dataset "voc" on an empty folder: VOC's 21 class names, and no embedded dataset generated for nothing
    return replace(course.configs("quick", data=clean_env / "mb")["baseline"], dataset="voc")


def test_trained_model_loads_final_then_last_checkpoint_without_training(quick_config, monkeypatch):

    monkeypatch.setattr(course_runs, "fit", lambda config: pytest.fail("a finished run was trained again"))
    last = write_run(quick_config, f"checkpoints/iter_{quick_config.iterations:07d}.pt")
    assert course.finished_checkpoint(quick_config) == last
    model = course.trained_model("baseline", config=quick_config, dev=torch.device("cpu"))
    assert not model.training and model.config.variant == "baseline"
    final = write_run(quick_config, "final.pt")
    assert course.finished_checkpoint(quick_config) == final


def test_trained_model_trains_an_unfinished_run_after_printing_an_estimate(quick_config, monkeypatch, capsys):

    calls = []
    monkeypatch.setattr(course_runs, "fit", lambda config: calls.append(config) or write_run(config, "final.pt"))
    model = course.trained_model("baseline", config=quick_config, dev=torch.device("cpu"))
    assert calls == [quick_config] and model.config.variant == "baseline"
    c = quick_config
    expected = f"training baseline: {c.iterations} iterations of {c.batch_size} x {c.crop_size} px"
    assert expected in capsys.readouterr().out


def test_a_run_folder_with_another_configuration_is_refused(quick_config):
    write_run(replace(quick_config, lr=0.1, crop_size=32), "final.pt")
    with pytest.raises(RunDirConflict, match="another configuration.*crop_size.*lr.*delete that folder"):
        course.trained_model("baseline", config=quick_config)
    # where and how fast it ran do not matter: a run trained elsewhere is reused
    write_run(replace(quick_config, amp="bf16", num_workers=4), "final.pt")
    assert course.trained_model("baseline", config=quick_config).config.variant == "baseline"


@pytest.mark.slow  # a pytest process and a notebook kernel
def test_nbval_kernels_inherit_the_quick_default_of_notebooks_conftest(tmp_path):
    shutil.copy(REPO / "notebooks" / "conftest.py", tmp_path / "conftest.py")
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nassert os.environ['RANLIB_MODE'] == 'quick'")]
    nbformat.write(nb, tmp_path / "probe.ipynb")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ENV}
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                             "probe.ipynb"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_minutes_range_prints_one_number_when_both_ends_round_alike():
    assert course.minutes_range(1.6, 2.4) == "2"
    assert course.minutes_range(2.6, 5.2) == "3-5"
    assert course.minutes_range(12.0, 12.49) == "12"


def test_modes_table_cells_are_the_estimates_rounded():
    """Each minutes cell is the estimate's (fast, slow) rounded: one number where they round alike (no "2-2")."""
    rows = [line.split(" | ") for line in course.modes_table().splitlines()[2:]]
    gpus = ("T4", "L4", "A100", "H100")
    assert [row[0].strip("| ") for row in rows] == ["colab", "paper"]
    singles = 0
    for row in rows:
        config = replace(course.MODES[row[0].strip("| ")], variant="ran")
        for gpu, cell in zip(gpus, [c.strip("| ") for c in row[-len(gpus):]], strict=True):
            fast, slow = (round(m) for m in course.estimate(config, gpu).minutes)
            assert cell == (str(fast) if fast == slow else f"{fast}-{slow}")
            singles += fast == slow
    assert singles > 0  # the A100 and H100 estimates of colab mode round to one minute today


def test_course_variants_are_the_model_variants_from_the_baseline_up():
    assert sorted(course.VARIANTS) == sorted(MODEL_VARIANTS)
    assert course.VARIANTS[0] == "baseline" and course.VARIANTS[-1] == "ran"


def test_toy_scenes_are_two_objects_that_meet():
    """Notebooks 03 and 05's toy data: images in [0, 1] whose colour is their class's plus noise, masks of
    background, disc and square, where every scene has pixels where the disc and the square meet; one seed, one
    set of scenes."""
    images, masks = course.toy_scenes(4, size=40, seed=3)
    assert images.shape == (4, 3, 40, 40) and masks.shape == (4, 40, 40) and masks.dtype == torch.long
    assert 0 <= images.min() and images.max() <= 1
    assert set(masks.unique().tolist()) == {0, 1, 2}
    assert all(mixed_boundary_band(m, 1).any() for m in masks)
    colour_error = (images - course.TOY_COLOURS[masks].permute(0, 3, 1, 2)).abs().mean()
    assert colour_error < 0.15  # noise of sd 0.15, clipped: mean |noise| is about 0.12
    again = course.toy_scenes(4, size=40, seed=3)
    assert torch.equal(again[0], images) and torch.equal(again[1], masks)
    assert not torch.equal(course.toy_scenes(4, size=40, seed=4)[1], masks)
    assert len(course.TOY_CLASSES) == len(course.TOY_COLOURS) == 3


def test_data_and_runs_is_what_the_notebooks_set_up(clean_env, tiny_data, monkeypatch, capsys):
    """Notebooks 01 and 06-09 call ``course.data_and_runs()`` after ``setup``: the same root, classes, configs and
    runs folder as the separate calls, and the printed class list. (The embedded dataset's generator is tested in
    tests/test_data_mixed_boundary.py: here a copy of the eight-scene ``tiny_data`` stands in for its 1,400 scenes.)"""
    from ranlib.data import class_names

    made = []

    def tiny_dataset(root):
        made.append(Path(root))
        return Path(shutil.copytree(tiny_data, root, dirs_exist_ok=True))

    monkeypatch.setattr(course_paths, "ensure_mixed_boundary_dataset", tiny_dataset)
    monkeypatch.setenv("RANLIB_MODE", "quick")
    found = course.data_and_runs()
    assert found.root == course.data_root() and found.classes == class_names(found.root)
    assert found.configs == course.configs(data=found.root) and found.runs == course.runs_dir()
    assert found.val_split == "val_quick" == found.configs["baseline"].val_split
    assert f"{len(found.classes)} classes: {', '.join(found.classes)}" in capsys.readouterr().out
    preview = course.data_and_runs(preview=True).configs
    assert preview == course.configs(preview=True, data=found.root)
    assert set(made) == {clean_env / "data" / "mixed_boundary"}  # the quick mode's dataset, where notebooks put it
