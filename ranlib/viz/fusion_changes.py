"""What the fusion changes, as a figure: fixed, broken and still-wrong pixels per region.

``plot_fusion_changes`` draws ``ranlib.fusion_changes.FusionChanges.compute()`` (or ``metrics["fusion_changes"]``
of ``ranlib.evaluate.evaluate``): for each region (mixed-boundary band, other boundary band, interior) the
pixels where ``argmax(fused) != argmax(original)`` as a share of the region's labelled pixels, split into fixed
(original wrong, fused right), broken (original right, fused wrong) and still wrong. Bars are labelled with the
pixel counts. Several models (a mapping name -> result) get one panel each, on a shared y axis.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ranlib.fusion_changes import REGIONS
from ranlib.viz.figure import new_figure

KINDS = (("fixed", "fixed (original wrong, fused right)", "#009E73"),
         ("broken", "broken (original right, fused wrong)", "#D55E00"),
         ("still_wrong", "still wrong (another wrong class)", "#999999"))


def plot_fusion_changes(results: Mapping) -> Figure:
    """Bars of fixed / broken / still-wrong pixels (% of each region's pixels) per region, one panel per model.

    results: one ``FusionChanges.compute()`` dict, or {model name: such a dict}.
    """
    runs = {"": results} if "width" in results else dict(results)
    fig = new_figure((1.0 + 4.2 * len(runs), 3.8))
    axes = np.atleast_1d(fig.subplots(1, len(runs), sharey=True))
    x = np.arange(len(REGIONS))
    for ax, (name, result) in zip(axes, runs.items(), strict=True):
        pixels = np.array([result[r]["pixels"] for r in REGIONS], dtype=float)
        for i, (key, label, colour) in enumerate(KINDS):
            counts = np.array([result[r][key] for r in REGIONS], dtype=float)
            share = np.divide(100 * counts, pixels, out=np.zeros_like(counts), where=pixels > 0)
            bars = ax.bar(x + (i - 1) * 0.27, share, 0.27, color=colour, label=label)
            ax.bar_label(bars, [f"{int(c):,}" for c in counts], fontsize=7)
        net = [result[r]["fixed"] - result[r]["broken"] for r in REGIONS]
        ax.set_xticks(x, [f"{r.replace('_', ' ')}\n{int(n):,} px, net {d:+,}" for r, n, d in zip(
            REGIONS, pixels, net, strict=True)], fontsize=8)
        ax.set_title((f"{name}\n" if name else "") + f"argmax(fused) != argmax(original), bands {result['width']} px",
                     fontsize=10)
    axes[0].set_ylabel("% of the region's labelled pixels")
    top = max(ax.get_ylim()[1] for ax in axes)
    axes[0].set_ylim(0, max(top * 1.15, 0.1))
    axes[-1].legend(fontsize=7, loc="upper right")
    return fig
