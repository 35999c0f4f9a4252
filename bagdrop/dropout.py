"""Dropout over units: the mask, the inference modes, exact averages, the dropout ridge.

**Convention.** Throughout this module ``p`` is the probability of *dropping* a unit,
as in :class:`torch.nn.Dropout` and :mod:`bagdrop.models`; ``q = 1 - p`` is the
probability of *keeping* it. Srivastava et al. (2014) write ``p`` for the keep
probability, so their ``p`` is our ``q``. Masks use inverted scaling: a kept unit is
multiplied by ``1 / q`` during training, so that at test time the full network is used
unchanged (weight scaling is folded into training).

Pieces:

- :func:`dropout_mask`, :func:`dropout`, :class:`Dropout`: dropout from scratch, a
  Bernoulli mask with inverted scaling (checked against :class:`torch.nn.Dropout`);
- :func:`predict_proba`, :func:`mc_dropout`, :func:`cumulative_mean`: inference by weight
  scaling or by Monte Carlo averaging over sampled masks, for any model whose dropout
  layers are torch's (every :mod:`bagdrop.models` network); :func:`error_and_nll` scores
  them, batched over members and sample counts;
- :func:`all_masks`, :func:`mask_probabilities`, :func:`exact_mask_average`: every one of
  the ``2**n`` masks of a dropout layer with ``n`` units and the exact normalised
  geometric and arithmetic means of the predictions over them;
- :func:`expected_dropout_loss`, :func:`sampled_dropout_loss`, :func:`dropout_ridge`,
  :func:`dropout_linear_sgd`: dropout on linear regression as a feature-scaled ridge;
- :func:`mask_recurrence`: how many of the ``2**n`` subnetworks a training run visits,
  and how likely a mask is to come back.
"""
from __future__ import annotations

import contextlib
import copy
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.special import logsumexp
from torch import nn

from ._checks import non_negative_int, one_of, positive_float, positive_int, probability

__all__ = [
    "dropout_mask", "dropout", "Dropout", "dropout_modules", "mc_dropout", "predict_proba",
    "cumulative_mean", "error_and_nll", "all_masks", "mask_probabilities", "MaskAverage", "exact_mask_average",
    "expected_dropout_loss", "sampled_dropout_loss", "dropout_ridge", "dropout_linear_sgd",
    "mask_recurrence",
]

#: Largest number of units whose masks :func:`all_masks` enumerates (2**20 masks).
MAX_ENUMERATED_UNITS = 20


