"""How far RAN's reverse attention opens and what the fusion changes: sums over batches, and training's columns.

RAN's attention is ``A = sigmoid(-original)`` per class (the seed's Formula 1): it opens (A > 0.5) only where the
original branch scores the class below zero, and only there can the reverse branch change the fused score.
Softmax does not see a logit offset shared by all classes, so nothing in the cross-entropy keeps the original
scores near zero; when they drift positive, A closes and the fused map stays close to the original one.

- ``AttentionTotals`` accumulates, per region (the ``width``-px mixed-boundary band and the other labelled
  pixels), how far A opens at the true and the other classes, the mean original score (that shared offset) and
  |fused - original| / |original|; ``ranlib.viz.attention_statistics`` runs it over a dataset and plots it.
- ``training_statistics`` condenses those sums and the fusion's fixed / broken pixel counts
  (``ranlib.fusion_changes``) on a few batches into ``TRAINING_KEYS``: the flat floats that training logs to
  log.csv and TensorBoard at every evaluation (``ranlib.viz.plot_attention_over_training`` draws them).

Only torch here (no plotting), so that training imports it cheaply.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ranlib.data.bands import IGNORE_INDEX, mixed_boundary_band
from ranlib.fusion_changes import FusionChanges
from ranlib.model import RANOutput

BIN_EDGES = np.linspace(-40.0, 40.0, 161)  # original scores outside are counted in the end bins
REGIONS = ("mixed boundary", "rest")
TOTALS = ("pixels", "attention_true", "attention_other", "open_true", "open_other", "change", "original",
          "original_sum")
# The columns training logs at every evaluation (``training_statistics``): stable names for log.csv and TensorBoard.
TRAINING_KEYS = ("attn_open_other_mixed", "attn_open_other_rest", "attn_original_mean", "attn_change_mixed",
                 "attn_change_rest", *(f"fusion_{kind}_{region}" for region in ("mixed", "other", "interior")
                                       for kind in ("fixed", "broken")))


class AttentionTotals:
    """The sums behind ``ranlib.viz.attention_statistics``, accumulated batch by batch.

    ``update(output, masks)`` takes a model's ``RANOutput`` at the masks' resolution (B, K, H, W) and the labels
    (B, H, W); the attention sums are skipped when the output has no attention (the subtract variant).
    ``compute()`` returns the dict described there (``nan`` where a region has no pixels
    or the model no attention); ``histogram=False`` leaves the histogram out (it copies the scores to the CPU).
    """

    def __init__(self, num_classes: int, width: int = 4, histogram: bool = True):
        self.num_classes, self.width, self.histogram = num_classes, width, histogram
        self.sums = {region: dict.fromkeys(TOTALS, 0.0) for region in REGIONS}
        self.hist = {"true": np.zeros(len(BIN_EDGES) - 1), "other": np.zeros(len(BIN_EDGES) - 1)}
        self.has_attention = True

    def update(self, output: RANOutput, masks: torch.Tensor) -> None:
        original = output.original.float()  # (B, K, H, W)
        attention = None if output.attention is None else output.attention.float()
        self.has_attention &= attention is not None
        masks = masks.to(original.device)
        change = (output.fused.float() - original).abs().sum(1)  # (B, H, W)
        size = original.abs().sum(1)
        offset = original.sum(1)  # K times the mean score over classes: the offset softmax does not see
        labelled = masks != IGNORE_INDEX
        k = original.shape[1]
        truth = torch.nn.functional.one_hot(masks.long().clamp(max=k - 1), k)
        truth = truth.permute(0, 3, 1, 2).bool()  # (B, K, H, W): the ground-truth class of each pixel
        band = mixed_boundary_band(masks, self.width)
        for region, where in zip(REGIONS, (band & labelled, ~band & labelled), strict=True):
            n = int(where.sum())
            if n == 0:
                continue
            total = self.sums[region]
            total["pixels"] += n
            total["change"] += float(change[where].sum())
            total["original"] += float(size[where].sum())
            total["original_sum"] += float(offset[where].sum())
            if attention is not None:
                at_true, at_other = truth & where[:, None], ~truth & where[:, None]
                total["attention_true"] += float(attention[at_true].sum())
                total["attention_other"] += float(attention[at_other].sum())
                total["open_true"] += float((attention[at_true] > 0.5).sum())
                total["open_other"] += float((attention[at_other] > 0.5).sum())
        if self.histogram:
            clip = (BIN_EDGES[0] + 1e-3, BIN_EDGES[-1] - 1e-3)
            scores = original.cpu().numpy().clip(*clip)
            truth, labelled = truth.cpu().numpy(), labelled[:, None].cpu().numpy()
            self.hist["true"] += np.histogram(scores[truth & labelled], BIN_EDGES)[0]
            self.hist["other"] += np.histogram(scores[~truth & labelled], BIN_EDGES)[0]

    def compute(self) -> dict:
        k = self.num_classes
        nan = float("nan")
        stats: dict = {"width": self.width, "num_classes": k}
        for region, total in self.sums.items():
            n = total["pixels"]
            others = n * (k - 1)
            seen = n > 0 and self.has_attention
            stats[region] = {"pixels": int(n),
                             "attention_true": total["attention_true"] / n if seen else nan,
                             "attention_other": total["attention_other"] / others if seen else nan,
                             "open_true": total["open_true"] / n if seen else nan,
                             "open_other": total["open_other"] / others if seen else nan,
                             "relative_change": total["change"] / total["original"] if n else nan,
                             "mean_original": total["original_sum"] / (n * k) if n else nan}
        if self.histogram:
            stats["histogram"] = {"edges": BIN_EDGES.tolist(), "true": self.hist["true"].tolist(),
                                  "other": self.hist["other"].tolist()}
        return stats


@torch.no_grad()
def training_statistics(model: nn.Module, batches, width: int = 4) -> dict[str, float]:
    """How far the attention opens and what the fusion changes, on a few batches: the columns training logs.

    model: a RAN of the "ran" or "subtract" variant (the attention columns are ``nan`` for subtract);
    batches: ``(images, masks)`` pairs, e.g. ``itertools.islice(val_loader, 4)``. Runs in eval mode and in
    float32 on the model's device, and puts the model back in the mode it was in. Returns ``TRAINING_KEYS``:

    - ``attn_open_other_mixed`` / ``_rest``: share of (pixel, non-target class) pairs with A > 0.5, in the
      ``width``-px mixed-boundary bands / the other labelled pixels;
    - ``attn_original_mean``: the mean original score over classes and labelled pixels (the shared offset);
    - ``attn_change_mixed`` / ``_rest``: sum |fused - original| / sum |original| over classes and pixels;
    - ``fusion_{fixed,broken}_{mixed,other,interior}``: pixel counts of ``ranlib.fusion_changes.FusionChanges``
      at the same width (mixed-boundary band, other boundary band, interior).
    """
    if model.conv_rev is None:
        raise ValueError("training statistics need a model with a reverse branch (variant 'ran' or 'subtract'), "
                         "not the baseline")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    totals = AttentionTotals(model.num_classes, width, histogram=False)
    changes = FusionChanges(width, device=device)
    for images, masks in batches:
        images, masks = images.to(device), masks.to(device)
        output = model(images).upsample(tuple(masks.shape[-2:]))
        totals.update(output, masks)
        changes.update(output.original, output.fused, masks)
    model.train(was_training)
    stats, counts = totals.compute(), changes.compute()
    mixed, rest = stats["mixed boundary"], stats["rest"]
    pixels = mixed["pixels"] + rest["pixels"]
    offset = (totals.sums["mixed boundary"]["original_sum"] + totals.sums["rest"]["original_sum"]) / (
        pixels * model.num_classes) if pixels else float("nan")
    row = {"attn_open_other_mixed": mixed["open_other"], "attn_open_other_rest": rest["open_other"],
           "attn_original_mean": offset, "attn_change_mixed": mixed["relative_change"],
           "attn_change_rest": rest["relative_change"]}
    for short, region in (("mixed", "mixed_boundary"), ("other", "other_boundary"), ("interior", "interior")):
        row[f"fusion_fixed_{short}"] = float(counts[region]["fixed"])
        row[f"fusion_broken_{short}"] = float(counts[region]["broken"])
    return {key: float(row[key]) for key in TRAINING_KEYS}
