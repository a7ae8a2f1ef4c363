"""The command line's parsers and commands: ``train``, ``evaluate``, ``download``, ``check-data`` (and ``benchmark``).

This module imports neither torch nor the rest of ranlib, so ``--help`` and a rejected flag answer at once; each
command imports what it needs when it runs. ``ranlib.__main__.main`` turns errors into exit statuses:
0 success, 1 a check found problems (or the command failed), 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields, replace
from pathlib import Path

from ranlib.bench import cli as bench_cli
from ranlib.engine.config import (
    AMP_CHOICES,
    ATTENTIONS,
    BACKBONES,
    DATASETS,
    HEADS,
    MAX_CROP_SIZE,
    PRESETS,
    VARIANTS,
    ConfigError,
    TrainConfig,
)
from ranlib.engine.wording import flag_of
from ranlib.threads import add_threads_flag, positive_int, set_threads

DESCRIPTION = ("The Reverse Attention Network (Huang et al., BMVC 2017): train, evaluate, download and check data. "
               "Exit status: 0 success, 1 a check found problems, 2 bad input or usage. Errors are one or two lines "
               "on stderr; --debug shows the traceback.")


def bad_flag(error: ConfigError) -> str:
    """A ConfigError as argparse words it: the flag, the value and the allowed range."""
    value = " ".join(map(str, error.value)) if isinstance(error.value, tuple) else error.value
    return f"argument {flag_of(error.field)}: {value} is not allowed; it must be {error.allowed}"


# ------------------------------------------------------------------------------------------------------- train
def config_from_args(args) -> TrainConfig:
    """A TrainConfig from the CLI's flags: those given override the dataset's defaults (``TrainConfig.for_dataset``).
    The data root is stored as an absolute path, so that the run can be evaluated from any folder. Raises
    ConfigError for a bad value."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    given = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items()}
    config = TrainConfig.for_dataset(given.pop("dataset", TrainConfig.dataset), **given)
    return replace(config, data_root=str(Path(config.data_root).expanduser().resolve()))


def add_train(subparsers) -> None:
    """``python -m ranlib train``: no flags trains the README's main job on the embedded dataset."""
    p = subparsers.add_parser(
        "train", help="train RAN (default: embedded mixed-boundary data, ~3 min on 2 CPUs)",
        description="Train RAN, or resume the run in --run-dir. With no flags: the README's main job, RAN-ResNet-18 "
                    "from random weights on the embedded mixed-boundary dataset (about 3 minutes on 2 CPU cores). "
                    "Each flag given overrides one field of ranlib.TrainConfig; the defaults shown are its. "
                    "A run directory keeps its configuration: resuming with other values is refused unless "
                    "--allow-config-change is given, and a finished run is never changed.")
    p.add_argument("--run-dir", help="where logs and checkpoints go; rerun the same command to resume "
                   "(default: runs/<dataset>-<backbone>-<variant>-seed<seed>)")
    p.add_argument("--allow-config-change", action="store_true",
                   help="continue an unfinished run with values that differ from its config.json")
    add_config_flags(p)
    add_threads_flag(p)
    p.set_defaults(func=train_command)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """``train``'s flag of each TrainConfig field but the run directory, with the field's default (the fields in
    ``ranlib.engine.wording.NO_FLAG`` have none)."""
    defaults = TrainConfig()

    def option(flag: str, help: str | None = None, **kwargs) -> None:
        name = kwargs.get("dest", flag[2:].replace("-", "_"))
        shown = f"default: {getattr(defaults, name)}"
        if name in PRESETS["voc"]:
            shown += f"; with --dataset voc: {PRESETS['voc'][name]}"
        p.add_argument(flag, help=shown if help is None else f"{help} ({shown})", **kwargs)

    option("--iterations", type=int)
    option("--seed", type=int)
    option("--checkpoint-every", type=int)
    option("--eval-every", "0: evaluate only at the end", type=int)
    option("--variant", choices=VARIANTS)
    option("--backbone", choices=BACKBONES)
    option("--head", choices=HEADS)
    option("--head-dilation", "dilation of the heads' 3x3 convolution, 0 for a 1x1 head (the embedded data's "
           "64-px crops give 8x8 features); DeepLab-LargeFOV's is 12", type=int)
    option("--attention", "the reverse attention's form: sigmoid = sigmoid(-original) and normalized = "
           "sigmoid(1/(relu(original)+0.125)-4) are the paper's; centered = sigmoid(-(original - its mean over the "
           "classes at the pixel)) is ours, not the paper's, and ignores the offset the softmax ignores",
           choices=ATTENTIONS)
    p.add_argument("--weights-backbone", help='torchvision weights, e.g. "IMAGENET1K_V1" (default: none, random '
                   'weights)')
    option("--dataset", choices=DATASETS)
    option("--data-root", "VOC-layout root, stored in the run as an absolute path")
    option("--train-split", "e.g. train_aug for VOC + SBD")
    option("--val-split")
    option("--crop-size", f"pixels, 16 to {MAX_CROP_SIZE}", type=int)
    option("--scale-range", "random scale", type=float, nargs=2, metavar=("MIN", "MAX"))
    option("--batch-size", "global batch, split across processes", type=int)
    option("--lr", "the backbone's learning rate", type=float)
    option("--head-lr-mult", "heads' learning rate / backbone's (DeepLab: 10)", type=float)
    option("--loss-weights", "weights of the original, reverse and fused cross-entropy terms (1/3 each: their "
           "mean instead of their sum; the baseline has only the fused term)",
           type=float, nargs=3, metavar=("ORIGINAL", "REVERSE", "FUSED"))
    option("--grad-accum", "micro-batches per iteration", type=int)
    option("--amp", "auto: bf16 on GPUs from compute capability 8.0, fp16 below, off on CPU", choices=AMP_CHOICES)
    option("--device", "auto | cpu | cuda | cuda:N")
    p.add_argument("--workers", dest="num_workers", type=int, help="loader processes (default: from the CPU count)")
    option("--keep-checkpoints", "resumable checkpoints kept while the run goes on", type=int)
    option("--log-every", type=int)
    option("--eval-batch-size", type=int)
    option("--channels-last", action="store_true", default=None)
    option("--compile", action="store_true", default=None)
    option("--freeze-bn", action="store_true", default=None)
    option("--sync-bn", action="store_true", default=None)
    option("--deterministic", "deterministic kernels: the same machine and software give the same numbers, and a "
           "resumed run ends bit-identical; slower", action="store_true", default=None)


