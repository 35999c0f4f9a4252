"""Spatial structure of convolutional feature maps, and what dropout masks leave of it.

Tompson et al. (2015) argued that neighbouring activations of a convolutional feature
map are strongly correlated, so that an activation dropped element-wise can be
recovered from its kept neighbours, whereas a channel dropped whole cannot. This
module measures both halves of that argument on the maps of a trained network
(``model.forward_features(x)`` of :class:`bagdrop.models.CNN1d` / ``CNN2d``):

- :func:`lag_correlation`: correlation between activations ``d`` positions apart;
- :func:`keep_mask`: element-wise or channel-wise dropout masks, seeded;
- :func:`interpolate`: linear interpolation of dropped activations from the nearest
  kept ones of the same map;
- :func:`interpolation_r2`: how much of a dropped activation's variance that recovers;
- :func:`cross_channel_r2`: how much the *other* channels at the same position recover
  (what is left to a network under channel-wise dropout);
- :func:`layer_table`: all of it, layer by layer, as a DataFrame, and :func:`lag_table`
  the correlation at each distance;
- :func:`layer_mask`: the pattern a torch dropout layer zeroes on an input of a given
  shape (to see which layer fits which shape);
- :func:`mask_figure`: pictures of input, element-wise and channel-wise masks;
- :func:`sweep`: dropout configurations, each trained over seeds as one batched
  :class:`bagdrop.ensemble.Ensemble`; :func:`summarise` and :func:`comparison_figure`
  give their means and confidence intervals.

Feature maps are tensors of shape (N, C, L) (1-D) or (N, C, H, W) (2-D).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import ensemble, metrics
from ._checks import non_negative_int, one_of, positive_int, probability

__all__ = ["MASK_KINDS", "KIND_COLOURS", "feature_maps", "lag_correlation", "keep_mask", "interpolate",
           "interpolation_r2", "cross_channel_r2", "layer_table", "lag_table", "layer_mask", "dropout_configs", "sweep", "summarise",
           "comparison_figure", "mask_figure"]

MASK_KINDS = ("element", "channel")

#: Colour of each dropout kind ("none" and :data:`MASK_KINDS`) in the chapter's figures.
KIND_COLOURS = {"none": "0.45", "element": "tab:blue", "channel": "tab:orange"}

#: Colour of dropped entries in :func:`mask_figure` (matplotlib's tab:orange).
DROPPED_COLOUR = "#ff7f0e"


def _check_maps(maps) -> torch.Tensor:
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"maps must be a torch.Tensor, got {type(maps).__name__}")
    if maps.dim() not in (3, 4):
        raise ValueError(f"maps must have shape (N, C, L) or (N, C, H, W), got {tuple(maps.shape)}")
    if not torch.is_floating_point(maps):
        raise TypeError("maps must be a floating-point tensor")
    return maps


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Post-ReLU maps of each conv block of ``model`` in eval mode: a list of (N, C, ...) tensors.

    ``model`` is a :class:`bagdrop.models.CNN1d` or ``CNN2d`` (anything with
    ``forward_features``); its training/eval mode is restored afterwards.
    """
    if not hasattr(model, "forward_features"):
        raise TypeError(f"model must have a forward_features method (CNN1d, CNN2d), got {type(model).__name__}")
    was_training = model.training
    model.eval()
    maps = [m.detach() for m in model.forward_features(x)]
    model.train(was_training)
    return maps


def _lagged_pairs(maps: torch.Tensor, lag: int):
    """Pairs (a, b) of activations ``lag`` apart along each spatial axis, each (C, M)."""
    pairs = []
    for axis in range(2, maps.dim()):
        size = maps.shape[axis]
        if lag >= size:
            continue
        a = maps.narrow(axis, 0, size - lag)
        b = maps.narrow(axis, lag, size - lag)
        pairs.append((a.transpose(0, 1).reshape(maps.shape[1], -1), b.transpose(0, 1).reshape(maps.shape[1], -1)))
    return pairs


