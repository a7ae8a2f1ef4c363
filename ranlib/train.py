"""The old home of ``fit``: training lives in ``ranlib.engine.train``. This alias keeps homework written against
``ranlib.train`` importing, with a ``DeprecationWarning`` that names the new home."""

import warnings

from ranlib.engine import train as _home

warnings.warn("ranlib.train moved to ranlib.engine.train (fit is also ranlib.fit); import it from there",
              DeprecationWarning, stacklevel=2)
__getattr__ = _home.__getattribute__  # every name of ranlib.engine.train, e.g. ranlib.train.fit
