"""Boundary and mixed-boundary bands: hand-drawn masks, and scipy's chessboard distance as a reference."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from ranlib.data import boundary_band, mixed_boundary_band

V = 255


def test_boundary_band_hand_drawn():
    mask = torch.tensor([[0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 1, 1, 1],
                         [0, 0, 0, 1, 1, 1]])
    # Width 1 (Chebyshev): a pixel is in the band when its 3x3 neighbourhood holds another class.
    expected = torch.tensor([[0, 0, 0, 0, 0, 0],
                             [0, 0, 1, 1, 1, 1],
                             [0, 0, 1, 1, 1, 1],
                             [0, 0, 1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(boundary_band(mask, 1), expected)
    assert not boundary_band(mask, 0).any()


def test_void_pixels_are_boundary_not_a_class():
    mask = torch.tensor([[0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0],
                         [0, 0, V, 0, 0],
                         [0, 0, 0, 0, 0]])
    # The void pixel is filled from its neighbours (all background): no boundary, only the void pixel itself.
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[2, 2] = True
    assert torch.equal(boundary_band(mask, 1), expected)
    assert not mixed_boundary_band(mask, 2).any()


def test_mixed_band_hand_drawn_with_void_border_between_objects():
    # Two objects (1 and 2) separated by a 2-pixel void border, background all around, VOC style.
    mask = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0, 0],
                         [0, 1, 1, V, V, 2, 2, 0, 0],
                         [0, 1, 1, V, V, 2, 2, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    # Each void pixel takes a neighbour's label: column 3 touches object 1, column 4 object 2, so the
    # 1|2 boundary runs between columns 3 and 4. Width 1 reaches one row up and down, one column across.
    expected = torch.zeros(5, 9, dtype=torch.bool)
    expected[0:4, 3:5] = True
    assert torch.equal(mixed_boundary_band(mask, 1), expected)
    # Width 2 reaches columns 2..5 and rows 0..4.
    expected2 = torch.zeros(5, 9, dtype=torch.bool)
    expected2[0:5, 2:6] = True
    assert torch.equal(mixed_boundary_band(mask, 2), expected2)


def test_both_bands_widths_1_and_2_around_a_void_border():
    # Objects 1 (columns 2-3) and 2 (columns 6-7) on rows 2-3, a 2-pixel void border between them.
    mask = torch.zeros(7, 11, dtype=torch.long)
    mask[2:4, 2:4], mask[2:4, 4:6], mask[2:4, 6:8] = 1, V, 2
    # Filled from neighbours, column 4 becomes 1 and column 5 becomes 2: objects on rows 2-3, columns 2-7,
    # background around them. Any class boundary: the object's outline, reached from one pixel farther per width.
    expected = torch.zeros(7, 11, dtype=torch.bool)
    expected[1:5, 1:9] = True
    assert torch.equal(boundary_band(mask, 1), expected)
    expected[0:6, 0:10] = True
    assert torch.equal(boundary_band(mask, 2), expected)
    # The 1|2 boundary lies between columns 4 and 5: width 1 covers columns 4-5, rows 1-4; width 2 columns 3-6,
    # rows 0-5. Background/object pixels are not mixed.
    mixed = torch.zeros(7, 11, dtype=torch.bool)
    mixed[1:5, 4:6] = True
    assert torch.equal(mixed_boundary_band(mask, 1), mixed)
    mixed[0:6, 3:7] = True
    assert torch.equal(mixed_boundary_band(mask, 2), mixed)
    # A batch of two gives each mask's own bands.
    batch = torch.stack([mask, torch.zeros_like(mask)])  # (2, 7, 11)
    assert torch.equal(boundary_band(batch, 2), torch.stack([expected, torch.zeros_like(expected)]))
    assert torch.equal(mixed_boundary_band(batch, 2), torch.stack([mixed, torch.zeros_like(mixed)]))


def test_object_against_background_is_not_mixed():
    mask = torch.zeros(8, 8, dtype=torch.long)
    mask[2:6, 2:6] = 3
    assert boundary_band(mask, 1).any()
    assert not mixed_boundary_band(mask, 3).any()


def _reference_band(mask: np.ndarray, width: int, skip_background: bool) -> np.ndarray:
    """Classes within Chebyshev ``width`` of each pixel, by scipy's chessboard distance transform."""
    counts = np.zeros(mask.shape, int)
    for c in np.unique(mask):
        if skip_background and c == 0:
            continue
        counts += ndimage.distance_transform_cdt(mask != c, metric="chessboard") <= width
    return counts >= 2


@pytest.mark.parametrize("width", [1, 2, 4])
def test_bands_match_scipy_distance_batched(width):
    rng = np.random.default_rng(width)
    masks = []
    for _ in range(3):
        coarse = rng.integers(0, 4, (4, 5))
        masks.append(np.kron(coarse, np.ones((6, 5), int)))  # (24, 25) blocks of classes 0..3
    batch = torch.from_numpy(np.stack(masks))  # (3, 24, 25)
    got_any, got_mixed = boundary_band(batch, width), mixed_boundary_band(batch, width)
    assert got_any.shape == batch.shape and got_any.dtype == torch.bool
    for i, m in enumerate(masks):
        np.testing.assert_array_equal(got_any[i].numpy(), _reference_band(m, width, False))
        np.testing.assert_array_equal(got_mixed[i].numpy(), _reference_band(m, width, True))
        assert torch.equal(mixed_boundary_band(batch[i], width), got_mixed[i])
        assert torch.equal(boundary_band(batch[i], width), got_any[i])


def test_a_cached_band_equals_a_fresh_one_and_follows_its_mask(monkeypatch):
    from ranlib.data import bands

    monkeypatch.setattr(bands, "_CACHE", bands._BandCache(64 * 2**20))
    mask = torch.zeros(2, 16, 16, dtype=torch.long)
    mask[:, 4:12, 2:8], mask[:, 4:12, 8:14], mask[0, 0, :] = 1, 2, 255
    first = mixed_boundary_band(mask, 2)
    first[:] = False  # a caller editing its band must not edit what the next caller gets
    again = mixed_boundary_band(mask, 2)
    assert torch.equal(again, bands._draw_band(mask, 2, 255, True)) and again.any()
    assert torch.equal(boundary_band(mask, 1), bands._draw_band(mask, 1, 255, False))  # width and kind in the key
    mask[:, 4:12, 8:14] = 1  # the same tensor, other labels: no mixed boundary left
    assert not mixed_boundary_band(mask, 2).any()


def test_the_band_cache_stays_under_its_size(monkeypatch):
    from ranlib.data import bands

    monkeypatch.setattr(bands, "_CACHE", bands._BandCache(3 * 16 * 16))
    for k in range(10):
        mask = torch.zeros(16, 16, dtype=torch.long)
        mask[k:, :] = 1
        boundary_band(mask, 1)
        assert bands._CACHE.bytes == sum(b.numel() for b in bands._CACHE.bands.values()) <= 3 * 16 * 16
    assert len(bands._CACHE.bands) == 3
