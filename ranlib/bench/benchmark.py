"""``python -m ranlib benchmark``: training/inference images/s, peak memory, MFU and data-pipeline rates.

It compares RAN against its own ``baseline`` variant and against torchvision's DeepLabv3 on the same backbone
(``deeplabv3_resnet101`` at the default ResNet-101), under the same batch, crop and precision; crops, precisions
(fp32 / tf32 / bf16 / fp16), channels_last and torch.compile on and off. By default every model runs at a reference
setting (the first value of each axis) and at each single-axis change from it; ``--full`` runs the whole product.
The measurements live in ``ranlib.bench.throughput`` (model side) and ``ranlib.bench.data`` (CPU loader against
``ranlib.bench.gpu_loader``); this module picks the runs, pairs them into ratios, prints markdown tables and writes
JSON. The command's parser is ``ranlib.bench.cli`` (torch-free); its ``func`` calls ``run`` here.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ranlib.bench.config import RunConfig
from ranlib.bench.data import measure_data, write_voc_jpegs
from ranlib.bench.throughput import count_train_flops, measure_inference, measure_training
from ranlib.precision import resolve_device
from ranlib.progress import tqdm


def run_grid(reference: RunConfig, axes: dict[str, list], full: bool = False) -> list[RunConfig]:
    """Configurations to run: for every model, the reference and each single-axis change (or the product).

    ``axes`` maps a ``RunConfig`` field (``crop``, ``precision``, …) to its values; ``axes["model"]`` lists
    the models. ``full=True`` gives every combination instead.
    """
    axes = {name: list(values) for name, values in axes.items()}
    if full:
        configs = [replace(reference, **dict(zip(axes, combo, strict=True)))
                   for combo in itertools.product(*axes.values())]
    else:
        configs = []
        for model in axes.get("model", [reference.model]):
            base = replace(reference, model=model)
            configs.append(base)
            for name, values in axes.items():
                configs += [replace(base, **{name: v}) for v in values
                            if name != "model" and v != getattr(base, name)]
    # DeepLabv3 runs on RAN's backbone with its own head (ASPP): say so in its rows.
    configs = [replace(c, head="deeplabv3") if c.model == "deeplabv3" else c for c in configs]
    return list(dict.fromkeys(configs))  # drop duplicates, keep order


def step_ratios(rows: list[dict]) -> list[dict]:
    """RAN's step time and FLOPs over baseline's and deeplabv3's on the same backbone at the same
    crop/batch/precision/layout: like for like, or no ratio.

    Rows without ``step_ms`` (``--flops-only``) give only the FLOP ratio; failed (out of memory) runs none.
    """
    setting = ("backbone", "crop", "batch_size", "precision", "channels_last", "compile")
    rows = [r for r in rows if "train_tflop_per_step" in r]
    ran = {tuple(r[k] for k in setting): r for r in rows if r["model"] == "ran"}
    out = []
    for row in rows:
        other = ran.get(tuple(row[k] for k in setting))
        if row["model"] != "ran" and other is not None:
            timed = "step_ms" in row and "step_ms" in other
            out.append({"ran_vs": row["model"], **{k: row[k] for k in setting},
                        "step_time_ratio": other["step_ms"] / row["step_ms"] if timed else None,
                        "flop_ratio": other["train_tflop_per_step"] / row["train_tflop_per_step"]})
    return out


# The performance targets, all at the reference setting (by default RAN-ResNet101-LargeFOV, 321, bf16,
# channels_last): (what, with {b} for the backbone every model shares; key in check_targets' measurements;
# comparison; threshold). Set for a GPU at ResNet-101, where RAN's training FLOPs are 0.75x DeepLabv3's.
TARGETS = (("MFU of RAN-{b}", "mfu", ">=", 0.40),
           ("RAN-{b} / DeepLabv3-{b} step time", "deeplabv3", "<=", 0.75),
           ("RAN-{b} / baseline-{b} step time", "baseline", "<=", 1.03),
           ("training fed by gpu_loader / synthetic tensors", "fed", ">=", 0.90))


def check_targets(results: dict, reference: RunConfig) -> list[dict]:
    """One row per ``TARGETS`` entry: the measured value at the reference setting (every model on the reference's
    backbone) and whether it is met."""
    setting = {k: v for k, v in asdict(reference).items() if k not in ("model", "head")}

    def at_reference(row):
        return all(row.get(k) == v for k, v in setting.items())
    ran = next((r for r in results["train"] if r["model"] == "ran" and at_reference(r)), {})
    measured = {r["ran_vs"]: r["step_time_ratio"] for r in results["ratios"] if at_reference(r)}
    measured["mfu"] = ran.get("mfu")
    measured["fed"] = next((r["fraction_of_synthetic"] for r in results["data"]
                            if r["pipeline"].startswith("gpu_loader") and r["with_training"]), None)
    rows = []
    for name, key, op, threshold in TARGETS:
        value = measured.get(key)
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        rows.append({"target": f"{name.format(b=reference.backbone)} {op} {threshold}", "measured": value,
                     "met": met})
    return rows


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` (dicts) with the given columns; floats to 3 significant digits."""
    def cell(v):
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.3g}"
        return "-" if v is None else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def measure_models(configs: list[RunConfig], device: torch.device, args) -> tuple[list[dict], list[dict]]:
    """The training rows and the inference rows of every configuration (FLOPs alone with ``--flops-only``; an
    out-of-memory run gives a row with its ``error``)."""
    timing = {"warmup": args.warmup, "repeats": args.repeats, "iters": args.iters}
    train, inference = [], []
    for config in tqdm(configs, desc="benchmark"):
        if args.flops_only:
            train.append({**asdict(config), "train_tflop_per_step": count_train_flops(config) / 1e12})
            continue
        for rows, measure, kwargs in ((train, measure_training, {"peak": args.peak_tflops}),
                                      (inference, measure_inference, {})):
            if rows is inference and args.no_inference:
                continue
            try:
                rows.append(measure(config, device, **timing, **kwargs))
            except torch.OutOfMemoryError:
                rows.append({**asdict(config), "error": "out of memory"})
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return train, inference


