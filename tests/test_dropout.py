import math

import pytest
import torch
from torch import nn

import bagdrop as bd
from bagdrop import dropout as D


# ---------------------------------------------------------------- dropout from scratch

@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_mask_is_bernoulli_with_inverted_scaling(p):
    g = torch.Generator().manual_seed(0)
    m = D.dropout_mask((200, 500), p, generator=g)
    q = 1 - p
    values = torch.unique(m)
    assert len(values) == 2 and values[0] == 0 and values[1].item() == pytest.approx(1 / q)
    n = m.numel()
    dropped = (m == 0).float().mean().item()
    assert abs(dropped - p) < 5 * math.sqrt(p * q / n)  # 5 binomial standard errors
    assert abs(m.mean().item() - 1) < 5 * math.sqrt(p / q / n)  # E = 1, Var = p/q


def test_mask_with_p_zero_is_all_ones():
    assert torch.equal(D.dropout_mask((3, 4), 0.0), torch.ones(3, 4))


def test_from_scratch_matches_torch_dropout_under_the_same_seed():
    # torch's CPU dropout draws bernoulli_(1 - p) from the global generator, as
    # dropout_mask does, so with the same seed the two drop exactly the same units.
    x = torch.randn(64, 100)
    torch.manual_seed(7)
    a = nn.Dropout(0.3).train()(x)
    torch.manual_seed(7)
    b = D.Dropout(0.3).train()(x)
    assert torch.equal(a == 0, b == 0)
    torch.testing.assert_close(a, b)


def test_from_scratch_dropout_modes_and_expectation():
    x = torch.randn(10, 20)
    layer = D.Dropout(0.4)
    layer.eval()
    assert torch.equal(layer(x), x) and torch.equal(nn.Dropout(0.4).eval()(x), x)
    layer.train()
    g = torch.Generator().manual_seed(1)
    mean = torch.stack([D.dropout(x, 0.4, generator=g) for _ in range(4000)]).mean(0)
    # per-entry standard error: |x| sqrt(p/q / 4000) <= 4 * 0.013
    assert (mean - x).abs().max() < 5 * x.abs().max() * math.sqrt(0.4 / 0.6 / 4000)
    assert "p=0.4" in repr(layer)


@pytest.mark.parametrize("call, err, match", [
    (lambda: D.dropout_mask((2,), 1.0), ValueError, "p must lie"),
    (lambda: D.dropout_mask((2,), -0.1), ValueError, "p must lie"),
    (lambda: D.dropout(torch.ones(2), "0.5"), TypeError, "p must be a float"),
    (lambda: D.dropout([1.0, 2.0], 0.5), TypeError, "x must be a torch.Tensor"),
    (lambda: D.Dropout(1.5), ValueError, "p must lie"),
])
def test_bad_arguments_of_the_mask(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ---------------------------------------------------------------- inference modes

@pytest.fixture
def net():
    torch.manual_seed(0)
    return bd.models.MLP(in_features=6, hidden=(16,), out_features=3, p=0.5)


def test_weight_scaling_is_the_eval_network(net):
    x = torch.randn(9, 6)
    net.train()
    probs = D.predict_proba(net, x)
    assert net.training  # flags restored
    net.eval()
    torch.testing.assert_close(probs, net(x).softmax(-1))


def test_mc_samples_are_seeded_and_leave_the_global_rng_alone(net):
    x = torch.randn(9, 6)
    net.eval()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = D.predict_proba(net, x, mode="mc", samples=5, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = D.predict_proba(net, x, mode="mc", samples=5, seed=3)
    c = D.predict_proba(net, x, mode="mc", samples=5, seed=4)
    assert a.shape == (5, 9, 3) and torch.equal(a, b) and not torch.equal(a, c)
    torch.testing.assert_close(a.sum(-1), torch.ones(5, 9))
    assert not torch.equal(a[0], a[1])  # fresh masks for every pass
    assert not net.training


def test_mc_dropout_turns_on_dropout_only(net):
    net.train()
    with D.mc_dropout(net):
        assert all(m.training == isinstance(m, nn.Dropout) for m in net.modules())
    assert all(m.training for m in net.modules())


def test_mc_average_approaches_the_exact_arithmetic_mean():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(4, 5)
    exact = D.exact_mask_average(model, model[2], x).arithmetic.float()
    mc = D.predict_proba(model, x, mode="mc", samples=20000, seed=0).mean(0)
    assert (mc - exact).abs().max() < 0.01  # MC standard error <= 0.5 / sqrt(20000) = 0.0035


def test_cumulative_mean():
    t = torch.tensor([[1.0, 3.0], [3.0, 5.0], [5.0, 1.0]])
    torch.testing.assert_close(D.cumulative_mean(t), torch.tensor([[1.0, 3.0], [2.0, 4.0], [3.0, 3.0]]))
    torch.testing.assert_close(D.cumulative_mean(t.T, dim=1), torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 3.0]]))


