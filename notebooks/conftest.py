"""Under pytest the notebooks run in quick mode, on one torch thread, unless asked otherwise.

``ranlib.course`` would pick colab mode on any machine with a GPU (a 3 GB download and hours of training inside
pytest); the tests must not change mode because of the hardware. The kernels that nbval starts inherit this
process's environment, so setting the default here reaches every notebook. ``RANLIB_MODE=colab pytest
notebooks ...`` (or ``RANLIB_QUICK=1``, the older switch) still chooses for itself.

``RANLIB_THREADS=1``: a kernel's torch threads are set by ``course.setup`` (``course.threads``); one thread keeps
the notebooks' numbers the same on every machine and keeps a kernel from collapsing beside another job. Runs that
two notebooks train side by side (``course.trained_models``) still use both cores, one process each.
"""

import os

from ranlib import settings

if settings.requested_mode() is None:
    os.environ[settings.MODE] = "quick"
os.environ.setdefault(settings.THREADS, "1")
