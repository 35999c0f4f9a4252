import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bagdrop import data, ensemble, models, train
from bagdrop.ensemble import Ensemble

# Every architecture and dropout configuration the chapters use.
FACTORIES = {
    "mlp": lambda: models.MLP(p=0.3),
    "mlp_input": lambda: models.MLP(hidden=(32, 16), p=0.2, p_input=0.1),
    "mlp_regression": lambda: models.MLP(in_features=1, hidden=(16,), out_features=1, p=0.2),
    "linear_input_dropout": lambda: models.MLP(hidden=(), p_input=0.3),
    "cnn1d_element": lambda: models.CNN1d(channels=6, p=0.3, kind="element"),
    "cnn1d_channel": lambda: models.CNN1d(channels=6, p=0.3, kind="channel"),
    "cnn1d_stride1_last": lambda: models.CNN1d(channels=5, stride=1, p=0.3, kind="channel", dropout_layers=(2,)),
    "cnn1d_none": lambda: models.CNN1d(channels=4),
    "cnn2d_element": lambda: models.CNN2d(channels=(4, 6), p=0.3, kind="element"),
    "cnn2d_channel": lambda: models.CNN2d(channels=(4, 6), p=0.3, kind="channel", dropout_layers=(1,)),
}


def inputs(name, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    if name.startswith("cnn2d"):
        return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)
    if name == "mlp_regression":
        return torch.randn(n, 1, generator=g), torch.randn(n, generator=g)
    return torch.randn(n, 40, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.fixture(scope="module")
def small():
    return data.mnist1d(n_samples=500)


@pytest.mark.parametrize("name", FACTORIES)
def test_member_i_is_the_factory_built_after_manual_seed_seed_plus_i(name):
    torch.manual_seed(123)
    expected_next = torch.rand(2)
    torch.manual_seed(123)
    ens = Ensemble(FACTORIES[name], 3, seed=7)
    assert torch.equal(torch.rand(2), expected_next)  # torch's global RNG untouched
    for i in range(3):
        torch.manual_seed(7 + i)
        ref = FACTORIES[name]()
        got = ens.member(i)
        assert type(got) is type(ref)
        for (n1, p1), (n2, p2) in zip(ref.named_parameters(), got.named_parameters()):
            assert n1 == n2 and torch.equal(p1, p2)
    assert not torch.equal(ens.params[0][0], ens.params[0][1])


def alone_with_masks(module, masks_i):
    """Make ``module``'s dropout layers multiply by the given masks (one per layer, in order)."""
    drops = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]
    assert len(drops) == len(masks_i)
    for d, m in zip(drops, masks_i):
        d.register_forward_hook(lambda mod, inp, out, m=m: inp[0] * m)


def one_step_each(name, dtype, steps=2, k=3, b=8):
    """``steps`` batched Adam steps, and the same steps for each member alone with the same
    data and dropout masks; returns (ensemble, members alone, gradients batched, alone)."""
    torch.manual_seed(0)
    ens = Ensemble(FACTORIES[name], k, seed=1).to(dtype).train()
    x, y = inputs(name, 40)
    x = x.to(dtype)
    y = y.to(dtype) if torch.is_floating_point(y) else y
    classify = not torch.is_floating_point(y)
    opt = ens.optimizer(lr=1e-2)  # the Adam fit uses
    alone = [ens.member(i).train() for i in range(k)]
    # the same Adam implementation alone (fused computes its step sizes a little differently
    # from the default one: ~1e-9 apart in float64); stacked fused vs k default Adams is
    # test_adam_on_stacked_parameters_equals_k_independent_adams
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2, fused=True) for m in alone]
    g = torch.Generator().manual_seed(0)
    grads_batched, grads_alone = [], []
    for _ in range(steps):
        idx = torch.stack([torch.randperm(40, generator=g)[:b] for _ in range(k)])  # own data per member
        masks = ens.sample_masks(b)
        out = ens(x[idx], masks=[m.to(dtype) for m in masks])
        loss = ens._loss(out, y[idx], classify)
        opt.zero_grad()
        loss.backward()
        grads_batched.append([[ens._from_stacked(j, p.grad[i]).clone() for j, p in enumerate(ens.params)]
                              for i in range(k)])
        opt.step()
        grads_alone.append([])
        for i, (m, o) in enumerate(zip(alone, opts)):
            for mod in m.modules():
                mod._forward_hooks.clear()
            alone_with_masks(m, [mk[i].to(dtype) for mk in masks])
            pred = m(x[idx[i]])
            loss_i = F.cross_entropy(pred, y[idx[i]]) if classify else F.mse_loss(pred.reshape(-1), y[idx[i]])
            o.zero_grad()
            loss_i.backward()
            grads_alone[-1].append([p.grad.clone() for p in m.parameters()])
            o.step()
    return ens, alone, grads_batched, grads_alone


