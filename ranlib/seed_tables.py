"""Comparing runs over seeds: the sweeps and tables of ``scripts/ablation.py``, ``scripts/measure_pretrained.py``
and ``scripts/measure_head_fov.py``.

A comparison in this course is the same recipe on several seeds, per arm: ``sweep`` trains (or reads) the main job
with each arm's changes on each seed and reads its scores, ``seed_table`` gives mean ± sample sd with each seed's
value, ``paired_interval`` the mean of paired differences (same seed, two arms) with its 95 % t interval,
``evaluate_run`` scores a finished run on a split, and ``instruments`` what the fusion does in one finished run
(``instruments_table`` lays them out).
"""

from __future__ import annotations

import csv
import os
import statistics
import time
from pathlib import Path
from typing import NamedTuple

import torch
from scipy import stats

from ranlib.data import make_loader, val_transforms, voc
from ranlib.engine.checkpoint import final_path, load_checkpoint
from ranlib.engine.train import TrainConfig, fit
from ranlib.evaluate import evaluate, read_metrics, read_scores
from ranlib.results_doc import cpu_model

# (key, label) of the scores compared: ``ranlib.evaluate.read_scores`` gives them in percent
COLUMNS = (("miou", "mIoU"), ("boundary", "boundary-band mIoU (4 px)"), ("mixed", "mixed-boundary-band mIoU (4 px)"))


class SweepRun(NamedTuple):
    """One run of ``sweep``: its arm, seed and configuration, its ``read_scores`` (mIoU, boundary and mixed, in
    percent at 4 px; median training images/s) and the seconds ``fit`` took (None: it had finished before)."""

    arm: str
    seed: int
    config: TrainConfig
    scores: dict[str, float]
    wall_s: float | None


def sweep(arms: dict[str, dict], seeds: list[int], runs: Path, train: bool = True) -> list[SweepRun]:
    """The main job (``TrainConfig()``) with each arm's fields changed, on each seed, in ``runs/ARM-seedSEED``:
    trained by ``fit`` unless it finished before (its metrics.json is there), then read. Each training prints its
    wall time and the machine's load. ``train=False`` only reads, leaving out (with a line) the unfinished runs."""
    done = []
    for arm, fields in arms.items():
        for seed in seeds:
            config = TrainConfig(**fields, seed=seed, run_dir=str(runs / f"{arm}-seed{seed}"))
            directory, wall = Path(config.run_dir), None
            if not (directory / "metrics.json").exists():
                if not train:
                    print(f"{arm} seed {seed}: no finished run in {directory}, left out")
                    continue
                start = time.perf_counter()
                fit(config)
                wall = time.perf_counter() - start
                print(f"{arm} seed {seed}: {wall:.0f} s wall ({cpu_and_load()})", flush=True)
            done.append(SweepRun(arm, seed, config, read_scores(directory), wall))
    return done


def cpu_and_load() -> str:
    """CPU model, cores and the 1-minute load average, to print beside every timing."""
    return f"{cpu_model()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}"


def evaluate_run(directory: Path, split: str | None = None, branch: str = "fused") -> dict:
    """``evaluate``'s metrics (bands of 4 px) of a finished run's final weights on ``split`` (default: the run's
    validation split), on the CPU."""
    model, config, _ = load_checkpoint(final_path(directory))
    loader = make_loader(voc(config.data_root, split or config.val_split, val_transforms()), config.eval_batch_size,
                         shuffle=False, num_workers=0)
    return evaluate(model, loader, model.num_classes, torch.device("cpu"), band_widths=(4,), branch=branch)


def paired_interval(differences: list[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95 % t interval, ``(mean, low, high)``; nan bounds for one pair."""
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / len(differences) ** 0.5
    return mean, mean - half, mean + half


def mean_sd(values: list[float]) -> str:
    """'mean ± sd' (sample sd), or the one value."""
    return f"{statistics.mean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def seed_table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """A Markdown table: one row per arm, each column 'mean ± sd (seed values)'."""
    lines = ["| arm | " + " | ".join(label for _, label in COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for arm, by_seed in results.items():
        cells = [f"{mean_sd([by_seed[s][k] for s in sorted(by_seed)])} "
                 f"({' / '.join(f'{by_seed[s][k]:.1f}' for s in sorted(by_seed))})" for k, _ in COLUMNS]
        lines.append(f"| `{arm}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def instruments(directory: Path) -> dict[str, float]:
    """What the fusion does in one finished run with a reverse branch, in percent (validation split): the
    original branch alone against the fused output, the share of labelled pixels the fusion changes (all, and in
    the 4-px mixed-boundary bands), fixed − broken, and the attention at the last evaluation (log.csv)."""
    original = evaluate_run(directory, branch="original")
    metrics = read_metrics(directory)
    changes = metrics["fusion_changes"]
    with open(directory / "log.csv", newline="") as f:
        last = [row for row in csv.DictReader(f) if row.get("val_miou")][-1]
    attention = {key: float(last[key]) if last.get(key) else float("nan")
                 for key in ("attn_open_other_mixed", "attn_open_other_rest", "attn_original_mean")}
    return {"original_miou": 100 * original["miou"], "fused_miou": 100 * metrics["miou"],
            "original_mixed": 100 * original["mixed_miou"][4], "fused_mixed": 100 * metrics["mixed_miou"][4],
            "changed": 100 * changes["all"]["changed"] / changes["all"]["pixels"],
            "changed_mixed": 100 * changes["mixed_boundary"]["changed"] / changes["mixed_boundary"]["pixels"],
            "net": 100 * (changes["all"]["fixed"] - changes["all"]["broken"]) / changes["all"]["pixels"],
            "open_mixed": 100 * attention["attn_open_other_mixed"],
            "open_rest": 100 * attention["attn_open_other_rest"],
            "original_mean": attention["attn_original_mean"]}


def instruments_table(rows: list[tuple[str, int, dict[str, float]]]) -> str:
    """A Markdown table of ``instruments`` per (arm, seed)."""
    lines = ["| arm | seed | mIoU original / fused | mixed mIoU original / fused | pixels changed: all / mixed "
             "band | fixed − broken (all pixels) | attention open, other classes: mixed / elsewhere | mean "
             "original score |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    return "\n".join(lines + [instruments_row(arm, seed, r) for arm, seed, r in rows])


def instruments_row(arm: str, seed: int, r: dict[str, float]) -> str:
    """One run's row of ``instruments_table``; a run without attention (subtract) gets a dash there."""
    no_attention = r["open_mixed"] != r["open_mixed"]  # nan
    opening = "— (no attention)" if no_attention else f"{r['open_mixed']:.1f}% / {r['open_rest']:.1f}%"
    return (f"| `{arm}` | {seed} | {r['original_miou']:.1f} / {r['fused_miou']:.1f} | {r['original_mixed']:.1f} / "
            f"{r['fused_mixed']:.1f} | {r['changed']:.2f}% / {r['changed_mixed']:.2f}% | {r['net']:+.2f}% | "
            f"{opening} | {r['original_mean']:.1f} |")
