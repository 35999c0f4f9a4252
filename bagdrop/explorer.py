"""The book's interactive explorer: dropout rate x bootstrap x ensemble size -> test error.

:func:`grid` trains a small grid of ensembles (quick enough to run inside the
explorer notebook), :func:`explorer` shows it with ipywidgets in JupyterLab, and
:func:`figure` draws every setting at once for the rendered book, where no kernel runs.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from . import bagging
from ._checks import positive_int
from .data import Split
from .ensemble import Ensemble
from .models import MLP

__all__ = ["RATES", "size_curve", "grid", "figure", "explorer"]

#: Dropout rates of the default grid.
RATES = (0.0, 0.1, 0.3, 0.5)

_COLUMNS = ["rate", "bootstrap", "size", "ensemble_error", "member_error"]


def size_curve(member_probs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Error of the average of the first ``k`` members, for ``k = 1 .. K``.

    member_probs: (K, N, C) class probabilities of each member; y: (N,) labels.
    Returns a float array of shape (K,): entry ``k - 1`` is the error rate of
    ``member_probs[:k].mean(0)``.
    """
    if not isinstance(member_probs, torch.Tensor) or member_probs.ndim != 3:
        raise ValueError("member_probs must be a (K, N, C) tensor of class probabilities, got "
                         f"{getattr(member_probs, 'shape', type(member_probs).__name__)}")
    if not isinstance(y, torch.Tensor) or y.ndim != 1 or len(y) != member_probs.shape[1]:
        raise ValueError(f"y must be a ({member_probs.shape[1]},) tensor of labels, "
                         f"got {getattr(y, 'shape', type(y).__name__)}")
    if torch.is_floating_point(y):
        raise TypeError("y must hold integer class labels")
    k = torch.arange(1, member_probs.shape[0] + 1, dtype=member_probs.dtype).view(-1, 1, 1)
    running_mean = member_probs.cumsum(0) / k  # (K, N, C)
    wrong = running_mean.argmax(-1) != y.to(member_probs.device)  # (K, N)
    return wrong.double().mean(1).cpu().numpy()


def _member_errors(member_probs: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """(K,) error rate of each member."""
    return (member_probs.argmax(-1) != y).double().mean(1).cpu().numpy()


def grid(split: Split, rates=RATES, members: int = 8, epochs: int = 10, lr: float = 1e-2,
         batch_size: int = 100, hidden: tuple[int, ...] = (64, 64), seed: int = 0,
         progress: bool = False) -> pd.DataFrame:
    """Test error against ensemble size, for each dropout rate, with and without bootstrap.

    For each rate in ``rates`` one batched :class:`bagdrop.ensemble.Ensemble` of
    ``2 * members`` MLPs (``hidden`` units, element-wise dropout at that rate) is
    trained: the first ``members`` on the whole training set, the others each on its
    own bootstrap sample (:func:`bagdrop.bagging.bootstrap_indices`, the same samples
    for every rate). The ``2 * members`` initialisations differ (seeds ``seed`` to
    ``seed + 2 * members - 1``) and are the same for every rate.

    Returns a DataFrame with one row per (rate, bootstrap, size): ``ensemble_error``
    is the test error of the average (weight-scaling mode) of the first ``size``
    members, ``member_error`` the mean test error of those members.
    """
    if not isinstance(split, Split) or not split.is_classification:
        raise TypeError(f"split must be a classification bagdrop.data.Split, got {type(split).__name__}")
    rates = tuple(rates)
    if not rates or any(isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1
                        for r in rates):
        raise ValueError(f"rates must be a non-empty sequence of dropout rates in [0, 1), got {rates!r}")
    members = positive_int("members", members)
    n = len(split.x_train)
    generator = torch.Generator().manual_seed(seed)
    index = torch.cat([torch.arange(n).expand(members, n),
                       bagging.bootstrap_indices(n, members, generator)])  # (2 * members, n)
    rows = []
    for rate in rates:
        ens = Ensemble(lambda: MLP(in_features=int(np.prod(split.input_shape)), hidden=hidden,
                                   out_features=split.n_classes, p=rate),
                       2 * members, seed=seed)
        ens.fit(split, epochs=epochs, lr=lr, batch_size=batch_size, bootstrap=index, seed=seed,
                progress=progress, eval_every=epochs)
        with torch.no_grad():
            probs = ens.member_proba(split.x_test)  # (2 * members, N, C)
        y = split.y_test.to(probs.device)
        for half, bootstrap in ((probs[:members], False), (probs[members:], True)):
            errors = size_curve(half, y)
            member = np.cumsum(_member_errors(half, y)) / np.arange(1, members + 1)
            for size in range(1, members + 1):
                rows.append((float(rate), bootstrap, size, errors[size - 1], member[size - 1]))
    return pd.DataFrame(rows, columns=_COLUMNS)


def _check_table(table) -> None:
    if not isinstance(table, pd.DataFrame) or not set(_COLUMNS) <= set(table.columns):
        raise TypeError(f"table must be a DataFrame from bagdrop.explorer.grid with columns {_COLUMNS}")
    if table.empty:
        raise ValueError("table must not be empty")


def _curve(table: pd.DataFrame, rate: float, bootstrap: bool) -> pd.DataFrame:
    rows = table[(table.rate == rate) & (table.bootstrap == bootstrap)].sort_values("size")
    if rows.empty:
        raise ValueError(f"table has no rows for rate={rate}, bootstrap={bootstrap}")
    return rows


def figure(table: pd.DataFrame) -> plt.Figure:
    """Every setting of ``table`` at once: two panels (without / with bootstrap), one
    line per dropout rate, test error of the ensemble against its size."""
    _check_table(table)
    rates = sorted(table.rate.unique())
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4), sharey=True, layout="constrained")
    for ax, bootstrap in zip(axes, (False, True)):
        for rate in rates:
            rows = _curve(table, rate, bootstrap)
            ax.plot(rows["size"], rows.ensemble_error, marker="o", markersize=3, label=f"p = {rate:g}")
        ax.set(title="bootstrap samples" if bootstrap else "whole training set",
               xlabel="ensemble size (members averaged)")
        ax.set_xticks(sorted(table["size"].unique()))
    axes[0].set_ylabel("test error")
    fig.legend(*axes[0].get_legend_handles_labels(), title="dropout rate", loc="outside right upper")
    return fig


