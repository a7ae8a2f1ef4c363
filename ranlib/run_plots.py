"""The PNG plots of a run directory: loss curves, per-class IoU and sample predictions (drawn by ranlib.viz)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import torch

from ranlib import viz


def save_run_plots(run_dir: Path, model, val_set, metrics: dict, class_names: list[str], device,
                   samples: int = 3) -> list[Path]:
    """Write ``loss_curves.png``, ``per_class_iou.png`` and ``predictions_<i>.png`` into ``run_dir``, and for RAN and
    subtract models ``fusion_changes.png`` and ``attention_over_training.png``."""
    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        matplotlib.use("Agg")
    figures = {"loss_curves.png": viz.plot_training_curves(run_dir / "log.csv"),
               "per_class_iou.png": viz.plot_iou_bars({model.config.variant: metrics["iou"]}, class_names)}
    if "fusion_changes" in metrics:  # RAN and subtract: what the fusion changes, the attention over training
        figures["fusion_changes.png"] = viz.plot_fusion_changes(metrics["fusion_changes"])
        figures["attention_over_training.png"] = viz.plot_attention_over_training(run_dir / "log.csv")
    model.eval()
    with torch.no_grad():
        for i in range(min(samples, len(val_set))):
            image, mask = val_set[i]
            logits = model(image[None].to(device)).upsample(image.shape[-2:]).fused[0]
            figures[f"predictions_{i}.png"] = viz.plot_segmentation(
                image, mask, logits.argmax(0).cpu(), class_names)
    paths = []
    for name, fig in figures.items():
        fig.savefig(run_dir / name, dpi=100, bbox_inches="tight")
        paths.append(run_dir / name)
    return paths
