"""The command line as a careful user meets it: bad flags, guarded run directories, exit codes and streams, hints.

Exit status: 0 success, 1 a check found problems (or the command failed), 2 bad input or usage; errors are one
line on stderr without a traceback unless --debug.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ranlib.__main__ import main
from ranlib.data.mixed_boundary import CLASSES

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def train_flags(data, run_dir, *extra):
    return ["train", "--dataset", "voc", "--data-root", str(data), "--run-dir", str(run_dir), "--train-split", "train",
            "--iterations", "2", "--crop-size", "32", "--batch-size", "2", "--workers", "0", "--device", "cpu",
            "--eval-batch-size", "2", "--checkpoint-every", "1", "--eval-every", "0", "--backbone", "tiny", *extra]


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory):
    """One finished two-iteration run, trained through the command line; returns (run_dir, its stdout)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    try:
        from contextlib import redirect_stdout
        from io import StringIO

        out = StringIO()
        with redirect_stdout(out):
            assert main(train_flags(tiny_data, run_dir)) == 0
    finally:
        torch.set_num_threads(threads)
    return run_dir, out.getvalue()


def one_line_error(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"python -m ranlib {command}: error:"), err
    return lines[0]


# -------------------------------------------------------------------------------------------- --help is quick
def test_help_and_a_bad_flag_import_no_torch():
    """--help of every command, and a rejected flag, answer without importing torch (about 4 s of start-up)."""
    code = ("import sys\nfrom ranlib.__main__ import main\n"
            "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help'], ['check-data', '--help'],\n"
            "             ['download', '--help'], ['benchmark', '--help'], ['train', '--iterations', '-5']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch imported:', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().endswith("torch imported: False"), done.stdout[-500:] + done.stderr[-2000:]
    assert "``" not in done.stdout  # no reStructuredText markup in the descriptions


def test_choices_come_from_one_home():
    """The flags offer exactly the names the model is built from (ranlib.model_config) and that precision resolves."""
    from ranlib import model_config, precision
    from ranlib.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    offered = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert offered["backbone"] == model_config.BACKBONES and offered["head"] == model_config.HEADS
    assert offered["variant"] == model_config.VARIANTS and offered["attention"] == model_config.ATTENTIONS
    assert offered["amp"] == precision.AMP_CHOICES


# ---------------------------------------------------------------------------------- flags checked before work
@pytest.mark.parametrize("flags, flag, value", [
    (["--iterations", "-5"], "--iterations", "-5"), (["--iterations", "0"], "--iterations", "0"),
    (["--batch-size", "0"], "--batch-size", "0"), (["--crop-size", "8"], "--crop-size", "8"),
    (["--lr", "0"], "--lr", "0.0"), (["--lr", "nan"], "--lr", "nan"), (["--lr", "5"], "--lr", "5.0"),
    (["--eval-every", "-1"], "--eval-every", "-1"), (["--checkpoint-every", "0"], "--checkpoint-every", "0"),
    (["--log-every", "0"], "--log-every", "0"), (["--keep-checkpoints", "0"], "--keep-checkpoints", "0"),
    (["--scale-range", "2", "1"], "--scale-range", "2.0 1.0"), (["--workers", "-1"], "--workers", "-1"),
    (["--seed", "-1"], "--seed", "-1"), (["--head-dilation", "-1"], "--head-dilation", "-1"),
    (["--device", "gpu"], "--device", "gpu"), (["--batch-size", "3", "--grad-accum", "2"], "--batch-size", "3"),
    (["--run-dir", " "], "--run-dir", " "),
])
def test_bad_flag_is_one_line_with_exit_2_before_any_work(flags, flag, value, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing may appear here: no data generated, no run directory
    assert main(["train", *flags]) == 2
    captured = capsys.readouterr()
    line = one_line_error(captured.err, "train")
    assert f"argument {flag}: {value} is not allowed; it must be " in line
    assert captured.out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [["--amp", "fp32"], ["--backbone", "resnet34"], ["--iterations", "many"],
                                   ["--no-such-flag"]])
def test_bad_choice_or_type_is_a_usage_error(flags, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", *flags])
    assert info.value.code == 2 and flags[0] in capsys.readouterr().err.splitlines()[-1]


def test_missing_voc_root_is_found_before_training(tmp_path, capsys):
    assert main(["train", "--dataset", "voc", "--data-root", str(tmp_path / "no-voc"), "--run-dir",
                 str(tmp_path / "r"), "--device", "cpu"]) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert "no-voc" in line and "python -m ranlib download voc" in line
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------- the run directory's contract
def test_finished_run_last_lines_files_and_metrics(finished_run):
    run_dir, out = finished_run
    lines = out.strip().splitlines()[-4:]
    assert lines[0].startswith(f"done: {run_dir}  val mIoU")
    assert lines[1].startswith("plots:") and "per_class_iou.png" in lines[1] and "loss_curves.png" in lines[1]
    assert lines[2] == f"evaluate:    python -m ranlib evaluate --checkpoint {run_dir / 'final.pt'} [--tta]"
    assert lines[3] == f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}"
    assert (run_dir / "final.pt").exists() and not (run_dir / "checkpoints").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["classes"] == list(CLASSES)
    assert list(metrics["per_class_iou"]) == list(CLASSES)
    assert list(metrics["per_class_iou"].values()) == metrics["iou"]  # the list other code reads is kept
    config = json.loads((run_dir / "config.json").read_text())
    assert Path(config["data_root"]).is_absolute()


def test_changed_flag_on_a_finished_run_is_refused_and_config_kept(finished_run, tiny_data, capsys):
    run_dir, _ = finished_run
    saved = (run_dir / "config.json").read_bytes()
    final = (run_dir / "final.pt").stat().st_mtime_ns
    for extra in ([], ["--allow-config-change"]):
        assert main([*train_flags(tiny_data, run_dir), "--iterations", "-5"]) == 2  # the range check comes first
        assert main([*train_flags(tiny_data, run_dir), "--iterations", "3", "--lr", "0.01", *extra]) == 2
        line = one_line_error(capsys.readouterr().err.splitlines()[-1], "train")
        assert "finished run" in line and "iterations: 2 -> 3" in line and "lr: 0.001 -> 0.01" in line
        assert "another --run-dir" in line
    assert (run_dir / "config.json").read_bytes() == saved and (run_dir / "final.pt").stat().st_mtime_ns == final
    # The same flags again: nothing trained, nothing rewritten, the same last lines.
    assert main(train_flags(tiny_data, run_dir)) == 0
    assert capsys.readouterr().out.startswith(f"already finished, nothing trained: {run_dir}")
    assert (run_dir / "config.json").read_bytes() == saved and (run_dir / "final.pt").stat().st_mtime_ns == final


def test_changed_flag_on_an_unfinished_run_needs_allow_config_change(tiny_data, tmp_path, monkeypatch, capsys):
    import ranlib.engine.train as train_module

    run_dir = tmp_path / "run"

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # stopped at its final evaluation (Ctrl-C: exit 130): an unfinished run
        patch.setattr(train_module, "evaluate", stop)
        assert main(train_flags(tiny_data, run_dir)) == 130
    capsys.readouterr()
    assert main([*train_flags(tiny_data, run_dir), "--lr", "0.002"]) == 2
    line = one_line_error(capsys.readouterr().err, "train")
    assert "lr: 0.001 -> 0.002" in line and "another --run-dir" in line and "--allow-config-change" in line
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.001
    # Workers, evaluation and logging may change on resume: they change how the run goes, not what it computes.
    assert main([*train_flags(tiny_data, run_dir), "--lr", "0.002", "--allow-config-change", "--log-every", "2"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["lr"] == 0.002


# ------------------------------------------------------------------------------------ exit codes and streams
def test_evaluate_from_another_folder_and_missing_data_root(finished_run, tmp_path, monkeypatch, capsys):
    run_dir, _ = finished_run
    monkeypatch.chdir(tmp_path)  # the run stored an absolute data root, so it evaluates from anywhere
    assert main(["evaluate", "--checkpoint", str(run_dir), "--device", "cpu"]) == 0
    assert "stripes" in capsys.readouterr().out
    assert main(["evaluate", "--checkpoint", str(run_dir), "--device", "cpu", "--data-root", "gone"]) == 2
    line = one_line_error(capsys.readouterr().err, "evaluate")
    assert "dataset root gone" in line and "--data-root" in line


def test_missing_checkpoint_names_the_nearest_that_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("runs/ran-seed0/final.pt", "runs/baseline-seed0/checkpoints/iter_0000100.pt"):
        (tmp_path / name).parent.mkdir(parents=True)
        (tmp_path / name).write_bytes(b"")
    assert main(["evaluate", "--checkpoint", "runs/ran-seed1/final.pt"]) == 2
    line = one_line_error(capsys.readouterr().err, "evaluate")
    assert "no checkpoint file at runs/ran-seed1/final.pt" in line
    assert line.index("runs/ran-seed0/final.pt") < line.index("runs/baseline-seed0/checkpoints/iter_0000100.pt")
    import shutil

    shutil.rmtree(tmp_path / "runs")
    assert main(["evaluate", "--checkpoint", "runs/ran-seed1/final.pt"]) == 2
    assert "train first" in one_line_error(capsys.readouterr().err, "evaluate")


def test_check_data_missing_root_is_bad_input_on_stderr(tmp_path, capsys):
    assert main(["check-data", "--root", str(tmp_path / "nothing")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and str(tmp_path / "nothing") in one_line_error(captured.err, "check-data")


def test_unexpected_error_is_one_line_with_exit_1_and_debug_shows_it(tiny_data, tmp_path, monkeypatch, capsys):
    import ranlib.engine.train as train_module

    def broken(*args, **kwargs):
        raise RuntimeError("the disk went away")

    monkeypatch.setattr(train_module, "fit", broken)
    assert main(train_flags(tiny_data, tmp_path / "r")) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == ["python -m ranlib train: error: RuntimeError: the disk went away",
                                "(run it again with --debug for the traceback)"]
    with pytest.raises(RuntimeError, match="the disk went away"):
        main([*train_flags(tiny_data, tmp_path / "r"), "--debug"])


@pytest.mark.parametrize("flags, dilation", [
    ([], 0),  # the embedded data's 64-px crops: a 1x1 head
    (["--dataset", "voc"], 12),  # VOC: DeepLab-LargeFOV's 12
    (["--dataset", "voc", "--head-dilation", "3"], 3),
    (["--head-dilation", "12"], 12),
])
def test_head_dilation_default_follows_the_dataset(flags, dilation):
    from ranlib.cli import build_parser, config_from_args

    config = config_from_args(build_parser().parse_args(["train", *flags]))
    assert config.head_dilation == config.model_config.head_dilation == dilation


def test_every_trainconfig_field_has_its_train_flag_except_the_declared_ones():
    """``engine.wording.flag_of`` and ``NO_FLAG`` describe the parser: the retrain command (train_command_line) is
    built from them without the CLI."""
    from dataclasses import fields

    from ranlib.cli import build_parser
    from ranlib.engine.config import TrainConfig
    from ranlib.engine.wording import NO_FLAG, flag_of

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    dest_of = {flag: action.dest for action in train._actions for flag in action.option_strings}
    for field in fields(TrainConfig):
        if field.name in NO_FLAG:
            assert all(dest != field.name for dest in dest_of.values()), field.name
        else:
            assert dest_of.get(flag_of(field.name)) == field.name, (field.name, flag_of(field.name))


def test_threads_flag_sets_torch_threads_for_train_and_evaluate(tiny_data, tmp_path, capsys, monkeypatch):
    """``--threads N`` reaches torch before any work; without it torch keeps its own default."""
    from ranlib.cli import build_parser

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    assert main(train_flags(tiny_data, tmp_path / "run", "--threads", "1")) == 0
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--device", "cpu", "--threads", "3"]) == 0
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--device", "cpu"]) == 0
    assert seen == [1, 3]
    for command in ("train", "evaluate", "benchmark"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert "--threads THREADS" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--threads", "0"])
    assert info.value.code == 2 and "0 is not allowed; it must be a whole number >= 1" in capsys.readouterr().err
