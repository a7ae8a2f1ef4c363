"""The course's ablation as a fair comparison: each variant at its own learning rate, chosen on val, reported on test.

    python scripts/ablation.py                         # the sweep: trains what is missing, then prints the tables
    python scripts/ablation.py --no-train              # the tables from finished runs only
    python scripts/ablation.py --write-results docs/results.md   # also writes them between the ablation markers
    python scripts/ablation.py --no-train --instruments   # then what the fusion does in the tuned ran/subtract runs
    python scripts/ablation.py --no-train --plot docs/gallery/ablation_step_sizes.png   # each arm's step over training

RAN trains with three summed losses, the baseline with one, and all of RAN's terms reach the shared backbone: under
one learning rate RAN's backbone takes a larger step. So the sweep tunes each variant's rate and adds controls
for the step size. Three steps, each run being the main job (``python -m ranlib train``: ResNet-18 from random
weights, 1000 iterations on the embedded data) with ``--threads`` torch threads, ``--jobs`` runs at a time, in
``RUNS/ARM-lrLR-seedS``:

1. the grid: baseline, subtract and RAN (and RAN with each other form of ``--attentions``) at each learning rate
   of ``--lrs`` (heads always at 10x), on the ``--tune-seeds``;
2. the choice: each variant's rate is the one with the best mean *validation* mIoU over the tuning seeds;
3. the comparison, on every seed of ``--seeds``: each variant at its chosen rate, and the ``--controls``:
   - ``baseline-step``: the baseline at its chosen rate with its backbone's step multiplied by k
     (the backbone's lr times k, the heads' lr unchanged: ``--lr k*lr --head-lr-mult 10/k``);
   - ``ran-mean``: RAN at its chosen rate with its three losses averaged, not summed (``--loss-weights`` 1/3 each):
     this shrinks the heads' step as well as the backbone's;
   - ``ran-step`` (the mirror of baseline-step, not run by default): RAN at its chosen rate with only its
     backbone's lr divided by k, the heads' lr unchanged (``--lr lr/k --head-lr-mult 10*k``).

k is ``--step-factor``: a number (default 3, the first sweep's), or ``measured``: the ratio of the backbone steps
that the table's last column reports, RAN's at its chosen rate over the baseline's at its chosen rate (mean norm of
the backbone's update per logged step in log.csv, over the tuning seeds' grid runs), rounded to 3 significant
digits. ``--step-bracket 0.7 1 1.4`` runs each step control at k times each multiplier (a grid bracketing k; the
arms are then named ``baseline-step x<k>``). A step control whose k is not 3 has ``-x<k>`` in its directory name.

Two regimes: the default is the main job, from scratch; ``--backbone efficientnet_lite0 --weights-backbone
IMAGENET1K`` runs the same sweep from the ImageNet-pretrained EfficientNet-Lite0 (the installed package's weights,
no network). Give each regime its own ``--runs`` folder: a finished run whose config.json names another backbone
stops the script. ``--attentions sigmoid normalized centered`` adds RAN with each form of
``ranlib.reverse_attention`` as arms of their own (``ran-normalized``, ``ran-centered``; ``ran`` is the paper's
sigmoid), each tuned on the grid like the variants; ``centered`` is ours, not the paper's.

Every run of step 3 is then scored on the ``test`` split, which no choice saw (``test_metrics.json`` in the run):
mIoU, boundary-band and mixed-boundary-band mIoU at 4 px, mean ± sample sd over the seeds, each arm's paired
difference to the tuned baseline on the same seeds with a 95 % t interval, and (when baseline-step runs) each arm's
paired difference to baseline-step. The step each arm's backbone took is read from the runs' ``log.csv``
(``grad_f_total``, ``backbone_update``: ``ranlib.step_size``). A finished run (one with its final checkpoint) is
never trained again; a cut-off one resumes, so a sweep can be stopped and the same command run again later.
``--write-results FILE --section NAME`` writes the tables between FILE's ``<!-- NAME:begin/end -->`` markers.

Cost, measured 2026-12-07 on an AMD EPYC (2 cores shared, load 4.5-8), one thread, CPU time: a main-job run (1000
iterations, 4 evaluations) is about 9.3 CPU-minutes from scratch and 10.3 with the pretrained EfficientNet-Lite0,
scoring one run on test about 0.4. The full sweep of one regime with ``--attentions sigmoid normalized centered
--controls baseline-step ran-mean ran-step`` (15 grid runs, 10 more seeds, 9 control runs, then test and
instruments) is about 5.6 CPU-hours from scratch and 6.1 pretrained, about 3 hours each on 2 free cores with
``--jobs 2``; ``--step-bracket 0.7 1 1.4`` adds about 2 CPU-hours per regime.
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
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ranlib.engine.checkpoint import final_path
from ranlib.evaluate import percent_scores, read_metrics
from ranlib.model_config import ATTENTIONS, BACKBONES
from ranlib.progress import tqdm
from ranlib.results_doc import header, write_section
from ranlib.seed_tables import COLUMNS, evaluate_run, instruments, instruments_table, mean_sd, paired_interval

VARIANTS = ("baseline", "subtract", "ran")
# the baseline with RAN's backbone step; RAN with its losses averaged; RAN with only its backbone's lr divided by k
CONTROLS = ("baseline-step", "ran-mean", "ran-step")
STEP_CONTROLS = ("baseline-step", "ran-step")  # the controls whose backbone lr moves by the step factor k
HEAD_LR_MULT = 10.0
FIRST_FACTOR = 3.0  # the first sweep's fixed factor: its runs keep directory names without -x<k>
# docs/results.md sections this script writes (``--section``): name -> title of a new section
SECTIONS = {"ablation": "The ablation, tuned",
            "attention-scratch": "When the attention acts: ResNet-18 from scratch",
            "attention-pretrained": "When the attention acts: ImageNet-pretrained EfficientNet-Lite0"}


def form_arm(form: str) -> str:
    """The arm of RAN with attention ``form``: ``ran`` for the paper's sigmoid (the default), else ``ran-FORM``."""
    return "ran" if form == "sigmoid" else f"ran-{form}"


