"""Under pytest the notebooks run in quick mode unless a mode is asked for explicitly.

``ranlib.course`` would pick colab mode on any machine with a GPU (a 3 GB download and hours of training inside
pytest); the tests must not change mode because of the hardware. The kernels that nbval starts inherit this
process's environment, so setting the default here reaches every notebook. ``RANLIB_MODE=colab pytest
notebooks ...`` (or ``RANLIB_QUICK=1``, the older switch) still chooses for itself.
"""

import os

if "RANLIB_MODE" not in os.environ and os.environ.get("RANLIB_QUICK") != "1":
    os.environ["RANLIB_MODE"] = "quick"