def _tensor(name: str, value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------------------
# Dropout from scratch
# --------------------------------------------------------------------------------------

def dropout_mask(shape, p: float, generator: torch.Generator | None = None,
                 device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A Bernoulli dropout mask with inverted scaling, of the given ``shape``.

    Each entry is independently ``0`` with probability ``p`` (the *drop* probability)
    and ``1 / (1 - p)`` otherwise, so the mask has expectation one. ``p = 0`` gives ones.
    """
    p = probability("p", p)
    shape = tuple(shape) if not isinstance(shape, int) else (shape,)
    keep = torch.empty(shape, device=device, dtype=dtype).bernoulli_(1.0 - p, generator=generator)
    return keep / (1.0 - p)


def dropout(x: torch.Tensor, p: float, training: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Element-wise dropout from scratch: ``x * mask`` in training, ``x`` itself otherwise.

    ``x`` has any shape; each element gets its own mask entry (see :func:`dropout_mask`).
    """
    x = _tensor("x", x)
    p = probability("p", p)
    if not training or p == 0:
        return x
    return x * dropout_mask(x.shape, p, generator=generator, device=x.device, dtype=x.dtype)


class Dropout(nn.Module):
    """A thin module on :func:`dropout`: active in ``train()`` mode, the identity in ``eval()``.

    Behaves like :class:`torch.nn.Dropout` (same ``p``, drop probability); written from
    scratch to show there is nothing more to it. Input and output have any shape.
    """

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        self.p = probability("p", p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"


# --------------------------------------------------------------------------------------
# Inference: weight scaling and Monte Carlo averaging
# --------------------------------------------------------------------------------------

_DROPOUT_TYPES = (nn.modules.dropout._DropoutNd, Dropout)


def dropout_modules(model: nn.Module) -> list[nn.Module]:
    """The dropout layers of ``model`` (torch's Dropout/Dropout1d/2d/3d and :class:`Dropout`)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return [m for m in model.modules() if isinstance(m, _DROPOUT_TYPES)]


@contextlib.contextmanager
def mc_dropout(model: nn.Module):
    """Context in which ``model`` is in eval mode except its dropout layers, which sample masks.

    Other layers (e.g. batch norm) keep their inference behaviour. The previous
    train/eval flags of every submodule are restored on exit.
    """
    layers = dropout_modules(model)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    for m in layers:
        m.train()
    try:
        yield model
    finally:
        for m, flag in flags.items():
            m.training = flag


def _seeded(seed):
    if seed is None:
        return contextlib.nullcontext()
    seed = non_negative_int("seed", seed)
    ctx = torch.random.fork_rng(devices=[])  # leave the caller's RNG state untouched

    @contextlib.contextmanager
    def run():
        with ctx:
            torch.manual_seed(seed)
            yield

    return run()


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, mode: str = "weight_scaling",
                  samples: int = 1, seed: int | None = None, batch_size: int = 2048) -> torch.Tensor:
    """Class probabilities of ``model`` on ``x`` (N, ...) under an inference mode.

    - ``mode="weight_scaling"``: the full network, dropout off (with inverted dropout
      the weight scaling is already in the weights): returns (N, C).
    - ``mode="mc"``: ``samples`` = T forward passes, each with fresh dropout masks drawn
      independently for every example: returns the per-pass probabilities (T, N, C).
      Average them with ``.mean(0)`` or :func:`cumulative_mean`. ``seed`` makes the masks
      reproducible without touching the global RNG.

    The model's train/eval flags are restored afterwards.
    """
    x = _tensor("x", x)
    one_of("mode", mode, ("weight_scaling", "mc"))
    samples = positive_int("samples", samples)
    batch_size = positive_int("batch_size", batch_size)

    def run():
        return torch.cat([model(x[i:i + batch_size]).softmax(-1) for i in range(0, len(x), batch_size)])

    if mode == "weight_scaling":
        flags = {m: m.training for m in model.modules()}
        model.eval()
        try:
            return run()
        finally:
            for m, flag in flags.items():
                m.training = flag
    if not dropout_modules(model):
        raise ValueError("mode='mc' needs a model with dropout layers; this one has none")
    # The T passes run as one batch of T copies of x: torch's dropout draws a separate
    # mask for every row, so the copies are T independent samples, computed with a few
    # large matrix products instead of T small ones.
    per_chunk = max(1, batch_size // max(len(x), 1))
    with _seeded(seed), mc_dropout(model):
        out = []
        for t in range(0, samples, per_chunk):
            reps = min(per_chunk, samples - t)
            if per_chunk == 1:
                out.append(run().unsqueeze(0))
            else:
                xr = x.unsqueeze(0).expand(reps, *x.shape).reshape(reps * len(x), *x.shape[1:])
                out.append(model(xr).softmax(-1).reshape(reps, len(x), -1))
        return torch.cat(out)


def cumulative_mean(probs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Running average along ``dim``: entry k is the mean of the first k+1 slices.

    For MC predictions (T, N, C) it gives the k-sample averages for k = 1..T, same shape.
    """
    probs = _tensor("probs", probs)
    n = probs.shape[dim]
    shape = [1] * probs.dim()
    shape[dim] = n
    counts = torch.arange(1, n + 1, dtype=probs.dtype, device=probs.device).reshape(shape)
    return probs.cumsum(dim) / counts


def error_and_nll(probs: torch.Tensor, y: torch.Tensor, eps: float = 1e-12
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Test error and mean NLL (nats) of probabilities (..., N, C) against labels y (N,).

    Batched over the leading axes: for member-wise MC running means (K, T, N, C) it
    returns two (K, T) tensors, the error and NLL of the k-sample average for each
    member and k (see :func:`cumulative_mean`).
    """
    probs, y = _tensor("probs", probs), _tensor("y", y)
    if probs.dim() < 2 or y.dim() != 1 or probs.shape[-2] != len(y):
        raise ValueError(f"probs must have shape (..., N, C) with N = len(y) = {len(y)}, got {tuple(probs.shape)}")
    if torch.is_floating_point(y):
        raise TypeError("y must hold integer class labels")
    y = y.to(probs.device)
    error = (probs.argmax(-1) != y).to(probs.dtype).mean(-1)
    p_true = probs.gather(-1, y.expand(probs.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    return error, -p_true.clamp_min(eps).log().mean(-1)


# --------------------------------------------------------------------------------------
# Every mask: exact averages over the 2**n subnetworks
# --------------------------------------------------------------------------------------

def all_masks(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Every binary keep-mask over ``n`` units, (2**n, n), in binary counting order.

    Row ``i`` keeps unit ``j`` (entry 1) when bit ``j`` of ``i`` is set; row 0 drops every
    unit, the last row keeps all. ``n`` is at most :data:`MAX_ENUMERATED_UNITS`.
    """
    n = positive_int("n", n)
    if n > MAX_ENUMERATED_UNITS:
        raise ValueError(f"n must be at most {MAX_ENUMERATED_UNITS} (2**n masks), got {n}")
    idx = torch.arange(2 ** n).unsqueeze(1)
    return ((idx >> torch.arange(n)) & 1).to(dtype)


def mask_probabilities(masks: torch.Tensor, p: float) -> torch.Tensor:
    """Probability of each keep-mask (M, n) when units are dropped independently with ``p``.

    A mask keeping k of n units has probability ``(1 - p)**k * p**(n - k)``; returns (M,)
    float64. Over :func:`all_masks` they sum to one.
    """
    masks = _tensor("masks", masks)
    p = probability("p", p)
    if masks.dim() != 2:
        raise ValueError(f"masks must have shape (M, n), got {tuple(masks.shape)}")
    k = masks.to(torch.float64).sum(1)
    n = masks.shape[1]
    if p == 0:
        return (k == n).to(torch.float64)
    return torch.exp(k * math.log1p(-p) + (n - k) * math.log(p))


class MaskAverage(NamedTuple):
    """Predictions (N, C) averaged over every mask, and the weight-scaled network's."""

    geometric: torch.Tensor       #: normalised weighted geometric mean of the 2**n softmaxes
    arithmetic: torch.Tensor      #: weighted arithmetic mean of the 2**n softmaxes
    weight_scaling: torch.Tensor  #: the full network with dropout off


@torch.no_grad()
def exact_mask_average(model: nn.Module, layer: nn.Module, x: torch.Tensor,
                       dtype: torch.dtype = torch.float64, rows_per_chunk: int = 2 ** 16
                       ) -> MaskAverage:
    """Average ``model``'s softmax over all 2**n masks of one element-wise dropout ``layer``.

    ``layer`` is an :class:`torch.nn.Dropout` (or :class:`Dropout`) inside ``model`` whose
    input is a batch of ``n`` units, shape (B, n), with n <= :data:`MAX_ENUMERATED_UNITS`;
    its rate ``layer.p`` gives the mask probabilities. Every other dropout layer is off
    (weight scaling). With masks m (inverted scaling, kept units times 1/(1-p)) and
    probabilities P(m), returns for ``x`` (N, ...):

    - ``geometric``: ``G_c / sum_c' G_c'`` with ``G_c = prod_m softmax_c(z_m)**P(m)``, the
      normalised weighted geometric mean (Baldi & Sadowski 2013);
    - ``arithmetic``: ``sum_m P(m) softmax(z_m)``, the mean of the subnetworks' predictions;
    - ``weight_scaling``: ``softmax(z)`` of the full network.

    Computed in ``dtype`` (float64 by default, on a copy of the model) so that an exact
    identity shows up as agreement to ~1e-12. The layers after ``layer`` must act on each
    example independently (Linear, ReLU, ...), as in :class:`bagdrop.models.MLP`.
    Cost: 2**n forward passes of the part of the network after ``layer``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(layer, (nn.Dropout, Dropout)):
        raise TypeError(f"layer must be an element-wise nn.Dropout, got {type(layer).__name__}")
    path = next((name for name, m in model.named_modules() if m is layer), None)
    if path is None:
        raise ValueError("layer must be a module of model")
    x = _tensor("x", x)
    rows_per_chunk = positive_int("rows_per_chunk", rows_per_chunk)
    p = probability("p", layer.p)
    work = copy.deepcopy(model).to(dtype).eval()
    hooked = work.get_submodule(path)
    state: dict = {}

    def hook(module, inputs, output):
        a = inputs[0]
        if a.dim() != 2:
            raise ValueError(f"layer must act on (B, n) activations, got {tuple(a.shape)}")
        if "n" not in state:
            state["n"] = a.shape[1]
            return a  # first pass: full network, to learn n
        scaled = state["masks"] / (1.0 - p)  # (M, n)
        return (a.unsqueeze(0) * scaled.unsqueeze(1)).reshape(-1, a.shape[1])

    handle = hooked.register_forward_hook(hook)
    try:
        xs = x.to(dtype)
        ws = work(xs).softmax(-1)  # (N, C), also records n
        n = state["n"]
        masks = all_masks(n, dtype=dtype).to(x.device)
        probs = mask_probabilities(masks, p).to(dtype).to(x.device)
        n_ex = len(xs)
        ex_chunk = max(1, min(n_ex, rows_per_chunk))
        m_chunk = max(1, rows_per_chunk // ex_chunk)
        log_geo = torch.zeros_like(ws)
        arith = torch.zeros_like(ws)
        for i in range(0, n_ex, ex_chunk):
            xb = xs[i:i + ex_chunk]
            for j in range(0, len(masks), m_chunk):
                state["masks"] = masks[j:j + m_chunk]
                w = probs[j:j + m_chunk]
                logp = work(xb).reshape(len(state["masks"]), len(xb), -1).log_softmax(-1)
                log_geo[i:i + ex_chunk] += torch.einsum("m,mbc->bc", w, logp)
                arith[i:i + ex_chunk] += torch.einsum("m,mbc->bc", w, logp.exp())
    finally:
        handle.remove()
    return MaskAverage(geometric=log_geo.softmax(-1), arithmetic=arith, weight_scaling=ws)


# --------------------------------------------------------------------------------------
# Dropout on linear regression: a ridge penalty scaled per feature
# --------------------------------------------------------------------------------------

def _check_xy(x, y):
    x, y = _tensor("x", x), _tensor("y", y)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, d), got {tuple(x.shape)}")
    if y.dim() != 1 or len(y) != len(x):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    return x, y


def expected_dropout_loss(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, p: float,
                          inverted: bool = True) -> torch.Tensor:
    """Closed form of ``E_R ||y - (R * X / s) w||^2`` over Bernoulli keep-masks R.

    ``x`` (N, d), ``y`` (N,), ``w`` (d,); each entry of R is 1 (keep) with probability
    ``q = 1 - p`` (``p`` is the *drop* probability). With ``Gamma = diag(X^T X)^(1/2)``:

    - ``inverted=False`` (s = 1, Srivastava et al. 2014, section 9.1, whose "p" is our q):
      ``||y - q X w||^2 + q (1 - q) ||Gamma w||^2``;
    - ``inverted=True`` (s = q, what :class:`torch.nn.Dropout` trains):
      ``||y - X w||^2 + (p / q) ||Gamma w||^2``.

    Returns a 0-d tensor (a sum over examples, not a mean).
    """
    x, y = _check_xy(x, y)
    w = _tensor("w", w)
    if w.shape != (x.shape[1],):
        raise ValueError(f"w must have shape ({x.shape[1]},), got {tuple(w.shape)}")
    p = probability("p", p)
    q = 1.0 - p
    gamma2 = (x * x).sum(0)  # diag(X^T X)
    if inverted:
        return (y - x @ w).pow(2).sum() + (p / q) * (gamma2 * w * w).sum()
    return (y - q * (x @ w)).pow(2).sum() + q * (1 - q) * (gamma2 * w * w).sum()


@torch.no_grad()
def sampled_dropout_loss(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, p: float,
                         samples: int = 1000, inverted: bool = True,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte Carlo estimates of ``||y - (R * X / s) w||^2``, one per sampled mask R: (samples,).

    Same conventions as :func:`expected_dropout_loss`, whose value their mean estimates.
    """
    x, y = _check_xy(x, y)
    w = _tensor("w", w)
    p = probability("p", p)
    samples = positive_int("samples", samples)
    out = []
    for _ in range(samples):
        mask = dropout_mask(x.shape, p, generator=generator, device=x.device, dtype=x.dtype)
        if not inverted:
            mask = mask * (1.0 - p)
        out.append((y - (mask * x) @ w).pow(2).sum())
    return torch.stack(out)


def dropout_ridge(x: torch.Tensor, y: torch.Tensor, p: float, inverted: bool = True) -> torch.Tensor:
    """The weights (d,) minimising :func:`expected_dropout_loss`: a ridge scaled per feature.

    ``inverted=True``: ``w = (X^T X + (p/q) Gamma^2)^-1 X^T y`` with ``q = 1 - p`` the keep
    probability (``p`` drops); the test-time predictor is ``X w``.
    ``inverted=False``: ``w = (q X^T X + (1 - q) Gamma^2)^-1 X^T y`` (the same predictor once
    scaled by q at test time: ``q w`` equals the inverted solution). ``p = 0`` is least squares.
    No intercept: centre ``x`` and ``y`` first.
    """
    x, y = _check_xy(x, y)
    p = probability("p", p)
    q = 1.0 - p
    xtx = x.T @ x
    gamma2 = torch.diag(torch.diagonal(xtx))
    a = xtx + (p / q) * gamma2 if inverted else q * xtx + (1 - q) * gamma2
    return torch.linalg.solve(a, x.T @ y)


def dropout_linear_sgd(x: torch.Tensor, y: torch.Tensor, p: float, steps: int = 20000,
                       lr: float = 0.01, batch_size: int = 32, average_from: float = 0.5,
                       record_every: int = 100, seed: int = 0) -> pd.DataFrame:
    """Train ``nn.Sequential(nn.Dropout(p), nn.Linear(d, 1, bias=False))`` by plain SGD.

    Minimises the mean squared error of ``x`` (N, d) against ``y`` (N,) with torch's
    dropout on the inputs (``p`` drops; inverted scaling), starting from zero weights.
    Constant-step SGD with dropout noise keeps fluctuating around the minimiser of the
    expected loss (spread ~ sqrt(lr)), so the returned estimate is the Polyak-Ruppert
    average of the iterates from step ``average_from * steps`` on, whose fluctuation
    shrinks like 1/sqrt(steps averaged).

    Returns a DataFrame with one row every ``record_every`` steps: ``step`` and ``w``
    (the averaged weights so far, a (d,) numpy array; the plain iterate before averaging
    starts), ``iterate`` (the current weights).
    """
    x, y = _check_xy(x, y)
    p = probability("p", p)
    steps = positive_int("steps", steps)
    lr = positive_float("lr", lr)
    batch_size = positive_int("batch_size", batch_size)
    record_every = positive_int("record_every", record_every)
    average_from = probability("average_from", average_from)
    seed = non_negative_int("seed", seed)
    d = x.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Dropout(p), nn.Linear(d, 1, bias=False)).to(x.device, x.dtype)
        nn.init.zeros_(model[1].weight)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        order = torch.Generator().manual_seed(seed)
        start = int(average_from * steps)
        avg, n_avg, rows = torch.zeros(d, dtype=x.dtype, device=x.device), 0, []
        model.train()
        for step in range(1, steps + 1):
            idx = torch.randint(len(x), (batch_size,), generator=order).to(x.device)
            loss = nn.functional.mse_loss(model(x[idx]).squeeze(1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            w = model[1].weight.detach()[0]
            if step > start:
                n_avg += 1
                avg += (w - avg) / n_avg
            if step % record_every == 0 or step == steps:
                rows.append({"step": step, "w": (avg if n_avg else w).cpu().numpy().copy(),
                             "iterate": w.cpu().numpy().copy()})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# How many subnetworks does training visit?
# --------------------------------------------------------------------------------------

def mask_recurrence(n: int, p: float, draws: int) -> dict:
    """Statistics of ``draws`` independent masks over ``n`` units with drop probability ``p``.

    In training every example of every minibatch gets its own mask, so ``draws`` =
    epochs x training examples. Returns a dict with

    - ``log10_masks``: log10 of the number of subnetworks, ``n log10 2``;
    - ``draws_per_mask``: draws / 2**n;
    - ``collision``: the probability that two given draws are the same mask,
      ``(p**2 + q**2)**n``;
    - ``expected_repeat_pairs``: C(draws, 2) x collision, the expected number of pairs of
      draws with the same mask;
    - ``p_any_repeat``: the chance that some mask is drawn twice, ``1 - exp(-pairs)``
      (Poisson approximation; accurate when ``collision`` is small);
    - ``expected_distinct``: the exact expected number of distinct masks among the draws,
      ``sum_k C(n,k) [1 - (1 - q**k p**(n-k))**draws]``;
    - ``repeat_fraction``: 1 - expected_distinct / draws, the share of draws that revisit a
      subnetwork already trained.
    """
    n = positive_int("n", n)
    p = probability("p", p)
    draws = positive_int("draws", draws)
    if p == 0:
        raise ValueError("p must be positive: with p = 0 every draw is the full network")
    q = 1.0 - p
    k = np.arange(n + 1)
    log_comb = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k])
    log_pm = k * math.log(q) + (n - k) * math.log(p)  # log prob of one mask keeping k units
    # log of 1 - (1 - P)^draws, stably also when P underflows
    pm = np.exp(log_pm)
    with np.errstate(divide="ignore"):
        seen = -np.expm1(draws * np.log1p(-pm))
        log_seen = np.where(seen > 1e-300, np.log(np.maximum(seen, 1e-300)), math.log(draws) + log_pm)
    distinct = float(np.exp(logsumexp(log_comb + log_seen)))
    log_collision = n * math.log(p * p + q * q)
    pairs = math.exp(log_collision + math.log(draws) + math.log(max(draws - 1, 1)) - math.log(2)) \
        if draws > 1 else 0.0
    return {
        "n": n,
        "p": p,
        "draws": draws,
        "log10_masks": n * math.log10(2),
        "draws_per_mask": math.exp(math.log(draws) - n * math.log(2)),
        "collision": math.exp(log_collision),
        "expected_repeat_pairs": pairs,
        "p_any_repeat": -math.expm1(-pairs),
        "expected_distinct": min(distinct, float(draws)),
        "repeat_fraction": max(0.0, 1.0 - distinct / draws),
    }
