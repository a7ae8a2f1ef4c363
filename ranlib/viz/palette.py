"""The PASCAL VOC colour palette, its legend, and mask / prediction overlays on images.

VOC stores its label masks as palette PNGs whose colour map is generated from the class index by
interleaving its bits into the R, G and B channels (the devkit's ``labelcolormap.m``): 0 background is
black, 1 aeroplane dark red, 15 person pink, and the ignore label 255 is cream (224, 224, 192). Figures in
ranlib colour every label mask with this palette, so a class has the same colour in every plot.

Images may be given in [0, 1] (``ranlib.data.voc(..., transforms=None)``) or ImageNet-normalised (the
output of ``ranlib.data.val_transforms()``); ``to_rgb`` tells them apart by their range.
"""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ranlib.data import IGNORE_INDEX, denormalize
from ranlib.data.palette import voc_palette
from ranlib.viz.figure import new_figure

PALETTE = np.array(voc_palette(), dtype=np.uint8).reshape(256, 3)  # the VOC colour of label k is PALETTE[k]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def to_rgb(image) -> np.ndarray:
    """An image tensor (3, H, W) as a displayable (H, W, 3) float array in [0, 1].

    Values already in [0, 1] are shown as they are; an image with values outside [0, 1] is taken to be
    ImageNet-normalised and is denormalised first.
    """
    img = torch.as_tensor(image).detach().float().cpu()
    if img.dim() != 3 or img.shape[0] != 3:
        raise ValueError(f"expected an image of shape (3, H, W), got {tuple(img.shape)}; index the batch first")
    if img.min() < 0 or img.max() > 1:
        img = denormalize(img)
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def colorize(mask) -> np.ndarray:
    """A label mask (H, W) of ints 0..255 as a (H, W, 3) uint8 image in the VOC palette."""
    m = _numpy(mask)
    if m.ndim != 2:
        raise ValueError(f"expected a label mask of shape (H, W), got {m.shape}")
    return PALETTE[m.astype(np.int64) % 256]


def overlay(image, mask, alpha: float = 0.6) -> np.ndarray:
    """The image (3, H, W) with the mask's VOC colours blended in at ``alpha``, as (H, W, 3) floats in [0, 1].

    Background (label 0) is left untinted, so objects stand out; ignored pixels (255) show in cream.
    """
    rgb = to_rgb(image)
    m = _numpy(mask)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f"mask of shape {m.shape} does not match the image's {rgb.shape[:2]}")
    colours = colorize(m).astype(np.float32) / 255
    tint = (m != 0)[..., None]  # (H, W, 1)
    return np.where(tint, (1 - alpha) * rgb + alpha * colours, rgb)


def legend_handles(class_names: list[str], labels=None) -> list[Patch]:
    """Legend patches (VOC colour, class name) for ``labels`` (default: every class in ``class_names``)."""
    labels = range(len(class_names)) if labels is None else labels
    # Label 0 (background) is drawn untinted in the overlays, so its patch is white, not VOC's black.
    return [Patch(facecolor="white" if int(k) == 0 else PALETTE[int(k)] / 255, edgecolor="0.5",
                  label=f"{class_names[0]} (not tinted)" if int(k) == 0 else class_names[int(k)])
            for k in labels if int(k) != IGNORE_INDEX]


def present_labels(*masks) -> list[int]:
    """The sorted labels (ignore label excluded) that occur in any of the masks."""
    found = set()
    for m in masks:
        found |= {int(v) for v in np.unique(_numpy(m))}
    return sorted(found - {IGNORE_INDEX})


def plot_palette(class_names: list[str]) -> Figure:
    """The legend on its own: a swatch and the name of every class, plus the ignore label."""
    n = len(class_names)
    fig = new_figure((3.2, 0.28 * (n + 1) + 0.4))
    ax = fig.add_subplot()
    for k, name in enumerate([*class_names, "ignore (255)"]):
        label = k if k < n else IGNORE_INDEX
        ax.add_patch(Rectangle((0, -k - 0.4), width=1, height=0.8, facecolor=PALETTE[label] / 255,
                           edgecolor="0.5"))
        ax.text(1.3, -k, f"{label:>3}  {name}", va="center", family="monospace", fontsize=9)
    ax.set_xlim(0, 8)
    ax.set_ylim(-n - 0.6, 0.6)
    ax.set_axis_off()
    ax.set_title("VOC palette")
    return fig


def plot_segmentation(image, mask=None, prediction=None, class_names: list[str] | None = None,
                      alpha: float = 0.6) -> Figure:
    """Image, ground-truth overlay and prediction overlay side by side, with a legend of the classes shown.

    ``mask`` and ``prediction`` are (H, W) label masks (a prediction is ``logits.argmax(0)``); either may be
    None. ``class_names`` defaults to "class k".
    """
    panels = [("image", None)] + [(t, m) for t, m in (("ground truth", mask), ("prediction", prediction))
                                   if m is not None]
    fig = new_figure((3.2 * len(panels) + 1.8, 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, m) in zip(axes, panels, strict=True):
        ax.imshow(to_rgb(image) if m is None else overlay(image, m, alpha), interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    labels = present_labels(*(m for _, m in panels if m is not None))
    if labels:
        names = class_names or [f"class {k}" for k in range(max(labels) + 1)]
        fig.legend(handles=legend_handles(names, labels), loc="outside right center", fontsize=8)
    return fig