def test_error_and_nll_are_batched_and_match_the_metrics():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 3, 50, 4, generator=g).softmax(-1)
    y = torch.randint(0, 4, (50,), generator=g)
    err, nll = D.error_and_nll(probs, y)
    assert err.shape == nll.shape == (2, 3)
    assert err[1, 2].item() == pytest.approx(bd.metrics.error_rate(probs[1, 2], y))
    assert nll[0, 1].item() == pytest.approx(bd.metrics.nll(probs[0, 1], y), rel=1e-6)
    with pytest.raises(ValueError, match="probs must have shape"):
        D.error_and_nll(probs, y[:10])
    with pytest.raises(TypeError, match="integer class labels"):
        D.error_and_nll(probs, y.float())


@pytest.mark.parametrize("call, err, match", [
    (lambda m: D.predict_proba(m, torch.randn(2, 6), mode="dropout"), ValueError, "mode must be one of"),
    (lambda m: D.predict_proba(m, torch.randn(2, 6), mode="mc", samples=0), ValueError, "samples"),
    (lambda m: D.predict_proba(m, torch.randn(2, 6), mode="mc", seed=-1), ValueError, "seed"),
    (lambda m: D.predict_proba(bd.models.MLP(in_features=6), torch.randn(2, 6), mode="mc"), ValueError,
     "dropout layers"),
    (lambda m: D.dropout_modules("net"), TypeError, "model must be"),
])
def test_bad_arguments_of_inference(net, call, err, match):
    with pytest.raises(err, match=match):
        call(net)


# ---------------------------------------------------------------- every mask