def explorer(table: pd.DataFrame):
    """An ipywidgets explorer of ``table`` (from :func:`grid`) for JupyterLab.

    Sliders pick the dropout rate and the ensemble size, a checkbox the bootstrap;
    the plot shows that setting's test error against ensemble size (the other
    bootstrap setting dotted) and marks the chosen size. Returns the widget.
    """
    import ipywidgets as widgets  # noqa: PLC0415  (only needed interactively)

    _check_table(table)
    rates = sorted(float(r) for r in table.rate.unique())
    k_max = int(table["size"].max())
    rate = widgets.SelectionSlider(options=[(f"{r:g}", r) for r in rates], value=rates[0],
                                   description="dropout p")
    size = widgets.IntSlider(value=k_max, min=1, max=k_max, description="members")
    bootstrap = widgets.Checkbox(value=False, description="bootstrap samples")
    out = widgets.Output()

    def draw(*_):
        rows = _curve(table, rate.value, bootstrap.value)
        other = _curve(table, rate.value, not bootstrap.value)
        chosen = rows[rows["size"] == size.value].iloc[0]
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.4), constrained_layout=True)
            ax.plot(rows["size"], rows.ensemble_error, marker="o", label="ensemble")
            ax.plot(rows["size"], rows.member_error, ls="--", label="mean member")
            ax.plot(other["size"], other.ensemble_error, ls=":", color="grey",
                    label=f"ensemble, {'without' if bootstrap.value else 'with'} bootstrap")
            ax.plot([chosen["size"]], [chosen.ensemble_error], "o", markersize=12, fillstyle="none",
                    color="black")
            ax.set(xlabel="ensemble size (members averaged)", ylabel="test error",
                   ylim=(0, max(table.member_error.max(), table.ensemble_error.max()) * 1.05),
                   title=f"p = {rate.value:g}, {'bootstrap' if bootstrap.value else 'whole set'}: "
                         f"{int(chosen['size'])} members, error {chosen.ensemble_error:.1%}")
            ax.legend(loc="lower left")
            plt.show()

    for w in (rate, size, bootstrap):
        w.observe(draw, names="value")
    draw()
    return widgets.VBox([widgets.HBox([rate, size, bootstrap]), out])
