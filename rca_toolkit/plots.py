"""Matplotlib figures for result objects: ``plot_x(result, *, ax=None) -> Figure``.

No global state at import, no ``plt.show()``; figures are built on ``matplotlib.figure.Figure``
so they render headless in papermill and tests inspect their artists.
"""

from __future__ import annotations

from matplotlib.figure import Figure


def _figure_and_ax(ax=None, *, figsize=(10, 4)):
    """Use the caller's axes or make a fresh headless figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()
