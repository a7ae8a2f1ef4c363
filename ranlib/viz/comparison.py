"""Baseline against RAN on the same mixed-boundary crops: the paper's qualitative comparison.

One row per crop (``Region`` from ``find_regions``, usually ranked by the baseline's confusion), five
columns: image, ground truth, baseline prediction, RAN prediction, and the RAN's attention map for the
crop's main class. The prediction titles give each model's pixel accuracy inside the crop (ignored pixels
left out), so the figure says in numbers what it shows in colours.
"""

from __future__ import annotations

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ranlib.evaluate import predict
from ranlib.model import RAN
from ranlib.viz.branches import ATTENTION_CMAP
from ranlib.viz.figure import new_figure
from ranlib.viz.palette import IGNORE_INDEX, colorize, legend_handles, present_labels, to_rgb
from ranlib.viz.regions import Region

COLUMNS = ("image", "ground truth", "{baseline}", "{ran}", "attention")


def crop_accuracy(prediction: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the non-ignored pixels where the prediction equals the mask (NaN if all are ignored)."""
    valid = mask != IGNORE_INDEX
    return float((prediction[valid] == mask[valid]).mean()) if valid.any() else float("nan")


def plot_comparison(baseline: RAN, ran: RAN, dataset, regions: list[Region], *,
                    class_names: list[str] | None = None, names: tuple[str, str] = ("baseline", "RAN")
                    ) -> Figure:
    """Image, ground truth, both predictions and the RAN's attention on each region, one row per region.

    dataset: items ``(image (3, H, W), mask (H, W))`` as the models expect them; every region must carry
    the ``index`` of its item (``find_regions`` sets it).
    """
    if not regions:
        raise ValueError("no regions to show: find_regions found no mixed boundaries in these images")
    if any(r.index is None for r in regions):
        raise ValueError("every region needs the dataset index it comes from: get them from find_regions")
    titles = [c.format(baseline=names[0], ran=names[1]) for c in COLUMNS]
    fig = new_figure((2.3 * len(COLUMNS) + 1.8, 2.4 * len(regions) + 0.4))
    axes = fig.subplots(len(regions), len(COLUMNS), squeeze=False)
    attention_norm = Normalize(vmin=0.0, vmax=1.0)
    shown_labels, attention_image = set(), None
    for r, (row, region) in enumerate(zip(axes, regions, strict=True)):
        image, mask = dataset[region.index]
        out_base, out_ran = predict(baseline, image), predict(ran, image)
        gt = region.crop(mask).numpy()
        preds = [region.crop(o.fused[0].argmax(0)).numpy() for o in (out_base, out_ran)]
        shown_labels |= set(present_labels(gt, *preds))
        c = region.classes[0]
        panels = [to_rgb(image)[region.slices], colorize(gt),
                  colorize(preds[0]), colorize(preds[1])]
        for col, (ax, shown) in enumerate(zip(row, panels, strict=False)):
            ax.imshow(shown, interpolation="nearest")
            title = titles[col] if r == 0 else ""
            if col in (2, 3):
                title += f"\naccuracy {100 * crop_accuracy(preds[col - 2], gt):.0f}%"
            ax.set_title(title.strip(), fontsize=9)
        name = class_names[c] if class_names else f"class {c}"
        ax = row[4]
        if out_ran.attention is None:
            ax.text(0.5, 0.5, "not in this variant", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")
            ax.set_aspect("equal")
        else:
            attention = region.crop(out_ran.attention[0, c]).numpy()
            attention_image = ax.imshow(attention, cmap=ATTENTION_CMAP, norm=attention_norm)
        ax.set_title(f"{titles[4]} ({name})", fontsize=9)
        row[0].set_ylabel(f"item {region.index}\nconfusion {region.score:.2f}", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    if attention_image is not None:
        fig.colorbar(attention_image, ax=axes[:, 4].tolist(), shrink=0.6, label="attention")
    names_all = class_names or [f"class {k}" for k in range(max(shown_labels, default=0) + 1)]
    fig.legend(handles=legend_handles(names_all, sorted(shown_labels)), loc="outside lower center",
               ncol=min(6, max(1, len(shown_labels))), fontsize=8)
    return fig
