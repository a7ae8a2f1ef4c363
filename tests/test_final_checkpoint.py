"""A finished run is as safe as a running one: final.pt is checked against its sha256 sidecar wherever it is read.

A damaged final.pt is refused by ``train`` (exit 2, the run folder unchanged), ``evaluate``, ``load_checkpoint``
and the course's load-or-train, with one line that names the file and a command that retrains the run, and that
command works. A final.pt without a sidecar (older runs) is used with a warning that says so; a file that is not
a ranlib checkpoint is refused in one line that says what a ranlib checkpoint holds.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shlex
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
import torchvision

import ranlib
from ranlib.__main__ import main
from ranlib.engine.checkpoint import (
    CheckpointError,
    UnverifiedCheckpointWarning,
    checkpoint_path,
    final_path,
    is_intact,
    load_checkpoint,
    load_state,
    save_checkpoint,
)
from ranlib.engine.config import TrainConfig
from ranlib.engine.wording import retrain_command, train_command_line
from ranlib.model import RAN

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def train_flags(data, run_dir):
    """The command line of conftest.py's ``tiny_run``."""
    return ["train", "--dataset", "voc", "--data-root", str(data), "--run-dir", str(run_dir), "--train-split", "train",
            "--iterations", "2", "--crop-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--eval-batch-size", "2", "--checkpoint-every", "1", "--eval-every", "0", "--head-dilation", "0",
            "--deterministic", "--backbone", "tiny", "--log-every", "1"]


@pytest.fixture
def finished_run(copy_of_tiny_run):
    """A finished two-iteration run of the tiny backbone (a copy of the session's, free to damage), and its final
    weights."""
    return copy_of_tiny_run, load_state(final_path(copy_of_tiny_run))["model"]


def test_the_flags_here_train_the_shared_tiny_run(tiny_data, tiny_run, tmp_path):
    """``train_flags`` is the command line of the shared run: the tests below rerun it on that run's copies."""
    from ranlib.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(train_flags(tiny_data, tmp_path)))
    saved = TrainConfig.from_dict(json.loads((tiny_run / "config.json").read_text()))
    assert replace(config, run_dir="-") == replace(saved, run_dir="-")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])  # as a disconnect while copying it would leave it


def file_hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"python -m ranlib {command}: error:"), err
    return lines[0]


def refused_by_train(tiny_data, run_dir: Path, capsys) -> str:
    """Train the flags of a run whose final.pt is damaged: exit 2 and one line, nothing written; return the line."""
    final = final_path(run_dir)
    before = file_hashes(run_dir)
    assert main(train_flags(tiny_data, run_dir)) == 2  # before: trained again from 0 and said "already finished"
    line = one_line(capsys.readouterr().err, "train")
    assert f"{final} does not match its sha256 sidecar" in line and "damaged or truncated" in line
    assert file_hashes(run_dir) == before  # nothing written, nothing removed
    return line


def test_damaged_final_is_refused_by_train_and_evaluate(tiny_data, finished_run, capsys):
    run_dir, _ = finished_run
    final = final_path(run_dir)
    truncate(final)
    line = refused_by_train(tiny_data, run_dir, capsys)
    for checkpoint in (run_dir, final):  # a run folder or its final.pt
        assert main(["evaluate", "--checkpoint", str(checkpoint), "--device", "cpu"]) == 2
        assert one_line(capsys.readouterr().err, "evaluate").endswith(line.split(": error: ", 1)[1])
    with pytest.raises(CheckpointError, match="does not match its sha256 sidecar"):
        load_checkpoint(final)


