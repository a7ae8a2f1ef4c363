"""The run's logs: ``log.csv`` and TensorBoard events with the loss parts, learning rate and evaluation metrics.

Training rows carry ``loss`` and ``loss_original|reverse|fused`` (the terms of ``RANLoss``), ``lr`` (the
backbone's; the heads run at ``head_lr_mult`` times it), ``images_per_s``, and the step's size
(``ranlib.step_size``): ``grad_f_original|reverse|fused|total``, the L2 norm of the gradient each weighted loss
term (and their sum) sends into the backbone's features, and ``backbone_update``, the L2 norm of the backbone's
parameter change in that step; evaluation rows carry the
``val_*`` columns, with band metrics at 4 px, and for models with a reverse branch the ``attn_*`` / ``fusion_*``
columns of ``ranlib.attention_stats.training_statistics`` (how far the attention opens, what the fusion fixes and
breaks). ``ranlib.viz.plot_training_curves`` draws the losses and ``val_*`` columns of this file,
``ranlib.viz.plot_attention_over_training`` the ``attn_*`` / ``fusion_*`` ones.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ranlib.attention_stats import TRAINING_KEYS

LOG_COLUMNS = ("iteration", "epoch", "loss", "loss_original", "loss_reverse", "loss_fused", "lr", "images_per_s",
               "grad_f_original", "grad_f_reverse", "grad_f_fused", "grad_f_total", "backbone_update",
               "val_miou", "val_pixel_acc", "val_boundary_miou", "val_mixed_miou", "val_boundary_iou", *TRAINING_KEYS)


class RunLog:
    """log.csv and TensorBoard, written by rank 0 only; a resumed run drops rows past its checkpoint, and a run
    that starts from iteration 0 drops what an earlier attempt (one that failed before its first checkpoint) left."""

    def __init__(self, run_dir: Path, start: int, enabled: bool):
        self.enabled = enabled
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.path = run_dir / "log.csv"
        rows = []
        if self.path.exists() and start > 0:
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= start]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        if start == 0:
            for stale in (run_dir / "tb").glob("events.out.tfevents.*"):
                stale.unlink()
        self.tb = SummaryWriter(run_dir / "tb", purge_step=start if start > 0 else None)

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_COLUMNS).writerow(row)
        for key, value in row.items():
            if key != "iteration" and value not in ("", None):
                self.tb.add_scalar(key, value, row["iteration"])

    def close(self) -> None:
        if self.enabled:
            self.tb.close()


def eval_row(metrics: dict) -> dict:
    """The ``val_*`` columns of one evaluation (``ranlib.evaluate.evaluate`` output)."""
    return {"val_miou": metrics["miou"], "val_pixel_acc": metrics["pixel_acc"],
            "val_boundary_miou": metrics["boundary_miou"].get(4, ""),
            "val_mixed_miou": metrics["mixed_miou"].get(4, ""),
            "val_boundary_iou": metrics["boundary_iou"]["miou"] if "boundary_iou" in metrics else ""}

