"""The book's data sets, generated or bundled (never downloaded), as a :class:`Split`.

- :func:`mnist1d`: MNIST-1D (Greydanus & Kobak 2024), 4000 train / 1000 test signals of
  length 40, generated offline by ``mnist1d.data.make_dataset``.
- :func:`digits`: scikit-learn's bundled 8x8 digits as (N, 1, 8, 8) images.
- :func:`regression`: 1-D regression with a known target function, for exact
  bias/variance over many independent training sets.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, fields

import numpy as np
import torch

from ._checks import non_negative_int, positive_float, positive_int, probability

__all__ = ["Split", "mnist1d", "digits", "regression", "target_function"]


@dataclass(frozen=True)
class Split:
    """A train/test split of tensors.

    ``x_*`` are float32 inputs of shape (N, ...); ``y_*`` are int64 class labels of
    shape (N,) for classification, or float32 targets of shape (N,) for regression.
    ``f_test`` (regression only) holds the noise-free target f(x_test), shape (N_test,).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    f_test: torch.Tensor | None = None

    def __post_init__(self):
        if len(self.x_train) != len(self.y_train):
            raise ValueError(
                f"x_train and y_train must have the same length, got {len(self.x_train)} and {len(self.y_train)}"
            )
        if len(self.x_test) != len(self.y_test):
            raise ValueError(
                f"x_test and y_test must have the same length, got {len(self.x_test)} and {len(self.y_test)}"
            )

    @property
    def is_classification(self) -> bool:
        """True when the targets are integer class labels."""
        return not torch.is_floating_point(self.y_train)

    @property
    def n_classes(self) -> int:
        """Number of classes (classification only)."""
        if not self.is_classification:
            raise ValueError("n_classes is defined for classification splits only")
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (40,) for MNIST-1D or (1, 8, 8) for digits."""
        return tuple(self.x_train.shape[1:])

    def to(self, device) -> "Split":
        """The same split with every tensor moved to ``device``."""
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        return Split(**{k: (v.to(device) if v is not None else None) for k, v in moved.items()})

    def subset(self, n_train: int, seed: int = 0) -> "Split":
        """A split whose training set is a random subset of ``n_train`` examples (test unchanged)."""
        n_train = positive_int("n_train", n_train)
        if n_train > len(self.x_train):
            raise ValueError(f"n_train must be at most {len(self.x_train)}, got {n_train}")
        idx = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(seed))[:n_train]
        idx = idx.to(self.x_train.device)
        return Split(self.x_train[idx], self.y_train[idx], self.x_test, self.y_test, self.f_test)


def mnist1d(seed: int = 42, n_samples: int = 5000) -> Split:
    """MNIST-1D generated offline: inputs (N, 40) float32, labels (N,) int64.

    ``seed`` is the generator's seed (42 gives the published data set) and ``n_samples``
    the total number of signals, 80% of which go to training. The data are centred and
    scaled to unit standard deviation by the generator. The caller's ``random`` and
    ``numpy.random`` states are restored afterwards (``make_dataset`` reseeds them).
    """
    seed = non_negative_int("seed", seed)
    n_samples = positive_int("n_samples", n_samples)
    if n_samples < 20:
        raise ValueError(f"n_samples must be at least 20 (two per class per split), got {n_samples}")
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = n_samples
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return Split(
        x_train=torch.as_tensor(raw["x"], dtype=torch.float32),
        y_train=torch.as_tensor(raw["y"], dtype=torch.int64),
        x_test=torch.as_tensor(raw["x_test"], dtype=torch.float32),
        y_test=torch.as_tensor(raw["y_test"], dtype=torch.int64),
    )


def digits(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """scikit-learn's bundled 8x8 digits: images (N, 1, 8, 8) float32, labels (N,) int64.

    The split is stratified and seeded; pixels are standardised with the training
    set's mean and standard deviation (one scalar each, so images stay images).
    """
    test_fraction = probability("test_fraction", test_fraction)
    if test_fraction == 0:
        raise ValueError("test_fraction must be greater than 0")
    seed = non_negative_int("seed", seed)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    mean, std = x_tr.mean(), x_tr.std()

    def images(a):
        return torch.as_tensor((a - mean) / std, dtype=torch.float32).reshape(-1, 1, 8, 8)

    return Split(images(x_tr), torch.as_tensor(y_tr), images(x_te), torch.as_tensor(y_te))


def target_function(x: torch.Tensor) -> torch.Tensor:
    """The known regression target f(x) = sin(3x) + 0.3x^2 - 0.5, for x of any shape."""
    return torch.sin(3 * x) + 0.3 * x**2 - 0.5


def regression(n_train: int = 200, n_test: int = 500, noise: float = 0.3, seed: int = 0) -> Split:
    """Noisy 1-D regression with a known target: y = f(x) + noise * eps, eps ~ N(0, 1).

    Inputs x ~ U(-2, 2) have shape (N, 1); targets y have shape (N,). The test inputs
    are an evenly spaced grid shared by every seed, so that predictions from models
    trained on independent training sets (different ``seed``) can be compared point by
    point; ``f_test`` holds the noise-free f(x_test) for exact bias and variance.
    """
    n_train = positive_int("n_train", n_train)
    n_test = positive_int("n_test", n_test)
    noise = positive_float("noise", noise)
    seed = non_negative_int("seed", seed)
    g = torch.Generator().manual_seed(seed)
    x_train = torch.rand(n_train, 1, generator=g) * 4 - 2
    y_train = target_function(x_train[:, 0]) + noise * torch.randn(n_train, generator=g)
    x_test = torch.linspace(-2, 2, n_test).unsqueeze(1)
    f_test = target_function(x_test[:, 0])
    y_test = f_test + noise * torch.randn(n_test, generator=g)
    return Split(x_train, y_train, x_test, y_test, f_test)
