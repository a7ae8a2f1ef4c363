"""VOC's label colour map, used to write palette PNG masks the way the VOC devkit does (``labelcolormap.m``).

Label ``k``'s bits 0, 1, 2 go to the top bits of R, G, B, bits 3, 4, 5 to the next ones, and so on: 0 is black,
1 dark red (128, 0, 0), 255 (void) cream (224, 224, 192). ``ranlib.viz.palette`` draws figures with the same map.
"""

from __future__ import annotations


def voc_palette() -> list[int]:
    """VOC's colour map for labels 0..255, flattened ``[r0, g0, b0, r1, …]`` for ``PIL.Image.putpalette``."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette
