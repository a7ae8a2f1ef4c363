"""The RAN's branches for one class, side by side: original, reverse, attention and fused maps.

The model, as ranlib.model describes it: ``fused = original + attention * reverse`` where ``attention =
sigmoid(-original)``. Looking at the four maps of one class at once shows what reverse attention does:
where the original branch is unsure about the class (logits near or below 0, typically at mixed
boundaries), the attention is large and the reverse branch's "not this class" evidence is let through.

Colour scales are chosen so that panels can be compared by eye:

- the three logit maps (original, reverse, fused) share ONE diverging scale, symmetric around 0
  (``vmin = -vmax``), so white means "no evidence", red "this class" and blue "not this class" in every
  panel. The map is ColorBrewer's ``RdBu_r``, which ColorBrewer lists as colour-blind safe: its two arms
  differ in lightness as well as hue, so they stay apart under deuteranopia and protanopia;
- the attention map, in [0, 1], uses the sequential ``cividis``, designed to look the same to viewers with
  and without red-green colour-vision deficiency (Nuñez et al., 2018), on the fixed scale [0, 1].

Baseline outputs have no reverse or attention branch (and the subtract variant has no attention); their
panels say "not in this variant".
"""

from __future__ import annotations

import torch
from matplotlib import patheffects
from matplotlib.colors import Normalize
from matplotlib.figure import Figure, SubFigure

from ranlib.model import RANOutput
from ranlib.viz.figure import new_figure
from ranlib.viz.palette import to_rgb

PANELS = ("image", "original", "reverse", "attention", "fused")
BRANCHES = ("original", "reverse", "attention", "fused")
LOGIT_CMAP = "RdBu_r"  # diverging, colour-blind safe (ColorBrewer)
ATTENTION_CMAP = "cividis"  # sequential, colour-vision-deficiency optimised


def branch_maps(output: RANOutput, size: tuple[int, int], class_index: int, sample: int = 0
                ) -> dict[str, torch.Tensor | None]:
    """Each branch's map for one class of one sample, bilinearly upsampled to ``size``: name -> (H, W) or None."""
    num_classes = output.fused.shape[1]
    if not 0 <= class_index < num_classes:
        raise ValueError(f"class_index {class_index} is out of range for a model with {num_classes} classes")
    one = RANOutput(*(None if x is None else x[sample:sample + 1, class_index:class_index + 1].detach().float()
                      for x in output))  # every branch (1, 1, h, w)
    up = one.upsample(tuple(size))
    return {name: None if x is None else x[0, 0].cpu() for name, x in zip(BRANCHES, up, strict=True)}


def logit_norm(maps: list[torch.Tensor]) -> Normalize:
    """One colour scale for several logit maps: linear, symmetric around 0, reaching the largest |logit|."""
    vmax = max((float(m.abs().max()) for m in maps), default=0.0)
    vmax = vmax if vmax > 0 else 1.0
    return Normalize(vmin=-vmax, vmax=vmax)


def plot_branches(output: RANOutput, image: torch.Tensor, class_index: int, *, sample: int = 0,
                  mask: torch.Tensor | None = None, box: tuple[int, int, int, int] | None = None,
                  panels: tuple[str, ...] = PANELS, class_names: list[str] | None = None,
                  fig: Figure | SubFigure | None = None) -> Figure | SubFigure:
    """Plot the image and the branch maps of class ``class_index`` in one row, upsampled to the image.

    output: the model's ``RANOutput`` (logits at 1/8 resolution, batch first); ``sample`` picks the batch item.
    image: that sample's image (3, H, W), in [0, 1] or ImageNet-normalised.
    mask: optional (H, W) ground truth; every panel then outlines where the class is (black on white).
    box: optional crop (top, left, height, width) in image pixels, e.g. ``Region.box``; all panels show it.
    panels: which of "image", "original", "reverse", "attention", "fused" to show, in order.
    fig: draw into this (sub)figure instead of a new Figure (used by the explorer and the gallery).
    """
    unknown = set(panels) - set(PANELS)
    if unknown:
        raise ValueError(f"unknown panels {sorted(unknown)}; choose from {', '.join(PANELS)}")
    size = tuple(image.shape[-2:])
    maps = branch_maps(output, size, class_index, sample)
    top, left, height, width = box if box is not None else (0, 0, *size)
    crop = (slice(top, top + height), slice(left, left + width))
    maps = {k: None if m is None else m[crop] for k, m in maps.items()}
    norm = logit_norm([m for k, m in maps.items() if m is not None and k != "attention" and k in panels])
    attention_norm = Normalize(vmin=0.0, vmax=1.0)

    name = class_names[class_index] if class_names else f"class {class_index}"
    if fig is None:
        fig = new_figure((2.6 * len(panels) + 1.2, 3.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    logit_axes, logit_image, attention_axes, attention_image = [], None, [], None
    for ax, panel in zip(axes, panels, strict=True):
        ax.set_title(panel)
        ax.set_xticks([])
        ax.set_yticks([])
        if panel == "image":
            ax.imshow(to_rgb(image)[crop], interpolation="nearest")
        elif maps[panel] is None:
            ax.text(0.5, 0.5, "not in this variant", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")
            ax.set_aspect("equal")
        elif panel == "attention":
            attention_image = ax.imshow(maps[panel].numpy(), cmap=ATTENTION_CMAP, norm=attention_norm)
            attention_axes.append(ax)
        else:
            logit_image = ax.imshow(maps[panel].numpy(), cmap=LOGIT_CMAP, norm=norm)
            logit_axes.append(ax)
        if mask is not None and maps.get(panel, image) is not None:
            inside = (mask[crop] == class_index).float().numpy()
            if 0 < inside.sum() < inside.size:
                ax.contour(inside, levels=[0.5], colors="black", linewidths=1.0,
                           path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")])
    if logit_image is not None:
        fig.colorbar(logit_image, ax=logit_axes, shrink=0.8, label="logit")
    if attention_image is not None:
        fig.colorbar(attention_image, ax=attention_axes, shrink=0.8, label="attention")
    fig.suptitle(f"branches for {name!r}" + (f" at rows {top}-{top + height}, cols {left}-{left + width}"
                                            if box is not None else ""))
    return fig
