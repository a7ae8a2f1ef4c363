"""The course's ablation as a fair comparison: each variant at its own learning rate, chosen on val, reported on test.

    python scripts/ablation.py                         # the sweep: trains what is missing, then prints the tables
    python scripts/ablation.py --no-train              # the tables from finished runs only
    python scripts/ablation.py --write-results docs/results.md   # also writes them between the ablation markers
    python scripts/ablation.py --no-train --instruments   # then what the fusion does in the tuned ran/subtract runs
    python scripts/ablation.py --no-train --plot docs/gallery/ablation_step_sizes.png   # each arm's step over training

RAN trains with three summed losses, the baseline with one, and all of RAN's terms reach the shared backbone: under
one learning rate RAN's backbone takes a larger step. So the sweep tunes each variant's rate and adds two controls
for the step size. Three steps, each run being the main job (``python -m ranlib train``: ResNet-18 from random
weights, 1000 iterations on the embedded data) with ``--threads`` torch threads, ``--jobs`` runs at a time, in
``RUNS/ARM-lrLR-seedS``:

1. the grid: baseline, subtract and RAN at each learning rate of ``--lrs`` (heads always at 10x), on the
   ``--tune-seeds``;
2. the choice: each variant's rate is the one with the best mean *validation* mIoU over the tuning seeds;
3. the comparison, on every seed of ``--seeds``: each variant at its chosen rate, and two controls:
   - ``baseline-step``: the baseline at its chosen rate with its backbone's step multiplied by ``--step-factor``
     (the backbone's lr times k, the heads' lr unchanged: ``--lr k*lr --head-lr-mult 10/k``);
   - ``ran-mean``: RAN at its chosen rate with its three losses averaged, not summed (``--loss-weights`` 1/3 each).

Every run of step 3 is then scored on the ``test`` split, which no choice saw (``test_metrics.json`` in the run):
mIoU, boundary-band and mixed-boundary-band mIoU at 4 px, mean ± sample sd over the seeds, and each arm's paired
difference to the tuned baseline on the same seeds with a 95 % t interval. The step each arm's backbone took is
read from the runs' ``log.csv`` (``grad_f_total``, ``backbone_update``: ``ranlib.step_size``). A finished run is
never trained again; a cut-off one resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ranlib import load_checkpoint
from ranlib.data import make_loader, val_transforms, voc
from ranlib.engine.checkpoint import final_path
from ranlib.evaluate import evaluate, percent_scores
from ranlib.progress import tqdm
from ranlib.results_doc import header, write_section
from ranlib.seed_tables import COLUMNS, instruments, instruments_table, mean_sd, paired_interval

VARIANTS = ("baseline", "subtract", "ran")
CONTROLS = ("baseline-step", "ran-mean")  # the baseline with RAN's backbone step; RAN with the baseline's scale
HEAD_LR_MULT = 10.0


@dataclass(frozen=True)
class Run:
    """One training run of the sweep: an arm (a variant or a control), a backbone learning rate, a seed."""

    arm: str
    lr: float
    seed: int
    step_factor: float = 3.0

    def directory(self, runs: Path) -> Path:
        return runs / f"{self.arm}-lr{self.lr:g}-seed{self.seed}"

    @property
    def backbone_lr(self) -> float:
        """The backbone's learning rate: ``lr``, times ``step_factor`` for baseline-step."""
        return self.lr * self.step_factor if self.arm == "baseline-step" else self.lr

    def flags(self) -> list[str]:
        """The ``python -m ranlib train`` flags of this run (the run directory and extra flags come on top)."""
        variant = {"baseline-step": "baseline", "ran-mean": "ran"}.get(self.arm, self.arm)
        flags = ["--variant", variant, "--seed", str(self.seed), "--lr", f"{self.backbone_lr:g}"]
        if self.arm == "baseline-step":  # the heads keep lr x 10
            flags += ["--head-lr-mult", f"{HEAD_LR_MULT / self.step_factor:g}"]
        if self.arm == "ran-mean":
            flags += ["--loss-weights", *[f"{1 / 3:.10g}"] * 3]
        return flags


def train(runs_to_do: list[Run], runs: Path, jobs: int, threads: int, extra: list[str], step: str) -> None:
    """Train the runs that have not finished, ``jobs`` at a time, each a ``python -m ranlib train`` process with
    ``threads`` torch threads whose output goes to ``train.out`` in its run directory."""
    todo = [r for r in runs_to_do if not final_path(r.directory(runs)).exists()]
    if not todo:
        return
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def one(run: Run) -> None:
        directory = run.directory(runs)
        directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "ranlib", "train", *run.flags(), "--run-dir", str(directory), *extra]
        with open(directory / "train.out", "a") as out:
            out.write("$ " + shlex.join(command) + "\n")
            out.flush()
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode
        if code:
            raise SystemExit(f"{' '.join(command)} failed (exit {code}); its output is in {directory / 'train.out'}")

    with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(todo), desc=step, unit="run") as bar:
        for _ in pool.map(one, todo):
            bar.update()


