"""The ``python -m ranlib benchmark`` command's parser; torch-free, so ``benchmark --help`` answers at once.

The command itself (``ranlib.bench.benchmark.run``) loads torch and the models only when it runs, as the
other commands of ``ranlib.cli`` do.
"""

from __future__ import annotations

import argparse
import os

from ranlib.bench.config import MODELS, PRECISIONS
from ranlib.threads import add_threads_flag, set_threads

HELP = "training/inference images/s, peak memory, MFU and data-pipeline rates"
DESCRIPTION = ("Training and inference images/s, peak memory and MFU of RAN, its baseline and torchvision's "
               "DeepLabv3, all three on --backbone; CPU loader against the GPU data path. The first value of each "
               "list is the reference setting; every other value is run as a single change from it (--full: every "
               "combination). Prints markdown tables and writes JSON.")


def on_off(value: str) -> bool:
    if value not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"expected on or off, got {value!r}")
    return value == "on"


def add_parser(subparsers) -> None:
    """Register ``python -m ranlib benchmark``."""
    p = subparsers.add_parser("benchmark", help=HELP, description=DESCRIPTION)
    p.add_argument("--quick", action="store_true",
                   help="CPU smoke test: resnet18, crop 64, batch 2, fp32, 2 repeats, no compile, tiny data")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--backbone", default="resnet101",
                   help="every model's backbone (default resnet101; --quick: resnet18)")
    p.add_argument("--head", default="largefov", help="largefov or aspp")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--crops", nargs="+", type=int, default=[321, 513])
    p.add_argument("--precisions", nargs="+", default=["bf16", "fp32", "fp16"], choices=PRECISIONS)
    p.add_argument("--channels-last", nargs="+", type=on_off, default=[True, False], metavar="on|off")
    p.add_argument("--compile", nargs="+", type=on_off, default=[False, True], metavar="on|off")
    p.add_argument("--full", action="store_true", help="run every combination instead of single changes")
    p.add_argument("--flops-only", action="store_true",
                   help="only count training FLOPs per step on the meta device (seconds, any machine)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing (compile happens here)")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    p.add_argument("--iters", type=int, default=10, help="steps per timed repeat")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="peak TFLOPS for MFU (default: the datasheet table for the detected GPU)")
    p.add_argument("--no-inference", action="store_true")
    p.add_argument("--no-data", action="store_true", help="skip the data-pipeline comparison")
    p.add_argument("--data-root", default=None,
                   help="VOC-layout folder for the data benchmark (default: synthetic 500x375 JPEGs in a temp dir)")
    p.add_argument("--data-images", type=int, default=200, help="synthetic JPEGs to write")
    p.add_argument("--workers", type=int, default=os.cpu_count(), help="CPU loader workers")
    p.add_argument("--data-batches", type=int, default=20, help="timed batches per data measurement")
    p.add_argument("--json", default="runs/benchmark.json", help="where to write the results")
    add_threads_flag(p)
    p.set_defaults(func=benchmark_command)


def benchmark_command(args) -> int:
    set_threads(args.threads)
    from ranlib.bench.benchmark import run

    return run(args)
