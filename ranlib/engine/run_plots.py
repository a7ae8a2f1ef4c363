"""The PNG plots of a run directory: loss curves, per-class IoU and sample predictions (drawn by ranlib.viz).

It imports only the figure modules it draws with (no widget library) and leaves matplotlib's backend as it is:
the figures are written with ``Figure.savefig``, which needs no window.
"""

from __future__ import annotations

from pathlib import Path

from ranlib.evaluate import predict_logits
from ranlib.viz.evaluation import plot_iou_bars, plot_training_curves
from ranlib.viz.fusion_changes import plot_fusion_changes
from ranlib.viz.palette import plot_segmentation
from ranlib.viz.training_attention import plot_attention_over_training


def save_run_plots(run_dir: Path, model, val_set, metrics: dict, class_names: list[str], device,
                   samples: int = 3) -> list[Path]:
    """Write ``loss_curves.png``, ``per_class_iou.png`` and ``predictions_<i>.png`` into ``run_dir``, and for RAN and
    subtract models ``fusion_changes.png`` and ``attention_over_training.png``."""
    figures = {"loss_curves.png": plot_training_curves(run_dir / "log.csv"),
               "per_class_iou.png": plot_iou_bars({model.variant: metrics["iou"]}, class_names)}
    if "fusion_changes" in metrics:  # RAN and subtract: what the fusion changes, the attention over training
        figures["fusion_changes.png"] = plot_fusion_changes(metrics["fusion_changes"])
        figures["attention_over_training.png"] = plot_attention_over_training(run_dir / "log.csv")
    for i in range(min(samples, len(val_set))):
        image, mask = val_set[i]
        prediction = predict_logits(model, image[None].to(device)).argmax(1)[0].cpu()  # (H, W)
        figures[f"predictions_{i}.png"] = plot_segmentation(image, mask, prediction, class_names)
    paths = []
    for name, fig in figures.items():
        fig.savefig(run_dir / name, dpi=100, bbox_inches="tight")
        paths.append(run_dir / name)
    return paths