def lag_correlation(maps: torch.Tensor, max_lag: int = 1, min_std: float = 1e-6) -> torch.Tensor:
    """Mean correlation between activations ``d`` positions apart, for d = 1..max_lag.

    maps: (N, C, L) or (N, C, H, W). For each channel, Pearson's correlation between
    the activation at a position and at the position ``d`` further along (pooled over
    examples and positions; for 2-D maps over rows and columns alike), then the mean
    over channels. Channels whose activations hardly vary (standard deviation below
    ``min_std``, e.g. dead ReLUs) have no correlation and are left out of the mean.

    Returns a float64 tensor of shape (max_lag,); NaN for lags at least as long as the map.
    """
    maps = _check_maps(maps).double()
    max_lag = positive_int("max_lag", max_lag)
    out = torch.full((max_lag,), float("nan"), dtype=torch.float64)
    for d in range(1, max_lag + 1):
        pairs = _lagged_pairs(maps, d)
        if not pairs:
            continue
        a = torch.cat([p[0] for p in pairs], 1)
        b = torch.cat([p[1] for p in pairs], 1)
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        sa, sb = a.pow(2).mean(1).sqrt(), b.pow(2).mean(1).sqrt()
        alive = (sa > min_std) & (sb > min_std)
        if alive.any():
            r = (a * b).mean(1)[alive] / (sa[alive] * sb[alive])
            out[d - 1] = r.mean()
    return out


