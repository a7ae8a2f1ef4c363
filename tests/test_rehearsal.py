"""The rehearsal: the course's colab mode end to end, offline, on a CPU, through the code a Colab student runs.

Synthetic archives laid out like ``VOCtrainval_11-May-2012.tar`` and SBD's ``benchmark.tgz`` (tests/fakes_voc.py)
are served over HTTP from 127.0.0.1 and reach the real download code through its one hook,
``RANLIB_MIRRORS_FILE``; torchvision-format ImageNet weights sit in a temporary ``TORCH_HOME``; a folder stands
for Google Drive (``RANLIB_DRIVE``). Notebooks 06 and 07 then run in colab mode, with the budget caps
shrinking iterations, batch, crop and validation images: download (archives cached on the Drive) -> extraction
-> train_aug assembly (SBD's .mat masks converted) -> ImageNet-initialised training -> evaluation -> figures.
A second "session" with an empty local disk extracts the cached archives again without a download.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest
import torch
import torchvision
from fakes_voc import SBD_TRAIN, SBD_VAL, TRAIN_AUG, VOC_VAL, imagenet_weight_file, voc_and_sbd_archives
from nbclient import NotebookClient

REPO = Path(__file__).parent.parent
NOTEBOOKS = ("06_training.ipynb", "07_evaluation_and_ablation.ipynb")
CAPS = {"RANLIB_MAX_ITERATIONS": "2", "RANLIB_MAX_BATCH_SIZE": "2", "RANLIB_MAX_CROP_SIZE": "65",
        "RANLIB_MAX_VAL_IMAGES": "1"}


class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path):
    """The archives served from 127.0.0.1, and the mirrors file that points the downloader at them."""
    archives = voc_and_sbd_archives(tmp_path / "served")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path / "served")))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    hook = tmp_path / "mirrors.json"
    hook.write_text(json.dumps({name: {"mirrors": [f"{url}/{path.name}"],
                                       "md5": hashlib.md5(path.read_bytes()).hexdigest()}
                                for name, path in archives.items()}))
    yield hook, httpd.requests, archives
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def notebook(name: str) -> nbformat.NotebookNode:
    """The solved notebook (notebooks/solutions/, when the exercises are kept apart), else notebooks/<name>."""
    solved = REPO / "notebooks" / "solutions" / name
    return nbformat.read(solved if solved.exists() else REPO / "notebooks" / name, as_version=4)


def run_notebook(name: str, cwd: Path) -> nbformat.NotebookNode:
    nb = notebook(name)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


@pytest.mark.slow
def test_colab_mode_end_to_end_offline(mirror, tmp_path, monkeypatch):
    hook, requests, archives = mirror
    work, drive, torch_home = tmp_path / "content", tmp_path / "drive", tmp_path / "torch"
    work.mkdir()
    weights = imagenet_weight_file(torch_home, torchvision.models.ResNet50_Weights.IMAGENET1K_V1)
    for name in ("RANLIB_QUICK", "RANLIB_MAX_ITERATIONS", "RANLIB_MAX_BATCH_SIZE", "RANLIB_MAX_CROP_SIZE",
                 "RANLIB_MAX_VAL_IMAGES"):
        monkeypatch.delenv(name, raising=False)
    env = {"RANLIB_MODE": "colab", "RANLIB_DRIVE": str(drive), "RANLIB_MIRRORS_FILE": str(hook),
           "TORCH_HOME": str(torch_home), "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), **CAPS}  # 1 under the README's xdist workers
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    executed = {name: run_notebook(name, work) for name in NOTEBOOKS}  # kernels inherit this environment

    # Download: each archive fetched once over HTTP, verified, and kept on the Drive.
    assert sorted(requests) == ["/VOCtrainval_11-May-2012.tar", "/benchmark.tgz"]
    for path in archives.values():
        assert (drive / "archives" / path.name).read_bytes() == path.read_bytes()
    # Extraction to local disk, and train_aug: VOC train + SBD train + SBD val - VOC val, SBD masks as PNGs.
    voc_root, sbd_root = work / "data" / "VOCdevkit" / "VOC2012", work / "data" / "benchmark_RELEASE" / "dataset"
    from ranlib.data import voc

    assert voc(voc_root, "train_aug").ids == TRAIN_AUG
    assert sorted(p.stem for p in (sbd_root / "cls_png").glob("*.png")) == sorted({*SBD_TRAIN, *SBD_VAL})
    assert not set(VOC_VAL) & set(TRAIN_AUG)
    # Training: the three variants on the Drive, capped, ImageNet-initialised (frozen BN keeps the file's stats).
    runs = drive / "runs" / "course_colab_batch_size2_crop_size65_iterations2_val_images1"
    imagenet = torch.load(weights, weights_only=True)
    from ranlib.course import finished_checkpoint
    from ranlib.engine.checkpoint import load_checkpoint
    from ranlib.engine.config import TrainConfig

    for variant in ("baseline", "subtract", "ran"):
        run = runs / variant
        config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        assert (config.backbone, config.weights_backbone, config.train_split) == ("resnet50", "IMAGENET1K_V1",
                                                                                  "train_aug")
        assert (config.iterations, config.batch_size, config.crop_size) == (2, 2, 65)
        model, _, state = load_checkpoint(finished_checkpoint(config))
        assert state["iteration"] == 2
        torch.testing.assert_close(model.backbone.layer3[5].bn2.running_mean, imagenet["layer3.5.bn2.running_mean"])
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 <= metrics["miou"] <= 1 and set(metrics["mixed_miou"]) >= {"4"}
        assert {"loss_curves.png", "per_class_iou.png", "predictions_0.png"} <= {p.name for p in run.glob("*.png")}
    # Evaluation and figures in the notebooks themselves.
    for name, nb in executed.items():
        figures = sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))
        assert figures >= 2, f"{name}: {figures} figures"
    printed = "".join(out.get("text", "") for cell in executed["06_training.ipynb"].cells
                      for out in cell.get("outputs", []))
    assert "training ran: 2 iterations of 2 x 65 px" in printed and "mode colab (RANLIB_MODE)" in printed

    # A new session: the local disk is empty, the Drive is not; the datasets come back without a download.
    shutil.rmtree(work / "data")
    monkeypatch.chdir(work)
    from ranlib import course

    assert course.data_root() == voc_root and course.sbd_root(progress=False) == sbd_root
    assert len(requests) == 2 and voc(voc_root, "train_aug").ids == TRAIN_AUG
    assert os.environ["RANLIB_MODE"] == "colab"


@pytest.mark.slow
def test_a_notebook_runs_from_an_empty_folder_against_an_installed_ranlib(tmp_path, monkeypatch):
    """Colab has no clone: ranlib is pip-installed (not editable) and the notebook runs in an empty /content."""
    source, site, content = tmp_path / "source", tmp_path / "site", tmp_path / "content"
    shutil.copytree(REPO / "ranlib", source / "ranlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, capture_output=True, timeout=300)
    content.mkdir()
    for name in ("RANLIB_MODE", "RANLIB_DRIVE", "RANLIB_MAX_BATCH_SIZE", "RANLIB_MAX_CROP_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for key, value in {"PYTHONPATH": str(site), "RANLIB_QUICK": "1", "RANLIB_MAX_ITERATIONS": "2",
                       "RANLIB_MAX_VAL_IMAGES": "4", "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(key, value)
    nb = notebook("01_the_problem.ipynb")
    nb.cells.append(nbformat.v4.new_code_cell("import ranlib\nprint('ranlib from', ranlib.__file__)"))
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(content)}}).execute()
    printed = "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))
    assert f"ranlib from {site / 'ranlib' / '__init__.py'}" in printed  # the installed copy, not this clone
    assert f"data/ -> {content / 'data'}" in printed and f"runs/ -> {content / 'runs'}" in printed
    assert (content / "data" / "mixed_boundary" / "ImageSets" / "Segmentation" / "val_first4.txt").exists()
    run = content / "runs" / "course_quick_iterations2_val_images4" / "baseline"
    assert json.loads((run / "config.json").read_text())["iterations"] == 2 and (run / "metrics.json").exists()
    assert not (REPO / "runs" / "course_quick_iterations2_val_images4").exists()
