"""bagdrop.regression: learners retrained over independent training sets."""
import numpy as np
import pytest
import torch
from sklearn.ensemble import BaggingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeRegressor

import bagdrop as bd
from bagdrop import regression


def test_training_sets_are_independent_and_share_the_test_grid():
    sets = regression.training_sets(3, n_train=20, seed=5)
    assert len(sets) == 3
    assert not torch.equal(sets[0].x_train, sets[1].x_train)
    assert all(torch.equal(s.x_test, sets[0].x_test) and torch.equal(s.f_test, sets[0].f_test) for s in sets)
    assert torch.equal(sets[1].x_train, bd.data.regression(n_train=20, seed=6).x_train)


def test_over_training_sets_shapes_and_known_answer():
    # predicting the training mean everywhere: variance across sets is that of a mean of 30 points
    preds = regression.over_training_sets(lambda s, r: s.y_train.mean().expand(len(s.x_test)), 40, n_train=30)
    assert preds.shape == (40, 500) and preds.dtype == np.float64
    assert np.allclose(preds, preds[:, :1])  # constant over x
    members = regression.over_training_sets(lambda s, r: torch.zeros(3, len(s.x_test)) + r, 4, n_train=10)
    assert members.shape == (4, 3, 500) and members[2, 1, 0] == 2


def test_sklearn_learner_single_and_members():
    single = regression.over_training_sets(regression.sklearn_learner(LinearRegression()), 5, n_train=50)
    assert single.shape == (5, 500)
    bag = BaggingRegressor(DecisionTreeRegressor(), n_estimators=4)
    members = regression.over_training_sets(regression.sklearn_learner(bag, members=True), 3, n_train=50)
    assert members.shape == (3, 4, 500)
    # the mean of the members is the bagging ensemble's own prediction
    split = bd.data.regression(n_train=50, seed=0)
    fitted = BaggingRegressor(DecisionTreeRegressor(), n_estimators=4, random_state=0).fit(
        split.x_train.numpy(), split.y_train.numpy())
    np.testing.assert_allclose(members[0].mean(0), fitted.predict(split.x_test.numpy()), rtol=1e-6)


def test_bagging_trees_reduces_variance():
    """A check that can fail: bagged deep trees vary less over training sets than one deep tree."""
    f = bd.data.regression().f_test
    single = regression.over_training_sets(regression.sklearn_learner(DecisionTreeRegressor()), 10, n_train=60)
    bag = regression.over_training_sets(
        regression.sklearn_learner(BaggingRegressor(DecisionTreeRegressor(), n_estimators=10)), 10, n_train=60)
    assert bd.metrics.bias_variance(bag, f)["variance"] < 0.8 * bd.metrics.bias_variance(single, f)["variance"]


def test_stacked_training_sets_rows_point_at_each_set():
    split, rows = regression.stacked_training_sets(3, n_train=7, seed=2)
    assert rows.shape == (3, 7) and len(split.x_train) == 21
    assert torch.equal(split.x_train[rows[1]], bd.data.regression(n_train=7, seed=3).x_train)


def test_ensemble_over_training_sets_members_see_only_their_set():
    mlp = lambda: bd.models.MLP(1, (8,), 1)  # noqa: E731
    preds = regression.ensemble_over_training_sets(mlp, 2, 3, n_train=20, epochs=2, batch_size=10)
    assert preds.shape == (2, 3, 500) and preds.dtype == torch.float64
    boot = regression.ensemble_over_training_sets(mlp, 2, 3, bootstrap=True, n_train=20, epochs=2, batch_size=10)
    assert not torch.allclose(preds, boot)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: regression.training_sets(0), ValueError, "n_sets"),
    (lambda: regression.over_training_sets(3, 2), TypeError, "fit_predict"),
    (lambda: regression.over_training_sets(lambda s, r: np.zeros(7), 2), ValueError, "N_test"),
    (lambda: regression.sklearn_learner(DecisionTreeRegressor, members=False), TypeError, "estimator"),
    (lambda: regression.sklearn_learner(LinearRegression(), members=True), ValueError, "members"),
    (lambda: regression.ensemble_over_training_sets(lambda: None, 2, 0), ValueError, "k"),
    (lambda: regression.ensemble_over_training_sets(lambda: None, 2, 2, bootstrap=1), TypeError, "bootstrap"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bootstrap_over_sets_covers_a_known_ratio():
    g = np.random.default_rng(0)
    a = g.normal(size=(30, 50))
    b = 0.5 * a + 0.1 * g.normal(size=(30, 50))  # paired: variance ratio ~0.26
    ratio = lambda i: b[i].var(0).mean() / a[i].var(0).mean()  # noqa: E731
    est, lo, hi = regression.bootstrap_over_sets(ratio, 30, n_resamples=300)
    assert lo < est < hi and lo < 0.26 < hi and hi - lo < 0.1
    with pytest.raises(ValueError, match="n_sets"):
        regression.bootstrap_over_sets(ratio, 1)
    with pytest.raises(TypeError, match="statistic"):
        regression.bootstrap_over_sets(0.5, 3)
