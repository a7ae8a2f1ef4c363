"""Notebook 01's exercise: the boundary band and the mixed-boundary band, written with max-pooling.

``check_bands(my_bands)`` compares ``my_bands(mask, width) -> (boundary, mixed)`` with
``ranlib.data.boundary_band`` and ``ranlib.data.mixed_boundary_band`` on hand-made masks of two sizes, with
touching objects, an object that only meets background, void (255) borders and absent classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ranlib.data import boundary_band, mixed_boundary_band
from ranlib.data.bands import fill_void
from ranlib.exercises._check import call, check_unchanged, close, describe, fail, guarded, likely, passed


def probe_masks() -> list[torch.Tensor]:
    """Two masks (40x40 and 23x31): objects 1 and 2 touch, object 3 meets only background, 255 borders."""
    a = torch.zeros(40, 40, dtype=torch.long)
    a[5:25, 5:20] = 1
    a[10:30, 20:32] = 2  # touches object 1 along x = 20
    a[32:38, 2:10] = 3  # only background around it
    a[4, 5:20] = 255  # a void border on top of object 1
    a[10:30, 19] = 255  # and between objects 1 and 2
    b = torch.zeros(23, 31, dtype=torch.long)
    b[:, 12:] = 4  # classes 1-3 absent here
    b[8:15, 20:31] = 1  # object 1 inside object 4, up to the image edge
    b[0, :] = 255
    return [a, b]


def voc_like_mask() -> torch.Tensor:
    """A 30x30 mask with VOC's high labels (7, 15, 20) touching, so that no constant below 21 passes for
    "larger than every label", and a void border."""
    m = torch.zeros(30, 30, dtype=torch.long)
    m[3:15, 3:15] = 7
    m[3:15, 15:27] = 20  # touches 7 along x = 15
    m[15:27, 8:22] = 15  # touches both from below
    m[15, 8:22] = 255
    return m


def _bands(mask: torch.Tensor, width: int, window: int | None = None, fill: bool = True, void: bool = True,
           one_sided: bool = False, strict: bool = True, big: float = 1e9, unsigned_min: bool = False):
    # the solution with knobs, to reproduce plausible mistakes
    window = 2 * width + 1 if window is None else window
    labels = (fill_void(mask[None])[0] if fill else mask).float()

    def window_max(x):
        return F.max_pool2d(x[None, None], window, stride=1, padding=window // 2)[0, 0]

    low_side = labels if one_sided else window_max(-labels) if unsigned_min else -window_max(-labels)
    boundary = (window_max(labels) != low_side) | ((mask == 255) if void else False)
    high, low = torch.where(labels > 0, labels, -1.0), torch.where(labels > 0, labels, big)
    low_side = torch.where(labels > 0, labels, -1.0) if one_sided else -window_max(-low)
    mixed = window_max(high) > low_side if strict else window_max(high) >= -window_max(-low)
    return boundary, mixed


@guarded
def check_bands(fn) -> None:
    """Check ``fn(mask, width) -> (boundary band, mixed-boundary band)``, both bool (H, W)."""
    name = "my_bands"
    for i, mask in enumerate([*probe_masks(), voc_like_mask()]):
        for width in (1, 2, 4):
            given = mask.clone()
            result = call(fn, given, width, name=name)
            check_unchanged(name, given, mask)
            if not (isinstance(result, (tuple, list)) and len(result) == 2):
                fail(f"{name} should return two tensors (boundary, mixed), got {describe(result)}")
            reference = boundary_band(mask, width), mixed_boundary_band(mask, width)
            where = f"mask {i} ({mask.shape[0]}x{mask.shape[1]}), width {width}"
            for k, ours in enumerate(result):
                _check_band(k, ours, reference, mask, width, where)
    passed("my_bands: both bands equal to ranlib.data's at widths 1, 2, 4 on three masks (void borders, "
           "absent classes, labels up to 20)")


def _check_band(k: int, ours, reference: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, width: int,
                where: str) -> None:
    """Band ``k`` (0: boundary, 1: mixed) of the student's answer against ``reference[k]``."""
    band, theirs = ("boundary", "mixed")[k], reference[k]
    if not isinstance(ours, torch.Tensor) or ours.shape != theirs.shape:
        shape, right = tuple(getattr(ours, "shape", ())), tuple(theirs.shape)
        hint = ("H and W swapped (a transpose, or shape[::-1]): keep (H, W)" if shape == right[::-1] else
                "an even window (2w): the window is 2w+1 pixels with padding w"
                if shape == tuple(s + 1 for s in right) else None)
        fail(f"{band} band, {where}: expected {describe(theirs)}, got {describe(ours)}{likely(hint)}")
    if ours.dtype != torch.bool:
        fail(f"{band} band, {where}: dtype bool expected (True inside the band), got {ours.dtype}")
    if torch.equal(ours, theirs):
        return
    extra, missing = int((ours & ~theirs).sum()), int((theirs & ~ours).sum())
    mistake = next((m for m, value in _band_mistakes(k, ours, reference, mask, width).items() if close(ours, value)),
                   None)
    fail(f"{band} band, {where}: {extra} pixels too many and {missing} missing" + likely(mistake))


