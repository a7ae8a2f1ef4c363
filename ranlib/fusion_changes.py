"""What the fusion changes: the pixels where RAN's fused prediction differs from its original branch's.

RAN predicts ``argmax(fused)`` with ``fused = original + attention * reverse``. Wherever ``argmax(fused)`` equals
``argmax(original)`` the reverse branch had no effect on the prediction, however large the attention. This
module counts the pixels where the two predictions differ, per region of the ground truth (bands from
``ranlib.data``, Chebyshev width ``width``, default 4 px):

- ``mixed_boundary``: ``mixed_boundary_band``, where two different object classes meet (where RAN should help);
- ``other_boundary``: the rest of ``boundary_band`` (object against background);
- ``interior``: every other labelled pixel;

and splits the changed pixels into **fixed** (original wrong, fused right), **broken** (original right, fused
wrong) and **still wrong** (both wrong, different classes). ``fixed - broken`` is exactly what the fusion adds
to the pixel accuracy of the region. Pixels labelled ``ignore_index`` (255) are not counted.

``FusionChanges`` accumulates the counts batch by batch (like ``ranlib.metrics.ConfusionMatrix``; under DDP
``reduce_from_all_processes()`` sums them, a no-op otherwise); ``compute()`` returns plain numbers for
``metrics.json`` and ``format_fusion_changes`` a text table. The figure is ``ranlib.viz.plot_fusion_changes``.
"""

from __future__ import annotations

import torch

from ranlib.data.bands import IGNORE_INDEX, boundary_band, mixed_boundary_band
from ranlib.distributed import all_reduce_sum

REGIONS = ("mixed_boundary", "other_boundary", "interior")
COUNTS = ("pixels", "original_right", "fused_right", "fixed", "broken", "still_wrong")


class FusionChanges:
    """Counts of changed predictions, per region, over batches of (original logits, fused logits, labels)."""

    def __init__(self, width: int = 4, ignore_index: int = IGNORE_INDEX, device: torch.device | str = "cpu"):
        self.width, self.ignore_index = width, ignore_index
        self.counts = torch.zeros(len(REGIONS), len(COUNTS), dtype=torch.int64, device=device)  # (region, count)

    def update(self, original: torch.Tensor, fused: torch.Tensor, target: torch.Tensor,
               mixed: torch.Tensor | None = None, boundary: torch.Tensor | None = None) -> None:
        """One batch: ``original`` and ``fused`` class scores (B, K, H, W) (logits or probabilities, at the
        labels' resolution) and ``target`` labels (B, H, W). ``mixed`` and ``boundary``: the target's bands at
        this width when the caller has them already (they are computed otherwise)."""
        if original.shape != fused.shape or original.shape[-2:] != target.shape[-2:]:
            raise ValueError(f"original {tuple(original.shape)} and fused {tuple(fused.shape)} scores must share "
                             f"one shape (B, K, H, W) with the labels' (H, W) = {tuple(target.shape[-2:])}")
        target = target.to(original.device)
        before, after = original.argmax(1), fused.argmax(1)  # (B, H, W)
        labelled = target != self.ignore_index
        if mixed is None:
            mixed = mixed_boundary_band(target, self.width, self.ignore_index)
        if boundary is None:
            boundary = boundary_band(target, self.width, self.ignore_index)
        regions = (mixed, boundary & ~mixed, ~boundary)
        flips = class_flips(before, after, target, self.ignore_index)
        still_wrong = flips["changed"] & ~flips["fixed"] & ~flips["broken"]
        kinds = (labelled, before == target, after == target, flips["fixed"], flips["broken"],
                 still_wrong)  # in the order of COUNTS
        rows = [torch.stack([(where & labelled & kind).sum() for kind in kinds]) for where in regions]
        self.counts += torch.stack(rows).to(self.counts.device)

    def reset(self) -> None:
        self.counts.zero_()

    def reduce_from_all_processes(self) -> None:
        """Under DDP, sum the counts of every process; else a no-op."""
        all_reduce_sum(self.counts)

    def compute(self) -> dict:
        """``{"width": w, region: {count: int}}`` for each region and ``"all"`` (their sum), where the counts are
        ``pixels`` (labelled), ``original_right``, ``fused_right``, ``fixed``, ``broken``, ``still_wrong`` and
        ``changed`` (= fixed + broken + still wrong)."""
        result: dict = {"width": self.width}
        for name, row in zip((*REGIONS, "all"), [*self.counts, self.counts.sum(0)], strict=True):
            result[name] = dict(zip(COUNTS, row.tolist(), strict=True))
            result[name]["changed"] = result[name]["fixed"] + result[name]["broken"] + result[name]["still_wrong"]
        return result


def format_fusion_changes(result: dict) -> str:
    """A text table of ``FusionChanges.compute()``: per region the labelled pixels, and the changed, fixed,
    broken and still-wrong pixels as counts and as % of the region's pixels, with the net gain in accuracy."""
    header = f"{'region':<16}{'pixels':>10}{'changed':>16}{'fixed':>16}{'broken':>16}{'still wrong':>16}{'net':>9}"
    lines = [f"what the fusion changes: argmax(fused) != argmax(original), bands {result['width']} px",
             header, "-" * len(header)]
    for name in (*REGIONS, "all"):
        c = result[name]
        n = c["pixels"]

        def cell(k, n=n, c=c):
            return f"{c[k]:>8,} ({100 * c[k] / n:5.2f}%)" if n else f"{c[k]:>8,} (  -  )"

        net = f"{100 * (c['fixed'] - c['broken']) / n:+8.2f}%" if n else f"{'-':>9}"
        lines.append(f"{name.replace('_', ' '):<16}{n:>10,}{cell('changed'):>16}{cell('fixed'):>16}"
                     f"{cell('broken'):>16}{cell('still_wrong'):>16}{net}")
    return "\n".join(lines)


