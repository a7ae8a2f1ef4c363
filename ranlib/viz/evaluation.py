"""Figures for evaluation: confusion matrix, per-class IoU, the trimap curve and training curves.

- ``plot_confusion_matrix``: the row-normalised confusion matrix (row = ground truth, so the diagonal is
  each class's recall), as a heatmap (matplotlib's ``imshow``, the values written in the cells).
- ``plot_iou_bars``: per-class IoU of several models as grouped bars, their mIoU in the legend.
- ``plot_trimap``: mIoU inside the boundary band against the band's width, one line per model. The paper
  (after DeepLab) uses this "trimap" experiment to show that reverse attention helps most near boundaries:
  the narrower the band, the larger the gap.
- ``plot_training_curves``: a run's ``log.csv`` (see ``ranlib.engine.train.fit``): loss components, learning rate
  and evaluation metrics against the iteration.

Colours: a qualitative colour-blind-safe palette for models (the ten colours of seaborn's ``colorblind``, written
out so that drawing a figure loads no seaborn, which imports ipywidgets), ``cividis`` for the heatmap.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ranlib.viz.figure import new_figure

MODEL_COLOURS = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133",
                 "#56b4e9")
FEW_POINTS = 20  # a curve of at most this many points also gets markers: a short run's single point still shows
HANDLE_LENGTH = 4.0  # legend lines long enough (in font sizes) that a dashed one shows its gaps beside a marker


def iteration_ticks() -> MaxNLocator:
    """Ticks for an iteration axis: matplotlib's usual choice, whole iterations only (a run that logged one
    iteration gets one tick, not 1.9 ... 2.1)."""
    return MaxNLocator("auto", steps=[1, 2, 2.5, 5, 10], integer=True, min_n_ticks=1)


def normalized_confusion(matrix) -> np.ndarray:
    """Each row of a (K, K) count matrix (rows = ground truth) divided by its sum; rows without pixels are NaN."""
    m = matrix.double().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"expected a square (K, K) confusion matrix, got shape {m.shape}")
    totals = m.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, m / totals, np.nan)


def plot_confusion_matrix(matrix, class_names: list[str] | None = None, annotate: bool | None = None) -> Figure:
    """Heatmap of the row-normalised confusion matrix; ``annotate`` (default: K <= 12) writes the values.

    matrix: (K, K) pixel counts, rows = ground truth, e.g. ``ranlib.metrics.ConfusionMatrix(K).matrix`` or
    ``metrics["confusion"]`` of ``ranlib.evaluate.evaluate``.
    """
    norm = normalized_confusion(matrix)
    k = norm.shape[0]
    names = class_names or [str(i) for i in range(k)]
    annotate = k <= 12 if annotate is None else annotate
    fig = new_figure((3.0 + 0.5 * k, 2.4 + 0.45 * k))
    ax = fig.add_subplot()
    image = ax.imshow(norm, vmin=0, vmax=1, cmap="cividis")  # a row without pixels (NaN) stays blank
    fig.colorbar(image, ax=ax, label="fraction of the row's pixels", shrink=0.8)
    if annotate:
        for (row, column), value in np.ndenumerate(norm):
            if not np.isnan(value):  # dark text on cividis's light (high) end, light text on its dark end
                ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if value > 0.5 else "white")
    slant = max(len(n) for n in names) > 3  # as in plot_iou_bars: long names slanted so neighbours do not overlap
    ax.set_xticks(range(k), names, rotation=45 if slant else 0, ha="right" if slant else "center",
                  rotation_mode="anchor" if slant else "default")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("ground-truth class")
    ax.set_title("normalised confusion matrix")
    return fig


def plot_iou_bars(ious: Mapping[str, Sequence[float]], class_names: list[str] | None = None) -> Figure:
    """Grouped bars of per-class IoU (in [0, 1]) for each model: ``ious`` maps model name -> K values."""
    if not ious:
        raise ValueError("no models given: pass {'model name': [IoU of class 0, IoU of class 1, ...]}")
    values = {name: np.asarray([np.nan if v is None else v for v in iou], float) for name, iou in ious.items()}
    k = len(next(iter(values.values())))
    if any(len(v) != k for v in values.values()):
        raise ValueError("every model needs one IoU per class; got lists of different lengths")
    names = class_names or [str(i) for i in range(k)]
    longest = max(len(n) for n in names)
    fig = new_figure((max(5.0, 0.45 * k * max(1, len(values)) ** 0.5 + 2), 3.6 + 0.06 * longest))
    ax = fig.add_subplot()
    width = 0.8 / len(values)
    x = np.arange(k)
    for j, (name, v) in enumerate(values.items()):
        ax.bar(x + (j - (len(values) - 1) / 2) * width, np.nan_to_num(100 * v), width,
               color=MODEL_COLOURS[j % len(MODEL_COLOURS)], label=f"{name} (mIoU {100 * np.nanmean(v):.1f})")
    # Names wider than a bar group are slanted so that neighbours do not overlap ("background", "v-stripes").
    slant = k > 8 or longest > 6
    ax.set_xticks(x, names, rotation=35 if slant else 0, ha="right" if slant else "center",
                  rotation_mode="anchor" if slant else "default")
    ax.set_ylabel("IoU (%)")
    ax.set_ylim(0, 100)
    ax.set_title("per-class IoU")
    ax.legend(fontsize=8)
    return fig


def plot_trimap(band_mious: Mapping[str, Mapping[int, float]], full_mious: Mapping[str, float] | None = None,
                band: str = "boundary") -> Figure:
    """mIoU inside the band against band width: ``band_mious`` maps model -> {width: mIoU in [0, 1]}, e.g.
    ``metrics["boundary_miou"]`` of ``ranlib.evaluate.evaluate`` (widths may be strings, as read from JSON).

    ``full_mious`` (model -> mIoU on whole images) adds each model's whole-image mIoU as a dashed line;
    ``band`` names the band in the labels (e.g. "mixed-boundary" for ``metrics["mixed_miou"]``).
    """
    fig = new_figure((5.0, 3.6))
    ax = fig.add_subplot()
    for j, (name, by_width) in enumerate(band_mious.items()):
        by_width = {int(w): v for w, v in by_width.items()}
        widths = sorted(by_width)
        colour = MODEL_COLOURS[j % len(MODEL_COLOURS)]
        ax.plot(widths, [100 * by_width[w] for w in widths], marker="o", color=colour, label=name)
        if full_mious and name in full_mious:
            ax.axhline(100 * full_mious[name], color=colour, linestyle="--", linewidth=1,
                       label=f"{name}, whole image")
    ax.set_xlabel(f"{band} band width (pixels)")
    ax.set_ylabel(f"mIoU inside the {band} band (%)")
    ax.set_title(f"trimap: mIoU in the {band} band")
    ax.legend(fontsize=8)
    return fig


def read_log(path: str | Path) -> dict[str, np.ndarray]:
    """A ``log.csv`` (or the run directory holding it) as column -> float array; empty cells become NaN."""
    path = Path(path)
    path = path / "log.csv" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: pass a run directory written by ranlib.engine.train.fit "
                                "or the path of its log.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for name in (rows[0].keys() if rows else []):
        try:
            columns[name] = np.array([float(r[name]) if r[name] not in ("", None) else math.nan for r in rows])
        except ValueError:
            continue  # a text column (such as a timestamp) is not a curve
    return columns


def plot_training_curves(logs: str | Path | Mapping[str, str | Path]) -> Figure:
    """Loss components, learning rate and evaluation metrics against the iteration, from ``log.csv``.

    Columns named ``loss*`` go to the first panel, ``lr`` to the second and ``val_*`` (evaluation metrics,
    logged every ``eval_every`` iterations, empty in between) to the third, in percent as in ``plot_iou_bars``;
    other columns are not drawn. Evaluation curves, and any curve of at most ``FEW_POINTS`` points, have markers.
    logs: a run directory / log.csv path, or {run name: path} to draw several runs on the same axes.
    """
    runs = {"": logs} if isinstance(logs, (str, Path)) else dict(logs)
    fig = new_figure((13.0, 3.6))
    ax_loss, ax_lr, ax_eval = fig.subplots(1, 3)
    styles = ("-", "--", ":", "-.")  # one line style per run, one colour per column
    colours: dict[str, str] = {}
    for r, (run, path) in enumerate(runs.items()):
        log = read_log(path)
        if "iteration" not in log:
            raise ValueError(f"{path} has no 'iteration' column; is it a log.csv written by ranlib.engine.train.fit?")
        prefix = f"{run}: " if run else ""
        for column in [c for c in log if c.startswith(("loss", "val_")) or c == "lr"]:
            ax = ax_lr if column == "lr" else ax_loss if column.startswith("loss") else ax_eval
            colour = "0.2" if column == "lr" else colours.setdefault(
                column, MODEL_COLOURS[len(colours) % len(MODEL_COLOURS)])
            keep = ~np.isnan(log[column])  # rows of the other kind (training / evaluation) leave it empty
            scale = 100 if ax is ax_eval else 1  # metrics are fractions in log.csv, percent in every figure
            if keep.any():  # evaluation points are few and far apart: always marked; other curves when short
                marked = ax is ax_eval or keep.sum() <= FEW_POINTS
                ax.plot(log["iteration"][keep], scale * log[column][keep], styles[r % len(styles)], color=colour,
                        label=prefix + column, marker="o" if marked else None, markersize=3)
    ax_eval.set_ylabel("metric (%)")
    for ax, title in ((ax_loss, "losses"), (ax_lr, "learning rate"), (ax_eval, "evaluation")):
        ax.set_title(title)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(iteration_ticks())
        if ax.has_data():
            ax.legend(fontsize=7, handlelength=HANDLE_LENGTH)
        else:
            ax.text(0.5, 0.5, "not in this log", ha="center", va="center", transform=ax.transAxes, color="0.4")
    return fig