def _band_mistakes(k: int, ours: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor,
                   width: int) -> dict[str, torch.Tensor]:
    """What plausible mistakes give for band ``k`` (0: boundary, 1: mixed): {mistake: band}; the first match wins."""
    wide, narrow = _bands(mask, width, window=2 * width + 3), _bands(mask, width, window=2 * width - 1)
    if k == 0:
        mistakes = {"boundary and mixed bands swapped: return (boundary, mixed)": reference[1],
                    "the void pixels themselves are missing: OR the band with (mask == 255)":
                        _bands(mask, width, void=False)[0]}
    else:
        mistakes = {"background boundaries counted: in the mixed band background must never be the largest or the "
                    "smallest label": boundary_band(mask, width),
                    "background boundaries counted (void left out): background must never be the largest or the "
                    "smallest label": _bands(mask, width, void=False)[0]}
    mistakes |= {
        "band one pixel too wide: the window is 2w+1 pixels (padding w), not 2w+3": wide[k],
        "band one pixel too narrow: the window is 2w+1 pixels (padding w), not 2w-1": narrow[k],
        "void pixels were not filled first: call fill_void(mask[None])[0] before pooling":
            _bands(mask, width, fill=False)[k],
        "only one side of the boundary: compare the window's max with the window's min (-max_pool(-x)), "
        "not with the pixel's own label": _bands(mask, width, one_sided=True)[k],
    }
    if mask.shape[0] == mask.shape[1]:
        mistakes["H and W swapped (a transpose): keep the mask's (H, W)"] = reference[k].T
    if k == 0:
        mistakes["the window's minimum is -window_max(-x): the minus in front of window_max is missing"] = \
            _bands(mask, width, unsigned_min=True)[0]
        return mistakes
    mistakes[">= instead of >: a pixel is mixed where two different objects meet, max > min"] = \
        _bands(mask, width, strict=False)[1]
    filled = fill_void(mask[None])[0]
    top = F.max_pool2d(torch.where(filled > 0, filled.float(), -1.0)[None, None], 2 * width + 1, stride=1,
                       padding=width)[0, 0]
    bottom = -F.max_pool2d(-torch.where(filled > 0, filled.float(), 1e9)[None, None], 2 * width + 1, stride=1,
                           padding=width)[0, 0]
    mistakes["max != min: a window of background alone has max -1 and min the large value, which differ too; a "
             "pixel is mixed where max > min"] = top != bottom
    labels_max = int(filled.max())
    if any(close(ours, _bands(mask, width, big=float(big))[1]) for big in range(1, labels_max)):
        # before the hints that share its symptom
        mistakes = {"background given a fixed stand-in value for the minimum that some labels exceed (here up to "
                    f"{labels_max}): use a value above every label, e.g. float('inf')": ours} | mistakes
    return mistakes
