"""Reliability of the training engine: checkpoints are only ever loaded safely.

Every ``torch.load`` in ranlib must pass ``weights_only=True`` so that a checkpoint found on a shared drive
cannot run code when it is opened.
"""

import ast
from pathlib import Path

import ranlib

PACKAGE = Path(ranlib.__file__).parent


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


def test_unwritable_run_dir_is_found_before_the_model_is_built(tmp_path, monkeypatch):
    import pytest

    from ranlib import train
    from ranlib.train import TrainConfig

    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the run directory should go")  # root ignores chmod, a file does not
    run_dir = blocker / "run"

    def no_model(*args, **kwargs):
        raise AssertionError("the model was built before the run directory was checked")

    monkeypatch.setattr(train, "RAN", no_model)
    config = TrainConfig(dataset="voc", data_root=str(tmp_path), run_dir=str(run_dir), device="cpu")
    with pytest.raises(OSError, match="not writable") as info:
        train.fit(config)
    assert str(run_dir) in str(info.value)


def test_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    from dataclasses import replace

    import pytest

    from ranlib import train
    from ranlib.data import make_mixed_boundary_dataset
    from ranlib.losses import RANLoss
    from ranlib.train import TrainConfig

    root = make_mixed_boundary_dataset(tmp_path / "data", n_train=8, n_val=2, size=32, seed=0, progress=False)
    calls = {"n": 0}

    class NanAtThird(RANLoss):
        def forward(self, output, target):
            total, parts = super().forward(output, target)
            calls["n"] += 1
            return (total * float("nan") if calls["n"] == 3 else total), parts

    monkeypatch.setattr(train, "RANLoss", NanAtThird)
    config = replace(TrainConfig(dataset="voc", data_root=str(root), run_dir=str(tmp_path / "run"), crop_size=32,
                                 batch_size=2, iterations=4, checkpoint_every=1, eval_every=0, log_every=1,
                                 num_workers=0, deterministic=True, device="cpu", eval_batch_size=2,
                                 backbone="resnet18"))
    with pytest.raises(FloatingPointError, match=r"at iteration [23]\b"):
        train.fit(config)
    assert train.latest_intact(tmp_path / "run" / "checkpoints") is not None
