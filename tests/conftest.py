"""Fixtures shared by the test modules.

The tests of the training engine (resume, checkpoints, interrupts, early failures, the run directory, DDP, the
command line) train the ``tiny`` backbone (``ranlib.backbone.TinyBackbone``, 6,088 parameters) on ``tiny_data``
through ``tiny_config``: a resumable checkpoint is kilobytes and a step takes milliseconds. Each real backbone is
built once and trained one step in tests/test_model.py. ``pytest -m "not slow"`` leaves out the end-to-end tests
marked slow (README); the plain test command runs everything.
"""

import os
import shutil
from dataclasses import replace

XDIST_WORKER = bool(os.environ.get("PYTEST_XDIST_WORKER"))
if XDIST_WORKER:
    # The README's command runs one pytest-xdist worker per core. A worker then owns one core: torch on one thread
    # here, and in every process a test starts (OMP_NUM_THREADS), since two OpenMP threads beside a busy core crawl.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    # The one exception, tests/test_course_models.py, trains the course's baseline on every core, as notebook 01
    # does on an idle machine (on one thread it scores IoU 0 for a class). OpenMP threads that sleep at a barrier
    # instead of spinning (read when torch loads) keep that from crawling beside the other worker: 19 images/s on
    # two threads, against 12 spinning (AMD EPYC, 2 cores, 2026-12-07; one thread beside it trains at 24).
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import pytest  # noqa: E402
import torch  # noqa: E402

if XDIST_WORKER:
    torch.set_num_threads(1)

# The modules that take minutes, in the order the README's command (pytest-xdist, --no-loadscope-reorder) should
# start them: the course's quick models first, since the solved notebooks load them (a notebook that comes first
# waits on the run's lock, ranlib.file_lock), then the two that start kernels and fresh installs.
FIRST = ("tests/test_course_models.py", "tests/test_rehearsal.py", "tests/test_student_notebooks.py")


def pytest_collection_modifyitems(config, items):
    """Start the long modules first (``FIRST``); everything else keeps its collected order (tests, then notebooks)."""
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return FIRST.index(path) if path in FIRST else len(FIRST)

    items.sort(key=rank)  # stable: the order inside each rank is pytest's


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """``course.setup()`` sets torch's thread count for the process (``course.threads``); no test leaves its
    choice to the next one."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def one_thread():
    """Tiny models train fastest on one thread, and two OpenMP threads crawl when other jobs share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Six training and two validation scenes of 32 px from the embedded dataset's generator: the VOC-layout
    folder (``--dataset voc --train-split train``) that the command-line tests train on in seconds."""
    from ranlib.data import make_mixed_boundary_dataset

    return make_mixed_boundary_dataset(tmp_path_factory.mktemp("data"), n_train=6, n_val=2, size=32, seed=3,
                                       progress=False)


@pytest.fixture(scope="session")
def tiny_config(tiny_data):
    """``tiny_config(run_dir, **overrides)``: a TrainConfig of the tiny backbone on ``tiny_data``, 32-px crops,
    batch 2, a 1x1 head, six deterministic CPU iterations with a checkpoint every two and only the final evaluation
    (the command-line tests spell the same values as flags, with ``--backbone tiny``)."""
    from ranlib.engine.config import TrainConfig

    def make(run_dir, **overrides) -> TrainConfig:
        return replace(TrainConfig(dataset="voc", data_root=str(tiny_data), train_split="train", run_dir=str(run_dir),
                                   backbone="tiny", head_dilation=0, crop_size=32, batch_size=2, iterations=6,
                                   checkpoint_every=2, eval_every=0, log_every=1, num_workers=0, deterministic=True,
                                   device="cpu", eval_batch_size=2), **overrides)

    return make


@pytest.fixture(scope="session")
def tiny_run(tiny_config, tmp_path_factory):
    """A finished run of ``tiny_config`` (two iterations, a checkpoint after each), trained once per session on one
    thread; tests that change its files work on a copy (``copy_of_tiny_run``)."""
    from ranlib.engine.train import fit

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fit(tiny_config(tmp_path_factory.mktemp("tiny_run") / "run", iterations=2, checkpoint_every=1))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def copy_of_tiny_run(tiny_run, tmp_path):
    """A copy of the finished ``tiny_run`` in this test's folder, free to damage (its config.json keeps the
    original run directory, which a resumed or retrained run may change)."""
    return shutil.copytree(tiny_run, tmp_path / "run")


@pytest.fixture
def no_run_plots(monkeypatch):
    """``fit`` without the PNG figures of a finished run (2-3 s of matplotlib each), for tests whose assertions do
    not read them; the run-directory tests (tests/test_train.py, tests/test_cli.py) keep them."""
    from ranlib.engine import train

    monkeypatch.setattr(train, "save_run_plots", lambda *args, **kwargs: None)