def val_miou(directory: Path) -> float:
    """Validation mIoU (percent) of a finished run, from its metrics.json."""
    path = directory / "metrics.json"
    if not path.exists():
        raise SystemExit(f"{path} is missing: train the run first (drop --no-train)")
    return 100 * json.loads(path.read_text())["miou"]


def test_scores(directory: Path, split: str = "test") -> dict[str, float]:
    """``percent_scores`` (mIoU and the band mIoUs at 4 px) on the ``split`` the tuning never saw: the final weights
    evaluated once, then cached in ``test_metrics.json``."""
    cache = directory / f"{split}_metrics.json"
    if cache.exists():
        return json.loads(cache.read_text())
    model, config, _ = load_checkpoint(final_path(directory))
    loader = make_loader(voc(config.data_root, split, val_transforms()), config.eval_batch_size, shuffle=False,
                         num_workers=0)
    m = evaluate(model, loader, model.num_classes, torch.device("cpu"), band_widths=(4,))
    result = percent_scores(m, 4)
    cache.write_text(json.dumps(result))
    return result


def step_size(directory: Path) -> dict[str, float]:
    """The mean over log steps of ``grad_f_total`` (gradient norm into the backbone's features) and
    ``backbone_update`` (norm of the backbone's change per step), from a run's log.csv."""
    with open(directory / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("backbone_update")]
    mean = lambda key: statistics.mean(float(r[key]) for r in rows) if rows else float("nan")  # noqa: E731
    return {"grad": mean("grad_f_total"), "update": mean("backbone_update")}


