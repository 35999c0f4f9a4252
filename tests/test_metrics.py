import math

import pytest
import torch

from bagdrop import metrics


def test_error_rate_and_nll_on_a_known_case():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = torch.tensor([0, 1, 1])
    assert metrics.error_rate(probs, y) == pytest.approx(1 / 3)
    assert metrics.nll(probs, y) == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3)


def test_logits_are_rejected():
    with pytest.raises(ValueError, match="softmax"):
        metrics.error_rate(torch.randn(4, 3) * 5, torch.zeros(4, dtype=torch.long))


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="probs"):
        metrics.nll(torch.ones(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="y must"):
        metrics.nll(torch.full((3, 2), 0.5), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="y must"):
        metrics.nll(torch.full((3, 2), 0.5), torch.zeros(3))


@pytest.mark.parametrize("method", ["bootstrap", "t"])
def test_mean_ci_covers_the_mean_and_shrinks_with_more_data(method):
    g = torch.Generator().manual_seed(0)
    few = (torch.randn(5, generator=g) + 3).tolist()
    many = (torch.randn(500, generator=g) + 3).tolist()
    m, lo, hi = metrics.mean_ci(few, method=method)
    assert lo < m < hi
    m2, lo2, hi2 = metrics.mean_ci(many, method=method)
    assert lo2 < 3 < hi2 and (hi2 - lo2) < (hi - lo)


def test_mean_ci_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        metrics.mean_ci([1.0])
    with pytest.raises(ValueError, match="method"):
        metrics.mean_ci([1.0, 2.0], method="normal")
    with pytest.raises(ValueError, match="confidence"):
        metrics.mean_ci([1.0, 2.0], confidence=1.5)
