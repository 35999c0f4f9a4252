"""Bias and variance over many independent training sets (chapters 1 and 2).

Bias and variance are properties of a *learner*, not of one fitted model: they are
measured by retraining on R independent training sets drawn from
:func:`bagdrop.data.regression` (seeds ``seed, seed + 1, ...``), all sharing one test
grid, and comparing the R predictions at each test point with the known target
``f_test``. The helpers here return those predictions as arrays of shape
(R, N_test), or (R, M, N_test) for the M members of an ensemble, ready for
:func:`bagdrop.metrics.bias_variance` and
:func:`bagdrop.metrics.bias_variance_diversity`.

- :func:`training_sets`: the R splits;
- :func:`over_training_sets`: run any ``fit_predict(split, r)`` on each of them;
- :func:`sklearn_learner`: a ``fit_predict`` for a scikit-learn estimator, returning
  the member predictions of a fitted bagging ensemble if asked;
- :func:`ensemble_over_training_sets`: neural-network members of
  :class:`bagdrop.ensemble.Ensemble` for every training set, trained in a single
  batched fit (each member's training indices stay inside its own training set);
- :func:`bootstrap_over_sets`: a confidence interval for any statistic of the R
  training sets (e.g. a ratio of variances), resampling the sets.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ._checks import non_negative_int, positive_float, positive_int
from .data import Split, regression

__all__ = ["training_sets", "over_training_sets", "sklearn_learner", "stacked_training_sets",
           "ensemble_over_training_sets", "bootstrap_over_sets"]


def training_sets(n_sets: int, n_train: int = 100, noise: float = 0.3, seed: int = 0) -> list[Split]:
    """``n_sets`` independent regression splits (seeds ``seed .. seed + n_sets - 1``).

    Each is :func:`bagdrop.data.regression` (``n_train``, ``noise``); they share the
    test grid ``x_test`` (N_test, 1) and the noise-free target ``f_test`` (N_test,).
    """
    n_sets = positive_int("n_sets", n_sets)
    seed = non_negative_int("seed", seed)
    return [regression(n_train=n_train, noise=noise, seed=seed + r) for r in range(n_sets)]


def over_training_sets(fit_predict: Callable[[Split, int], object], n_sets: int, n_train: int = 100,
                       noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """Run ``fit_predict(split, r)`` on each of :func:`training_sets` and stack the results.

    ``fit_predict`` trains a fresh model on ``split`` (the ``r``-th training set, which
    may also seed the learner) and returns its predictions on ``split.x_test``: an array
    of shape (N_test,), or (M, N_test) for the members of an ensemble. Returns float64
    predictions of shape (R, N_test) or (R, M, N_test).
    """
    if not callable(fit_predict):
        raise TypeError(f"fit_predict must be callable, got {type(fit_predict).__name__}")
    out = []
    for r, split in enumerate(training_sets(n_sets, n_train, noise, seed)):
        pred = np.asarray(torch.as_tensor(fit_predict(split, r)).detach().cpu(), dtype=np.float64)
        if pred.shape[-1:] != (len(split.x_test),) or pred.ndim not in (1, 2):
            raise ValueError(f"fit_predict must return (N_test,) or (M, N_test) predictions with "
                             f"N_test={len(split.x_test)}, got shape {pred.shape}")
        if out and pred.shape != out[0].shape:
            raise ValueError(f"fit_predict returned shape {pred.shape} for set {r}, {out[0].shape} before")
        out.append(pred)
    return np.stack(out)


def sklearn_learner(estimator, members: bool = False) -> Callable[[Split, int], np.ndarray]:
    """A ``fit_predict`` for :func:`over_training_sets` from a scikit-learn regressor.

    For each training set a clone of ``estimator`` is fitted (with
    ``random_state=r`` when the estimator takes one) on ``x_train`` (n, 1) and
    ``y_train``; it predicts the test grid, shape (N_test,). With ``members=True`` the
    estimator must be a fitted-ensemble type such as
    :class:`sklearn.ensemble.BaggingRegressor`, and the predictions of its M members,
    shape (M, N_test), are returned instead (their mean is the ensemble's prediction).
    """
    from sklearn.base import clone, is_regressor

    if not is_regressor(estimator):
        raise TypeError(f"estimator must be a scikit-learn regressor, got {type(estimator).__name__}")
    if members and not hasattr(estimator, "n_estimators"):
        raise ValueError(f"members=True needs an ensemble estimator (e.g. BaggingRegressor), "
                         f"got {type(estimator).__name__}")

    def fit_predict(split: Split, r: int) -> np.ndarray:
        model = clone(estimator)
        if "random_state" in model.get_params():
            model.set_params(random_state=r)
        x, x_test = split.x_train.numpy(), split.x_test.numpy()
        model.fit(x, split.y_train.numpy())
        if not members:
            return model.predict(x_test)
        return np.stack([est.predict(x_test[:, feats])
                         for est, feats in zip(model.estimators_, model.estimators_features_)])

    return fit_predict


def stacked_training_sets(n_sets: int, n_train: int = 100, noise: float = 0.3, seed: int = 0
                          ) -> tuple[Split, torch.Tensor]:
    """The :func:`training_sets` concatenated into one split, and where each set lies.

    Returns the split (``x_train`` (R * n_train, 1), test grid shared) and ``rows``, an
    int64 tensor (R, n_train) whose row r holds the indices of training set r.
    """
    sets = training_sets(n_sets, n_train, noise, seed)
    split = Split(torch.cat([s.x_train for s in sets]), torch.cat([s.y_train for s in sets]),
                  sets[0].x_test, sets[0].y_test, sets[0].f_test)
    rows = torch.arange(len(sets) * len(sets[0].x_train)).reshape(len(sets), -1)
    return split, rows


def ensemble_over_training_sets(factory: Callable[[], torch.nn.Module], n_sets: int, k: int,
                                bootstrap: bool = False, n_train: int = 100, noise: float = 0.3,
                                seed: int = 0, epochs: int = 200, lr: float = 1e-2,
                                batch_size: int = 50, device: torch.device | str | None = None
                                ) -> torch.Tensor:
    """Train ``k`` network members on each of ``n_sets`` training sets; predict the test grid.

    Every (set, member) pair is one member of a single :class:`bagdrop.ensemble.Ensemble`
    of ``n_sets * k`` networks built by ``factory`` (a regression network with one
    output), initialised from ``seed + i``; member (r, m) trains only on training
    set r: all of it, or (``bootstrap=True``) its own bootstrap sample of it, drawn
    with a generator seeded by ``seed``. Training is Adam with ``lr``, ``batch_size``
    and ``epochs`` as in :meth:`bagdrop.ensemble.Ensemble.fit`, on ``device`` (default CPU).

    Returns the members' predictions on the shared test grid, float64 of shape
    (n_sets, k, N_test).
    """
    from .ensemble import Ensemble

    n_sets, k = positive_int("n_sets", n_sets), positive_int("k", k)
    if not isinstance(bootstrap, bool):
        raise TypeError(f"bootstrap must be a bool, got {type(bootstrap).__name__}")
    seed = non_negative_int("seed", seed)
    positive_float("lr", lr)
    split, rows = stacked_training_sets(n_sets, n_train, noise, seed)
    n = rows.shape[1]
    if bootstrap:
        gen = torch.Generator().manual_seed(seed)
        pick = torch.randint(0, n, (n_sets, k, n), generator=gen)
    else:
        pick = torch.arange(n).expand(n_sets, k, n)
    index = rows.unsqueeze(1).expand(n_sets, k, n).gather(2, pick).reshape(n_sets * k, n)
    ens = Ensemble(factory, n_sets * k, seed=seed)
    ens.fit(split, epochs=epochs, lr=lr, batch_size=batch_size, bootstrap=index, seed=seed,
            progress=False, eval_every=epochs, device=device)
    return ens.member_predict(split.x_test).double().cpu().reshape(n_sets, k, -1)


def bootstrap_over_sets(statistic: Callable[[np.ndarray], float], n_sets: int, confidence: float = 0.95,
                        n_resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """A statistic of R training sets with a percentile bootstrap interval over the sets.

    ``statistic(idx)`` receives an int array (R,) of training-set indices, drawn with
    replacement, and returns a number, e.g.
    ``lambda i: var(bagged[i]) / var(single[i])`` for predictions of shape (R, N_test):
    resampling whole sets keeps paired predictions paired. Uses
    :func:`scipy.stats.bootstrap`. Returns (statistic on all sets, low, high).
    """
    from scipy import stats

    from ._checks import probability

    if not callable(statistic):
        raise TypeError(f"statistic must be callable, got {type(statistic).__name__}")
    n_sets = positive_int("n_sets", n_sets)
    if n_sets < 2:
        raise ValueError(f"n_sets must be at least 2, got {n_sets}")
    confidence = probability("confidence", confidence)
    n_resamples = positive_int("n_resamples", n_resamples)
    seed = non_negative_int("seed", seed)
    idx = np.arange(n_sets)
    res = stats.bootstrap((idx,), lambda i: float(statistic(np.asarray(i, dtype=np.int64))),
                          vectorized=False, confidence_level=confidence, method="percentile",
                          n_resamples=n_resamples, rng=np.random.default_rng(seed))
    return float(statistic(idx)), float(res.confidence_interval.low), float(res.confidence_interval.high)
