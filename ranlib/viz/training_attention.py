"""The attention over training: does it open, close or never move? Drawn from a run's ``log.csv``.

At every evaluation training logs ``ranlib.viz.attention.training_statistics`` (the ``attn_*`` and ``fusion_*``
columns). ``plot_attention_over_training`` draws them against the iteration, for one run or several:

1. the share of (pixel, non-target class) pairs where the attention is open (A > 0.5), in the mixed-boundary
   bands and elsewhere: the reverse branch can only act where A is open;
2. the mean original score (the offset shared by all classes, which softmax ignores): A = sigmoid(-original)
   closes as it drifts above zero;
3. |fused - original| / |original|: how much the fusion moves the scores;
4. and 5. the pixels the fusion fixes and breaks (``ranlib.fusion_changes``), in the mixed-boundary bands and in
   the rest of the image (other boundary band + interior).

One colour per run; solid lines with dots for the mixed-boundary bands (panels 1, 3) and for fixed pixels (4, 5),
dashed lines for the rest (squares) and for broken pixels (crosses).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ranlib.viz.evaluation import HANDLE_LENGTH, MODEL_COLOURS, iteration_ticks, read_log
from ranlib.viz.figure import new_figure

# (panel title, y label, [(column(s) summed, legend label, matplotlib format: line style and marker)])
PANELS = (
    ("attention open at other classes", "share of (pixel, class) pairs with A > 0.5",
     [(("attn_open_other_mixed",), "mixed band", "-o"), (("attn_open_other_rest",), "rest", "--s")]),
    ("mean original score (shared offset)", "logit", [(("attn_original_mean",), "all labelled pixels", "-o")]),
    ("how much the fusion moves the scores", "|fused - original| / |original|",
     [(("attn_change_mixed",), "mixed band", "-o"), (("attn_change_rest",), "rest", "--s")]),
    ("fusion changes in the mixed band", "pixels",
     [(("fusion_fixed_mixed",), "fixed", "-o"), (("fusion_broken_mixed",), "broken", "--x")]),
    ("fusion changes elsewhere", "pixels",
     [(("fusion_fixed_other", "fusion_fixed_interior"), "fixed", "-o"),
      (("fusion_broken_other", "fusion_broken_interior"), "broken", "--x")]),
)


def plot_attention_over_training(logs: str | Path | Mapping[str, str | Path]) -> Figure:
    """The attention statistics of ``log.csv`` against the iteration, in five panels (see the module docstring).

    logs: a run directory / log.csv path, or {run name: path} to draw several runs on the same axes.
    """
    runs = {"": logs} if isinstance(logs, (str, Path)) else dict(logs)
    fig = new_figure((17.0, 3.6))
    axes = fig.subplots(1, len(PANELS))
    for r, (run, path) in enumerate(runs.items()):
        log = read_log(path)
        if "iteration" not in log:
            raise ValueError(f"{path} has no 'iteration' column; is it a log.csv written by ranlib.engine.train.fit?")
        colour = MODEL_COLOURS[r % len(MODEL_COLOURS)]
        for ax, (_, _, lines) in zip(axes, PANELS, strict=True):
            for columns, label, style in lines:
                if not all(c in log for c in columns):
                    continue
                values = sum(log[c] for c in columns)
                keep = ~np.isnan(values)  # training rows leave the evaluation columns empty
                if keep.any():
                    ax.plot(log["iteration"][keep], values[keep], style, color=colour, markersize=4,
                            label=f"{run}: {label}" if run else label)
    for ax, (title, ylabel, lines) in zip(axes, PANELS, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
        ax.xaxis.set_major_locator(iteration_ticks())
        ax.set_ylabel(ylabel, fontsize=8)
        if ax.has_data():  # the legend explains the line styles; the runs' colours go in one legend below
            drawn = {line.get_label().split(": ")[-1] for line in ax.get_lines()}
            ax.legend([Line2D([], [], color="0.3", linestyle=style[:-1], marker=style[-1]) for _, label, style in lines
                       if label in drawn], [label for _, label, _ in lines if label in drawn], fontsize=7,
                      handlelength=HANDLE_LENGTH)  # long enough that a dashed line shows its gaps beside the marker
        else:
            ax.text(0.5, 0.5, "not in this log", ha="center", va="center", transform=ax.transAxes, color="0.4")
    if len(runs) > 1:
        fig.legend([Line2D([], [], color=MODEL_COLOURS[r % len(MODEL_COLOURS)], lw=2) for r in range(len(runs))],
                   list(runs), loc="outside lower center", ncols=min(len(runs), 4), fontsize=8)
    axes[1].axhline(0, color="0.6", lw=0.8)  # A = 0.5 where the original score is 0
    return fig
