"""What a label mask's values mean: ``0..K-1`` are classes, ``IGNORE_INDEX`` (255) is void.

VOC marks the outline of every object, and pixels its annotators could not decide, with 255 ("void"); SBD's
converted masks and the embedded mixed-boundary dataset do the same. Every part of ranlib reads this one constant:
the losses skip void pixels, the metrics do not count them, the training transforms pad masks with them, and the
boundary bands treat them as boundary, not as a class.
"""

IGNORE_INDEX = 255
