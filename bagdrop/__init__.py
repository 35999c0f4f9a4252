"""bagdrop: the helper package of the book *Bagging vs Dropout*.

One module per idea of the book:

- :mod:`bagdrop.data`     data sets as a :class:`~bagdrop.data.Split` of tensors
- :mod:`bagdrop.models`   MLP and 1-D/2-D CNNs with the dropout kind as a parameter
- :mod:`bagdrop.train`    one seeded training loop for every chapter
- :mod:`bagdrop.bagging`  bootstrap indices and out-of-bag masks
- :mod:`bagdrop.dropout`  dropout from scratch, inference modes, exact mask averages, dropout ridge
- :mod:`bagdrop.ensemble` K members trained as one batched model
- :mod:`bagdrop.metrics`  error, NLL, confidence intervals, ensemble decompositions
- :mod:`bagdrop.regression` bias and variance over many independent training sets
- :mod:`bagdrop.spatial`  feature-map correlation, masks and what neighbours recover (spatial dropout)
- :mod:`bagdrop.plots`    the book's figure style

A notebook starts with ``import bagdrop as bd; device = bd.setup(seed=0)``.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

from . import bagging, data, dropout, ensemble, explorer, metrics, models, plots, regression, spatial, train  # noqa: F401

__all__ = ["setup", "seed_everything", "bagging", "data", "dropout", "ensemble", "explorer", "metrics", "models", "plots", "regression", "spatial", "train"]

#: Threads torch uses by default. The book's models are tiny: on a 2-core machine a
#: second thread gains at most ~1.1x and, when other processes share the cores,
#: 2 threads were measured to stall 5-13x while 1 thread stayed within ~10%.
DEFAULT_THREADS = 1


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(int(seed))
    np.random.seed(int(seed))
    torch.manual_seed(int(seed))


def setup(seed: int = 0, threads: int | None = None, style: bool = True) -> torch.device:
    """Prepare a notebook: seed every RNG, set torch's thread count and the figure style.

    Parameters
    ----------
    seed: seed for python, numpy and torch.
    threads: torch intra-op threads; default :data:`DEFAULT_THREADS`, or the
        environment variable ``BAGDROP_THREADS`` when set.
    style: apply the book's figure style (:func:`bagdrop.plots.set_style`).

    Returns the device to train on: CUDA when available, else CPU.
    """
    seed_everything(seed)
    if threads is None:
        threads = int(os.environ.get("BAGDROP_THREADS", DEFAULT_THREADS))
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    torch.set_num_threads(int(threads))
    if style:
        plots.set_style()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
