import random

import numpy as np
import pytest
import torch

from bagdrop import data


@pytest.fixture(scope="module")
def mnist():
    return data.mnist1d()


def test_mnist1d_shapes_and_labels(mnist):
    assert mnist.x_train.shape == (4000, 40) and mnist.x_test.shape == (1000, 40)
    assert mnist.x_train.dtype == torch.float32 and mnist.y_train.dtype == torch.int64
    assert mnist.n_classes == 10 and mnist.is_classification
    assert set(mnist.y_train.tolist()) == set(range(10))
    assert abs(mnist.x_train.mean()) < 0.1 and abs(mnist.x_train.std() - 1) < 0.1


def test_mnist1d_is_deterministic_and_seeded(mnist):
    again = data.mnist1d(n_samples=200)
    assert torch.equal(again.x_train, data.mnist1d(n_samples=200).x_train)
    assert not torch.equal(again.x_train, data.mnist1d(seed=1, n_samples=200).x_train)


def test_mnist1d_restores_the_callers_rng_state():
    random.seed(123)
    np.random.seed(123)
    expected = (random.random(), np.random.rand())
    random.seed(123)
    np.random.seed(123)
    data.mnist1d(n_samples=100)
    assert (random.random(), np.random.rand()) == expected


def test_digits_are_images():
    d = data.digits()
    assert d.x_train.shape[1:] == (1, 8, 8) and d.input_shape == (1, 8, 8)
    assert len(d.x_train) + len(d.x_test) == 1797
    assert len(d.x_test) == pytest.approx(0.25 * 1797, abs=1)
    assert abs(d.x_train.mean()) < 1e-4 and abs(d.x_train.std() - 1) < 1e-3
    assert torch.equal(d.x_test, data.digits().x_test)
    assert not torch.equal(d.x_test, data.digits(seed=1).x_test)


def test_regression_has_known_target_and_shared_test_grid():
    a, b = data.regression(seed=0), data.regression(seed=1)
    assert a.x_train.shape == (200, 1) and a.y_train.shape == (200,)
    assert not a.is_classification
    assert torch.equal(a.x_test, b.x_test) and torch.equal(a.f_test, b.f_test)
    assert not torch.equal(a.x_train, b.x_train)
    assert torch.allclose(a.f_test, data.target_function(a.x_test[:, 0]))
    residual = a.y_train - data.target_function(a.x_train[:, 0])
    assert residual.std().item() == pytest.approx(0.3, rel=0.2)


def test_split_subset_and_to():
    s = data.regression(n_train=50)
    sub = s.subset(10, seed=0)
    assert len(sub.x_train) == 10 and torch.equal(sub.x_test, s.x_test)
    assert s.to("cpu").x_train.device.type == "cpu"
    with pytest.raises(ValueError, match="n_train"):
        s.subset(51)


@pytest.mark.parametrize("call, match", [
    (lambda: data.mnist1d(n_samples=0), "n_samples"),
    (lambda: data.mnist1d(seed=-1), "seed"),
    (lambda: data.digits(test_fraction=1.5), "test_fraction"),
    (lambda: data.regression(n_train=0), "n_train"),
    (lambda: data.regression(noise=-1.0), "noise"),
])
def test_bad_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="n_train"):
        data.regression(n_train=2.5)


def test_split_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        data.Split(torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))
