"""The decompositions of chapters 1 and 2: identities checked on random data, and bad input."""
import numpy as np
import pytest
import torch

from bagdrop import metrics


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def random_probs(*shape, seed=0, scale=2.0):
    return (scale * torch.randn(*shape, generator=gen(seed))).softmax(-1)


def test_ambiguity_decomposition_is_exact_and_matches_a_direct_computation():
    g = gen(1)
    preds, y = torch.randn(7, 50, generator=g), torch.randn(50, generator=g)
    out = metrics.ambiguity_decomposition(preds, y)
    assert out["ensemble_error"] == pytest.approx(out["member_error"] - out["ambiguity"], abs=1e-12)
    assert out["ensemble_error"] == pytest.approx(((preds.mean(0) - y) ** 2).mean().item(), rel=1e-6)
    assert out["ambiguity"] > 0
    # one member: no ambiguity; numpy input works too
    one = metrics.ambiguity_decomposition(preds[:1].numpy(), y.numpy())
    assert one["ambiguity"] == 0 and one["ensemble_error"] == pytest.approx(one["member_error"])


def test_bias_variance_diversity_is_exact():
    g = gen(2)
    preds = torch.randn(20, 5, 30, generator=g) + torch.linspace(0, 1, 30)
    f = torch.randn(30, generator=g)
    out = metrics.bias_variance_diversity(preds, f)
    assert out["risk"] == pytest.approx(out["bias"] + out["variance"] - out["diversity"], abs=1e-12)
    assert min(out.values()) > 0
    # the risk is E_R (f - q_bar)^2 computed directly
    assert out["risk"] == pytest.approx(((preds.mean(1) - f) ** 2).mean().item(), rel=1e-6)


def test_bias_variance_with_one_member_is_the_classical_decomposition():
    g = gen(3)
    f = torch.linspace(-1, 1, 40)
    preds = f + 0.5 + 0.2 * torch.randn(100, 40, generator=g)  # bias 0.5, sd 0.2
    out = metrics.bias_variance(preds, f)
    assert set(out) == {"risk", "bias", "variance"}
    assert out["risk"] == pytest.approx(out["bias"] + out["variance"], abs=1e-12)
    assert out["bias"] == pytest.approx(0.25, abs=0.01)  # sd of the mean 0.02 -> bias off by < 0.01
    assert out["variance"] == pytest.approx(0.04, rel=0.1)  # 4000 draws: relative sd ~2%


def test_geometric_mean_is_normalised_and_exact_for_two_members():
    p = random_probs(2, 10, 4, seed=4)
    q = metrics.geometric_mean(p, dim=0)
    assert q.shape == (10, 4) and torch.allclose(q.sum(-1), torch.ones(10, dtype=torch.float64))
    direct = (p[0].double() * p[1].double()).sqrt()
    assert torch.allclose(q, direct / direct.sum(-1, keepdim=True))
    # identical members: the geometric mean is the member itself
    same = metrics.geometric_mean(p[:1].expand(3, 10, 4), dim=0)
    assert torch.allclose(same, p[0].double(), atol=1e-6)


def test_cross_entropy_ambiguity_decomposition_is_exact():
    p, y = random_probs(6, 40, 5, seed=5), torch.randint(0, 5, (40,), generator=gen(5))
    out = metrics.ambiguity_decomposition_ce(p, y)
    assert out["ensemble_error"] == pytest.approx(out["member_error"] - out["ambiguity"], abs=1e-12)
    assert out["ambiguity"] > 0
    q = metrics.geometric_mean(p, 0)
    assert out["ensemble_error"] == pytest.approx(-q.log()[torch.arange(40), y].mean().item(), rel=1e-9)


def test_arithmetic_mean_does_not_satisfy_the_ce_identity():
    """A check that can fail: the identity is specific to the geometric combiner."""
    p, y = random_probs(6, 40, 5, seed=6, scale=3.0), torch.randint(0, 5, (40,), generator=gen(6))
    out = metrics.ambiguity_decomposition_ce(p, y)
    arithmetic = -p.double().mean(0).log()[torch.arange(40), y].mean().item()
    assert abs(arithmetic - (out["member_error"] - out["ambiguity"])) > 1e-3


def test_cross_entropy_bias_variance_diversity_is_exact():
    p, y = random_probs(4, 3, 25, 6, seed=7), torch.randint(0, 6, (25,), generator=gen(7))
    out = metrics.bias_variance_diversity_ce(p, y)
    assert out["risk"] == pytest.approx(out["bias"] + out["variance"] - out["diversity"], abs=1e-12)
    assert min(out.values()) > 0
    # risk is the mean ensemble cross-entropy over trials
    q_bar = metrics.geometric_mean(p, 1)  # (R, N, C)
    assert out["risk"] == pytest.approx(-q_bar.log()[:, torch.arange(25), y].mean().item(), rel=1e-9)


def test_zero_probabilities_from_float32_underflow_are_handled():
    logits = torch.tensor([[[0.0, 200.0], [0.0, -200.0]], [[0.0, 1.0], [1.0, 0.0]]])
    p = logits.softmax(-1)  # float32: exact zeros
    assert (p == 0).any()
    out = metrics.ambiguity_decomposition_ce(p, torch.tensor([1, 0]))
    assert all(np.isfinite(v) for v in out.values())
    assert out["ensemble_error"] == pytest.approx(out["member_error"] - out["ambiguity"], abs=1e-9)