@dataclass(frozen=True)
class Run:
    """One training run of the sweep: an arm (a variant or a control), a backbone learning rate, a seed."""

    arm: str  # a variant, ran-FORM (RAN with attention FORM), or a control of CONTROLS
    lr: float  # the arm's chosen (or grid) learning rate; the step controls move their backbone's from it
    seed: int
    step_factor: float = FIRST_FACTOR  # k of the step controls

    def directory(self, runs: Path) -> Path:
        factor = f"-x{self.step_factor:g}" if self.arm in STEP_CONTROLS and self.step_factor != FIRST_FACTOR else ""
        return runs / f"{self.arm}{factor}-lr{self.lr:g}-seed{self.seed}"

    @property
    def backbone_lr(self) -> float:
        """The backbone's learning rate: ``lr``, times ``step_factor`` for baseline-step, divided by it for
        ran-step."""
        return {"baseline-step": self.lr * self.step_factor, "ran-step": self.lr / self.step_factor}.get(self.arm,
                                                                                                        self.lr)

    def flags(self) -> list[str]:
        """The ``python -m ranlib train`` flags of this run (the run directory and extra flags come on top)."""
        variant = "baseline" if self.arm == "baseline" or self.arm == "baseline-step" else (
            "subtract" if self.arm == "subtract" else "ran")
        flags = ["--variant", variant, "--seed", str(self.seed), "--lr", f"{self.backbone_lr:g}"]
        if self.arm in STEP_CONTROLS:  # the heads keep lr x 10
            flags += ["--head-lr-mult", f"{HEAD_LR_MULT * self.lr / self.backbone_lr:g}"]
        if self.arm == "ran-mean":
            flags += ["--loss-weights", *[f"{1 / 3:.10g}"] * 3]
        if self.arm.startswith("ran-") and self.arm not in CONTROLS:  # ran-FORM
            flags += ["--attention", self.arm.removeprefix("ran-")]
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
    try:
        return 100 * read_metrics(directory)["miou"]
    except FileNotFoundError:
        raise SystemExit(f"{directory / 'metrics.json'} is missing: train the run first (drop --no-train)") from None


def test_scores(directory: Path, split: str = "test") -> dict[str, float]:
    """``percent_scores`` (mIoU and the band mIoUs at 4 px) on the ``split`` the tuning never saw: the final weights
    evaluated once, then cached in ``test_metrics.json``."""
    cache = directory / f"{split}_metrics.json"
    if cache.exists():
        return json.loads(cache.read_text())
    result = percent_scores(evaluate_run(directory, split), 4)
    cache.write_text(json.dumps(result))
    return result


