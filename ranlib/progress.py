"""The progress bar every long loop in ranlib uses (one place to change how it renders).

``from ranlib.progress import tqdm`` gives tqdm's text bar everywhere, set up per place:

- in a terminal (scripts, the CLI): tqdm's defaults, a bar on stderr redrawn in place;
- in a notebook kernel (JupyterLab, Jupyter, Colab, nbclient/nbval): a text bar on stdout, redrawn at most once
  a second. JupyterLab and Colab draw the carriage returns in place, so the bar moves live; the saved output is
  plain text whose last state is the final one (e.g. ``40/40``), so an executed or reopened notebook reads well.

Why not tqdm's widget bar (``tqdm.auto`` in a notebook)? Its saved output is the widget's first state (a frozen
``0/40``) wherever the widget cannot be shown again: notebooks executed by nbclient, viewers such as GitHub,
and Colab when ipywidgets 8 is installed but its custom widget manager is not enabled (googlecolab/colabtools#3020,
#4525). A text bar needs no widget manager at all.
"""

from __future__ import annotations

import sys

from tqdm import tqdm as _tqdm

__all__ = ["tqdm", "in_notebook_kernel"]

NOTEBOOK_MININTERVAL = 1.0  # seconds between redraws in a notebook: each one is kept in the saved output
NOTEBOOK_NCOLS = 100  # a kernel has no terminal width to read; without it tqdm draws a 10-character bar


def in_notebook_kernel() -> bool:
    """True inside a Jupyter kernel (JupyterLab, Colab, nbclient), False in a terminal or a plain IPython shell."""
    ipython = sys.modules.get("IPython")  # not imported means not in a kernel: avoid importing it here
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in shell.config


class tqdm(_tqdm):
    """tqdm's text bar; in a notebook kernel it writes to stdout, redraws at most once a second and is 100 wide.

    A bar opened while another is running (evaluation inside training) shares the outer bar's line there and
    clears it when done: an output cell cannot move the cursor up, so tqdm's stacked bars would print raw
    ``ESC[A`` codes. Arguments given explicitly (``file=``, ``mininterval=``, ``ncols=``) win over these defaults.
    """

    def __init__(self, *args, **kwargs):
        if in_notebook_kernel():
            kwargs.setdefault("file", sys.stdout)
            kwargs.setdefault("mininterval", NOTEBOOK_MININTERVAL)
            kwargs.setdefault("ncols", NOTEBOOK_NCOLS)
            if any(bar is not self and not getattr(bar, "disable", True) for bar in list(self._instances)):
                kwargs.setdefault("position", 0)
                kwargs.setdefault("leave", False)
        super().__init__(*args, **kwargs)
