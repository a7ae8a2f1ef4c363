"""``DataError``: the one exception every dataset reader raises for a missing or malformed file.

Its own module so that each reader (``voc.py``, ``sbd.py``, ``mixed_boundary.py``, ``checks.py``) imports it
without importing another reader; ``python -m ranlib`` answers it with exit status 2 (bad input).
"""


class DataError(ValueError):
    """A dataset file is missing or malformed; the message names the file and the fix."""
