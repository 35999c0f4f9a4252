"""Metrics of the book: error rate, negative log-likelihood, confidence intervals, and the
decompositions of ensemble error (ambiguity; bias/variance/diversity) of chapters 1 and 2.

Predictions are class probabilities of shape (N, C) (rows sum to one), labels are
int64 of shape (N,). Passing logits where probabilities are expected is an error.
"""
from __future__ import annotations

import numpy as np
import torch

from ._checks import one_of, positive_int, probability

__all__ = ["error_rate", "nll", "mean_ci",
           # decompositions (chapters 1 and 2)
           "ambiguity_decomposition", "bias_variance_diversity", "bias_variance",
           "geometric_mean", "ambiguity_decomposition_ce", "bias_variance_diversity_ce",
           "variance_of_mean", "equicorrelated_normal", "member_correlation",
           "disagreement", "pairwise_correlation"]


def _check_probs(probs: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(probs, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("probs and y must be torch tensors")
    if probs.dim() != 2:
        raise ValueError(f"probs must have shape (N, C), got {tuple(probs.shape)}")
    if y.dim() != 1 or len(y) != len(probs):
        raise ValueError(f"y must have shape ({len(probs)},), got {tuple(y.shape)}")
    if torch.is_floating_point(y):
        raise TypeError("y must hold integer class labels")
    if probs.min() < 0 or not torch.allclose(probs.sum(1), torch.ones(len(probs), dtype=probs.dtype,
                                                                       device=probs.device), atol=1e-3):
        raise ValueError("probs must be probabilities (non-negative rows summing to 1); apply softmax to logits")


def error_rate(probs: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose most probable class is wrong. probs (N, C), y (N,)."""
    _check_probs(probs, y)
    return (probs.argmax(1) != y).float().mean().item()


def nll(probs: torch.Tensor, y: torch.Tensor, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood (nats) of the true labels. probs (N, C), y (N,)."""
    _check_probs(probs, y)
    p_true = probs.gather(1, y.unsqueeze(1)).squeeze(1)
    return (-torch.log(p_true.clamp_min(eps))).mean().item()


def mean_ci(values, confidence: float = 0.95, method: str = "bootstrap", seed: int = 0
            ) -> tuple[float, float, float]:
    """Mean of ``values`` (e.g. one test error per seed) and its confidence interval.

    ``method="bootstrap"`` uses :func:`scipy.stats.bootstrap` (percentile interval);
    ``method="t"`` uses Student's t, the more honest choice for fewer than ~5 values.
    Returns (mean, low, high).
    """
    from scipy import stats

    confidence = probability("confidence", confidence)
    one_of("method", method, ("bootstrap", "t"))
    v = np.asarray(values, dtype=float).ravel()
    if v.size < 2:
        raise ValueError(f"values must hold at least 2 numbers, got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError("values must be finite")
    mean = float(v.mean())
    if np.ptp(v) == 0:
        return mean, mean, mean
    if method == "t":
        half = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
        return mean, mean - half, mean + half
    res = stats.bootstrap((v,), np.mean, confidence_level=confidence, method="percentile",
                          n_resamples=2000, rng=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


# ---------------------------------------------------------------------------------------
# Decompositions of ensemble error (chapters 1 and 2)
#
# Shapes: M members, N test points, C classes, R independent trials (training sets or
# seeds) of the whole ensemble. Inputs may be torch tensors or numpy arrays; every
# computation runs in float64 so that the identities hold to ~1e-12.
# ---------------------------------------------------------------------------------------

#: Floor for probabilities that underflowed to 0 (float32's smallest normal is ~1.2e-38).
PROB_FLOOR = 1e-40


def _as_float64(name: str, value, ndim: int | tuple[int, ...], shape_hint: str) -> torch.Tensor:
    """``value`` as a float64 CPU tensor with ``ndim`` dimensions, else raise naming ``name``."""
    if isinstance(value, (list, tuple)):
        value = np.asarray(value)
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(value).__name__}")
    t = torch.as_tensor(value).detach().to("cpu", torch.float64)
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if t.dim() not in dims:
        raise ValueError(f"{name} must have shape {shape_hint}, got {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


def _check_target(name: str, target, n: int) -> torch.Tensor:
    t = _as_float64(name, target, 1, f"({n},)")
    if len(t) != n:
        raise ValueError(f"{name} must have shape ({n},), got {tuple(t.shape)}")
    return t


def _check_member_probs(name: str, probs, ndim: int, shape_hint: str) -> torch.Tensor:
    p = _as_float64(name, probs, ndim, shape_hint)
    if p.min() < 0 or not torch.allclose(p.sum(-1), torch.ones((), dtype=p.dtype), atol=1e-3):
        raise ValueError(f"{name} must be probabilities (non-negative, summing to 1 over the last axis); "
                         "apply softmax to logits")
    # float32 softmax underflows to exactly 0 for very confident members; the geometric
    # mean and KL need log-probabilities, so zeros are raised to PROB_FLOOR (then renormalised).
    p = p.clamp_min(PROB_FLOOR)
    return p / p.sum(-1, keepdim=True)


def _check_labels(name: str, y, n: int, n_classes: int) -> torch.Tensor:
    if not isinstance(y, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(y).__name__}")
    y = torch.as_tensor(y).to("cpu")
    if torch.is_floating_point(y) or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(y.shape)}")
    if y.min() < 0 or y.max() >= n_classes:
        raise ValueError(f"{name} must hold labels in [0, {n_classes})")
    return y.long()


# --- Ambiguity decomposition, squared loss (Krogh & Vedelsby 1995) -----------------------

def ambiguity_decomposition(preds, y) -> dict[str, float]:
    """Krogh & Vedelsby's ambiguity decomposition of the squared error of a mean.

    preds: (M, N) member predictions; y: (N,) targets. With the ensemble the plain mean
    ``q_bar = preds.mean(0)``, for every point exactly

        (y - q_bar)^2 = mean_i (y - q_i)^2 - mean_i (q_i - q_bar)^2,

    and so on average over the N points. Returns a dict of means over the points:
    ``ensemble_error``, ``member_error`` (mean member squared error) and ``ambiguity``
    (mean squared spread of the members around their mean), so that
    ``ensemble_error == member_error - ambiguity``.
    """
    q = _as_float64("preds", preds, 2, "(M, N)")
    t = _check_target("y", y, q.shape[1])
    q_bar = q.mean(0)
    return {
        "ensemble_error": (t - q_bar).pow(2).mean().item(),
        "member_error": (t - q).pow(2).mean().item(),
        "ambiguity": (q - q_bar).pow(2).mean().item(),
    }


# --- Bias / variance / diversity, squared loss (Wood et al. 2023) ------------------------

def bias_variance_diversity(preds, target) -> dict[str, float]:
    """Bias/variance/diversity decomposition (Wood et al. 2023) for squared loss.

    preds: (R, M, N) predictions of an M-member ensemble (the plain mean) retrained
    on R independent trials (training sets, seeds); target: (N,) the noise-free
    target f(x) (or any fixed target). Expectations over trials are means over R.
    With ``q_i*`` the trial-mean of member i, returns means over the N points of

    - ``risk``:      E_R (f - q_bar)^2, the ensemble's expected error,
    - ``bias``:      mean_i (f - q_i*)^2, the average (squared) member bias,
    - ``variance``:  mean_i E_R (q_i - q_i*)^2, the average member variance,
    - ``diversity``: E_R mean_i (q_i - q_bar)^2, the expected ambiguity,

    so that exactly ``risk == bias + variance - diversity``. The noise, E (y - f)^2,
    adds to both sides when the error is measured against noisy labels. M = 1 gives
    the classical bias/variance decomposition (diversity 0); see :func:`bias_variance`.
    """
    q = _as_float64("preds", preds, 3, "(R, M, N)")
    f = _check_target("target", target, q.shape[2])
    q_star = q.mean(0)  # (M, N): each member's prediction averaged over trials
    q_bar = q.mean(1, keepdim=True)  # (R, 1, N): the ensemble of each trial
    return {
        "risk": (f - q_bar).pow(2).mean().item(),
        "bias": (f - q_star).pow(2).mean().item(),
        "variance": (q - q_star).pow(2).mean().item(),
        "diversity": (q - q_bar).pow(2).mean().item(),
    }


def bias_variance(preds, target) -> dict[str, float]:
    """Classical bias/variance of one predictor retrained on R trials.

    preds: (R, N); target: (N,) the noise-free f(x). Returns means over the points of
    ``risk`` = E_R (f - q)^2, ``bias`` = (f - E_R q)^2 (the squared bias) and
    ``variance`` = E_R (q - E_R q)^2, with ``risk == bias + variance`` exactly.
    """
    q = _as_float64("preds", preds, 2, "(R, N)")
    out = bias_variance_diversity(q.unsqueeze(1), target)
    out.pop("diversity")
    return out


# --- Cross-entropy with the normalised geometric mean (Wood et al. 2023) -----------------

def geometric_mean(probs, dim: int = 0) -> torch.Tensor:
    """Normalised geometric mean of probability vectors along ``dim``.

    probs: (..., C) probabilities (zeros raised to ``PROB_FLOOR``; last axis = classes); ``dim`` must
    not be the last axis. Returns q_bar proportional to exp(mean log q_i), renormalised
    over classes, in float64: e.g. (M, N, C) with dim=0 -> (N, C). This is the combiner
    for which the cross-entropy (KL) ambiguity decomposition holds exactly.
    """
    p = _check_member_probs("probs", probs, (2, 3, 4, 5), "(..., C) with at least 2 axes")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    if not -p.dim() <= dim < p.dim() or dim % p.dim() == p.dim() - 1:
        raise ValueError(f"dim must index a non-class axis of probs with shape {tuple(p.shape)}, got {dim}")
    return p.log().mean(dim).softmax(-1)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) over the last axis, for strictly positive q (p may hold zeros)."""
    return torch.where(p > 0, p * (p.clamp_min(1e-300).log() - q.log()), torch.zeros_like(p)).sum(-1)


def _one_hot(y: torch.Tensor, n_classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, n_classes).to(torch.float64)


def ambiguity_decomposition_ce(probs, y) -> dict[str, float]:
    """Ambiguity decomposition of cross-entropy for the normalised geometric mean.

    probs: (M, N, C) member probabilities (zeros raised to ``PROB_FLOOR``); y: (N,) integer labels.
    With q_bar the normalised geometric mean of the members (:func:`geometric_mean`),
    for every point exactly

        CE(y, q_bar) = mean_i CE(y, q_i) - mean_i KL(q_bar || q_i).

    Returns means over the points: ``ensemble_error`` (the ensemble's cross-entropy,
    nats), ``member_error`` (mean member cross-entropy) and ``ambiguity``.
    """
    p = _check_member_probs("probs", probs, 3, "(M, N, C)")
    t = _check_labels("y", y, p.shape[1], p.shape[2])
    q_bar = p.log().mean(0).softmax(-1)
    ce = lambda q: -q.log().gather(-1, t.expand(*q.shape[:-1]).unsqueeze(-1)).squeeze(-1)  # noqa: E731
    return {
        "ensemble_error": ce(q_bar).mean().item(),
        "member_error": ce(p).mean().item(),
        "ambiguity": _kl(q_bar.unsqueeze(0), p).mean().item(),
    }


def bias_variance_diversity_ce(probs, y) -> dict[str, float]:
    """Bias/variance/diversity decomposition of cross-entropy (Wood et al. 2023).

    probs: (R, M, N, C) member probabilities (zeros raised to ``PROB_FLOOR``) of an M-member ensemble
    combined by the normalised geometric mean, retrained on R trials; y: (N,) labels.
    Expectations over trials are means over R; the "centroid" of member i over the
    trials is its normalised geometric mean over R, ``q_i*``. Returns means over the
    N points of

    - ``risk``:      E_R CE(y, q_bar), the ensemble's expected cross-entropy (nats),
    - ``bias``:      mean_i KL(y || q_i*), the average member bias (with one-hot labels
      this includes the label noise, which cannot be separated without p(y | x)),
    - ``variance``:  mean_i E_R KL(q_i* || q_i), the average member variance,
    - ``diversity``: E_R mean_i KL(q_bar || q_i), the expected ambiguity,

    so that exactly ``risk == bias + variance - diversity``.
    """
    p = _check_member_probs("probs", probs, 4, "(R, M, N, C)")
    t = _check_labels("y", y, p.shape[2], p.shape[3])
    onehot = _one_hot(t, p.shape[3])  # (N, C)
    logp = p.log()
    q_star = logp.mean(0).softmax(-1)  # (M, N, C)
    q_bar = logp.mean(1, keepdim=True).softmax(-1)  # (R, 1, N, C)
    return {
        "risk": _kl(onehot, q_bar).mean().item(),
        "bias": _kl(onehot, q_star).mean().item(),
        "variance": _kl(q_star.unsqueeze(0), p).mean().item(),
        "diversity": _kl(q_bar, p).mean().item(),
    }


# --- Variance of a mean of correlated predictors -----------------------------------------

def variance_of_mean(s2, rho, m):
    """Variance of the mean of ``m`` predictors with variance ``s2`` and pairwise correlation ``rho``.

    rho * s2 + (1 - rho) * s2 / m. Arguments broadcast (numpy); ``m`` >= 1,
    ``s2`` >= 0 and -1/(m-1) <= rho <= 1 (the covariance matrix must be valid).
    """
    s2, rho, m = (np.asarray(a, dtype=float) for a in (s2, rho, m))
    if np.any(s2 < 0) or not np.all(np.isfinite(s2)):
        raise ValueError("s2 must be finite and non-negative")
    if np.any(m < 1) or np.any(m != np.round(m)):
        raise ValueError("m must hold positive integers")
    lower = np.where(m > 1, -1.0 / np.maximum(m - 1, 1), -1.0)
    if np.any(rho > 1) or np.any(rho < lower - 1e-12):
        raise ValueError("rho must lie in [-1/(m-1), 1]")
    out = rho * s2 + (1 - rho) * s2 / m
    return float(out) if out.ndim == 0 else out


def equicorrelated_normal(n: int, m: int, s2: float = 1.0, rho: float = 0.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws of ``m`` predictions with variance ``s2`` and pairwise correlation ``rho`` >= 0.

    Each draw is sqrt(s2) * (sqrt(rho) * z0 + sqrt(1 - rho) * z_i), with z0 shared by the
    members and z_i their own: shape (n, m), float64.
    """
    n, m = positive_int("n", n), positive_int("m", m)
    if isinstance(s2, bool) or not isinstance(s2, (int, float)) or s2 < 0:
        raise ValueError(f"s2 must be a non-negative float, got {s2!r}")
    rho = probability("rho", rho, allow_one=True)
    shared = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    own = torch.randn(n, m, generator=generator, dtype=torch.float64)
    return np.sqrt(s2) * (np.sqrt(rho) * shared + np.sqrt(1 - rho) * own)


def member_correlation(preds) -> tuple[float, float]:
    """Pooled member variance ``s2`` and pairwise correlation ``rho`` over trials.

    preds: (R, M, N), M >= 2 members retrained on R >= 2 trials. For each point the
    (M, M) covariance over trials (ddof 0) is taken; ``s2`` is the mean of its
    diagonal and ``rho`` the mean off-diagonal covariance divided by ``s2``, both
    averaged over the points. With these, :func:`variance_of_mean` (s2, rho, M) equals
    the variance over trials of the M-member mean, averaged over points, exactly.
    """
    q = _as_float64("preds", preds, 3, "(R, M, N)")
    r, m, _ = q.shape
    if r < 2 or m < 2:
        raise ValueError(f"preds needs at least 2 trials and 2 members, got shape {tuple(q.shape)}")
    d = q - q.mean(0)
    cov = torch.einsum("rin,rjn->ijn", d, d).mean(-1) / r  # (M, M), averaged over points
    s2 = cov.diagonal().mean().item()
    if s2 == 0:
        raise ValueError("preds do not vary over trials: the correlation is undefined")
    off = (cov.sum() - cov.diagonal().sum()).item() / (m * (m - 1))
    return s2, off / s2


# --- Pairwise disagreement and correlation of member predictions -------------------------

def _pairs_mean(matrix: torch.Tensor) -> float:
    m = matrix.shape[0]
    return ((matrix.sum() - matrix.diagonal().sum()) / (m * (m - 1))).item()


def disagreement(preds, reduce: bool = True):
    """Pairwise disagreement: the fraction of points where two members predict different classes.

    preds: (M, N, C) member probabilities (or logits) or (M, N) integer class
    predictions, M >= 2. Returns the mean over pairs i != j (``reduce=True``) or the
    (M, M) matrix (zero diagonal) as a numpy array.
    """
    if not isinstance(preds, (torch.Tensor, np.ndarray)):
        raise TypeError(f"preds must be a torch tensor or numpy array, got {type(preds).__name__}")
    t = torch.as_tensor(preds).to("cpu")
    if t.dim() == 3:
        labels = t.argmax(-1)
    elif t.dim() == 2 and not torch.is_floating_point(t):
        labels = t
    else:
        raise ValueError(f"preds must have shape (M, N, C) or be (M, N) integer labels, got {tuple(t.shape)}, "
                         f"{t.dtype}")
    if labels.shape[0] < 2 or labels.shape[1] == 0:
        raise ValueError(f"preds needs at least 2 members and 1 point, got shape {tuple(t.shape)}")
    matrix = (labels.unsqueeze(0) != labels.unsqueeze(1)).double().mean(-1)
    return _pairs_mean(matrix) if reduce else matrix.numpy()


def pairwise_correlation(preds, target=None, reduce: bool = True):
    """Pearson correlation between members' predictions across points.

    preds: (M, N) real-valued member predictions, M >= 2; target: optional (N,). With a
    target the members' errors ``preds - target`` are correlated instead (predictions
    of good members all follow the target, so their raw correlation is near 1). Returns
    the mean over pairs i != j (``reduce=True``) or the (M, M) matrix as a numpy array.
    """
    q = _as_float64("preds", preds, 2, "(M, N)")
    if q.shape[0] < 2 or q.shape[1] < 2:
        raise ValueError(f"preds needs at least 2 members and 2 points, got shape {tuple(q.shape)}")
    if target is not None:
        q = q - _check_target("target", target, q.shape[1])
    d = q - q.mean(1, keepdim=True)
    norm = d.pow(2).sum(1).sqrt()
    if (norm == 0).any():
        raise ValueError("preds holds a constant member: its correlation is undefined")
    matrix = (d @ d.T) / torch.outer(norm, norm)
    return _pairs_mean(matrix) if reduce else matrix.numpy()