def test_variance_of_mean_formula_and_simulation():
    assert metrics.variance_of_mean(2.0, 0.0, 4) == pytest.approx(0.5)
    assert metrics.variance_of_mean(2.0, 1.0, 4) == pytest.approx(2.0)
    assert metrics.variance_of_mean(1.0, 0.3, 1) == pytest.approx(1.0)
    np.testing.assert_allclose(metrics.variance_of_mean(1.0, 0.5, np.array([1, 2, 4])), [1.0, 0.75, 0.625])
    draws = metrics.equicorrelated_normal(40000, 8, s2=2.0, rho=0.3, generator=gen(8))
    assert draws.shape == (40000, 8)
    c = np.corrcoef(draws.T.numpy())
    assert np.abs(c[~np.eye(8, dtype=bool)] - 0.3).max() < 0.03  # sd of a correlation ~0.005
    # variance of a sample variance: relative sd sqrt(2/n) ~ 0.7%; allow 5%
    assert draws.mean(1).var().item() == pytest.approx(metrics.variance_of_mean(2.0, 0.3, 8), rel=0.05)


def test_member_correlation_reproduces_the_variance_of_the_mean_exactly():
    g = gen(9)
    shared = torch.randn(50, 1, 30, generator=g)
    preds = 0.6 * shared + 0.8 * torch.randn(50, 6, 30, generator=g)
    s2, rho = metrics.member_correlation(preds)
    assert 0.2 < rho < 0.5  # population value 0.36 / 1.0
    measured = preds.double().mean(1).var(0, unbiased=False).mean().item()
    assert metrics.variance_of_mean(s2, rho, 6) == pytest.approx(measured, rel=1e-9)


def test_disagreement_and_correlation():
    labels = torch.tensor([[0, 1, 2, 3], [0, 1, 2, 0], [1, 1, 2, 0]])
    assert metrics.disagreement(labels) == pytest.approx((1 / 4 + 2 / 4 + 1 / 4) / 3)
    m = metrics.disagreement(labels, reduce=False)
    assert m.shape == (3, 3) and np.allclose(np.diag(m), 0) and np.allclose(m, m.T)
    probs = torch.nn.functional.one_hot(labels, 4).float()
    assert metrics.disagreement(probs) == pytest.approx(metrics.disagreement(labels))
    x = torch.linspace(0, 1, 20)
    preds = torch.stack([x, 2 * x + 1, -x])
    np.testing.assert_allclose(metrics.pairwise_correlation(preds, reduce=False),
                               [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)
    # errors around a target: members 0 and 1 err the same way, member 2 the opposite way
    target = torch.zeros(20)
    assert metrics.pairwise_correlation(preds, target) == pytest.approx(-1 / 3)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: metrics.ambiguity_decomposition(torch.ones(3), torch.ones(3)), ValueError, "preds"),
    (lambda: metrics.ambiguity_decomposition(torch.ones(2, 3), torch.ones(4)), ValueError, "y must"),
    (lambda: metrics.ambiguity_decomposition([[1.0, float("nan")]], torch.ones(2)), ValueError, "finite"),
    (lambda: metrics.ambiguity_decomposition("abc", torch.ones(2)), TypeError, "preds"),
    (lambda: metrics.bias_variance_diversity(torch.ones(2, 3), torch.ones(3)), ValueError, r"\(R, M, N\)"),
    (lambda: metrics.bias_variance_diversity(torch.ones(2, 2, 3), torch.ones(2)), ValueError, "target"),
    (lambda: metrics.bias_variance(torch.ones(2, 2, 3), torch.ones(3)), ValueError, r"\(R, N\)"),
    (lambda: metrics.ambiguity_decomposition_ce(torch.randn(2, 3, 4) * 3, torch.zeros(3, dtype=torch.long)),
     ValueError, "softmax"),
    (lambda: metrics.ambiguity_decomposition_ce(random_probs(2, 3, 4), torch.zeros(3)), TypeError, "y must"),
    (lambda: metrics.ambiguity_decomposition_ce(random_probs(2, 3, 4), torch.full((3,), 4)), ValueError,
     "labels in"),
    (lambda: metrics.bias_variance_diversity_ce(random_probs(2, 3, 4), torch.zeros(3, dtype=torch.long)),
     ValueError, r"\(R, M, N, C\)"),
    (lambda: metrics.geometric_mean(random_probs(2, 3, 4), dim=2), ValueError, "dim"),
    (lambda: metrics.geometric_mean(random_probs(2, 3, 4), dim=0.5), TypeError, "dim"),
    (lambda: metrics.variance_of_mean(1.0, 1.5, 3), ValueError, "rho"),
    (lambda: metrics.variance_of_mean(1.0, -0.9, 3), ValueError, "rho"),
    (lambda: metrics.variance_of_mean(-1.0, 0.5, 3), ValueError, "s2"),
    (lambda: metrics.variance_of_mean(1.0, 0.5, 0), ValueError, "m must"),
    (lambda: metrics.equicorrelated_normal(10, 0), ValueError, "m must"),
    (lambda: metrics.equicorrelated_normal(10, 3, rho=-0.1), ValueError, "rho"),
    (lambda: metrics.member_correlation(torch.randn(1, 3, 4)), ValueError, "2 trials"),
    (lambda: metrics.member_correlation(torch.ones(3, 3, 4)), ValueError, "vary"),
    (lambda: metrics.disagreement(torch.randn(3, 4)), ValueError, "integer"),
    (lambda: metrics.disagreement(torch.zeros(1, 4, dtype=torch.long)), ValueError, "2 members"),
    (lambda: metrics.disagreement([[0, 1]]), TypeError, "preds"),
    (lambda: metrics.pairwise_correlation(torch.ones(3, 4)), ValueError, "constant"),
    (lambda: metrics.pairwise_correlation(torch.randn(3, 4), torch.ones(5)), ValueError, "target"),
])
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
