"""FusionChanges: a hand-made case with hand-counted fixed / broken / still-wrong pixels per region."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ranlib.data import boundary_band, mixed_boundary_band
from ranlib.fusion_changes import FusionChanges, format_fusion_changes

# 7x10 labels: class 1 in rows 2-4, cols 2-4; class 2 beside it in cols 5-7; background around; one void pixel.
TRUTH = torch.zeros(7, 10, dtype=torch.long)
TRUTH[2:5, 2:5] = 1
TRUTH[2:5, 5:8] = 2
TRUTH[0, 0] = 255
# The regions at width 1, worked by hand (M mixed boundary, B other boundary, I interior): 10 M, 28 B, 32 I
# (31 of them labelled).
REGIONS = ["IIIIIIIIII",
           "IBBBMMBBBI",
           "IBBBMMBBBI",
           "IBBIMMIBBI",
           "IBBBMMBBBI",
           "IBBBMMBBBI",
           "IIIIIIIIII"]
# (row, col): (original prediction, fused prediction) where either differs from the truth.
CHANGES = {(2, 4): (2, 1), (3, 4): (2, 1), (2, 5): (1, 2),  # M: fixed 3
           (3, 5): (1, 0),  # M: wrong before and after, another class: still wrong
           (4, 5): (2, 1),  # M: broken
           (2, 2): (0, 1), (1, 1): (1, 0),  # B: fixed 2
           (2, 7): (2, 0),  # B: broken
           (0, 5): (0, 2), (3, 3): (1, 2),  # I: broken 2
           (6, 9): (1, 1),  # I: wrong, unchanged: not counted as a change
           (0, 0): (0, 1)}  # void: ignored


def _scores(labels: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Logits (1, K, H, W) whose argmax is ``labels``."""
    return F.one_hot(labels, k).permute(2, 0, 1)[None].float() * 5.0 - 1.0


def _predictions():
    original, fused = TRUTH.clamp(max=2).clone(), TRUTH.clamp(max=2).clone()
    original[0, 0] = fused[0, 0] = 0
    for (r, c), (o, f) in CHANGES.items():
        original[r, c], fused[r, c] = o, f
    return _scores(original), _scores(fused)


def test_the_hand_drawn_regions_are_the_bands():
    grid = torch.tensor([[".IBM".index(ch) for ch in row] for row in REGIONS])
    mixed, boundary = mixed_boundary_band(TRUTH, 1), boundary_band(TRUTH, 1)
    labelled = TRUTH != 255
    assert torch.equal(mixed, grid == 3)
    assert torch.equal((boundary & ~mixed)[labelled], (grid == 2)[labelled])
    assert torch.equal((~boundary)[labelled], (grid == 1)[labelled])


def test_fusion_changes_on_a_hand_made_case():
    original, fused = _predictions()
    changes = FusionChanges(width=1)
    changes.update(original, fused, TRUTH[None])
    result = changes.compute()
    assert result["width"] == 1
    assert result["mixed_boundary"] == {"pixels": 10, "original_right": 6, "fused_right": 8, "fixed": 3,
                                        "broken": 1, "still_wrong": 1, "changed": 5}
    assert result["other_boundary"] == {"pixels": 28, "original_right": 26, "fused_right": 27, "fixed": 2,
                                        "broken": 1, "still_wrong": 0, "changed": 3}
    assert result["interior"] == {"pixels": 31, "original_right": 30, "fused_right": 28, "fixed": 0,
                                  "broken": 2, "still_wrong": 0, "changed": 2}
    assert result["all"] == {"pixels": 69, "original_right": 62, "fused_right": 63, "fixed": 5, "broken": 4,
                             "still_wrong": 1, "changed": 10}

    changes.update(original.expand(2, -1, -1, -1), fused.expand(2, -1, -1, -1), TRUTH.expand(2, -1, -1))
    assert changes.compute()["mixed_boundary"]["fixed"] == 9  # three images counted in all
    before = changes.counts.clone()
    changes.reduce_from_all_processes()  # no-op without torch.distributed
    assert torch.equal(changes.counts, before)
    changes.reset()
    assert changes.compute()["all"]["pixels"] == 0
    changes.update(original, fused, TRUTH[None], mixed_boundary_band(TRUTH[None], 1), boundary_band(TRUTH[None], 1))
    assert changes.compute() == result  # bands passed in: the same counts


def test_fusion_changes_table():
    original, fused = _predictions()
    changes = FusionChanges(width=1)
    changes.update(original, fused, TRUTH[None])
    table = format_fusion_changes(changes.compute())
    lines = table.splitlines()
    assert "bands 1 px" in lines[0]
    mixed = next(line for line in lines if line.startswith("mixed boundary"))
    # 10 pixels; changed 5 (50 %), fixed 3 (30 %), broken 1 (10 %), still wrong 1 (10 %), net +20 %
    assert mixed.split() == ["mixed", "boundary", "10", "5", "(50.00%)", "3", "(30.00%)", "1", "(10.00%)", "1",
                             "(10.00%)", "+20.00%"]
    interior = next(line for line in lines if line.startswith("interior"))
    assert interior.split()[-1] == "-6.45%"  # (0 - 2) / 31
    empty = format_fusion_changes(FusionChanges().compute())
    assert "nan" not in empty and "(  -  )" in empty
