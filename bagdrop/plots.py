"""The book's figure style and its recurring plots.

Figures have a white background and dark text, so they stay readable when the
rendered book is switched to its dark theme.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["set_style", "band"]


def set_style() -> None:
    """Apply the book's style: seaborn whitegrid, white figure background, readable sizes."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "figure.dpi": 100,
        "figure.figsize": (6.4, 3.6),
        "axes.titlesize": "medium",
        "legend.frameon": False,
    })


def band(ax: plt.Axes, x, runs, label: str | None = None, color=None, q: tuple[float, float] = (0.0, 1.0)):
    """Plot the mean of ``runs`` (S, X) against ``x`` (X,) with a band over the S runs.

    The band spans the quantiles ``q`` of the runs at each x (default min to max).
    Returns the line.
    """
    runs = np.asarray(runs, dtype=float)
    x = np.asarray(x)
    if runs.ndim != 2 or runs.shape[1] != len(x):
        raise ValueError(f"runs must have shape (S, {len(x)}), got {runs.shape}")
    (line,) = ax.plot(x, runs.mean(0), label=label, color=color)
    lo, hi = np.quantile(runs, q[0], axis=0), np.quantile(runs, q[1], axis=0)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    return line
