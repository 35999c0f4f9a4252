import pandas as pd
import pytest
import torch

import bagdrop as bd
from bagdrop import data, models, train


@pytest.fixture(scope="module")
def small():
    return data.mnist1d(n_samples=600)


def make_and_fit(split, seed=0, **kw):
    torch.manual_seed(seed)
    model = models.MLP(p=0.2)
    return model, train.fit(model, split, epochs=3, progress=False, seed=seed, **kw)


def test_fit_returns_history_and_learns(small):
    model, hist = make_and_fit(small)
    assert isinstance(hist, pd.DataFrame) and list(hist.epoch) == [1, 2, 3]
    assert {"loss", "train_error", "test_error", "test_nll"} <= set(hist.columns)
    assert hist.step.iloc[-1] == 3 * 5  # 480 examples, batch 100
    assert hist.train_error.iloc[-1] < 0.85  # chance is 0.9
    assert hist.loss.iloc[-1] < hist.loss.iloc[0]
    assert not model.training


def test_fit_is_deterministic_under_a_seed(small):
    a, ha = make_and_fit(small, seed=3)
    b, hb = make_and_fit(small, seed=3)
    c, hc = make_and_fit(small, seed=4)
    pd.testing.assert_frame_equal(ha, hb)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_eval_every_and_train_index(small):
    _, hist = make_and_fit(small, eval_every=2, train_index=torch.arange(100))
    assert list(hist.epoch) == [2, 3] and hist.step.iloc[-1] == 3


def test_fit_regression_reports_mse():
    split = data.regression(n_train=64)
    torch.manual_seed(0)
    model = models.MLP(in_features=1, hidden=(32,), out_features=1)
    hist = train.fit(model, split, epochs=20, batch_size=16, progress=False)
    assert {"train_mse", "test_mse"} <= set(hist.columns)
    assert hist.test_mse.iloc[-1] < hist.test_mse.iloc[0] or hist.test_mse.iloc[-1] < 0.5
    assert train.predict(model, split.x_test).shape == (500,)


def test_predict_proba_rows_sum_to_one(small):
    model = models.CNN1d(p=0.3)
    model.train()
    p = train.predict_proba(model, small.x_test)
    assert p.shape == (len(small.x_test), 10)
    assert torch.allclose(p.sum(1), torch.ones(len(p)))
    assert model.training  # restored
    assert torch.equal(p, train.predict_proba(model, small.x_test))  # eval mode: no masks


@pytest.mark.parametrize("kw, err, match", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"lr": 0.0}, ValueError, "lr"),
    ({"batch_size": -1}, ValueError, "batch_size"),
    ({"train_index": torch.tensor([10**6])}, ValueError, "train_index"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ({"weight_decay": "0.1"}, TypeError, "weight_decay must be a float"),
    ({"weight_decay": float("nan")}, ValueError, "weight_decay must be non-negative"),
    ({"device": "bogus"}, ValueError, "device must name a torch device"),
])
def test_fit_bad_arguments(small, kw, err, match):
    with pytest.raises(err, match=match):
        train.fit(models.MLP(), small, progress=False, **kw)


def test_fit_bad_types(small):
    with pytest.raises(TypeError, match="model"):
        train.fit("mlp", small)
    with pytest.raises(TypeError, match="split"):
        train.fit(models.MLP(), (small.x_train, small.y_train))
    with pytest.raises(ValueError, match="model must have parameters"):
        train.fit(torch.nn.Flatten(), small)
    with pytest.raises(TypeError, match="model"):
        train.predict_proba("mlp", small.x_test)
    with pytest.raises(TypeError, match="x must be a torch tensor"):
        train.predict(models.MLP(), small.x_test.tolist())
    with pytest.raises(TypeError, match="iterable"):
        train.progress_bar(5)


def test_setup_seeds_and_returns_device():
    device = bd.setup(seed=5, threads=1)
    a = torch.rand(3)
    bd.setup(seed=5, threads=1)
    assert torch.equal(a, torch.rand(3))
    assert device.type in ("cpu", "cuda") and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads"):
        bd.setup(threads=0)
    with pytest.raises(TypeError, match="seed"):
        bd.setup(seed=1.5)


def test_progress_bar_honours_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert train.progress_bar(range(3), enabled=True).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not train.progress_bar(range(3), enabled=True).disable
    assert train.progress_bar(range(3), enabled=False).disable
