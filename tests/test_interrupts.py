"""Ctrl-C and SIGTERM during training: a resumable checkpoint at the end of the step, one line, exit 130 / 143.

``fit`` catches SIGINT and SIGTERM only while it trains (the previous handlers come back afterwards), finishes
the step, saves a checkpoint of that iteration and raises ``TrainingInterrupted``; ``python -m ranlib train``
turns it into "interrupted at iteration N; rerun the same command to resume" and exit status 128 + the signal.
Rerunning the command ends bit-identical to a run that was never interrupted.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ranlib.engine import train
from ranlib.engine.checkpoint import checkpoint_path, final_path, is_intact, list_checkpoints, load_state

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def logged_iterations(run_dir: Path) -> list[int]:
    """The iterations of log.csv's training rows (those with a loss)."""
    path = run_dir / "log.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [int(row["iteration"]) for row in csv.DictReader(f) if row["loss"]]


def same_weights(a: Path, b: Path) -> bool:
    x, y = load_state(final_path(a))["model"], load_state(final_path(b))["model"]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_fit_stops_at_the_step_boundary_with_a_checkpoint_and_restores_the_handlers(tiny_config, tmp_path,
                                                                                     monkeypatch):
    """SIGTERM arrives in the middle of step 3: the step ends, iteration 3 is saved, and fit raises."""
    calls = {"n": 0}
    real_step = train.train_step

    def step_then_signal(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to fit's handler, which only takes note
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train, "train_step", step_then_signal)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    config = tiny_config(tmp_path / "run", iterations=8, checkpoint_every=5)
    with pytest.raises(train.TrainingInterrupted) as info:
        train.fit(config)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.iteration, info.value.signal) == (3, signal.SIGTERM) and calls["n"] == 3
    assert "SIGTERM stopped training at iteration 3" in str(info.value)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["iter_0000003.pt"]
    assert is_intact(checkpoint_path(tmp_path / "run", 3)) and (tmp_path / "run" / "config.json").exists()
    assert logged_iterations(tmp_path / "run") == [1, 2, 3]
    assert {s: signal.getsignal(s) for s in before} == before  # fit's handlers are gone again


ITERATIONS = 150  # the tiny backbone takes 5-20 ms a step: enough steps that a signal always comes before the end


@pytest.mark.slow
def test_sigint_and_sigterm_save_say_one_line_and_the_rerun_is_bit_identical(tiny_data, tmp_path):
    def command(run_dir):
        return [sys.executable, "-m", "ranlib", "train", "--dataset", "voc", "--data-root", str(tiny_data),
                "--train-split", "train", "--run-dir", str(run_dir), "--iterations", str(ITERATIONS),
                "--checkpoint-every", "1000", "--backbone", "tiny",
                "--crop-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu", "--deterministic",
                "--eval-every", "0", "--eval-batch-size", "2", "--head-dilation", "0", "--log-every", "1"]

    env = os.environ | {"OMP_NUM_THREADS": "1"}
    whole_log = open(tmp_path / "whole.err", "w")  # a file, not a pipe: nobody reads it while the run goes on
    whole = subprocess.Popen(command(tmp_path / "whole"), env=env, stdout=subprocess.DEVNULL,
                             stderr=whole_log)  # the uninterrupted run, meanwhile
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        run_dir = tmp_path / signal.Signals(signum).name
        process = subprocess.Popen(command(run_dir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        deadline = time.monotonic() + 120
        while len(logged_iterations(run_dir)) < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until it has taken two steps
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        assert process.returncode == status, err[-2000:]
        assert "Traceback" not in err
        last = err.strip().splitlines()[-1]
        found = re.fullmatch(r"interrupted at iteration (\d+); rerun the same command to resume", last)
        assert found and err.count("interrupted") == 1, err[-2000:]
        iteration = int(found.group(1))
        assert 2 <= iteration < ITERATIONS, "the run finished before the signal: give it more iterations"
        assert is_intact(checkpoint_path(run_dir, iteration)) and not final_path(run_dir).exists()
        assert logged_iterations(run_dir) == list(range(1, iteration + 1))
        rerun = subprocess.run(command(run_dir), env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert f"resuming {run_dir} from iter_{iteration:07d}.pt" in rerun.stdout + rerun.stderr
    assert whole.wait(timeout=300) == 0, (tmp_path / "whole.err").read_text()[-2000:]
    whole_log.close()
    for name in ("SIGINT", "SIGTERM"):
        assert same_weights(tmp_path / "whole", tmp_path / name), name
        assert logged_iterations(tmp_path / name) == list(range(1, ITERATIONS + 1))
