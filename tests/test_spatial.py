"""Tests of bagdrop.spatial: neighbour correlation, masks, interpolation R^2, torch's layers."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bagdrop import models, spatial


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tensors are tiny: one thread, as in the book (two stall when the cores are shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def ar1(n, c, length, rho, seed=0):
    """Stationary AR(1) maps (n, c, length) with lag-d correlation rho**d."""
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, c, length, generator=g, dtype=torch.float64)
    x = torch.empty_like(eps)
    x[..., 0] = eps[..., 0]
    for t in range(1, length):
        x[..., t] = rho * x[..., t - 1] + math.sqrt(1 - rho**2) * eps[..., t]
    return x


# ---------------------------------------------------------------- lag_correlation
def test_lag_correlation_of_ar1_is_rho_to_the_lag():
    r = spatial.lag_correlation(ar1(400, 3, 30, 0.8), max_lag=3)
    assert r.shape == (3,)
    assert torch.allclose(r, torch.tensor([0.8, 0.64, 0.512], dtype=torch.float64), atol=0.03)


def test_lag_correlation_of_independent_maps_is_near_zero():
    x = torch.randn(500, 4, 20, generator=torch.Generator().manual_seed(1))
    assert abs(spatial.lag_correlation(x)[0]) < 0.03


def test_lag_correlation_skips_dead_channels_and_short_maps():
    x = ar1(200, 2, 10, 0.5)
    x[:, 1] = 0.0  # a dead ReLU channel has no correlation and must not drag the mean to 0
    r = spatial.lag_correlation(x.float(), max_lag=12)
    assert abs(r[0] - 0.5) < 0.06
    assert torch.isnan(r[10:]).all()


def test_lag_correlation_2d_pools_rows_and_columns():
    rows_only = ar1(300, 2, 8, 0.9).unsqueeze(-1).expand(300, 2, 8, 8).transpose(-1, -2).contiguous()
    # correlated along each row (lag ~0.9) and identical down each column (lag 1.0)
    r = spatial.lag_correlation(rows_only)[0]
    assert abs(r - (0.9 + 1.0) / 2) < 0.03


# ---------------------------------------------------------------- keep_mask
def test_keep_mask_element_and_channel():
    g = torch.Generator().manual_seed(0)
    e = spatial.keep_mask((200, 8, 30), 0.3, "element", g)
    c = spatial.keep_mask((200, 8, 5, 5), 0.3, "channel", g)
    assert e.shape == (200, 8, 30) and e.dtype == torch.bool
    assert abs(e.float().mean() - 0.7) < 0.02
    assert c.shape == (200, 8, 5, 5)
    assert (c == c[..., :1, :1]).all(), "a channel mask is constant over the whole map"
    assert abs(c.float().mean() - 0.7) < 0.05


@pytest.mark.parametrize("kwargs, err", [
    (dict(shape=(3, 4), p=0.1, kind="element"), ValueError),
    (dict(shape=(3, 4, 5), p=1.0, kind="element"), ValueError),
    (dict(shape=(3, 4, 5), p=0.1, kind="block"), ValueError),
    (dict(shape=(3, 4, 5), p="0.1", kind="element"), TypeError),
])
def test_keep_mask_rejects_bad_arguments(kwargs, err):
    with pytest.raises(err):
        spatial.keep_mask(**kwargs)


# ---------------------------------------------------------------- interpolate
def test_interpolate_1d_is_linear_between_kept_and_nearest_at_the_ends():
    v = torch.tensor([[[0.0, 1, 2, 3, 4, 5, 6]]])
    keep = torch.tensor([[[False, True, False, False, True, False, False]]])
    out = spatial.interpolate(v * 10, keep)
    assert torch.allclose(out, torch.tensor([[[10.0, 10, 20, 30, 40, 40, 40]]]))


def test_interpolate_keeps_kept_entries_and_gives_nan_for_a_dropped_map():
    v = torch.randn(2, 3, 9)
    keep = torch.rand(2, 3, 9) > 0.5
    keep[1, 2] = False
    out = spatial.interpolate(v, keep)
    assert torch.equal(out[keep], v[keep])
    assert torch.isnan(out[1, 2]).all()
    assert not torch.isnan(out[0]).any() or not keep[0].any(-1).all()


def test_interpolate_2d_recovers_a_plane():
    i, j = torch.meshgrid(torch.arange(6.0), torch.arange(6.0), indexing="ij")
    plane = (2 * i - 3 * j + 1).expand(1, 1, 6, 6)
    keep = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    keep[0, 0, 2, 3] = keep[0, 0, 3, 2] = keep[0, 0, 4, 4] = False
    assert torch.allclose(spatial.interpolate(plane, keep), plane)


def test_interpolate_rejects_mismatched_mask():
    with pytest.raises(ValueError, match="keep"):
        spatial.interpolate(torch.zeros(2, 3, 4), torch.ones(2, 3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="keep"):
        spatial.interpolate(torch.zeros(2, 3, 4), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="maps"):
        spatial.interpolate(torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool))


# ---------------------------------------------------------------- R^2
def test_interpolation_r2_smooth_vs_rough_vs_channel():
    smooth = ar1(300, 4, 40, 0.95)
    rough = ar1(300, 4, 40, 0.0)
    r2_smooth = spatial.interpolation_r2(smooth, 0.2, "element")
    r2_rough = spatial.interpolation_r2(rough, 0.2, "element")
    assert r2_smooth > 0.85
    assert r2_rough < -0.2  # interpolating white noise adds the neighbours' noise
    assert spatial.interpolation_r2(smooth, 0.2, "channel") == 0.0


def test_interpolation_r2_falls_as_more_is_dropped():
    x = ar1(300, 3, 40, 0.9)
    r2 = [spatial.interpolation_r2(x, p, "element") for p in (0.1, 0.5, 0.9)]
    assert r2[0] > r2[1] > r2[2]


def test_interpolation_r2_rejects_p_zero():
    with pytest.raises(ValueError, match="p"):
        spatial.interpolation_r2(torch.randn(5, 2, 6), 0.0, "element")


def test_cross_channel_r2_copies_vs_independent():
    base = torch.randn(400, 1, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    copies = torch.cat([base, 2 * base + 1, -base], 1)
    assert spatial.cross_channel_r2(copies) > 0.99
    independent = torch.randn(400, 3, 10, generator=torch.Generator().manual_seed(1))
    assert abs(spatial.cross_channel_r2(independent)) < 0.02
    with pytest.raises(ValueError):
        spatial.cross_channel_r2(torch.randn(10, 1, 5))


# ---------------------------------------------------------------- models
def test_feature_maps_and_layer_table_on_the_book_cnns():
    torch.manual_seed(0)
    x1 = torch.randn(64, 40)
    narrow = spatial.layer_table(models.CNN1d(), x1)
    wide = spatial.layer_table(models.CNN1d(stride=1), x1)
    assert list(narrow.positions) == [19, 10, 5]
    assert list(wide.positions) == [38, 38, 38]
    assert set(narrow.columns) >= {"layer", "corr_lag1", "r2_element", "r2_channel", "r2_other_channels"}
    assert (narrow.r2_channel == 0).all()
    cnn2 = models.CNN2d(p=0.3, kind="channel")
    cnn2.train()
    table2 = spatial.layer_table(cnn2, torch.randn(32, 1, 8, 8))
    assert list(table2.positions) == [64, 16]
    assert cnn2.training, "layer_table must restore the model's mode"
    with pytest.raises(TypeError, match="model"):
        spatial.feature_maps(nn.Linear(3, 3), torch.randn(2, 3))


# ---------------------------------------------------------------- torch's layers
def test_dropout2d_on_3d_input_does_1d_channel_dropout_and_warns():
    keep, warned = spatial.layer_mask(nn.Dropout2d(0.5), (4, 6, 5), seed=0)
    assert any("dropout1d" in w.lower() for w in warned)
    # the (C, H, W) image is read as (N, C, L): whole rows vanish, not whole channels
    assert (keep == keep[..., :1]).all()
    assert not (keep == keep[:, :1, :1]).all()


def test_right_layer_per_shape_drops_whole_channels_silently():
    for layer, shape in [(nn.Dropout1d(0.5), (8, 6, 20)), (nn.Dropout2d(0.5), (8, 6, 5, 5))]:
        keep, warned = spatial.layer_mask(layer, shape, seed=1)
        assert not warned
        flat = keep.flatten(2)
        assert (flat == flat[..., :1]).all()
        assert 0 < keep.float().mean() < 1
    with pytest.raises(RuntimeError):
        spatial.layer_mask(nn.Dropout1d(0.5), (8, 6, 5, 5))


def test_layer_mask_is_seeded_and_leaves_the_rng_alone():
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    a, _ = spatial.layer_mask(nn.Dropout(0.5), (4, 3, 7), seed=2)
    b, _ = spatial.layer_mask(nn.Dropout(0.5), (4, 3, 7), seed=2)
    assert torch.equal(a, b)
    assert torch.equal(before, torch.random.get_rng_state())


# ---------------------------------------------------------------- sweep
def test_sweep_scores_each_member():
    pytest.importorskip("bagdrop.ensemble")
    from bagdrop import data

    split = data.mnist1d(n_samples=200)
    configs = {"none": lambda: models.CNN1d(kind="none"),
               "channel": lambda: models.CNN1d(p=0.2, kind="channel")}
    scores, ensembles = spatial.sweep(configs, split, n_seeds=2, epochs=2, progress=False, eval_every=1)
    assert list(scores.config) == ["none", "none", "channel", "channel"]
    assert list(scores.seed) == [0, 1, 0, 1]
    assert scores.test_error.between(0, 1).all() and (scores.test_nll > 0).all()
    assert set(ensembles) == {"none", "channel"}
    assert list(ensembles["channel"].history.epoch) == [1, 2]
    last = ensembles["channel"].history.iloc[-1]
    member = scores[scores.config == "channel"]
    assert last.member_test_error == pytest.approx(member.test_error.mean(), abs=1e-6)
    with pytest.raises(ValueError, match="n_seeds"):
        spatial.sweep(configs, split, n_seeds=1)


def test_lag_table_and_dropout_configs():
    torch.manual_seed(0)
    table = spatial.lag_table(models.CNN1d(), torch.randn(32, 40), max_lag=4)
    assert list(table.columns) == ["layer", "lag", "correlation"] and len(table) == 12
    assert not table.query("layer == 3 and lag == 4").correlation.isna().any()  # 5 positions: lag 4 exists
    make = lambda **kw: models.CNN1d(**kw)  # noqa: E731
    configs = spatial.dropout_configs(make, rates=(0.1, 0.3), positions={"all": None, "last": (2,)})
    assert list(configs) == ["none", "element 0.1 all", "element 0.1 last", "element 0.3 all",
                             "element 0.3 last", "channel 0.1 all", "channel 0.1 last",
                             "channel 0.3 all", "channel 0.3 last"]
    net = configs["channel 0.3 last"]()
    assert [type(b[2]).__name__ for b in net.blocks] == ["Identity", "Identity", "Dropout1d"]
    assert list(spatial.dropout_configs(make)) == ["none", "element 0.1", "channel 0.1"]
    with pytest.raises(ValueError, match="rates"):
        spatial.dropout_configs(make, rates=(1.5,))
    with pytest.raises(TypeError, match="make"):
        spatial.dropout_configs("CNN1d")


# ---------------------------------------------------------------- summaries and figures
def scores_frame():
    import pandas as pd

    return pd.DataFrame({
        "model": ["a"] * 6 + ["b"] * 6,
        "config": (["none"] * 3 + ["channel 0.1"] * 3) * 2,
        "test_error": [0.30, 0.32, 0.31, 0.20, 0.21, 0.22, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
        "test_nll": [1.0, 1.1, 1.2, 0.8, 0.9, 1.0, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3],
    })


def test_summarise_means_and_intervals():
    summary = spatial.summarise(scores_frame())
    assert list(summary.config) == ["none", "channel 0.1", "none", "channel 0.1"]
    row = summary.iloc[0]
    assert row.test_error == pytest.approx(0.31) and row.n == 3
    assert row.test_error_low <= row.test_error <= row.test_error_high
    assert summary.iloc[2].test_error_low == summary.iloc[2].test_error_high == pytest.approx(0.1)
    with pytest.raises(ValueError, match="lacks"):
        spatial.summarise(scores_frame().drop(columns="test_nll"))
    with pytest.raises(TypeError, match="scores"):
        spatial.summarise({"model": []})


def test_comparison_figure_colours_kinds_by_kind_colours():
    import matplotlib
    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_rgb

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert set(spatial.KIND_COLOURS) == {"none", *spatial.MASK_KINDS}
    fig = spatial.comparison_figure(scores_frame())
    dots = [c for c in fig.axes[0].collections if isinstance(c, PathCollection)]   # the seeds, per configuration
    assert [to_rgb(d.get_facecolor()[0]) for d in dots] == [to_rgb(spatial.KIND_COLOURS[k]) for k in ("none", "channel")]
    plt.close(fig)


def test_figures_have_labelled_axes():
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = spatial.comparison_figure(scores_frame())
    assert len(fig.axes) == 4 and all(ax.get_ylabel() for ax in fig.axes)
    plt.close(fig)
    one = scores_frame().assign(config=[f"element {i}" for i in range(12)])  # 6 per model
    one = pd.concat([one, one.assign(config=one.config + " last")])          # 12 per model: full-width rows
    many = pd.concat([one, one.assign(test_error=one.test_error + 0.01)])    # two seeds each
    fig = spatial.comparison_figure(many)
    assert len(fig.axes) == 4 and fig.axes[-1].get_xlabel() and len(fig.axes[-1].get_xticklabels()) == 12
    plt.close(fig)
    torch.manual_seed(0)
    x1, x2 = torch.randn(40), torch.randn(1, 8, 8)
    fig = spatial.mask_figure({"1-D": (x1, torch.rand(25, 38)), "2-D": (x2, torch.rand(16, 8, 8))}, p=0.3)
    assert len(fig.axes) == 6 and all(ax.get_xlabel() for ax in fig.axes)
    plt.close(fig)
    with pytest.raises(ValueError, match="examples"):
        spatial.mask_figure({"bad": (x2, torch.rand(16, 4, 4))})
