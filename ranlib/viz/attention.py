"""How much the reverse attention acts: attention statistics in mixed-boundary bands and elsewhere.

RAN's attention is ``A = sigmoid(-original)`` per class (the seed's Formula 1): it opens (A > 0.5) only where the
original branch scores the class below zero, and there the reverse branch changes the fused score. Softmax does
not see a logit offset shared by all classes, so nothing in the cross-entropy keeps the original scores near
zero; when a model's original scores are positive almost everywhere, A is near zero and the fused map is close
to the original one. ``attention_statistics`` measures that on a dataset, and ``plot_attention_statistics``
draws it: the distribution of original scores with the attention curve on top, and how far A opens in
mixed-boundary bands against the other labelled pixels. The sums come from ``ranlib.attention_stats``, whose
``training_statistics`` gives the columns that training logs at every evaluation
(``ranlib.viz.plot_attention_over_training`` draws them against the iteration).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ranlib.attention_stats import REGIONS, AttentionTotals
from ranlib.evaluate import predict
from ranlib.model import RAN
from ranlib.viz.figure import new_figure


def attention_statistics(model: RAN, dataset, indices=None, width: int = 4) -> dict:
    """Attention statistics of a ``variant="ran"`` model over ``dataset`` items (image, mask).

    For the pixels of the mixed-boundary band of ``width`` px (``ranlib.data.mixed_boundary_band``) and for the
    rest of the labelled pixels, it returns:

    - ``pixels``: how many there are;
    - ``attention_true`` / ``attention_other``: the mean attention at the ground-truth class / over the other
      classes;
    - ``open_true`` / ``open_other``: the share of those (pixel, class) pairs where A > 0.5;
    - ``relative_change``: mean |fused - original| / mean |original| over all classes;
    - ``mean_original``: the mean original score over all classes and pixels (the offset that softmax ignores
      and that closes the attention when it is positive).

    ``histogram`` holds counts of original scores at the ground-truth class (``true``) and at the other classes
    (``other``) over ``ranlib.attention_stats.BIN_EDGES`` (``edges``), all labelled pixels together.
    """
    if model.variant != "ran":
        raise ValueError(f"attention statistics need a variant='ran' model, not {model.variant!r}")
    indices = range(len(dataset)) if indices is None else indices
    totals = AttentionTotals(model.num_classes, width)
    for index in indices:
        image, mask = dataset[index]
        totals.update(predict(model, image), mask[None])  # every branch at the image's size, (1, K, H, W)
    return totals.compute()


def plot_attention_statistics(stats: dict) -> Figure:
    """Left: original scores at the true and the other classes, with A = sigmoid(-score) on a second axis.
    Right: how far the attention opens, in mixed-boundary bands and in the rest of the labelled pixels."""
    fig = new_figure((11.0, 3.8))
    left, right = fig.subplots(1, 2, width_ratios=(3, 2))
    edges = np.asarray(stats["histogram"]["edges"])
    centres = (edges[:-1] + edges[1:]) / 2
    for key, label, colour in (("true", "ground-truth class", "#0072B2"), ("other", "other classes", "#E69F00")):
        counts = np.asarray(stats["histogram"][key])
        left.stairs(counts / max(counts.sum(), 1), edges, fill=True, alpha=0.5, color=colour, label=label)
    left.set_xlabel("original score (logit)")
    left.set_ylabel("share of (pixel, class) pairs")
    curve = left.twinx()
    curve.plot(centres, 1 / (1 + np.exp(centres)), color="black", lw=1.5, label="attention sigmoid(-score)")
    curve.set_ylim(0, 1.02)
    curve.set_ylabel("attention")
    lines = left.get_legend_handles_labels()
    more = curve.get_legend_handles_labels()
    left.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    left.set_title("where the original scores fall")

    keys = (("attention_true", "mean A, true class"), ("attention_other", "mean A, other classes"),
            ("open_true", "A > 0.5, true class"), ("open_other", "A > 0.5, other classes"))
    x = np.arange(len(keys))
    for i, (region, colour) in enumerate(zip(REGIONS, ("#CC79A7", "#999999"), strict=True)):
        values = [stats[region][key] for key, _ in keys]
        bars = right.bar(x + (i - 0.5) * 0.38, values, 0.38, color=colour,
                         label=f"{region} ({stats[region]['pixels']:,} px)")
        right.bar_label(bars, fmt="%.3f", fontsize=7)
    right.set_xticks(x, [label for _, label in keys], rotation=20, ha="right", fontsize=8)
    tallest = max(stats[region][key] for region in REGIONS for key, _ in keys)
    right.set_ylim(0, min(1.0, max(0.05, 1.3 * tallest)) if tallest == tallest else 1.0)  # nan: no pixels
    right.set_ylabel("attention / share")
    right.legend(fontsize=8, loc="upper right")
    right.set_title(f"how far the attention opens (band {stats['width']} px)")
    return fig