@pytest.mark.parametrize("name", FACTORIES)
def test_batched_gradients_are_each_members_own_gradients(name):
    """float32, the dtype the book trains in: each member's slice of the gradient of the
    summed loss is the gradient of that member trained alone on the same data and masks."""
    ens, alone, gb, ga = one_step_each(name, torch.float32, steps=1)
    for i in range(ens.k):
        for j, (g_b, g_a) in enumerate(zip(gb[0][i], ga[0][i])):
            scale = g_a.abs().max().item() + 1e-12
            torch.testing.assert_close(g_b, g_a, atol=1e-5 * scale, rtol=1e-4, msg=f"member {i} param {j}")


@pytest.mark.parametrize("name", FACTORIES)
def test_batched_steps_give_each_member_the_weights_of_training_it_alone(name):
    """Two Adam steps, batched vs alone, same seeds, data and masks. In float64: Adam divides
    each gradient by its own magnitude (plus eps = 1e-8), so in float32 a gradient that is
    ~1e-9 by rounding in one and ~-1e-9 in the other moves the weight by +lr vs -lr;
    float64 rounding (~1e-17) keeps that amplification below 1e-10."""
    ens, alone, _, _ = one_step_each(name, torch.float64, steps=2)
    for i, m in enumerate(alone):
        got = ens.member(i)
        for (n, p_alone), (_, p_batched) in zip(m.named_parameters(), got.named_parameters()):
            torch.testing.assert_close(p_batched, p_alone, atol=1e-10, rtol=1e-9, msg=f"member {i} {n}")
    # the members really did move, and differently
    assert not torch.equal(ens.member(0).state_dict()[n], ens.member(1).state_dict()[n])


@pytest.mark.parametrize("fused", [False, True])
def test_adam_on_stacked_parameters_equals_k_independent_adams(fused):
    torch.manual_seed(0)
    k = 5
    stacked = nn.Parameter(torch.randn(k, 7, 3))
    singles = [nn.Parameter(stacked[i].detach().clone()) for i in range(k)]
    opt = torch.optim.Adam([stacked], lr=0.05, weight_decay=1e-3, fused=fused)
    opts = [torch.optim.Adam([p], lr=0.05, weight_decay=1e-3) for p in singles]
    for step in range(20):
        # members with gradients of very different scales: Adam normalises each elementwise
        grads = torch.randn(k, 7, 3) * torch.logspace(-3, 2, k).reshape(k, 1, 1)
        stacked.grad = grads.clone()
        opt.step()
        for p, o, gr in zip(singles, opts, grads):
            p.grad = gr.clone()
            o.step()
    for i in range(k):
        torch.testing.assert_close(stacked[i].detach(), singles[i].detach(), atol=1e-6, rtol=1e-6)