def test_all_masks_and_their_probabilities():
    m = D.all_masks(4)
    assert m.shape == (16, 4) and len({tuple(r) for r in m.tolist()}) == 16
    assert m[0].sum() == 0 and m[-1].sum() == 4 and m[1].tolist() == [1, 0, 0, 0]
    pr = D.mask_probabilities(m, 0.3)
    assert pr.dtype == torch.float64
    torch.testing.assert_close(pr.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert pr[-1].item() == pytest.approx(0.7 ** 4) and pr[0].item() == pytest.approx(0.3 ** 4)
    assert D.mask_probabilities(m, 0.0)[-1] == 1 and D.mask_probabilities(m, 0.0).sum() == 1
    with pytest.raises(ValueError, match="n must be at most"):
        D.all_masks(21)


def brute_force(model, layer, x, n):
    """Loop over the 2**n masks one at a time, replacing the layer's output."""
    current = {}
    handle = layer.register_forward_hook(lambda mod, inp, out: inp[0] * current["mask"] / (1 - layer.p))
    model.eval()
    masks = D.all_masks(n)
    outputs = []
    for mask in masks:
        current["mask"] = mask
        outputs.append(model(x).softmax(-1).double())
    handle.remove()
    out = torch.stack(outputs)  # (M, N, C)
    probs = D.mask_probabilities(masks, layer.p)
    return (torch.einsum("m,mnc->nc", probs, out.log()).softmax(-1),
            torch.einsum("m,mnc->nc", probs, out))


def test_softmax_regression_geometric_mean_is_weight_scaling_exactly():
    torch.manual_seed(0)
    model = bd.models.MLP(in_features=7, hidden=(), out_features=4, p_input=0.3)
    x = torch.randn(11, 7) * 3
    avg = D.exact_mask_average(model, model.net[1], x, rows_per_chunk=100)  # exercise chunking
    assert avg.geometric.shape == (11, 4) and avg.geometric.dtype == torch.float64
    assert (avg.geometric - avg.weight_scaling).abs().max() < 1e-12
    assert (avg.arithmetic - avg.weight_scaling).abs().max() > 1e-3  # the arithmetic mean differs
    geo, arith = brute_force(model, model.net[1], x, 7)
    torch.testing.assert_close(avg.geometric, geo)
    torch.testing.assert_close(avg.arithmetic, arith)


def test_a_relu_after_the_mask_breaks_the_identity():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(10, 5)
    avg = D.exact_mask_average(model, model[2], x)
    assert (avg.geometric - avg.weight_scaling).abs().max() > 1e-3
    geo, arith = brute_force(model, model[2], x, 6)
    torch.testing.assert_close(avg.geometric, geo)
    torch.testing.assert_close(avg.arithmetic, arith)
    torch.testing.assert_close(avg.arithmetic.sum(-1), torch.ones(10, dtype=torch.float64))


def test_dropping_the_last_hidden_layer_keeps_the_identity():
    torch.manual_seed(0)
    model = bd.models.MLP(in_features=5, hidden=(8,), out_features=3, p=0.5)
    avg = D.exact_mask_average(model, model.net[4], torch.randn(6, 5))
    assert (avg.geometric - avg.weight_scaling).abs().max() < 1e-12


def test_exact_mask_average_bad_arguments():
    model = bd.models.MLP(in_features=5, hidden=(8,), out_features=3, p=0.5)
    with pytest.raises(ValueError, match="layer must be a module of model"):
        D.exact_mask_average(model, nn.Dropout(0.5), torch.randn(2, 5))
    with pytest.raises(TypeError, match="layer must be an element-wise nn.Dropout"):
        D.exact_mask_average(model, model.net[2], torch.randn(2, 5))
    cnn = bd.models.CNN1d(p=0.1)
    with pytest.raises(ValueError, match=r"\(B, n\)"):
        D.exact_mask_average(cnn, cnn.blocks[2][2], torch.randn(2, 40))
    with pytest.raises(TypeError, match="x must be"):
        D.exact_mask_average(model, model.net[4], [[0.0] * 5])


# ---------------------------------------------------------------- dropout ridge

@pytest.fixture
def linear():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 4, generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=torch.float64)
    w = torch.tensor([1.0, -2.0, 0.5, 0.25], dtype=torch.float64)
    y = x @ w + 0.3 * torch.randn(80, generator=g, dtype=torch.float64)
    return x - x.mean(0), y - y.mean()


@pytest.mark.parametrize("inverted", [True, False])
def test_expected_dropout_loss_matches_sampling(linear, inverted):
    x, y = linear
    w = torch.tensor([0.7, -1.0, 0.3, 0.1], dtype=torch.float64)
    exact = D.expected_dropout_loss(x, y, w, 0.3, inverted=inverted)
    s = D.sampled_dropout_loss(x, y, w, 0.3, samples=4000, inverted=inverted,
                               generator=torch.Generator().manual_seed(0))
    assert abs(s.mean() - exact) < 5 * s.std() / math.sqrt(len(s))


