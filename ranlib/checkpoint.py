"""The old home of the checkpoint helpers, now ``ranlib.engine.checkpoint`` (``load_checkpoint`` is also
``ranlib.load_checkpoint``); importing this alias warns with the new home."""

import warnings

from ranlib.engine import checkpoint as _home

warnings.warn("ranlib.checkpoint moved to ranlib.engine.checkpoint; import it from there", DeprecationWarning,
              stacklevel=2)
__getattr__ = _home.__getattribute__