def step_rows(directory: Path) -> list[dict[str, str]]:
    """The rows of a run's log.csv that measured the step (``grad_f_total``, the gradient norm into the backbone's
    features, and ``backbone_update``, the norm of the backbone's change per step: ``ranlib.step_size``)."""
    with open(directory / "log.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("backbone_update")]


def step_size(directory: Path) -> dict[str, float]:
    """The mean over log steps of ``grad_f_total`` and ``backbone_update`` (``step_rows``)."""
    rows = step_rows(directory)
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
              "ran-normalized": ("tab:orange", "-"), "ran-centered": ("tab:purple", "-"),
              "baseline-step": ("tab:blue", "--"), "ran-mean": ("tab:red", "--"), "ran-step": ("tab:red", ":")}
    for arm, directory in directories.items():
        rows = step_rows(directory)
        iterations = [int(r["iteration"]) for r in rows]
        colour, line = styles.get(arm.split(" ")[0], ("black", ":"))  # "baseline-step x2.1": baseline-step's
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


def paired_cells(by_seed: dict[int, dict[str, float]], reference: dict[int, dict[str, float]]) -> list[str]:
    """The paired difference to ``reference`` on the seeds both have, in mIoU and mixed-band mIoU, each as
    "mean [95% t interval]"."""
    cells = []
    for key in ("miou", "mixed"):
        mean, low, high = paired_interval([by_seed[s][key] - reference[s][key] for s in sorted(by_seed)
                                           if s in reference])
        cells.append(f"{mean:+.1f} [{low:+.1f}, {high:+.1f}]")
    return cells


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
        cells += paired_cells(by_seed, base) if arm != "baseline" else ["—", "—"]
        ratio = statistics.mean(s["update"] for s in steps[arm]) / base_update
        lines.append(f"| `{arm}` | {lr:g} / {heads:g} | " + " | ".join(cells) + f" | {ratio:.2f}× |")
    return "\n".join(lines)


def check_regime(directory: Path, backbone: str | None, weights: str | None) -> None:
    """Stop when a run in ``directory`` was trained with another backbone or weights than this sweep asks for
    (two regimes sharing one ``--runs`` folder); runs without a config.json are not checked."""
    path = directory / "config.json"
    if not path.exists():
        return
    config = json.loads(path.read_text())
    wanted = {"backbone": backbone or "resnet18", "weights_backbone": weights}
    found = {key: config.get(key) for key in wanted}
    if found != wanted:
        raise SystemExit(f"{path}: the run has {found}, this sweep asks for {wanted}; give each regime (--backbone, "
                         "--weights-backbone) its own --runs folder")


def measured_factor(runs: Path, chosen: dict[str, float], seeds: list[int]) -> float:
    """k measured: RAN's mean backbone step at its chosen rate over the baseline's at its chosen rate (the tuning
    seeds' grid runs, ``step_size``), rounded to 3 significant digits so that run names and flags are exact."""
    update = lambda arm: statistics.mean(step_size(Run(arm, chosen[arm], s).directory(runs))["update"]  # noqa: E731
                                         for s in seeds)
    return float(f"{update('ran') / update('baseline'):.3g}")