def print_results(results: dict, reference: RunConfig) -> None:
    """The command's markdown tables: training, RAN's ratios, inference, the data pipelines and the targets."""
    threads = results["threads"]
    print(f"\ndevice: {results['device']}, torch {torch.__version__}, {threads} CPU thread{'s' * (threads != 1)}\n")
    setting = ["model", "backbone", "crop", "batch_size", "precision", "channels_last", "compile"]
    print(format_table(results["train"], setting + ["step_ms", "images_per_s", "peak_memory_gib",
                                                    "train_tflop_per_step", "mfu", "error"]))
    print()
    print(format_table(results["ratios"], ["ran_vs", "backbone", "crop", "precision", "channels_last", "compile",
                                           "step_time_ratio", "flop_ratio"]))
    if results["inference"]:
        print()
        print(format_table(results["inference"], setting + ["batch_ms", "images_per_s"]))
    if results["data"]:
        print()
        print(format_table(results["data"], ["pipeline", "with_training", "images_per_s", "fraction_of_synthetic"]))
    r = reference
    print(f"\ntargets (set for a GPU) at {r.model}-{r.backbone}-{r.head}, crop {r.crop}, batch {r.batch_size}, "
          f"{r.precision}, channels_last {r.channels_last}, compile {r.compile}:")
    print(format_table(results["targets"], ["target", "measured", "met"]))


def run(args) -> int:
    """The ``benchmark`` command: measure, print tables, write JSON."""
    if args.quick:
        args.backbone, args.batch_size, args.crops, args.precisions = "resnet18", 2, [64], ["fp32"]
        args.channels_last, args.compile, args.warmup, args.repeats, args.iters = [False], [False], 1, 2, 2
        args.data_images, args.data_batches, args.workers = 8, 3, 1
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    reference = RunConfig(args.models[0], args.backbone, args.head, args.crops[0], args.batch_size,
                          args.precisions[0], args.channels_last[0], args.compile[0])
    axes = {"model": args.models, "crop": args.crops, "precision": args.precisions,
            "channels_last": args.channels_last, "compile": args.compile}
    train, inference = measure_models(run_grid(reference, axes, args.full), device, args)
    results = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
               "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
               "settings": vars(args) | {"func": None},
               "train": train, "inference": inference, "ratios": step_ratios(train), "data": []}
    if not (args.no_data or args.flops_only):
        with tempfile.TemporaryDirectory() as tmp:
            root = args.data_root or write_voc_jpegs(tmp, args.data_images)
            synthetic = next((r.get("images_per_s") for r in train  # the reference run's rate
                              if all(r[k] == v for k, v in asdict(reference).items())), None)
            results["data"] = measure_data(root, reference, device, args.workers, args.data_batches, synthetic)
    results["reference"] = asdict(reference)
    results["targets"] = check_targets(results, reference)
    print_results(results, reference)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {path}")
    return 0
