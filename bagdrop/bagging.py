"""Bagging over examples: bootstrap index samples and their out-of-bag masks.

A bootstrap sample of a training set of ``n`` examples draws ``n`` indices uniformly
with replacement (Breiman 1996). About ``1 - (1 - 1/n)^n ~ 63.2%`` of the examples
appear in it; the others are the sample's *out-of-bag* examples, an unused test set
for the member trained on it.
"""
from __future__ import annotations

import torch

from ._checks import positive_int

__all__ = ["bootstrap_indices", "out_of_bag_mask", "in_bag_counts"]


def bootstrap_indices(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` bootstrap samples of ``range(n)``: an int64 tensor of shape (k, n).

    Row ``i`` holds the ``n`` indices (drawn uniformly with replacement) that member
    ``i`` trains on. ``generator`` is a seeded :class:`torch.Generator`, e.g.
    ``torch.Generator().manual_seed(0)``, so the samples are reproducible and
    independent of torch's global random state.
    """
    n = positive_int("n", n)
    k = positive_int("k", k)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return torch.randint(0, n, (k, n), generator=generator, dtype=torch.int64,
                         device=generator.device)


def _check_index(index, n: int) -> torch.Tensor:
    if not isinstance(index, torch.Tensor):
        raise TypeError(f"index must be a torch tensor, got {type(index).__name__}")
    if index.dim() != 2:
        raise ValueError(f"index must have shape (k, m), got {tuple(index.shape)}")
    if index.dtype.is_floating_point or index.dtype == torch.bool or index.is_complex():
        raise TypeError(f"index must hold integer indices, got dtype {index.dtype}")
    if index.numel() and (index.min() < 0 or index.max() >= n):
        raise ValueError(f"index must hold indices in [0, {n}), got values in "
                         f"[{int(index.min())}, {int(index.max())}]")
    return index.to(torch.int64)


def in_bag_counts(index: torch.Tensor, n: int) -> torch.Tensor:
    """How often each example occurs in each sample: index (k, m) -> int64 counts (k, n)."""
    n = positive_int("n", n)
    index = _check_index(index, n)
    counts = torch.zeros(index.shape[0], n, dtype=torch.int64, device=index.device)
    return counts.scatter_add_(1, index, torch.ones_like(index))


def out_of_bag_mask(index: torch.Tensor, n: int) -> torch.Tensor:
    """Out-of-bag examples of each sample: index (k, m) of indices in ``range(n)`` -> bool (k, n).

    ``mask[i, j]`` is True when example ``j`` does not occur in row ``i`` of ``index``,
    i.e. member ``i`` never saw it in training.
    """
    n = positive_int("n", n)
    index = _check_index(index, n)
    mask = torch.ones(index.shape[0], n, dtype=torch.bool, device=index.device)
    return mask.scatter_(1, index, False)
