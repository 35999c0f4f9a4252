import math

import pytest
import torch

from bagdrop import bagging


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_bootstrap_indices_shape_dtype_range_and_seed():
    idx = bagging.bootstrap_indices(50, 7, gen(1))
    assert idx.shape == (7, 50) and idx.dtype == torch.int64
    assert idx.min() >= 0 and idx.max() < 50
    assert torch.equal(idx, bagging.bootstrap_indices(50, 7, gen(1)))
    assert not torch.equal(idx, bagging.bootstrap_indices(50, 7, gen(2)))


def test_bootstrap_rows_differ_and_keep_about_63_percent():
    n, k = 2000, 20
    idx = bagging.bootstrap_indices(n, k, gen(0))
    assert all(not torch.equal(idx[0], idx[i]) for i in range(1, k))
    unique = torch.tensor([len(row.unique()) / n for row in idx])
    # expected 1 - (1 - 1/n)^n = 0.6322; sd of one row's fraction ~ 0.0075 at n = 2000
    assert abs(unique.mean().item() - (1 - (1 - 1 / n) ** n)) < 0.01
    assert unique.min() > 0.59 and unique.max() < 0.67


def test_bootstrap_does_not_touch_global_rng():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    bagging.bootstrap_indices(10, 3, gen(0))
    assert torch.equal(torch.rand(3), expected)


def test_out_of_bag_mask_is_the_complement_of_the_sample():
    idx = torch.tensor([[0, 0, 1, 1], [3, 2, 3, 2]])
    mask = bagging.out_of_bag_mask(idx, 5)
    assert mask.dtype == torch.bool and mask.shape == (2, 5)
    assert mask.tolist() == [[False, False, True, True, True], [True, True, False, False, True]]
    counts = bagging.in_bag_counts(idx, 5)
    assert counts.tolist() == [[2, 2, 0, 0, 0], [0, 0, 2, 2, 0]]
    assert torch.equal(counts == 0, mask)


def test_out_of_bag_fraction_is_about_e_inverse():
    n = 5000
    mask = bagging.out_of_bag_mask(bagging.bootstrap_indices(n, 10, gen(3)), n)
    assert abs(mask.float().mean().item() - math.exp(-1)) < 0.01


@pytest.mark.parametrize("call, err, match", [
    (lambda: bagging.bootstrap_indices(0, 3, gen()), ValueError, "n must"),
    (lambda: bagging.bootstrap_indices(5, 0, gen()), ValueError, "k must"),
    (lambda: bagging.bootstrap_indices(5.0, 3, gen()), TypeError, "n must"),
    (lambda: bagging.bootstrap_indices(5, 3, 0), TypeError, "generator must"),
    (lambda: bagging.out_of_bag_mask([[0, 1]], 3), TypeError, "index must"),
    (lambda: bagging.out_of_bag_mask(torch.tensor([0, 1]), 3), ValueError, "index must have shape"),
    (lambda: bagging.out_of_bag_mask(torch.tensor([[0, 3]]), 3), ValueError, r"index must hold indices in \[0, 3\)"),
    (lambda: bagging.out_of_bag_mask(torch.tensor([[0.0, 1.0]]), 3), TypeError, "integer"),
    (lambda: bagging.out_of_bag_mask(torch.tensor([[0, 1]]), 0), ValueError, "n must"),
])
def test_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call()
