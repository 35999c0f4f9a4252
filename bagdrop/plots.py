"""The book's figure style and its recurring plots.

Figures have a white background and dark text, so they stay readable when the
rendered book is switched to its dark theme.
"""
from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["set_style", "band", "signals_by_class"]


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


def signals_by_class(x, y, per_class: int = 3, n_classes: int | None = None):
    """Small multiples of 1-D signals: one panel per class, ``per_class`` signals each.

    x: (N, L) signals; y: (N,) integer labels. Returns the figure.
    """
    import torch

    x, y = torch.as_tensor(x), torch.as_tensor(y)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, L), got {tuple(x.shape)}")
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    if per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class}")
    n_classes = int(y.max()) + 1 if n_classes is None else n_classes
    cols = min(n_classes, 5)
    rows = -(-n_classes // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 1.7 * rows), sharex=True, sharey=True,
                             squeeze=False)
    for c, ax in enumerate(axes.flat):
        if c >= n_classes:
            ax.set_visible(False)
            continue
        for signal in x[y == c][:per_class]:
            ax.plot(signal.numpy(), lw=1)
        ax.set_title(f"class {c}")
    for ax in axes[-1]:
        ax.set_xlabel("position")
    for ax in axes[:, 0]:
        ax.set_ylabel("value")
    fig.tight_layout()
    return fig
