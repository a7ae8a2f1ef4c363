"""How ranlib's plotting functions make the figures they return.

Every plotting function returns a matplotlib ``Figure`` and never calls ``plt.show()``: in a notebook a
figure left as a cell's value shows itself, elsewhere ``fig.savefig(path)`` writes it. The figure is made
by pyplot, so that matplotlib's backend is loaded (in Jupyter that is what teaches IPython to draw figures
as images), and then closed in pyplot at once: pyplot forgets it, so it is not drawn a second time at the
end of the cell and figures made in a loop do not pile up in memory.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty Figure with constrained layout that pyplot does not keep track of."""
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig
