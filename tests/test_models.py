import pytest
import torch
from torch import nn

from bagdrop import models


def layers(model, kind):
    return [m for m in model.modules() if type(m) is kind]


def test_parameter_counts_match_the_references():
    assert models.n_parameters(models.CNN1d()) == 5210  # MNIST-1D ConvBase
    assert models.n_parameters(models.CNN2d()) == 9930
    assert models.n_parameters(models.MLP()) == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10


@pytest.mark.parametrize("model, x", [
    (models.MLP(), torch.randn(5, 40)),
    (models.MLP(in_features=64), torch.randn(5, 1, 8, 8)),
    (models.CNN1d(), torch.randn(5, 40)),
    (models.CNN1d(), torch.randn(5, 1, 40)),
    (models.CNN1d(stride=1), torch.randn(5, 40)),
    (models.CNN2d(), torch.randn(5, 1, 8, 8)),
])
def test_output_shapes(model, x):
    assert model(x).shape == (5, 10)


def test_map_sizes_of_the_baseline_and_the_wide_variant():
    assert models.CNN1d().map_sizes == (19, 10, 5)
    assert [a.shape[-1] for a in models.CNN1d(stride=1).forward_features(torch.randn(2, 40))] == [38, 38, 38]


@pytest.mark.parametrize("kind, cls1, cls2", [
    ("element", nn.Dropout, nn.Dropout),
    ("channel", nn.Dropout1d, nn.Dropout2d),
])
def test_dropout_kind_selects_torch_layer(kind, cls1, cls2):
    assert len(layers(models.CNN1d(p=0.2, kind=kind), cls1)) == 3
    assert len(layers(models.CNN2d(p=0.2, kind=kind), cls2)) == 2
    assert len(layers(models.CNN1d(p=0.2, kind=kind, dropout_layers=(2,)), cls1)) == 1


def test_no_dropout_layers_when_p_is_zero():
    for m in (models.MLP(), models.CNN1d(), models.CNN2d()):
        assert not [x for x in m.modules() if isinstance(x, nn.modules.dropout._DropoutNd)]


def test_channel_dropout_zeroes_whole_maps():
    torch.manual_seed(0)
    m = models.CNN1d(p=0.5, kind="channel").train()
    drop = m.blocks[0][2]
    out = drop(torch.ones(4, 25, 19))
    per_map = out.eq(0).all(-1) | out.ne(0).all(-1)
    assert per_map.all() and out.eq(0).any()


def test_dropout_is_active_in_train_and_off_in_eval():
    torch.manual_seed(0)
    m = models.MLP(p=0.5)
    x = torch.randn(8, 40)
    m.train()
    assert not torch.equal(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))


@pytest.mark.parametrize("call, err, match", [
    (lambda: models.MLP(p=1.0), ValueError, "p must lie"),
    (lambda: models.MLP(p=-0.1), ValueError, "p must lie"),
    (lambda: models.MLP(kind="channel", p=0.1), ValueError, "kind"),
    (lambda: models.CNN1d(kind="spatial", p=0.1), ValueError, "kind must be one of"),
    (lambda: models.CNN1d(kind="none", p=0.1), ValueError, "p must be 0"),
    (lambda: models.CNN1d(channels=0), ValueError, "channels"),
    (lambda: models.MLP(hidden=(0,)), ValueError, "hidden"),
    (lambda: models.CNN1d(dropout_layers=(3,)), ValueError, "dropout_layers"),
    (lambda: models.CNN1d(length=2), ValueError, "too short"),
    (lambda: models.MLP(p="0.1"), TypeError, "p must be a float"),
    (lambda: models.MLP(hidden=5), TypeError, "hidden must be a tuple"),
    (lambda: models.MLP(hidden=(), kind="bogus"), ValueError, "kind must be one of"),
    (lambda: models.MLP(hidden=(), p=2.0), ValueError, "p must lie"),
    (lambda: models.CNN2d(channels=(1, 2, 3)), ValueError, "channels must hold two"),
    (lambda: models.CNN1d(dropout_layers=1), TypeError, "dropout_layers must be a tuple"),
    (lambda: models.n_parameters("mlp"), TypeError, "model must be an nn.Module"),
])
def test_bad_arguments(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_bad_input_shape_is_named():
    with pytest.raises(ValueError, match="x must have shape"):
        models.CNN1d()(torch.randn(2, 41))
    with pytest.raises(ValueError, match="x must have shape"):
        models.CNN2d()(torch.randn(2, 64))
