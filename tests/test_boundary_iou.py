"""Boundary IoU: the dilation d, a hand-worked mask, void pixels, and an independent erosion with scipy.ndimage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from ranlib.data.bands import fill_void
from ranlib.metrics import BoundaryIoU, boundary_dilation, label_boundary


@pytest.mark.parametrize(("size", "d"), [((8, 8), 1), ((10, 10), 1), ((128, 128), 4), ((512, 512), 14),
                                         ((300, 400), 10)])
def test_dilation_is_two_percent_of_the_diagonal_at_least_one_pixel(size, d):
    assert boundary_dilation(*size) == d


def _hand_masks():
    """8x8: ground truth with class 1 in rows 1-5, cols 1-4 and class 2 in cols 6-7 (touching the top, bottom
    and right image borders); the prediction has class 1 moved one column right. d = 1."""
    truth = torch.zeros(8, 8, dtype=torch.long)
    truth[1:6, 1:5] = 1
    truth[:, 6:] = 2
    prediction = torch.zeros(8, 8, dtype=torch.long)
    prediction[1:6, 2:6] = 1
    prediction[:, 6:] = 2
    return truth, prediction


def test_boundaries_of_the_hand_worked_mask():
    truth, _ = _hand_masks()
    ring = torch.zeros(8, 8, dtype=torch.bool)
    ring[1:6, 1:5] = True
    ring[2:5, 2:4] = False  # the 5x4 rectangle minus its 3x2 erosion: 14 pixels
    boundary = label_boundary(truth, 1)
    assert torch.equal(boundary & (truth == 1), ring)
    strip = torch.zeros(8, 8, dtype=torch.bool)
    strip[:, 6] = True  # against the background only: the image border is not a boundary
    assert torch.equal(boundary & (truth == 2), strip)
    assert int((boundary & (truth == 0)).sum()) == 23  # all 28 background pixels but row 7, cols 0-4


def test_boundary_iou_of_the_hand_worked_mask():
    truth, prediction = _hand_masks()
    metric = BoundaryIoU(3)
    metric.update(prediction, truth)
    # class 1: rows 1 and 5 share cols 2-4 (3 + 3 of 5 + 5), rows 2-4 share nothing (cols {1, 4} vs {2, 5}).
    # class 0: ground-truth boundary 23 px, predicted 16 px, shared 11 (row 0 and row 6, cols 1-5, and (7, 5)).
    assert metric.intersection.tolist() == [11, 6, 8]
    assert metric.union.tolist() == [28, 22, 8]
    result = metric.compute()
    assert result["iou"] == pytest.approx([11 / 28, 3 / 11, 1.0])
    assert result["miou"] == pytest.approx((11 / 28 + 3 / 11 + 1) / 3)
    metric.update(prediction[None], truth[None])  # a second batch of the same: twice the counts, same IoU
    assert metric.union.tolist() == [56, 44, 16] and metric.compute()["iou"] == pytest.approx(result["iou"])
    before = metric.union.clone()
    metric.reduce_from_all_processes()  # no-op without torch.distributed
    assert torch.equal(metric.union, before)


def test_void_pixels_take_a_neighbouring_label_and_are_not_counted():
    # 6x6, d = 2: class 1 in cols 0-1, a 2-px void border in cols 2-3, background in cols 4-5. The void's left
    # column joins class 1 and its right column the background, so the ground-truth boundaries are cols 1-2
    # (class 1) and 3-4 (background), of which cols 1 and 4 are labelled. The prediction ends class 1 at col 1:
    # its boundaries are cols 0-1 (class 1) and cols 2-3 (background, all void).
    truth = torch.zeros(6, 6, dtype=torch.long)
    truth[:, :2] = 1
    truth[:, 2:4] = 255
    prediction = torch.zeros(6, 6, dtype=torch.long)
    prediction[:, :2] = 1
    metric = BoundaryIoU(2, dilation_ratio=0.25)  # 0.25 * sqrt(72) = 2.1 -> d = 2
    metric.update(prediction, truth)
    assert metric.intersection.tolist() == [0, 6] and metric.union.tolist() == [6, 12]
    assert metric.compute()["iou"] == pytest.approx([0.0, 0.5])
    empty = BoundaryIoU(3)
    empty.update(torch.zeros(1, 8, 8, dtype=torch.long), torch.zeros(1, 8, 8, dtype=torch.long))
    result = empty.compute()  # no boundary anywhere: nan for every class
    assert all(math.isnan(v) for v in result["iou"]) and math.isnan(result["miou"])


def _scipy_boundary(mask: np.ndarray, d: int) -> np.ndarray:
    """The reference definition: mask minus its erosion by a 3x3 square d times, outside the image = inside."""
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), iterations=d, border_value=1)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_label_boundary_matches_scipy_erosion_class_by_class(d):
    g = np.random.default_rng(d)
    labels = ndimage.zoom(g.integers(0, 4, (3, 6, 7)), (1, 5, 5), order=0)  # (3, 30, 35) blobs touching the border
    labels[0, 10:12] = 255
    got = label_boundary(torch.from_numpy(labels), d).numpy()
    for c in (0, 1, 2, 3, 255):
        for image, boundary in zip(labels, got, strict=True):
            assert np.array_equal(boundary & (image == c), _scipy_boundary(image == c, d))


def test_boundary_iou_matches_scipy_on_random_label_maps():
    g = np.random.default_rng(0)
    k = 4
    truth = ndimage.zoom(g.integers(0, k, (2, 8, 8)), (1, 16, 16), order=0)  # (2, 128, 128): d = 4
    truth[0, 40:44, :] = 255  # a void stripe and void specks
    truth[g.random(truth.shape) < 0.01] = 255
    prediction = np.where(g.random(truth.shape) < 0.9, np.roll(truth, 3, axis=2), g.integers(0, k, truth.shape))
    prediction[prediction == 255] = 0
    metric = BoundaryIoU(k)
    metric.update(torch.from_numpy(prediction), torch.from_numpy(truth))
    metric.update(torch.from_numpy(prediction[:1]), torch.from_numpy(truth[:1]))  # accumulate over batches

    d = 4
    filled = fill_void(torch.from_numpy(truth)).numpy()
    inter, union = np.zeros(k), np.zeros(k)
    for b in (0, 1, 0):
        labelled = truth[b] != 255
        for c in range(k):
            gt = _scipy_boundary(filled[b] == c, d) & labelled
            pr = _scipy_boundary(prediction[b] == c, d) & labelled
            inter[c] += (gt & pr).sum()
            union[c] += (gt | pr).sum()
    assert metric.intersection.tolist() == inter.tolist() and metric.union.tolist() == union.tolist()
    assert metric.compute()["iou"] == pytest.approx((inter / union).tolist())
