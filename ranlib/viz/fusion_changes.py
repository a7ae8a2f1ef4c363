"""What the fusion changes, as a figure: fixed, broken and still-wrong pixels per region.

``plot_fusion_changes`` draws ``ranlib.fusion_changes.FusionChanges.compute()`` (or ``metrics["fusion_changes"]``
of ``ranlib.evaluate.evaluate``): for each region (mixed-boundary band, other boundary band, interior) the
pixels where ``argmax(fused) != argmax(original)`` as a share of the region's labelled pixels, split into fixed
(original wrong, fused right), broken (original right, fused wrong) and still wrong. Bars are labelled with the
pixel counts. Several models (a mapping name -> result) get one panel each, on a shared y axis.

``plot_fusion_flips`` shows the same thing on single pixels: crops around chosen pixels, with the ground truth,
the original branch's and the fused prediction, and a map marking every fixed, broken and still-wrong pixel of the
crop (``ranlib.fusion_changes.fusion_flips``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ranlib.data import IGNORE_INDEX
from ranlib.fusion_changes import REGIONS, fusion_flips
from ranlib.viz.figure import new_figure
from ranlib.viz.palette import PALETTE, colorize, present_labels, to_rgb

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


def _crop_slices(shape: tuple[int, int], centre: tuple[int, int], size: int) -> tuple[slice, slice]:
    """A size x size window around ``centre``, moved inside an image of ``shape`` (H, W) where it would leave it."""
    out = []
    for length, c in zip(shape, centre, strict=True):
        start = min(max(c - size // 2, 0), max(length - size, 0))
        out.append(slice(start, min(start + size, length)))
    return out[0], out[1]


def plot_fusion_flips(items, class_names: list[str] | None = None, crop_size: int = 48) -> Figure:
    """One row per chosen pixel: a crop around it with the image, the ground truth, the original branch's
    prediction, the fused prediction and the pixels whose class the fusion changed (green fixed, orange broken,
    grey still wrong, over the dimmed image). The chosen pixel is circled in every panel.

    items: ``(image (3, H, W), mask (H, W), output, (y, x))`` per row, ``output`` the image's ``predict(ran,
    image)`` (a ``RANOutput`` of batch 1 at the image's resolution).
    """
    items = list(items)
    if not items:
        raise ValueError("no pixels to show: the fusion changed no labelled pixel in these images")
    fig = new_figure((2.3 * 5 + 0.4, 2.4 * len(items) + 0.8))
    axes = np.atleast_2d(fig.subplots(len(items), 5, squeeze=False))
    shown = set()
    for r, (row, (image, mask, output, (y, x))) in enumerate(zip(axes, items, strict=True)):
        rows, cols = _crop_slices(tuple(mask.shape), (y, x), crop_size)
        before, after = output.original[0].argmax(0), output.fused[0].argmax(0)
        flips = {k: m[0][rows, cols].numpy() for k, m in fusion_flips(output.original, output.fused,
                                                                      mask[None].to(before.device)).items()}
        gt, old, new = (t[rows, cols].cpu().numpy() for t in (mask, before, after))
        shown |= set(present_labels(gt, old, new)) | ({IGNORE_INDEX} if (gt == IGNORE_INDEX).any() else set())
        rgb = to_rgb(image)[rows, cols]
        marked = 0.3 * rgb + 0.7  # faded towards white, so that the marks (grey included) stand out
        for key, colour in (("fixed", KINDS[0][2]), ("broken", KINDS[1][2])):
            marked[flips[key]] = np.array([int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
        still = flips["changed"] & ~flips["fixed"] & ~flips["broken"]
        marked[still] = np.array([int(KINDS[2][2][i:i + 2], 16) / 255 for i in (1, 3, 5)])
        counts = (f"fixed {int(flips['fixed'].sum())}, broken {int(flips['broken'].sum())},\n"
                  f"still wrong {int(still.sum())} (in this crop)")
        panels = (("image", rgb), ("ground truth", colorize(gt)), ("original branch", colorize(old)),
                  ("fused (RAN's prediction)", colorize(new)), (f"changed by the fusion\n{counts}", marked))
        for ax, (title, picture) in zip(row, panels, strict=True):
            ax.imshow(picture, interpolation="nearest")
            ax.plot(x - cols.start, y - rows.start, "o", markersize=9, markerfacecolor="none",
                    markeredgecolor="white", markeredgewidth=1.5)
            ax.plot(x - cols.start, y - rows.start, "o", markersize=12, markerfacecolor="none",
                    markeredgecolor="black", markeredgewidth=1.0)
            ax.set_title(title if r == 0 or title.startswith("changed") else "", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        label = int(mask[y, x])
        name = (class_names[label] if class_names and label != IGNORE_INDEX else str(label))
        row[0].set_ylabel(f"pixel ({y}, {x})\nlabel {name}", fontsize=8)
    names = class_names or [f"class {k}" for k in range(max(shown - {IGNORE_INDEX}, default=0) + 1)]
    handles = [Patch(facecolor=PALETTE[k] / 255, edgecolor="0.5", label="void (255)" if k == IGNORE_INDEX
                     else names[k]) for k in sorted(shown)]  # the colours the crops show (background black)
    handles += [Patch(color=colour, label=label) for _, label, colour in KINDS]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(6, len(handles)), fontsize=8)
    return fig