# --- Single pixels: where the fusion changed the class, and each class's scores there (notebook 08) ---

FLIPS = ("changed", "fixed", "broken")


def fusion_flips(original: torch.Tensor, fused: torch.Tensor, target: torch.Tensor,
                 ignore_index: int = IGNORE_INDEX) -> dict[str, torch.Tensor]:
    """Boolean masks (B, H, W) of the labelled pixels whose class the fusion changed.

    ``changed``: ``argmax(fused) != argmax(original)``; ``fixed``: the original branch wrong there and the fused
    output right; ``broken``: the original right and the fused wrong. ``changed & ~fixed & ~broken`` are the
    pixels where both are wrong (still wrong). Pixels labelled ``ignore_index`` are False in every mask. The
    counts of these masks per region are what ``FusionChanges`` accumulates.
    """
    return class_flips(original.argmax(1), fused.argmax(1), target, ignore_index)  # argmax: (B, H, W)


def class_flips(before: torch.Tensor, after: torch.Tensor, target: torch.Tensor,
                ignore_index: int = IGNORE_INDEX) -> dict[str, torch.Tensor]:
    """``fusion_flips`` from the predicted classes (B, H, W) before and after the fusion, not the scores."""
    labelled = target != ignore_index
    right_before, right_after = before == target, after == target
    return {"changed": (before != after) & labelled,
            "fixed": ~right_before & right_after & labelled,
            "broken": right_before & ~right_after & labelled}


def scores_at(output, pixel: tuple[int, int, int]) -> dict[str, torch.Tensor]:
    """Every class's scores at one pixel ``(b, y, x)`` of a ``RANOutput`` at image resolution (``predict``).

    Returns (K,) tensors ``original``, ``attention``, ``reverse``, ``added`` (= fused - original: what the fusion
    added to each class) and ``fused``. At feature resolution ``added`` is exactly attention * reverse; ``predict``
    upsamples each branch bilinearly, and the upsampled product differs a little from the product of the upsampled
    attention and reverse scores.
    """
    b, y, x = pixel
    if output.attention is None or output.reverse is None:
        raise ValueError("scores_at needs a RAN output (with reverse and attention branches): predict(ran, image)")
    at = {name: getattr(output, name)[b, :, y, x].float() for name in ("original", "attention", "reverse", "fused")}
    at["added"] = at["fused"] - at["original"]
    return at


def flip_reason(scores: dict[str, torch.Tensor]) -> str:
    """Why the class changed at a pixel of ``scores_at``: ``"raised"`` when the fusion added more to the new
    class than it took from the original winner, ``"lowered"`` otherwise (the original winner lost more)."""
    old, new = int(scores["original"].argmax()), int(scores["fused"].argmax())
    if old == new:
        raise ValueError("the fusion did not change the class at this pixel: pick one of fusion_flips()['changed']")
    gain, loss = float(scores["added"][new]), -float(scores["added"][old])
    return "raised" if gain >= loss else "lowered"


def format_scores_at(scores: dict[str, torch.Tensor], label: int, class_names: list[str] | None = None,
                     top: int = 3) -> str:
    """A text table of ``scores_at``: the label's class and the ``top`` classes of the original and of the fused
    scores, one row each (sorted by original score), with A = attention and A*F_rev = fused - original."""
    names = class_names or [f"class {k}" for k in range(len(scores["original"]))]
    old, new = int(scores["original"].argmax()), int(scores["fused"].argmax())
    rows = set(scores["original"].topk(top).indices.tolist()) | set(scores["fused"].topk(top).indices.tolist())
    if 0 <= label < len(names):
        rows.add(label)
    header = f"{'class':<14}{'F_org':>8}{'A':>8}{'F_rev':>8}{'A*F_rev':>9}{'fused':>8}"
    lines = [header, "-" * len(header)]
    for k in sorted(rows, key=lambda k: -float(scores["original"][k])):
        marks = [m for m, hit in (("label", k == label), ("original's class", k == old),
                                  ("fused class", k == new)) if hit]
        lines.append(f"{names[k]:<14}{scores['original'][k]:8.2f}{scores['attention'][k]:8.3f}"
                     f"{scores['reverse'][k]:8.2f}{scores['added'][k]:+9.2f}{scores['fused'][k]:8.2f}"
                     + (f"   <- {', '.join(marks)}" if marks else ""))
    label_name = names[label] if 0 <= label < len(names) else f"void ({label})"
    kind = "fixed" if new == label else "broken" if old == label else "still wrong"
    lines.append(f"label {label_name}: {names[old]} -> {names[new]} ({kind}); original margin "
                 f"{float(scores['original'][old] - scores['original'][new]):.2f}, "
                 f"the fusion added {float(scores['added'][new]):+.2f} to {names[new]} and "
                 f"{float(scores['added'][old]):+.2f} to {names[old]}")
    return "\n".join(lines)