def versus_table(results: dict[str, dict[int, dict[str, float]]], reference: str) -> str:
    """Each arm's paired difference to ``reference`` on the same seeds (95 % t interval), and its seed spread (sample
    sd of test mIoU and the range over the seeds)."""
    ref = results[reference]
    lines = [f"| arm | seeds | Δ mIoU vs {reference} [95% CI] | Δ mixed vs {reference} [95% CI] | seed sd of mIoU "
             "| min – max mIoU |", "|---|---:|---:|---:|---:|---:|"]
    for arm, by_seed in results.items():
        seeds = sorted(s for s in by_seed if s in ref)
        values = [by_seed[s]["miou"] for s in sorted(by_seed)]
        cells = paired_cells(by_seed, ref) if arm != reference else ["—", "—"]
        sd = f"{statistics.stdev(values):.1f}" if len(values) > 1 else "—"
        lines.append(f"| `{arm}` | {len(seeds)} | " + " | ".join(cells) + f" | {sd} | {min(values):.1f} – "
                     f"{max(values):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the comparison (step 3)")
    parser.add_argument("--tune-seeds", type=int, nargs="+", default=[0],
                        help="seeds on which the learning-rate grid runs (step 1); default: 0")
    parser.add_argument("--lrs", type=float, nargs="+", default=[3e-4, 1e-3, 3e-3],
                        help="the backbone learning rates of the grid; the heads train at 10x each")
    parser.add_argument("--step-factor", default="3", metavar="K|measured",
                        help="k: baseline-step's backbone lr / the baseline's, and RAN's / ran-step's. A number "
                             "(default 3, fixed), or 'measured': RAN's backbone step at its chosen lr over the "
                             "baseline's at its chosen lr, read from the grid runs' log.csv")
    parser.add_argument("--step-bracket", type=float, nargs="+", default=[1.0], metavar="M",
                        help="run each step control at k times each M (default: 1, k alone); e.g. 0.7 1 1.4 for a "
                             "grid bracketing the measured ratio")
    parser.add_argument("--controls", nargs="*", choices=CONTROLS, default=["baseline-step", "ran-mean"],
                        help="the controls of step 3 (default: baseline-step ran-mean; ran-step is the mirror of "
                             "baseline-step: RAN with its backbone's lr divided by k, heads' lr unchanged)")
    parser.add_argument("--attentions", nargs="+", choices=ATTENTIONS, default=["sigmoid"],
                        help="RAN's attention forms, each an arm tuned on the grid (default: sigmoid, the paper's; "
                             "normalized: the paper's other form; centered: ours, not the paper's)")
    parser.add_argument("--backbone", choices=BACKBONES,
                        help="the backbone of every run (default: the main job's, resnet18 from scratch); the "
                             "pretrained regime: --backbone efficientnet_lite0 --weights-backbone IMAGENET1K")
    parser.add_argument("--weights-backbone", metavar="NAME",
                        help="the backbone's ImageNet weights (efficientnet_lite0: IMAGENET1K, from the installed "
                             "package, offline; resnet: a torchvision name such as IMAGENET1K_V1)")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at a time")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--train-args", default="",
                        help='extra flags for every run, e.g. "--iterations 100" (a smaller sweep; keep them the '
                             "same for every call on one --runs folder)")
    parser.add_argument("--no-train", action="store_true", help="only read finished runs")
    parser.add_argument("--write-results", type=Path, metavar="FILE",
                        help="also write the tables between FILE's <!-- SECTION:begin/end --> markers")
    parser.add_argument("--section", choices=tuple(SECTIONS), default="ablation",
                        help="the section of --write-results (default: ablation, the first sweep's; "
                             "attention-scratch / attention-pretrained: the two regimes with the attention forms)")
    parser.add_argument("--instruments", action="store_true",
                        help="what the fusion does in the subtract and RAN runs (each form of --attentions)")
    parser.add_argument("--plot", type=Path, metavar="PNG",
                        help="also draw each arm's step size over training (first seed) into PNG")
    args = parser.parse_args(argv)
    regime = ([] if args.backbone is None else ["--backbone", args.backbone]) + (
        [] if args.weights_backbone is None else ["--weights-backbone", args.weights_backbone])
    extra = regime + shlex.split(args.train_args)
    torch.set_num_threads(args.threads)
    if args.step_factor != "measured":
        try:
            fixed = float(args.step_factor)
        except ValueError:
            parser.error(f"--step-factor must be a number or 'measured', not {args.step_factor!r}")

    # 1. the grid on the tuning seeds; 2. each variant's rate by mean validation mIoU
    tuned = [*VARIANTS, *(form_arm(f) for f in args.attentions if f != "sigmoid")]
    grid_runs = [Run(v, lr, s) for v in tuned for lr in args.lrs for s in args.tune_seeds]
    if not args.no_train:
        train(grid_runs, args.runs, args.jobs, args.threads, extra, "1/3 learning-rate grid")
    for run in grid_runs:
        check_regime(run.directory(args.runs), args.backbone, args.weights_backbone)
    grid = {v: {lr: statistics.mean(val_miou(Run(v, lr, s).directory(args.runs)) for s in args.tune_seeds)
                for lr in args.lrs} for v in tuned}
    chosen = {v: max(args.lrs, key=lambda lr, v=v: grid[v][lr]) for v in tuned}
    k = measured_factor(args.runs, chosen, args.tune_seeds) if args.step_factor == "measured" else fixed
    arms = {v: Run(v, chosen[v], 0) for v in tuned}
    for control in args.controls:
        controlled = "baseline" if control == "baseline-step" else "ran"
        if control not in STEP_CONTROLS:
            arms[control] = Run(control, chosen[controlled], 0)
            continue
        for m in args.step_bracket:
            factor = float(f"{k * m:.3g}")
            label = control if len(args.step_bracket) == 1 else f"{control} x{factor:g}"
            arms[label] = Run(control, chosen[controlled], 0, factor)

    # 3. every arm on every seed, scored on the test split
    compare_runs = {(label, s): replace(a, seed=s) for label, a in arms.items() for s in args.seeds}
    if not args.no_train:
        train(list(compare_runs.values()), args.runs, args.jobs, args.threads, extra, "2/3 seeds and controls")
    results: dict[str, dict[int, dict[str, float]]] = {arm: {} for arm in arms}
    steps: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for (label, seed), run in tqdm(compare_runs.items(), desc="3/3 test split", unit="run"):
        directory = run.directory(args.runs)
        val_miou(directory)  # a clear message when the run is missing
        check_regime(directory, args.backbone, args.weights_backbone)
        results[label][seed] = test_scores(directory)
        steps[label].append(step_size(directory))

    text = (f"Learning rate chosen on `val` (mean validation mIoU over seed{'s' * (len(args.tune_seeds) > 1)} "
            f"{' '.join(map(str, args.tune_seeds))}):\n\n{tuning_table(grid, chosen)}\n\n"
            f"Reported on `test` (seeds {' '.join(map(str, args.seeds))}: mean ± sample sd; Δ: paired difference "
            "to the tuned baseline on the same seeds, 95% t interval; backbone step: mean norm of the backbone's "
            "update per logged step, relative to the tuned baseline's):\n\n"
            f"{comparison_table(arms, results, steps)}")
    edges = [v for v in tuned if chosen[v] in (min(args.lrs), max(args.lrs)) and len(args.lrs) > 1]
    if edges:
        text += (f"\n\nChosen at the edge of the grid (widen --lrs to know it is the best): "
                 f"{', '.join(f'`{v}`' for v in edges)}.")
    if any(a.arm in STEP_CONTROLS for a in arms.values()):
        how = (f"measured: RAN's backbone step at its chosen lr over the baseline's at its chosen lr, grid runs of "
               f"seed{'s' * (len(args.tune_seeds) > 1)} {' '.join(map(str, args.tune_seeds))}, = {k:g}"
               if args.step_factor == "measured" else f"fixed at {k:g}, not measured")
        bracket = "" if len(args.step_bracket) == 1 else (
            f", run at k × {' / '.join(f'{m:g}' for m in args.step_bracket)}")
        text += f"\n\nThe step controls' factor k: {how}{bracket}."
    references = [label for label in arms if arms[label].arm == "baseline-step"]
    for reference in references:
        text += (f"\n\nAgainst `{reference}` (test; paired on the same seeds, 95% t interval) and each arm's spread "
                 f"over the seeds:\n\n{versus_table(results, reference)}")
    print(text)
    if args.plot:
        first = {label: replace(arms[label], seed=min(args.seeds)).directory(args.runs) for label in arms}
        print(f"step sizes over training: {plot_step_sizes(first, args.plot)}")
    if args.instruments:
        reverse = [label for label in arms if label == "subtract" or label in tuned and label.startswith("ran")]
        rows = [(arm, s, instruments(replace(arms[arm], seed=s).directory(args.runs)))
                for arm in reverse for s in args.seeds]
        fusion = (f"What the fusion does in the tuned {', '.join(reverse)} runs (validation; the attention at the "
                  f"last evaluation, its first 4 batches):\n\n{instruments_table(rows)}")
        print("\n" + fusion)
        text += "\n\n" + fusion
    if args.write_results:
        given = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--no-train"]  # finished runs are kept
        write_section(args.write_results, args.section, header("ablation.py", given, args.threads, args.jobs) + text,
                      title=SECTIONS[args.section])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
