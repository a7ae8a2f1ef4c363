"""``ranlib.file_lock.exclusive``: a second process waits for the first, says what it waits for, and sees its work;
the lock goes with a killed process; the dataset and the course's runs are written under it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from ranlib.file_lock import exclusive, lock_path

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ranlib.file_lock import exclusive
    folder, seconds = Path(sys.argv[1]), float(sys.argv[2])
    with exclusive(folder):
        (folder.parent / "held").write_text("yes")
        time.sleep(seconds)
        (folder.parent / "written").write_text("by the holder")
""")


def _hold(folder: Path, seconds: float) -> subprocess.Popen:
    """A process holding ``folder``'s lock for ``seconds``, started and holding when this returns."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(seconds)])
    while not (folder.parent / "held").exists():
        assert holder.poll() is None, "the lock holder died before taking the lock"
        time.sleep(0.02)
    return holder


def test_a_second_process_waits_says_why_and_then_sees_the_first_ones_work(tmp_path, capsys):
    folder = tmp_path / "run"
    holder = _hold(folder, 1.0)
    with exclusive(folder, "training run"):
        seen = (tmp_path / "written").read_text() if (tmp_path / "written").exists() else None
    holder.wait()
    assert seen == "by the holder", "the block ran while the other process still held the lock"
    out = capsys.readouterr().out
    assert out.count("waiting for another process training run") == 1 and str(lock_path(folder)) in out


def test_a_free_lock_is_taken_silently_and_can_be_taken_again(tmp_path, capsys):
    for _ in range(2):
        with exclusive(tmp_path / "data"):
            pass
    assert capsys.readouterr().out == ""
    assert lock_path(tmp_path / "data") == tmp_path / "data.lock"


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = _hold(tmp_path / "run", 60.0)
    holder.kill()
    holder.wait()
    tic = time.perf_counter()
    with exclusive(tmp_path / "run"):
        pass
    assert time.perf_counter() - tic < 5


def test_a_folder_that_cannot_hold_a_lock_is_not_refused(tmp_path, monkeypatch):
    from ranlib import file_lock

    def no_locks(fd):
        raise OSError(37, "No locks available")

    def read_only(*args):
        raise PermissionError(13, "Permission denied")

    for name, broken in (("_try_lock", no_locks), ("os.open", read_only)):
        with monkeypatch.context() as patch:
            patch.setattr(file_lock.os, "open", broken) if name == "os.open" else patch.setattr(file_lock, name, broken)
            entered = []
            with exclusive(tmp_path / name):
                entered.append(name)
        assert entered == [name]


def _held_elsewhere(path: Path) -> bool:
    """Whether a lock on ``path`` is held: a second open file cannot take it without waiting."""
    import fcntl

    with open(lock_path(path), "a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(other, fcntl.LOCK_UN)
        return False


class Trained(Exception):
    pass


def test_the_dataset_and_a_course_run_are_written_under_their_lock(tmp_path, monkeypatch):
    from ranlib.course import runs
    from ranlib.data import mixed_boundary
    from ranlib.engine.config import TrainConfig

    taken = []
    real_write = mixed_boundary._write_dataset

    def write(root, params, progress):
        taken.append(_held_elsewhere(root))
        return real_write(root, params, progress)

    monkeypatch.setattr(mixed_boundary, "_write_dataset", write)
    mixed_boundary.make_mixed_boundary_dataset(tmp_path / "data", n_train=2, n_val=1, size=32, progress=False)
    mixed_boundary.make_mixed_boundary_dataset(tmp_path / "data", n_train=2, n_val=1, size=32, progress=False)
    assert taken == [True], "the dataset was written without its lock, or a complete one was locked again"

    config = TrainConfig(run_dir=str(tmp_path / "runs" / "ran"), data_root=str(tmp_path / "data"))

    def fit(config):
        raise Trained(_held_elsewhere(Path(config.run_dir)))

    monkeypatch.setattr(runs, "fit", fit)
    monkeypatch.setattr(runs, "estimate_text", lambda config, dev: "")
    try:
        runs.trained_model("ran", config=config)
    except Trained as held:
        assert held.args == (True,), "trained_model trained the run without holding its lock"
    else:
        raise AssertionError("trained_model did not train an unfinished run")
    assert not _held_elsewhere(Path(config.run_dir)), "the lock outlived the call"