def keep_mask(shape, p: float, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """A dropout keep-mask (True = kept) of ``shape`` (N, C, ...) at drop rate ``p``.

    ``kind="element"`` drops each entry independently (:class:`torch.nn.Dropout`);
    ``kind="channel"`` drops whole maps, one draw per (example, channel), the same
    at every position (:class:`torch.nn.Dropout1d` / ``Dropout2d``).
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3 or any(s < 1 for s in shape):
        raise ValueError(f"shape must be (N, C, L) or (N, C, H, W) with positive sizes, got {shape}")
    p = probability("p", p)
    one_of("kind", kind, MASK_KINDS)
    draw = shape if kind == "element" else shape[:2] + (1,) * (len(shape) - 2)
    keep = torch.rand(draw, generator=generator) >= p
    return keep.expand(shape)


def _interpolate_last(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Linear interpolation along the last axis from kept entries; NaN where a row keeps nothing."""
    n = values.shape[-1]
    pos = torch.arange(n, dtype=torch.int64).expand_as(values)
    big = n + 1
    prev = torch.where(keep, pos, torch.full_like(pos, -1)).cummax(-1).values
    nxt = torch.where(keep, pos, torch.full_like(pos, big)).flip(-1).cummin(-1).values.flip(-1)
    has_prev, has_next = prev >= 0, nxt < big
    v_prev = values.gather(-1, prev.clamp(0, n - 1))
    v_next = values.gather(-1, nxt.clamp(0, n - 1))
    span = (nxt - prev).clamp_min(1).to(values.dtype)
    w = (pos - prev).to(values.dtype) / span
    both = v_prev + w * (v_next - v_prev)
    out = torch.where(has_prev & has_next, both,
                      torch.where(has_prev, v_prev, torch.where(has_next, v_next, torch.full_like(values, float("nan")))))
    return torch.where(keep, values, out)


def interpolate(maps: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Fill every dropped activation by linear interpolation from kept ones of the same map.

    maps: (N, C, L) or (N, C, H, W); keep: bool of the same shape (True = kept).
    1-D maps: interpolation between the nearest kept positions left and right (the
    nearest kept value at the ends). 2-D maps: the mean of the interpolations along the
    row and along the column, where each exists. Kept entries are returned unchanged;
    a dropped entry with no kept entry in its row (nor column) is NaN, as in a map
    dropped whole. Returns a tensor of the shape of ``maps``.
    """
    maps = _check_maps(maps)
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or keep.shape != maps.shape:
        raise ValueError(f"keep must be a bool tensor of shape {tuple(maps.shape)}")
    if maps.dim() == 3:
        return _interpolate_last(maps, keep)
    rows = _interpolate_last(maps, keep)
    cols = _interpolate_last(maps.transpose(-1, -2), keep.transpose(-1, -2)).transpose(-1, -2)
    return torch.stack([rows, cols]).nanmean(0)


def interpolation_r2(maps: torch.Tensor, p: float, kind: str, seed: int = 0) -> float:
    """Share of a dropped activation's variance recovered from its map's kept neighbours.

    Draws a :func:`keep_mask` of ``kind`` at rate ``p`` (seeded), predicts each dropped
    activation with :func:`interpolate`, and returns
    R^2 = 1 - sum (a - a_hat)^2 / sum (a - mean_c)^2 over the dropped activations, where
    mean_c is the channel's mean activation (the prediction of someone who sees no
    neighbour). A dropped activation with no kept neighbour in its map (always the case
    for ``kind="channel"``) is predicted by mean_c, so channel-wise masks give exactly 0.
    """
    maps = _check_maps(maps).double()
    seed = non_negative_int("seed", seed)
    p = probability("p", p)
    if p == 0:
        raise ValueError("p must be positive: with p=0 nothing is dropped")
    keep = keep_mask(maps.shape, p, kind, torch.Generator().manual_seed(seed))
    dims = [0] + list(range(2, maps.dim()))
    mean_c = maps.mean(dims, keepdim=True).expand_as(maps)
    pred = interpolate(maps, keep)
    pred = torch.where(torch.isnan(pred), mean_c, pred)
    dropped = ~keep
    total = (maps - mean_c)[dropped].pow(2).sum()
    if total == 0:
        return float("nan")
    return float(1 - (maps - pred)[dropped].pow(2).sum() / total)


def cross_channel_r2(maps: torch.Tensor, fit_fraction: float = 0.5, ridge: float = 1e-3) -> float:
    """Share of a channel's variance predicted from the other channels at the same position.

    maps: (N, C, ...). For each channel, a least-squares linear predictor (with
    intercept and a small ``ridge`` penalty relative to the mean feature variance)
    from the other C - 1 channels at the same position is fitted on the first
    ``fit_fraction`` of the examples and scored on the rest. Returns the pooled
    held-out R^2 over all channels: what remains recoverable when a whole channel is
    dropped (a lower bound on what the next layer could do, which sees nearby positions too).
    """
    maps = _check_maps(maps).double()
    fit_fraction = probability("fit_fraction", fit_fraction)
    if ridge < 0:
        raise ValueError(f"ridge must be non-negative, got {ridge}")
    n, c = maps.shape[:2]
    n_fit = int(round(n * fit_fraction))
    if c < 2 or n_fit < 1 or n_fit >= n:
        raise ValueError("cross_channel_r2 needs at least 2 channels and examples on both sides of fit_fraction")
    rows = maps.transpose(0, 1).reshape(c, n, -1)            # (C, N, positions)
    fit = rows[:, :n_fit].reshape(c, -1).T                   # (M_fit, C)
    test = rows[:, n_fit:].reshape(c, -1).T                  # (M_test, C)
    mu = fit.mean(0)
    fit, test = fit - mu, test - mu
    cov = fit.T @ fit / len(fit)
    lam = ridge * cov.diagonal().mean().clamp_min(1e-12)
    sse, sst = 0.0, 0.0
    for j in range(c):
        others = [i for i in range(c) if i != j]
        a = cov[others][:, others] + lam * torch.eye(c - 1, dtype=cov.dtype)
        w = torch.linalg.solve(a, cov[others, j])
        pred = test[:, others] @ w
        sse += float((test[:, j] - pred).pow(2).sum())
        sst += float((test[:, j] - test[:, j].mean()).pow(2).sum())
    return float("nan") if sst == 0 else 1 - sse / sst


def layer_table(model: nn.Module, x: torch.Tensor, p: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """Per conv block of ``model`` on inputs ``x``: map size, neighbour correlation and the R^2 above.

    Columns: ``layer`` (1-based), ``channels``, ``positions`` (per map), ``corr_lag1``
    (:func:`lag_correlation` at lag 1), ``r2_element`` / ``r2_channel``
    (:func:`interpolation_r2` at rate ``p``) and ``r2_other_channels``
    (:func:`cross_channel_r2`).
    """
    rows = []
    for i, m in enumerate(feature_maps(model, x)):
        rows.append({
            "layer": i + 1,
            "channels": m.shape[1],
            "positions": int(np.prod(m.shape[2:])),
            "corr_lag1": float(lag_correlation(m, 1)[0]),
            "r2_element": interpolation_r2(m, p, "element", seed),
            "r2_channel": interpolation_r2(m, p, "channel", seed),
            "r2_other_channels": cross_channel_r2(m),
        })
    return pd.DataFrame(rows)


def lag_table(model: nn.Module, x: torch.Tensor, max_lag: int = 8) -> pd.DataFrame:
    """:func:`lag_correlation` of each conv block's maps: long DataFrame ``layer``, ``lag``, ``correlation``."""
    max_lag = positive_int("max_lag", max_lag)
    rows = []
    for i, m in enumerate(feature_maps(model, x)):
        for d, r in enumerate(lag_correlation(m, max_lag).tolist(), start=1):
            rows.append({"layer": i + 1, "lag": d, "correlation": r})
    return pd.DataFrame(rows)


def layer_mask(layer: nn.Module, shape, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """What a torch dropout ``layer`` (in training mode) zeroes on an input of ``shape``.

    Feeds ``torch.ones(shape)`` through ``layer`` with torch seeded by ``seed`` and
    returns (keep, warnings): ``keep`` a bool tensor of ``shape`` (True = kept) and the
    messages of the warnings torch raised. The layer's mode is restored afterwards.
    """
    if not isinstance(layer, nn.Module):
        raise TypeError(f"layer must be a torch.nn.Module, got {type(layer).__name__}")
    shape = tuple(int(s) for s in shape)
    seed = non_negative_int("seed", seed)
    was_training = layer.training
    layer.train()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(seed)
        out = layer(torch.ones(shape))
    layer.train(was_training)
    return out != 0, [str(w.message) for w in caught]


def dropout_configs(make, rates=(0.1,), positions: dict | None = None, kinds=("element", "channel")) -> dict:
    """Factories for no dropout and each (kind, rate, position): a dict name -> factory.

    ``make(**kwargs)`` builds the network, e.g. ``lambda **kw: bd.models.CNN1d(stride=1, **kw)``;
    it receives ``kind``, ``p`` and ``dropout_layers``. ``positions`` maps a label to
    the block indices that get dropout (default ``{"all": None}``: every block, the
    model's default). Names read ``"none"``, ``"element 0.1"``, or
    ``"channel 0.1 last"`` when there is more than one position.
    """
    if not callable(make):
        raise TypeError(f"make must be a callable building a network, got {type(make).__name__}")
    positions = {"all": None} if positions is None else dict(positions)
    if not positions:
        raise ValueError("positions must hold at least one entry")
    configs = {"none": lambda: make(kind="none")}
    for kind in kinds:
        one_of("kinds", kind, MASK_KINDS)
        for p in rates:
            probability("rates", p)
            for label, layers in positions.items():
                name = f"{kind} {p:g}" + (f" {label}" if len(positions) > 1 else "")
                extra = {} if layers is None else {"dropout_layers": tuple(layers)}
                configs[name] = (lambda kind=kind, p=p, extra=extra: make(kind=kind, p=p, **extra))
    return configs


def sweep(configs: dict, split, n_seeds: int = 5, epochs: int = 20, lr: float = 1e-2,
          batch_size: int = 100, seed: int = 0, progress: bool = True,
          eval_every: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Train each configuration as one :class:`bagdrop.ensemble.Ensemble` of ``n_seeds`` members.

    ``configs`` maps a name to a factory (``lambda: bd.models.CNN1d(p=0.1, kind="channel")``).
    The members of a configuration differ only in their seed (initialisation, minibatch
    order, dropout masks); none is bootstrapped, so each member is an ordinary single
    network and the ``n_seeds`` members are ``n_seeds`` independent repetitions.

    Returns ``(scores, ensembles)``: a DataFrame with one row per configuration and
    member, columns ``config``, ``seed``, ``test_error``, ``test_nll`` (weight scaling,
    i.e. dropout off), and a dict of the trained ensembles by name. Each ensemble's
    ``history`` attribute holds the DataFrame its ``fit`` returned, with a row every
    ``eval_every`` epochs (default: only after the last).
    """
    if not isinstance(configs, dict) or not configs:
        raise TypeError("configs must be a non-empty dict of name -> factory")
    n_seeds = positive_int("n_seeds", n_seeds)
    if n_seeds < 2:
        raise ValueError(f"n_seeds must be at least 2 for a confidence interval, got {n_seeds}")
    epochs = positive_int("epochs", epochs)
    eval_every = epochs if eval_every is None else positive_int("eval_every", eval_every)
    rows, trained = [], {}
    for name, factory in configs.items():
        ens = ensemble.Ensemble(factory, n_seeds, seed=seed)
        ens.history = ens.fit(split, epochs=epochs, lr=lr, batch_size=batch_size, bootstrap=False, seed=seed,
                              progress=progress, eval_every=eval_every)
        probs = ens.member_proba(split.x_test)
        y = split.y_test.to(probs.device)
        for i in range(n_seeds):
            rows.append({"config": name, "seed": seed + i, "test_error": metrics.error_rate(probs[i], y),
                         "test_nll": metrics.nll(probs[i], y)})
        trained[name] = ens
    return pd.DataFrame(rows), trained


def _mosaic(maps: np.ndarray) -> np.ndarray:
    """(C, H, W) maps -> one (rows*H + gaps, cols*W + gaps) image, NaN in the gaps."""
    c, h, w = maps.shape
    cols = int(math.ceil(math.sqrt(c)))
    rows = int(math.ceil(c / cols))
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for i in range(c):
        r, q = divmod(i, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = maps[i]
    return out


def mask_figure(examples: dict, p: float = 0.3, seed: int = 0):
    """Pictures of three dropout masks on real activations, one row per example.

    ``examples`` maps a row title to ``(x, maps)``: one input, a signal (L,) or an image
    (1, H, W), and its first-layer feature maps (C, L) or (C, H, W). Columns: the
    input under element-wise dropout (:class:`torch.nn.Dropout`), the maps under
    element-wise dropout, and the maps under channel-wise dropout
    (:class:`torch.nn.Dropout1d` / ``Dropout2d``), all at rate ``p``, the masks drawn
    by torch's own layers (seeded by ``seed``). Dropped entries are drawn in orange.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    if not isinstance(examples, dict) or not examples:
        raise TypeError("examples must be a non-empty dict of title -> (x, maps)")
    p = probability("p", p)
    seed = non_negative_int("seed", seed)
    fig, axes = plt.subplots(len(examples), 3, figsize=(9, 2.6 * len(examples)), squeeze=False)
    from matplotlib.colors import ListedColormap

    cmap = plt.get_cmap("Greys").with_extremes(bad="white")
    orange = ListedColormap([DROPPED_COLOUR])
    for row, (title, (x, maps)) in zip(axes, examples.items()):
        x, maps = torch.as_tensor(x).detach().cpu().float(), torch.as_tensor(maps).detach().cpu().float()
        two_d = maps.dim() == 3
        if maps.dim() not in (2, 3) or (two_d and x.shape != (1, *maps.shape[1:])) or (not two_d and x.dim() != 1):
            raise ValueError(f"examples[{title!r}] must be (x (L,) or (1, H, W), maps (C, L) or (C, H, W))")
        keep_in, _ = layer_mask(nn.Dropout(p), x.shape, seed)
        keep_el, _ = layer_mask(nn.Dropout(p), (1, *maps.shape), seed + 1)
        keep_ch, _ = layer_mask(nn.Dropout2d(p) if two_d else nn.Dropout1d(p), (1, *maps.shape), seed + 2)
        ax = row[0]
        if two_d:
            ax.imshow(x[0].numpy(), cmap=cmap)
            dropped = np.ma.masked_where(keep_in[0].numpy(), np.ones(x.shape[1:]))
            ax.imshow(dropped, cmap=orange, vmin=0, vmax=1)
            ax.set(xticks=[], yticks=[], xlabel="pixel column", ylabel="pixel row")
        else:
            pos = np.arange(len(x))
            ax.plot(pos, x.numpy(), color="0.3", lw=1)
            gone = ~keep_in.numpy()
            ax.scatter(pos[gone], x.numpy()[gone], color=DROPPED_COLOUR, zorder=3, s=18)
            ax.set(xlabel="position", ylabel="input value")
        ax.set_title(f"{title}: input dropout", fontsize="small")
        for ax, keep, name in ((row[1], keep_el[0], "element-wise"), (row[2], keep_ch[0], "channel-wise")):
            vals = maps.numpy()
            dropped = ~keep.numpy()
            if two_d:
                vals, dropped = _mosaic(vals), _mosaic(dropped.astype(float))
                dropped = np.nan_to_num(dropped) > 0
            ax.imshow(vals, cmap=cmap, aspect="auto", interpolation="nearest")
            ax.imshow(np.ma.masked_where(~dropped, np.ones(vals.shape)), cmap=orange, vmin=0, vmax=1,
                      aspect="auto", interpolation="nearest")
            if two_d:
                ax.set(xticks=[], yticks=[], xlabel=f"{maps.shape[0]} maps of {maps.shape[1]} x {maps.shape[2]}")
            else:
                ax.set(xlabel="position", ylabel="channel")
            ax.set_title(f"layer-1 maps, {name}", fontsize="small")
            ax.grid(False)
        row[0].grid(two_d is False)
    fig.tight_layout()
    return fig


def summarise(scores: pd.DataFrame, columns=("test_error", "test_nll"), by=("model", "config"),
              confidence: float = 0.95) -> pd.DataFrame:
    """Mean and confidence interval (:func:`bagdrop.metrics.mean_ci`) of each column per group.

    ``scores`` holds one row per seed (as returned by :func:`sweep`, plus a ``model``
    column); returns one row per group, in order of first appearance, with columns
    ``<column>``, ``<column>_low``, ``<column>_high`` and ``n`` (seeds).
    """
    if not isinstance(scores, pd.DataFrame):
        raise TypeError(f"scores must be a pandas DataFrame, got {type(scores).__name__}")
    by, columns = list(by), list(columns)
    missing = [c for c in by + columns if c not in scores.columns]
    if missing:
        raise ValueError(f"scores lacks the columns {missing}")
    rows = []
    for key, group in scores.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        for c in columns:
            m, lo, hi = metrics.mean_ci(group[c].to_numpy(), confidence=confidence)
            row.update({c: m, f"{c}_low": lo, f"{c}_high": hi})
        row["n"] = len(group)
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_figure(scores: pd.DataFrame, columns=("test_error", "test_nll"),
                      labels=("test error", "test NLL (nats)")):
    """One panel per model and metric: each configuration's seeds (dots), mean and 95% CI (bar).

    ``scores``: one row per seed with columns ``model``, ``config`` and ``columns``.
    Configurations are coloured by kind (the first word of their name), as in
    :data:`KIND_COLOURS`. Returns the figure.
    """
    import matplotlib.pyplot as plt

    summary = summarise(scores, columns)
    models_ = list(dict.fromkeys(scores["model"]))
    n_configs = summary.groupby("model").size().max()
    wide = n_configs > 6   # many configurations: one full-width row per (model, metric)
    if wide:
        fig, grid = plt.subplots(len(models_) * len(columns), 1, squeeze=False,
                                 figsize=(max(6.4, 0.32 * n_configs), 2.2 * len(models_) * len(columns)))
        panels = {(i, j): grid[j * len(columns) + i, 0] for j in range(len(models_)) for i in range(len(columns))}
    else:
        fig, grid = plt.subplots(len(columns), len(models_), squeeze=False,
                                 figsize=(3.3 * len(models_), 2.7 * len(columns)))
        panels = {(i, j): grid[i, j] for j in range(len(models_)) for i in range(len(columns))}
    for j, model in enumerate(models_):
        part = summary[summary.model == model].reset_index(drop=True)
        for i, (c, label) in enumerate(zip(columns, labels)):
            ax = panels[i, j]
            for k, row in part.iterrows():
                colour = KIND_COLOURS.get(row.config.split()[0], "tab:green")
                seeds = scores[(scores.model == model) & (scores.config == row.config)][c]
                ax.scatter(np.full(len(seeds), k) + 0.18, seeds, s=8, color=colour, alpha=0.6)
                ax.errorbar(k, row[c], yerr=[[row[c] - row[f"{c}_low"]], [row[f"{c}_high"] - row[c]]],
                            fmt="o", color=colour, capsize=3)
            bottom = (j == len(models_) - 1 and i == len(columns) - 1) if wide else i == len(columns) - 1
            ax.set_xticks(range(len(part)))
            ax.set_xticklabels(part.config if bottom else [], rotation=60 if wide else 45, ha="right",
                               fontsize="small")
            ax.set_ylabel(label)
            if wide or i == 0:
                ax.set_title(model, fontsize="medium")
            if bottom:
                ax.set_xlabel("dropout (kind, rate[, position])")
    fig.tight_layout()
    return fig