def test_dropout_ridge_minimises_the_expected_loss(linear):
    x, y = linear
    for inverted in (True, False):
        w = D.dropout_ridge(x, y, 0.4, inverted=inverted).requires_grad_(True)
        D.expected_dropout_loss(x, y, w, 0.4, inverted=inverted).backward()
        assert w.grad.abs().max() < 1e-8
    # both conventions give the same test-time predictor: q * w_plain = w_inverted
    torch.testing.assert_close(0.6 * D.dropout_ridge(x, y, 0.4, inverted=False), D.dropout_ridge(x, y, 0.4))
    # p = 0 is least squares; the penalty shrinks the weights
    torch.testing.assert_close(D.dropout_ridge(x, y, 0.0), torch.linalg.lstsq(x, y.unsqueeze(1)).solution[:, 0])
    assert D.dropout_ridge(x, y, 0.5).norm() < D.dropout_ridge(x, y, 0.0).norm()


def test_sgd_with_dropout_converges_to_the_closed_form(linear):
    x, y = linear
    hist = D.dropout_linear_sgd(x.float(), y.float(), 0.3, steps=2000, lr=0.01, batch_size=16,
                                record_every=500, seed=0)
    assert list(hist.step) == [500, 1000, 1500, 2000]
    target = D.dropout_ridge(x, y, 0.3).numpy()
    final = hist.w.iloc[-1]
    assert abs(final - target).max() / abs(target).max() < 0.05
    # least squares is a different point: the dropout solution is really what SGD found
    ls = D.dropout_ridge(x, y, 0.0).numpy()
    assert abs(final - ls).max() > 3 * abs(final - target).max()


@pytest.mark.parametrize("call, err, match", [
    (lambda x, y: D.dropout_ridge(x[:, 0], y, 0.1), ValueError, r"x must have shape \(N, d\)"),
    (lambda x, y: D.dropout_ridge(x, y[:5], 0.1), ValueError, "y must have shape"),
    (lambda x, y: D.expected_dropout_loss(x, y, torch.zeros(3), 0.1), ValueError, "w must have shape"),
    (lambda x, y: D.dropout_linear_sgd(x, y, 0.1, steps=0), ValueError, "steps"),
    (lambda x, y: D.dropout_linear_sgd(x, y, 0.1, lr=-1.0), ValueError, "lr"),
])
def test_ridge_bad_arguments(linear, call, err, match):
    with pytest.raises(err, match=match):
        call(*linear)


# ---------------------------------------------------------------- recurrence

def test_mask_recurrence_matches_simulation():
    n, p, draws = 8, 0.3, 3000
    r = D.mask_recurrence(n, p, draws)
    assert r["log10_masks"] == pytest.approx(n * math.log10(2))
    assert r["draws_per_mask"] == pytest.approx(draws / 2 ** n)
    assert r["collision"] == pytest.approx((0.09 + 0.49) ** n)
    g = torch.Generator().manual_seed(0)
    distinct = []
    for _ in range(20):
        keep = (torch.rand(draws, n, generator=g) >= p).long()
        distinct.append(len(torch.unique((keep << torch.arange(n)).sum(1))))
    mean, sd = torch.tensor(distinct, dtype=torch.float64).mean(), torch.tensor(distinct, dtype=torch.float64).std()
    assert abs(mean - r["expected_distinct"]) < 5 * sd / math.sqrt(20) + 1
    assert r["p_any_repeat"] == pytest.approx(1.0)


def test_mask_recurrence_of_big_layers_is_negligible_and_finite():
    r = D.mask_recurrence(3000, 0.1, 10 ** 6)
    assert r["p_any_repeat"] < 1e-100 and r["draws_per_mask"] == 0.0
    assert r["expected_distinct"] == pytest.approx(10 ** 6) and r["repeat_fraction"] < 1e-9
    with pytest.raises(ValueError, match="p must be positive"):
        D.mask_recurrence(10, 0.0, 5)
    with pytest.raises(ValueError, match="draws"):
        D.mask_recurrence(10, 0.5, 0)