def plot_step_sizes(directories: dict[str, Path], path: Path) -> Path:
    """Two panels over training, one line per arm (one seed each): the gradient norm the summed loss sends into
    the backbone's features, and the norm of the backbone's update per step (log.csv's ``grad_f_total`` and
    ``backbone_update``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    axes = fig.subplots(1, 2)
    styles = {"baseline": ("tab:blue", "-"), "subtract": ("tab:green", "-"), "ran": ("tab:red", "-"),
              "baseline-step": ("tab:blue", "--"), "ran-mean": ("tab:red", "--")}
    for arm, directory in directories.items():
        with open(directory / "log.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r.get("backbone_update")]
        iterations = [int(r["iteration"]) for r in rows]
        colour, line = styles.get(arm, ("black", ":"))
        for ax, key in zip(axes, ("grad_f_total", "backbone_update"), strict=True):
            ax.plot(iterations, [float(r[key]) for r in rows], color=colour, linestyle=line, label=arm, lw=1.2)
    axes[0].set_title("gradient the summed loss sends into f: ‖∂L/∂f‖")
    axes[1].set_title("the backbone's step: ‖Δθ_backbone‖ per iteration")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[1].legend(title="arm (dashed: a control)", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def tuning_table(grid: dict[str, dict[float, float]], chosen: dict[str, float]) -> str:
    """Validation mIoU of each variant at each learning rate (mean over the tuning seeds), the choice in bold."""
    lrs = sorted({lr for by_lr in grid.values() for lr in by_lr})
    lines = ["| variant | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | chosen lr |",
             "|---|" + "---:|" * (len(lrs) + 1)]
    for variant, by_lr in grid.items():
        cells = [(f"**{by_lr[lr]:.1f}**" if lr == chosen[variant] else f"{by_lr[lr]:.1f}") for lr in lrs]
        lines.append(f"| `{variant}` | " + " | ".join(cells) + f" | {chosen[variant]:g} |")
    return "\n".join(lines)


def comparison_table(arms: dict[str, Run], results: dict[str, dict[int, dict[str, float]]],
                     steps: dict[str, list[dict[str, float]]]) -> str:
    """Test-split scores per arm (mean ± sd over seeds), the paired difference to the tuned baseline with its 95 %
    interval, and the backbone's mean step relative to the tuned baseline's."""
    base = results["baseline"]
    base_update = statistics.mean(s["update"] for s in steps["baseline"])
    lines = ["| arm | backbone lr / heads' lr | test mIoU | boundary (4 px) | mixed (4 px) | Δ mIoU vs baseline "
             "[95% CI] | Δ mixed vs baseline [95% CI] | backbone step / baseline's |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for arm, by_seed in results.items():
        run = arms[arm]
        lr, heads = run.backbone_lr, run.lr * HEAD_LR_MULT
        seeds = sorted(by_seed)
        cells = [mean_sd([by_seed[s][k] for s in seeds]) for k, _ in COLUMNS]
        for key in ("miou", "mixed"):
            if arm == "baseline":
                cells.append("—")
                continue
            mean, low, high = paired_interval([by_seed[s][key] - base[s][key] for s in seeds if s in base])
            cells.append(f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]")
        ratio = statistics.mean(s["update"] for s in steps[arm]) / base_update
        lines.append(f"| `{arm}` | {lr:g} / {heads:g} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the comparison (step 3)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0],
                        help="seeds on which the learning-rate grid runs (step 1); default: 0")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3],
                        help="the backbone learning rates of the grid; the heads train at 10x each")
    parser.add_argument("--step-factor", type=float, default=3.0,
                        help="baseline-step's backbone lr / the baseline's (RAN sums three loss terms)")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--train-args", default="",
                        help='extra flags for every run, e.g. "--iterations 100" (a smaller sweep; keep them the '
                             "same for every call on one --runs folder)")
    parser.add_argument("--no-train", action="store_true", help="only read finished runs")
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the tables between FILE's <!-- ablation:begin/end --> markers")
    parser.add_argument("--instruments", action="store_true", help="what the fusion does in the ran/subtract runs")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also draw each arm's step size over training (first seed) into PNG")
    args = parser.parse_args(argv)
    extra = shlex.split(args.train_args)
    torch.set_num_threads(args.threads)

    # 1. the grid on the tuning seeds; 2. each variant's rate by mean validation mIoU
    grid_runs = [Run(v, lr, s, args.step_factor) for v in VARIANTS for lr in args.lrs for s in args.tune_seeds]
    if not args.no_train:
        train(grid_runs, args.runs, args.jobs, args.threads, extra, "1/3 learning-rate grid")
    grid = {v: {lr: statistics.mean(val_miou(Run(v, lr, s).directory(args.runs)) for s in args.tune_seeds)
                for lr in args.lrs} for v in VARIANTS}
    chosen = {v: max(args.lrs, key=lambda lr, v=v: grid[v][lr]) for v in VARIANTS}
    arms = {v: Run(v, chosen[v], 0, args.step_factor) for v in VARIANTS}
    arms |= {"baseline-step": Run("baseline-step", chosen["baseline"], 0, args.step_factor),
             "ran-mean": Run("ran-mean", chosen["ran"], 0, args.step_factor)}

    # 3. every arm on every seed, scored on the test split
    compare_runs = [Run(a.arm, a.lr, s, args.step_factor) for a in arms.values() for s in args.seeds]
    if not args.no_train:
        train(compare_runs, args.runs, args.jobs, args.threads, extra, "2/3 seeds and controls")
    results: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in arms}
    steps: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for run in tqdm(compare_runs, desc="3/3 test split", unit="run"):
        directory = run.directory(args.runs)
        val_miou(directory)  # a clear message when the run is missing
        results[run.arm][run.seed] = test_scores(directory)
        steps[run.arm].append(step_size(directory))

    text = (f"Learning rate chosen on `val` (mean validation mIoU over seed{'s' * (len(args.tune_seeds) > 1)} "
            f"{' '.join(map(str, args.tune_seeds))}):\n\n{tuning_table(grid, chosen)}\n\n"
            f"Reported on `test` (seeds {' '.join(map(str, args.seeds))}: mean ± sample sd; Δ: paired difference "
            "to the tuned baseline on the same seeds, 95% t interval; backbone step: mean norm of the backbone's "
            "update per logged step, relative to the tuned baseline's):\n\n"
            f"{comparison_table(arms, results, steps)}")
    print(text)
    if args.plot:
        first = {arm: Run(arm, arms[arm].lr, min(args.seeds)).directory(args.runs) for arm in arms}
        print(f"step sizes over training: {plot_step_sizes(first, args.plot)}")
    if args.instruments:
        rows = [(arm, s, instruments(Run(arm, arms[arm].lr, s).directory(args.runs)))
                for arm in ("subtract", "ran") for s in args.seeds]
        fusion = ("What the fusion does in the tuned subtract and RAN runs (validation; the attention at the last "
                  f"evaluation, its first 4 batches):\n\n{instruments_table(rows)}")
        print("\n" + fusion)
        text += "\n\n" + fusion
    if args.write_results:
        given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-train"]  # finished runs are kept
        write_section(args.write_results, "ablation", header("ablation.py", given, args.threads, args.jobs) + text,
                      title="The ablation, tuned")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