def train_command(args) -> int:
    set_threads(args.threads)
    config = config_from_args(args)  # a bad value stops here, before any work
    from ranlib.engine import distributed  # which torchrun process this is, should Ctrl-C come (ranlib.__main__)

    if config.dataset == "voc":  # a missing dataset too (the embedded one is generated by fit)
        from ranlib.data import voc

        voc(config.data_root, config.train_split)
        voc(config.data_root, config.val_split)
    from ranlib.engine.checkpoint import final_path
    from ranlib.engine.train import fit

    finished_before = final_path(Path(config.run_dir)).exists()
    run_dir = fit(config, allow_config_change=args.allow_config_change)
    if distributed.is_main():
        print(train_summary(run_dir, already_finished=finished_before))
    return 0


def train_summary(run_dir: Path, already_finished: bool = False) -> str:
    """The last lines of ``train``: the result, where the plots are, and how to evaluate and open TensorBoard."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    plots = sorted(p.name for p in run_dir.glob("*.png"))
    status = "already finished, nothing trained" if already_finished else "done"
    return "\n".join([
        f"{status}: {run_dir}  val mIoU {100 * metrics['miou']:.1f}  mixed-boundary mIoU (4 px) "
        f"{100 * metrics['mixed_miou']['4']:.1f}",
        f"plots:       {run_dir}/{{{','.join(plots)}}}",
        f"evaluate:    python -m ranlib evaluate --checkpoint {run_dir / 'final.pt'} [--tta]",
        f"TensorBoard: tensorboard --logdir {run_dir / 'tb'}"])


# ---------------------------------------------------------------------------------------------------- evaluate
def add_evaluate(subparsers) -> None:
    """``python -m ranlib evaluate --checkpoint …``: print the metric table of a trained model."""
    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint: mIoU, boundary and mixed-boundary mIoU",
                              description="Print the metric table of a trained model on a dataset split.")
    p.add_argument("--checkpoint", required=True,
                   help="a run's final.pt or checkpoints/iter_*.pt, or a run directory (its final.pt)")
    p.add_argument("--data-root", help="default: the run's own data root")
    p.add_argument("--split", default=None, help="default: the run's validation split")
    p.add_argument("--tta", action="store_true", help="multi-scale (0.5-1.75) + flip test-time augmentation")
    p.add_argument("--branch", default="fused", choices=("fused", "original", "reverse"),
                   help="the branch whose scores are evaluated (default: fused, the model's prediction)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="default: the run's eval batch size")
    add_threads_flag(p)
    p.set_defaults(func=evaluate_command)


def evaluate_command(args) -> int:
    set_threads(args.threads)
    from ranlib.engine.evaluation import run_evaluation

    return run_evaluation(args)


# ------------------------------------------------------------------------------------------ download, check-data
def add_data_commands(subparsers) -> None:
    """``download`` and ``check-data``."""
    dl = subparsers.add_parser("download", help="download PASCAL VOC 2012 or SBD into data/",
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dl.add_argument("dataset", choices=["voc", "sbd"], help="voc: VOC 2012 trainval (2 GB); sbd: SBD (1.4 GB)")
    dl.add_argument("--root", default="data", help="folder that receives VOCdevkit/ or benchmark_RELEASE/")
    dl.add_argument("--quiet", action="store_true", help="no progress bars")
    dl.set_defaults(func=download_command)

    check = subparsers.add_parser(
        "check-data", help="validate every image and mask of a dataset split",
        description="Read every image and mask of the splits and list each problem (exit 1) or summarise the "
                    "split (exit 0). --repair rewrites the damaged scenes of the embedded dataset.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    check.add_argument("--root", required=True, help="VOC-layout root, e.g. data/VOCdevkit/VOC2012")
    check.add_argument("--split", nargs="+", default=["train", "val"], help="split(s) to check")
    check.add_argument("--sbd-root", default=None, help="SBD's dataset folder, for train_aug")
    check.add_argument("--repair", action="store_true",
                       help="embedded dataset only: generate its damaged or missing scenes again")
    check.add_argument("--quiet", action="store_true", help="no progress bars")
    check.set_defaults(func=check_data_command)


def download_command(args) -> int:
    from ranlib.data.cli import run_download

    return run_download(args)


def check_data_command(args) -> int:
    from ranlib.data.checks import run_check_data

    return run_check_data(args)


# ------------------------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    """The whole command line; no parser here imports torch (each command imports what it runs)."""
    parser = argparse.ArgumentParser(prog="python -m ranlib", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    add_train(subparsers)
    add_evaluate(subparsers)
    bench_cli.add_parser(subparsers)
    add_data_commands(subparsers)
    return parser
