"""Metrics of the book: error rate, negative log-likelihood, confidence intervals.

Predictions are class probabilities of shape (N, C) (rows sum to one), labels are
int64 of shape (N,). Passing logits where probabilities are expected is an error.
"""
from __future__ import annotations

import numpy as np
import torch

from ._checks import one_of, probability

__all__ = ["error_rate", "nll", "mean_ci"]


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
