"""Visualisation: the VOC palette and overlays, the branch maps, mixed-boundary regions, baseline-vs-RAN
comparisons, how far the attention opens (at the end and over training), what the fusion changes, evaluation
figures and an interactive explorer. Every function returns a matplotlib Figure (never calls ``plt.show()``): in a
notebook the returned figure shows itself; elsewhere ``fig.savefig(path)``.

The explorer (``Explorer``, ``explorer``, in ``ranlib/viz/widgets.py``) needs ipywidgets and IPython; it is
imported on first use, so that a training run, which draws its plots with the other modules, loads no widget
library.
"""

import importlib

from ranlib.attention_stats import training_statistics
from ranlib.viz.attention import attention_statistics, plot_attention_statistics
from ranlib.viz.branches import plot_branches
from ranlib.viz.comparison import plot_comparison
from ranlib.viz.evaluation import plot_confusion_matrix, plot_iou_bars, plot_training_curves, plot_trimap
from ranlib.viz.fusion_changes import plot_fusion_changes, plot_fusion_flips
from ranlib.viz.palette import PALETTE, colorize, legend_handles, overlay, plot_palette, plot_segmentation
from ranlib.viz.regions import Region, find_mixed_boundary_regions, find_regions
from ranlib.viz.training_attention import plot_attention_over_training

__all__ = ["PALETTE", "Explorer", "Region", "attention_statistics", "colorize", "explorer",
           "find_mixed_boundary_regions", "find_regions", "legend_handles", "overlay", "plot_attention_over_training",
           "plot_attention_statistics", "plot_branches", "plot_comparison", "plot_confusion_matrix",
           "plot_fusion_changes", "plot_fusion_flips", "plot_iou_bars", "plot_palette", "plot_segmentation",
           "plot_training_curves", "plot_trimap", "training_statistics"]


def __getattr__(name: str):
    """``Explorer`` and ``explorer``, imported from ``ranlib.viz.widgets`` when first asked for (PEP 562)."""
    if name in ("Explorer", "explorer"):
        return getattr(importlib.import_module("ranlib.viz.widgets"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
