"""bagdrop.explorer: the appendix's grid, its static figure and its ipywidgets explorer."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import bagdrop as bd

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def tiny_table():
    split = bd.data.mnist1d(n_samples=300)
    return bd.explorer.grid(split, rates=(0.0, 0.5), members=3, epochs=1, batch_size=50, hidden=(16,))


def test_size_curve_is_the_error_of_the_running_average():
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(5, 40, 3, generator=g).softmax(-1)
    y = torch.randint(0, 3, (40,), generator=g)
    expected = [bd.metrics.error_rate(probs[:k].mean(0), y) for k in range(1, 6)]
    np.testing.assert_allclose(bd.explorer.size_curve(probs, y), expected)


def test_size_curve_rejects_bad_input():
    probs = torch.full((2, 4, 3), 1 / 3)
    with pytest.raises(ValueError, match="member_probs"):
        bd.explorer.size_curve(probs[0], torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="y must"):
        bd.explorer.size_curve(probs, torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer class labels"):
        bd.explorer.size_curve(probs, torch.zeros(4))


def test_grid_has_one_row_per_rate_bootstrap_and_size(tiny_table):
    t = tiny_table
    assert list(t.columns) == ["rate", "bootstrap", "size", "ensemble_error", "member_error"]
    assert len(t) == 2 * 2 * 3
    assert set(t.rate) == {0.0, 0.5} and set(t.bootstrap) == {False, True} and set(t["size"]) == {1, 2, 3}
    assert t.ensemble_error.between(0, 1).all() and t.member_error.between(0, 1).all()
    # one member: the ensemble is that member
    one = t[t["size"] == 1]
    np.testing.assert_allclose(one.ensemble_error, one.member_error)


def test_grid_rejects_bad_arguments():
    split = bd.data.mnist1d(n_samples=100)
    with pytest.raises(ValueError, match="rates"):
        bd.explorer.grid(split, rates=(0.0, 1.0))
    with pytest.raises(ValueError, match="rates"):
        bd.explorer.grid(split, rates=())
    with pytest.raises(ValueError, match="members"):
        bd.explorer.grid(split, members=0)
    with pytest.raises(TypeError, match="split"):
        bd.explorer.grid("mnist1d")


def test_figure_has_two_labelled_panels_with_a_line_per_rate(tiny_table):
    fig = bd.explorer.figure(tiny_table)
    try:
        axes = fig.get_axes()
        assert len(axes) == 2
        assert all(ax.get_xlabel() for ax in axes) and axes[0].get_ylabel() == "test error"
        assert all(len(ax.lines) == 2 for ax in axes)
        assert matplotlib.colors.to_rgba(fig.get_facecolor())[3] == 1  # opaque, for the dark theme
    finally:
        matplotlib.pyplot.close(fig)


def test_figure_and_explorer_reject_a_foreign_table():
    with pytest.raises(TypeError, match="table"):
        bd.explorer.figure(pd.DataFrame({"x": [1]}))
    with pytest.raises(TypeError, match="table"):
        bd.explorer.explorer([1, 2])


def test_explorer_widgets_redraw_for_each_setting(tiny_table):
    widget = bd.explorer.explorer(tiny_table)
    rate, size, bootstrap = widget.children[0].children
    assert rate.options[-1][1] == 0.5 and size.max == 3
    before = len(matplotlib.pyplot.get_fignums())
    rate.value, size.value, bootstrap.value = 0.5, 1, True  # each change redraws, no error
    assert len(matplotlib.pyplot.get_fignums()) <= before + 3
    matplotlib.pyplot.close("all")
