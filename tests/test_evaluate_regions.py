"""ranlib.evaluate.evaluate_regions (the one evaluation in pixel sets: all, boundary band, mixed band, interiors)
and evaluate's band mIoUs checked against counts made by hand with numpy, and read_scores against a hand-written
run directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ranlib.data.bands import boundary_band, mixed_boundary_band
from ranlib.evaluate import REGIONS, evaluate, evaluate_regions, read_scores
from ranlib.model import RANOutput

K = 4  # background and three object classes


class Oracle(nn.Module):
    """A model that predicts the label map written in its image's first channel (as one-hot logits)."""

    num_classes = K

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # predict reads the device of the model's parameters

    def forward(self, images: torch.Tensor) -> RANOutput:
        logits = nn.functional.one_hot(images[:, 0].round().long(), K).permute(0, 3, 1, 2).float()  # (B, K, H, W)
        return RANOutput(logits, None, None, logits + self.anchor)


def scenes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two 24x24 scenes: objects 1 and 2 side by side (a mixed boundary) and object 3 alone on background, a void
    row; and predictions that get part of object 2 wrong (as 1) and part of the background wrong (as 3)."""
    masks = torch.zeros(2, 24, 24, dtype=torch.long)
    masks[0, 4:20, 2:12], masks[0, 4:20, 12:22] = 1, 2
    masks[1, 6:18, 6:18] = 3
    masks[1, 0, :] = 255
    predictions = masks.clone()
    predictions[0, 4:20, 12:15] = 1  # the mixed boundary moved 3 px into object 2
    predictions[1, 18:21, 6:18] = 3  # object 3 grown 3 px into the background
    predictions[predictions == 255] = 0
    images = predictions[:, None].float().expand(-1, 3, -1, -1).clone()  # the Oracle reads channel 0
    return images, masks, predictions


def by_hand(prediction: np.ndarray, mask: np.ndarray, keep: np.ndarray) -> dict:
    """IoU per class, object mIoU, pixels and pixel accuracy over the labelled pixels where ``keep``."""
    keep = keep & (mask != 255)
    p, t = prediction[keep], mask[keep]
    iou, present = [], []
    for c in range(K):
        union = ((p == c) | (t == c)).sum()
        iou.append(((p == c) & (t == c)).sum() / union if union else float("nan"))
        present.append(bool((t == c).any()))
    objects = [iou[c] for c in range(1, K) if present[c]]
    return {"iou": iou, "present": present, "pixels": int(keep.sum()), "pixel_acc": float((p == t).mean()),
            "object_miou": float(np.mean(objects))}


@pytest.mark.parametrize("width", [1, 3])
def test_every_region_matches_counts_by_hand(width, one_thread):
    images, masks, predictions = scenes()
    regions = evaluate_regions(Oracle(), TensorDataset(images, masks), width, batch_size=2)
    assert set(regions) == set(REGIONS)
    boundary = boundary_band(masks, width).numpy()
    keeps = {"all": np.ones_like(boundary), "boundary": boundary,
             "mixed": mixed_boundary_band(masks, width).numpy(), "interior": ~boundary}
    for name, keep in keeps.items():
        expected, got = by_hand(predictions.numpy(), masks.numpy(), keep), regions[name]
        assert got["pixels"] == expected["pixels"] > 0, name
        assert got["present"] == expected["present"], name
        assert got["iou"] == pytest.approx(expected["iou"], nan_ok=True), name
        assert got["object_miou"] == pytest.approx(expected["object_miou"]), name
        assert got["pixel_acc"] == pytest.approx(expected["pixel_acc"]), name
        assert int(got["confusion"].sum()) == got["pixels"]
    assert regions["boundary"]["pixels"] + regions["interior"]["pixels"] == regions["all"]["pixels"]
    assert regions["mixed"]["present"][1:] == [True, True, False]  # only objects 1 and 2 meet
    assert regions["mixed"]["object_miou"] < regions["interior"]["object_miou"]  # the error sits at the boundary


def test_evaluate_band_mious_match_counts_by_hand(one_thread):
    """evaluate's overall, boundary-band and mixed-band mIoU at each width: the mean of the defined IoUs of the
    pixels counted by hand; evaluate_regions gives the same figures for its band."""
    images, masks, predictions = scenes()
    metrics = evaluate(Oracle(), [(images[:1], masks[:1]), (images[1:], masks[1:])], K, torch.device("cpu"),
                       band_widths=(1, 3))
    assert list(metrics["boundary_miou"]) == list(metrics["mixed_miou"]) == [1, 3]

    def miou(keep):
        return float(np.nanmean(by_hand(predictions.numpy(), masks.numpy(), keep)["iou"]))
    assert metrics["miou"] == pytest.approx(miou(np.ones(masks.shape, dtype=bool)))
    for width in (1, 3):
        boundary = boundary_band(masks, width).numpy()
        mixed = mixed_boundary_band(masks, width).numpy()
        assert metrics["boundary_miou"][width] == pytest.approx(miou(boundary))
        assert metrics["mixed_miou"][width] == pytest.approx(miou(mixed))
        regions = evaluate_regions(Oracle(), TensorDataset(images, masks), width, batch_size=2)
        assert regions["boundary"]["miou"] == metrics["boundary_miou"][width]
        assert regions["mixed"]["miou"] == metrics["mixed_miou"][width]
    assert metrics["boundary_miou"][1] != metrics["boundary_miou"][3]  # the widths are told apart


def test_a_loader_and_the_dataset_in_any_batch_size_give_the_same_counts(one_thread):
    images, masks, _ = scenes()
    dataset = TensorDataset(images, masks)
    one = evaluate_regions(Oracle(), dataset, 2, batch_size=1)
    loader = evaluate_regions(Oracle(), torch.utils.data.DataLoader(dataset, batch_size=2), 2)
    for name in REGIONS:
        assert torch.equal(one[name]["confusion"], loader[name]["confusion"])


def test_read_scores_reads_metrics_and_the_median_training_speed(tmp_path):
    metrics = {"miou": 0.5, "boundary_miou": {"2": 0.3, "4": 0.4}, "mixed_miou": {"2": 0.1, "4": 0.25}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    scores = read_scores(tmp_path)
    assert scores["miou"] == 50 and scores["boundary"] == 40 and scores["mixed"] == 25
    assert np.isnan(scores["images_per_s"])  # no log.csv
    (tmp_path / "log.csv").write_text("iteration,images_per_s,val_miou\n10,30.0,\n20,,0.4\n30,10.0,\n40,20.0,\n")
    assert read_scores(tmp_path, width=2) == {"miou": 50, "boundary": 30, "mixed": 10, "images_per_s": 20.0}