@pytest.mark.slow  # the named command in a shell: a fresh interpreter
def test_the_command_that_a_damaged_final_names_retrains_it(tiny_data, finished_run, capsys):
    run_dir, weights = finished_run
    final = final_path(run_dir)
    truncate(final)
    line = refused_by_train(tiny_data, run_dir, capsys)
    # The command the message names removes final.pt and trains the run again, with the flags it was made with.
    command = line.split("to retrain the run on purpose (from iteration 0: its resumable checkpoints were removed "
                         "when it finished): ", 1)[1]
    assert command.startswith(f"rm {final} {final}.sha256 && python -m ranlib train ")
    env = {"OMP_NUM_THREADS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    done = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert is_intact(final) and "done:" in done.stdout
    retrained = load_state(final)["model"]
    assert all(torch.equal(weights[k], retrained[k]) for k in weights)  # deterministic: the same weights again


def test_final_without_sidecar_is_used_with_a_warning_that_says_how_to_write_one(tiny_data, finished_run, capsys):
    run_dir, weights = finished_run
    final = final_path(run_dir)
    Path(f"{final}.sha256").unlink()  # as runs of older ranlib versions have it
    with pytest.warns(UnverifiedCheckpointWarning, match="has no sha256 sidecar") as caught:
        model, _, _ = load_checkpoint(final)
    assert "does not match" not in str(caught[0].message)
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    with pytest.warns(UnverifiedCheckpointWarning):  # train sees a finished run: nothing trained, nothing written
        before = file_hashes(run_dir)
        assert main(train_flags(tiny_data, run_dir)) == 0
    assert "already finished" in capsys.readouterr().out and file_hashes(run_dir) == before
    # The command in the warning writes a sidecar that the checks accept.
    command = str(caught[0].message).split("to verify it from now on: ", 1)[1]
    subprocess.run(["bash", "-c", command], check=True, timeout=60)
    assert is_intact(final)


def test_damaged_resumable_checkpoint_is_refused_by_load_checkpoint(tiny_data, tmp_path):
    config = TrainConfig(dataset="voc", data_root=str(tiny_data), train_split="train", run_dir=str(tmp_path),
                         head_dilation=0, backbone="tiny")
    state = {"model": RAN.from_config(config.model_config).state_dict(), "config": asdict(config),
             "model_config": asdict(config.model_config)}
    path = save_checkpoint(state, checkpoint_path(tmp_path, 4), keep=2)
    load_checkpoint(path)  # intact: loads
    truncate(path)
    with pytest.raises(CheckpointError, match=r"iter_0000004\.pt does not match .*use an earlier checkpoint"):
        load_checkpoint(path)


def test_course_load_or_train_refuses_a_damaged_final_and_trains_nothing(tiny_data, finished_run, monkeypatch):
    from ranlib import course

    run_dir, _ = finished_run
    config = replace(TrainConfig.from_dict(load_state(final_path(run_dir))["config"]), run_dir=str(run_dir))
    truncate(final_path(run_dir))
    monkeypatch.setattr(course.runs, "fit", lambda config: pytest.fail("a damaged finished run was trained again"))
    with pytest.raises(CheckpointError, match="final.pt does not match its sha256 sidecar"):
        course.trained_model(config.variant, config=config, dev=torch.device("cpu"))


@pytest.mark.parametrize("kind", ["torchvision state_dict", "list", "plain pickle", "text"])
def test_evaluate_refuses_a_file_that_is_not_a_ranlib_checkpoint(kind, tmp_path, capsys):
    path = tmp_path / "weights.pt"
    if kind == "torchvision state_dict":
        torch.save(torchvision.models.resnet18().state_dict(), path)
    elif kind == "list":
        torch.save([torch.zeros(2)], path)
    elif kind == "plain pickle":
        path.write_bytes(pickle.dumps({"model": [1.0, 2.0]}, protocol=4))
    else:
        path.write_text("not a checkpoint at all")
    assert main(["evaluate", "--checkpoint", str(path), "--device", "cpu"]) == 2  # before: KeyError: 'config'
    line = one_line(capsys.readouterr().err, "evaluate")
    assert str(path) in line
    assert "a ranlib checkpoint holds model (the weights), config and model_config" in line


def test_the_train_command_line_of_a_config_parses_back_to_it(tmp_path):
    from ranlib.cli import build_parser, config_from_args

    config = TrainConfig(variant="subtract", lr=0.002, loss_weights=(0.5, 0.25, 1.0), freeze_bn=True, seed=3,
                         data_root=str(tmp_path / "mb"), run_dir=str(tmp_path / "run"), weights_backbone="DEFAULT")
    line = train_command_line(config)
    argv = shlex.split(line)
    assert argv[:4] == ["python", "-m", "ranlib", "train"]
    assert config_from_args(build_parser().parse_args(argv[3:])) == config
    # momentum has no flag: the fallback calls fit on the run's config.json, which gives the same configuration.
    odd = replace(config, momentum=0.5)
    assert train_command_line(odd) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(asdict(odd)))
    command = retrain_command(tmp_path / "run")
    assert command.startswith(f"rm {tmp_path / 'run' / 'final.pt'} ") and " python -c " in command
    code = shlex.split(command.split(" && ", 1)[1])[2]
    calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ranlib, "fit", calls.append, raising=False)
        exec(code, {})
    assert calls == [odd]
