"""Reliability of the training engine: what survives a disconnect, a crash, a bad file or a bad loss.

SIGKILL at random points then rerunning the same command ends bit-identical to an uninterrupted run; a
truncated newest checkpoint is skipped; a crash mid-save keeps the good checkpoints; a non-finite loss stops
training naming the iteration; an fp16 overflow skip warns; an unwritable run directory is found before
training; and every ``torch.load`` passes ``weights_only=True``, so a checkpoint whose pickle would run code
is refused.
"""

import ast
from pathlib import Path

import pytest

import ranlib

PACKAGE = Path(ranlib.__file__).parent


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def _torch_load_calls():
    """Yield (file, call node) for every ``torch.load(...)`` call in the ranlib package."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            func = getattr(node, "func", None)
            if (
                isinstance(node, ast.Call)
                and isinstance(func, ast.Attribute)
                and func.attr == "load"
                and isinstance(func.value, ast.Name)
                and func.value.id == "torch"
            ):
                yield path, node


def test_every_torch_load_uses_weights_only():
    calls = list(_torch_load_calls())
    assert calls, "expected at least one torch.load call in ranlib (checkpoint loading)"
    for path, node in calls:
        flags = {kw.arg: kw.value for kw in node.keywords}
        value = flags.get("weights_only")
        assert isinstance(value, ast.Constant) and value.value is True, (
            f"{path}:{node.lineno}: torch.load must pass weights_only=True"
        )


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path):
    import os

    import pytest
    import torch

    from ranlib.engine.checkpoint import CheckpointError, load_checkpoint, load_state

    marker = tmp_path / "code_ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "iter_0000001.pt"
    torch.save({"model": Exploit(), "iteration": 1}, path)  # a real checkpoint file, one object inside
    for load in (load_state, load_checkpoint):
        with pytest.raises(CheckpointError, match=r"refusing to load .*iter_0000001\.pt"):
            load(path)
    assert not marker.exists()


def test_unwritable_run_dir_is_found_before_the_model_is_built(tmp_path, monkeypatch):
    import pytest

    from ranlib.engine import train
    from ranlib.engine.train import TrainConfig

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the run directory should go")  # root ignores chmod, a file does not
    run_dir = blocker / "run"

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the run directory was checked")

    monkeypatch.setattr(train, "RAN", no_model)
    config = TrainConfig(dataset="voc", data_root=str(tmp_path), run_dir=str(run_dir), device="cpu",
                         train_split="train")
    with pytest.raises(OSError, match="not writable") as info:
        train.fit(config)
    assert str(run_dir) in str(info.value)


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tiny_config, tmp_path, monkeypatch):
    import pytest

    from ranlib.engine import train
    from ranlib.losses import RANLoss

    calls = {"n": 0}

    class NanAtThird(RANLoss):
        def forward(self, output, target):
            total, parts = super().forward(output, target)
            calls["n"] += 1
            return (total * float("nan") if calls["n"] == 3 else total), parts

    monkeypatch.setattr(train, "RANLoss", NanAtThird)
    config = tiny_config(tmp_path / "run", iterations=4, checkpoint_every=1)
    with pytest.raises(FloatingPointError, match=r"at iteration 3\b"):
        train.fit(config)
    assert train.latest_intact(tmp_path / "run" / "checkpoints") is not None


# ------------------------------------------------------------------------ kills, corrupt files, fp16 skips
def _final_weights(run_dir):
    from ranlib.engine.checkpoint import final_path, load_state

    return load_state(final_path(run_dir))["model"]


def _same(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.usefixtures("no_run_plots")
def test_corrupt_newest_checkpoint_is_skipped_and_the_result_is_unchanged(tiny_config, tmp_path, monkeypatch):
    import pytest

    from ranlib.engine import train
    from ranlib.engine.train import fit

    def _tiny(run_dir):
        return tiny_config(run_dir, iterations=4, checkpoint_every=1)

    whole = fit(_tiny(tmp_path / "whole"))
    cut = tmp_path / "cut"
    with monkeypatch.context() as patch:  # stopped at its final evaluation: checkpoints 2 and 3 are kept
        patch.setattr(train, "evaluate", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            fit(_tiny(cut))
    newest = cut / "checkpoints" / "iter_0000003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a disconnect mid-write
    with pytest.warns(UserWarning, match="iter_0000003.pt is incomplete or corrupt"):
        fit(_tiny(cut))
    assert _same(_final_weights(whole), _final_weights(cut))


def test_a_crash_before_the_sidecar_leaves_the_good_checkpoints(tmp_path, monkeypatch):
    import pytest
    import torch

    from ranlib.engine import checkpoint

    folder = tmp_path / "checkpoints"
    for i in (1, 2):
        checkpoint.save_checkpoint({"w": torch.full((3,), float(i))}, checkpoint.checkpoint_path(tmp_path, i), keep=2)
    real = checkpoint._write_atomic

    def crash_on_sidecar(path, data):
        if path.name.endswith(".sha256"):
            raise OSError("disconnected")
        real(path, data)

    monkeypatch.setattr(checkpoint, "_write_atomic", crash_on_sidecar)
    with pytest.raises(OSError):
        checkpoint.save_checkpoint({"w": torch.zeros(3)}, checkpoint.checkpoint_path(tmp_path, 3), keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(folder) if checkpoint.is_intact(p)] == [
        "iter_0000001.pt", "iter_0000002.pt"]
    with pytest.warns(UserWarning, match="iter_0000003.pt"):
        assert checkpoint.latest_intact(folder).name == "iter_0000002.pt"


def test_a_save_hashes_only_the_new_checkpoint_and_still_passes_over_a_damaged_one(tmp_path, monkeypatch):
    """Each save reads back and hashes the file it wrote, and an older checkpoint only the first time it sees it
    (or again once it has changed): not every kept checkpoint at every save. A damaged one never counts as good."""
    import torch

    from ranlib.engine import checkpoint

    hashed = []
    real = checkpoint.is_intact
    monkeypatch.setattr(checkpoint, "is_intact", lambda path: hashed.append(path.name) or real(path))
    folder = tmp_path / "checkpoints"
    for i in (1, 2, 3):
        checkpoint.save_checkpoint({"w": torch.full((3,), float(i))}, checkpoint.checkpoint_path(tmp_path, i), keep=2)
    assert hashed == ["iter_0000001.pt", "iter_0000002.pt", "iter_0000003.pt"]  # before: 1, 1, 2, 1, 2, 3
    damaged = folder / "iter_0000003.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])
    hashed.clear()
    checkpoint.save_checkpoint({"w": torch.zeros(3)}, checkpoint.checkpoint_path(tmp_path, 4), keep=2)
    assert hashed == ["iter_0000003.pt", "iter_0000004.pt"]  # the changed file again, then the new one
    assert [p.name for p in checkpoint.list_checkpoints(folder)] == ["iter_0000002.pt", "iter_0000003.pt",
                                                                    "iter_0000004.pt"]  # 2 and 4 are the good ones


@pytest.mark.usefixtures("no_run_plots")
def test_fp16_overflow_skips_the_step_and_warns(tiny_config, tmp_path, monkeypatch):
    import pytest
    import torch

    from ranlib.engine import train

    build, calls = train.RAN.from_config, {"n": 0}

    def overflow_once(config):  # the model fit builds, with an infinite gradient at the second backward pass
        model = build(config)

        def blow_up(grad):
            calls["n"] += 1
            return grad * float("inf") if calls["n"] == 2 else grad
        model.conv_org.conv.weight.register_hook(blow_up)
        return model

    monkeypatch.setattr(train.RAN, "from_config", overflow_once)
    with pytest.warns(train.GradientOverflowWarning, match="fp16: gradient overflow at iteration 2, step skipped"):
        train.fit(tiny_config(tmp_path / "fp16", iterations=3, checkpoint_every=1, amp="fp16", deterministic=False))
    assert torch.isfinite(_final_weights(tmp_path / "fp16")["conv_org.conv.weight"]).all()


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_is_bit_identical(tiny_data, tmp_path):
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    def command(run_dir):  # the tiny backbone: a step and a checkpoint take milliseconds, so many of them
        return [sys.executable, "-m", "ranlib", "train", "--dataset", "voc", "--data-root", str(tiny_data),
                "--train-split", "train", "--backbone", "tiny",
                "--run-dir", str(run_dir), "--iterations", "150", "--checkpoint-every", "1", "--crop-size", "32",
                "--batch-size", "2", "--workers", "0", "--device", "cpu", "--deterministic", "--eval-every", "0",
                "--eval-batch-size", "2"]

    env = os.environ | {"OMP_NUM_THREADS": "1"}
    whole = subprocess.Popen(command(tmp_path / "whole"), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)  # the uninterrupted run, meanwhile
    rng = random.Random(0)
    folder = tmp_path / "killed" / "checkpoints"

    def newest():  # the name of the newest checkpoint file (only the last 2 are kept, so count names, not files)
        return max((p.name for p in folder.glob("iter_*.pt")), default="")

    for kill in range(3):
        before = newest()
        process = subprocess.Popen(command(tmp_path / "killed"), env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        # Kill at a random moment (mid-step or mid-save) once this rerun has made progress.
        while newest() == before and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        assert process.returncode == -signal.SIGKILL, f"the run finished before kill {kill + 1}: more iterations"
        assert newest() > before, "the rerun resumed and made progress before it was killed"
    subprocess.run(command(tmp_path / "killed"), env=env, check=True, capture_output=True, timeout=600)
    assert whole.wait(timeout=600) == 0
    assert _same(_final_weights(tmp_path / "whole"), _final_weights(tmp_path / "killed"))
