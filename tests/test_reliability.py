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