def test_sum_of_member_losses_gives_each_member_its_own_gradient():
    ens = Ensemble(FACTORIES["mlp"], 4, seed=0)
    x, y = inputs("mlp", 20)
    idx = torch.arange(20).reshape(4, 5)
    ens._loss(ens(x[idx], dropout=False), y[idx], True).backward()
    for i in range(4):
        m = ens.member(i)
        F.cross_entropy(m(x[idx[i]]), y[idx[i]]).backward()
        torch.testing.assert_close(ens.params[0].grad[i].t(), m.net[2].weight.grad, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("bootstrap", [False, True])
def test_fit_full_batch_equals_bd_train_fit_on_each_members_sample(small, bootstrap):
    """Full-batch steps make the minibatch order irrelevant: the whole pipeline (init, sample,
    loss, Adam) of member i must then match bd.train.fit on member i's training indices."""
    factory = lambda: models.MLP(hidden=(20,))  # noqa: E731
    # float64, so that Adam's division by each gradient's magnitude cannot amplify rounding
    small = data.Split(small.x_train.double(), small.y_train, small.x_test.double(), small.y_test)
    ens = Ensemble(factory, 3, seed=4).double()
    n = len(small.x_train)
    ens.fit(small, epochs=3, lr=1e-2, batch_size=n, bootstrap=bootstrap, seed=2, progress=False)
    idx = ens.bootstrap_index
    assert idx.shape == (3, n)
    if not bootstrap:
        assert torch.equal(idx, torch.arange(n).expand(3, n))
    for i in range(3):
        torch.manual_seed(4 + i)
        ref = factory().double()
        train.fit(ref, small, epochs=3, lr=1e-2, batch_size=n, progress=False, train_index=idx[i])
        for p_ref, p_ens in zip(ref.parameters(), ens.member(i).parameters()):
            torch.testing.assert_close(p_ens, p_ref, atol=1e-9, rtol=1e-8)


def test_members_get_their_own_bootstrap_samples_and_minibatch_orders(small):
    ens = Ensemble(lambda: models.MLP(hidden=(8,)), 4, seed=0)
    ens.fit(small, epochs=1, bootstrap=True, seed=3, progress=False)
    idx = ens.bootstrap_index
    n = len(small.x_train)
    assert idx.shape == (4, n) and idx.dtype == torch.int64
    for i in range(1, 4):
        assert not torch.equal(idx[0], idx[i])
    unique = torch.tensor([len(r.unique()) / n for r in idx])
    assert ((unique > 0.57) & (unique < 0.70)).all()  # ~63.2% at n = 400
    # same seed, same samples; other seed, other samples
    ens2 = Ensemble(lambda: models.MLP(hidden=(8,)), 4, seed=0)
    ens2.fit(small, epochs=1, bootstrap=True, seed=3, progress=False)
    assert torch.equal(ens2.bootstrap_index, idx)
    assert all(torch.equal(a, b) for a, b in zip(ens.parameters(), ens2.parameters()))
    ens2.fit(small, epochs=1, bootstrap=True, seed=4, progress=False)
    assert not torch.equal(ens2.bootstrap_index, idx)


def test_members_trained_on_the_same_data_from_the_same_init_still_differ_by_order(small):
    """Identical init and identical full training set: only the minibatch order (and masks) differ."""
    ens = Ensemble(lambda: models.MLP(hidden=(8,)), 3, seed=0)
    with torch.no_grad():
        for p in ens.params:
            p.copy_(p[0].expand_as(p))
    ens.fit(small, epochs=1, seed=0, progress=False)
    assert not torch.allclose(ens.params[0][0], ens.params[0][1])


@pytest.mark.parametrize("name", ["mlp_input", "cnn1d_element", "cnn1d_channel", "cnn2d_channel"])
def test_dropout_masks_differ_between_members_and_follow_torch_semantics(name):
    k, b = 4, 64
    ens = Ensemble(FACTORIES[name], k, seed=0)
    # every member identical and fed the same examples: only the masks can tell them apart
    with torch.no_grad():
        for p in ens.params:
            p.copy_(p[0].expand_as(p))
    x, _ = inputs(name, b)
    xs = x.expand(k, *x.shape)
    torch.manual_seed(0)
    out, masks = ens(xs, dropout=True, return_masks=True)
    assert len(masks) == ens.n_dropout_sites()
    assert torch.equal(out, ens(xs, masks=masks))  # the recorded masks are the ones used
    off = ens(xs, dropout=False)
    assert torch.allclose(off[0], off[1]) and not torch.allclose(out[0], out[1])
    channel = "channel" in name
    for m, (_, p) in zip(masks, [(0, 0.1)] * (name == "mlp_input") + [(0, 0.2)] * 2 if name == "mlp_input"
                         else [(0, 0.3)] * len(masks)):
        assert m.shape[:2] == (k, b)
        if channel:
            assert all(s == 1 for s in m.shape[3:])  # one multiplier per whole feature map
        values = m.unique()
        assert torch.allclose(values, torch.tensor([0.0, 1 / (1 - p)]))  # inverted dropout
        assert abs(m.eq(0).float().mean().item() - p) < 0.06
        assert not torch.equal(m[0], m[1])


def test_channel_dropout_zeroes_whole_maps_per_member_and_example():
    ens = Ensemble(lambda: models.CNN1d(channels=6, p=0.5, kind="channel", dropout_layers=(0,)), 3)
    masks = ens.sample_masks(10)
    assert masks[0].shape == (3, 10, 6, 1)
    frac = masks[0].eq(0).float().mean(2)  # per member and example, some maps dropped, not all
    assert frac.std() > 0


@pytest.mark.parametrize("name", ["mlp", "cnn1d_channel", "cnn1d_stride1_last", "cnn2d_element"])
def test_prediction_shapes_and_agreement_with_member_modules(name):
    ens = Ensemble(FACTORIES[name], 3, seed=0)
    x, _ = inputs(name, 11)
    p = ens.member_proba(x)
    assert p.shape == (3, 11, 10)
    for i in range(3):
        torch.testing.assert_close(p[i], train.predict_proba(ens.member(i), x), atol=1e-6, rtol=1e-5)
    mc = ens.member_proba(x, mode="mc", samples=5, seed=0)
    assert mc.shape == (3, 5, 11, 10)
    assert torch.equal(mc, ens.member_proba(x, mode="mc", samples=5, seed=0))
    assert not torch.allclose(mc[:, 0], mc[:, 1])
    assert ens.predict_proba(x).shape == (11, 10)
    torch.testing.assert_close(ens.predict_proba(x), p.mean(0))
    torch.testing.assert_close(ens.predict_proba(x, mode="mc", samples=5, seed=0), mc.mean((0, 1)))


def test_geometric_combine_is_the_normalised_geometric_mean():
    ens = Ensemble(FACTORIES["cnn1d_element"], 4, seed=0)
    x, _ = inputs("cnn1d_element", 9)
    p = ens.member_proba(x).double()
    g = ens.predict_proba(x, combine="geometric")
    assert g.shape == (9, 10)
    torch.testing.assert_close(g.sum(1), torch.ones(9), atol=1e-6, rtol=0)
    expected = p.log().mean(0).exp()
    expected = expected / expected.sum(1, keepdim=True)
    torch.testing.assert_close(g.double(), expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(g, ens.predict_proba(x, combine="mean"), atol=1e-4)
    mc = ens.predict_proba(x, combine="geometric", mode="mc", samples=3, seed=1)
    torch.testing.assert_close(mc.sum(1), torch.ones(9), atol=1e-6, rtol=0)


def test_regression_predictions_and_history():
    split = data.regression(n_train=64, n_test=50)
    ens = Ensemble(FACTORIES["mlp_regression"], 4, seed=0)
    hist = ens.fit(split, epochs=30, batch_size=16, bootstrap=True, progress=False, eval_every=10)
    assert list(hist.epoch) == [10, 20, 30] and hist.step.iloc[-1] == 30 * 4
    assert {"loss", "member_test_mse", "ensemble_test_mse"} <= set(hist.columns)
    assert hist.ensemble_test_mse.iloc[-1] <= hist.member_test_mse.iloc[-1] + 1e-6  # mean of squares >= square of mean
    pred = ens.member_predict(split.x_test)
    assert pred.shape == (4, 50)
    torch.testing.assert_close(pred[2], train.predict(ens.member(2), split.x_test))
    assert ens.member_predict(split.x_test, mode="mc", samples=6).shape == (4, 6, 50)
    torch.testing.assert_close(ens.predict(split.x_test), pred.mean(0))


def test_fit_history_classification(small):
    ens = Ensemble(lambda: models.MLP(hidden=(32,), p=0.1), 3, seed=0)
    hist = ens.fit(small, epochs=4, bootstrap=True, progress=False, eval_every=2)
    assert isinstance(hist, pd.DataFrame) and list(hist.epoch) == [2, 4]
    assert {"epoch", "step", "loss", "member_test_error", "member_test_nll",
            "ensemble_test_error", "ensemble_test_nll"} <= set(hist.columns)
    assert hist.step.tolist() == [8, 16]  # 400 examples, batch 100
    assert hist.loss.iloc[-1] < hist.loss.iloc[0]
    assert hist.member_test_error.iloc[-1] < 0.85  # chance 0.9
    probs = ens.member_proba(small.x_test)
    assert hist.ensemble_test_error.iloc[-1] == pytest.approx(
        (probs.mean(0).argmax(1) != small.y_test).float().mean().item())
    assert not ens.training


def test_fit_shows_a_progress_bar_over_steps_unless_silenced(small, monkeypatch, capsys):
    ens = Ensemble(lambda: models.MLP(hidden=(8,)), 2, seed=0)
    monkeypatch.setenv("TQDM_DISABLE", "0")
    ens.fit(small, epochs=1, progress=True)
    assert "steps" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")  # the book's build: no bars even with progress=True
    ens.fit(small, epochs=1, progress=True)
    assert "steps" not in capsys.readouterr().err


def test_fit_accepts_an_index_tensor_as_bootstrap(small):
    ens = Ensemble(lambda: models.MLP(hidden=(8,)), 2, seed=0)
    index = torch.stack([torch.arange(0, 100), torch.arange(100, 200)])
    hist = ens.fit(small, epochs=2, batch_size=50, bootstrap=index, progress=False)
    assert torch.equal(ens.bootstrap_index, index) and hist.step.iloc[-1] == 4


@pytest.mark.parametrize("call, err, match", [
    (lambda s: Ensemble(models.MLP(), 3), TypeError, "factory must be a callable"),
    (lambda s: Ensemble(lambda: 3, 3), TypeError, "factory must return an nn.Module"),
    (lambda s: Ensemble(lambda: nn.BatchNorm1d(3), 2), TypeError, "factory"),
    (lambda s: Ensemble(lambda: nn.Sequential(nn.Conv1d(1, 2, 3)), 2), TypeError, "Sequential"),
    (lambda s: Ensemble(lambda: nn.Sequential(nn.Linear(3, 2), nn.Tanh()), 2), TypeError, "Tanh"),
    (lambda s: Ensemble(models.MLP, 0), ValueError, "k must"),
    (lambda s: Ensemble(models.MLP, 2.0), TypeError, "k must"),
    (lambda s: Ensemble(models.MLP, 2, seed=-1), ValueError, "seed must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s.x_train), TypeError, "split must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, epochs=0), ValueError, "epochs must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, lr=-1.0), ValueError, "lr must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, batch_size=0), ValueError, "batch_size must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, weight_decay=-1e-3), ValueError, "weight_decay must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, weight_decay="0.1"), TypeError, "weight_decay must be a float"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, weight_decay=float("nan")), ValueError, "weight_decay must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, device="bogus"), ValueError, "device must name a torch device"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, bootstrap="yes"), TypeError, "bootstrap must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, bootstrap=torch.zeros(3, 5, dtype=torch.long)),
     ValueError, "bootstrap must"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, bootstrap=torch.full((2, 5), 10**6)), ValueError, "indices"),
    (lambda s: Ensemble(models.MLP, 2).fit(s, seed=-2), ValueError, "seed must"),
    (lambda s: Ensemble(lambda: models.MLP(in_features=64), 2).fit(s), ValueError, "split.x_train must"),
    (lambda s: Ensemble(models.MLP, 2).fit(data.regression()), ValueError, "one output"),
    (lambda s: Ensemble(models.MLP, 2).member_proba(torch.zeros(3, 41)), ValueError, "x must have shape"),
    (lambda s: Ensemble(models.CNN1d, 2).member_proba(torch.zeros(3, 41)), ValueError, "x must have shape"),
    (lambda s: Ensemble(models.MLP, 2).member_proba(torch.zeros(3, 40, dtype=torch.long)), TypeError, "x must"),
    (lambda s: Ensemble(models.MLP, 2).member_proba([[0.0] * 40]), TypeError, "x must"),
    (lambda s: Ensemble(models.MLP, 2).member_proba(s.x_test, mode="dropout"), ValueError, "mode must"),
    (lambda s: Ensemble(lambda: models.MLP(p=0.1), 2).member_proba(s.x_test, mode="mc"), ValueError, "samples"),
    (lambda s: Ensemble(lambda: models.MLP(p=0.1), 2).member_proba(s.x_test, mode="mc", samples=0),
     ValueError, "samples must"),
    (lambda s: Ensemble(models.MLP, 2).member_proba(s.x_test, mode="mc", samples=3), ValueError, "dropout"),
    (lambda s: Ensemble(models.MLP, 2).member_proba(s.x_test, samples=3), ValueError, "samples"),
    (lambda s: Ensemble(models.MLP, 2).predict_proba(s.x_test, combine="median"), ValueError, "combine must"),
    (lambda s: Ensemble(models.MLP, 2).member_predict(s.x_test), ValueError, "regression"),
    (lambda s: Ensemble(models.MLP, 2).member(2), ValueError, "i must"),
    (lambda s: Ensemble(models.MLP, 2).member(1.0), TypeError, "i must"),
    (lambda s: Ensemble(models.MLP, 2)(torch.zeros(3, 4, 40)), ValueError, "x must have shape"),
    (lambda s: Ensemble(lambda: models.MLP(p=0.1), 2)(torch.zeros(2, 4, 40), masks=[]), ValueError, "masks"),
])
def test_bad_arguments(small, call, err, match):
    with pytest.raises(err, match=match):
        call(small)


def test_a_plain_sequential_of_linear_layers_works():
    factory = lambda: nn.Sequential(nn.Linear(40, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 10))  # noqa: E731
    ens = Ensemble(factory, 3, seed=2)
    x, _ = inputs("mlp", 6)
    p = ens.member_proba(x)
    assert p.shape == (3, 6, 10)
    torch.testing.assert_close(p[1], train.predict_proba(ens.member(1), x), atol=1e-6, rtol=1e-5)


def test_module_exports():
    assert ensemble.Ensemble is Ensemble
