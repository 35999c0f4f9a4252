"""The book's networks, each with the dropout rate and kind as parameters.

Dropout kinds (torch's own layers):

- ``"none"``: no dropout;
- ``"element"``: :class:`torch.nn.Dropout`, each activation dropped independently;
- ``"channel"``: :class:`torch.nn.Dropout1d` / :class:`torch.nn.Dropout2d`, whole
  feature maps dropped (spatial dropout, Tompson et al. 2015). Convolutional nets only.
"""
from __future__ import annotations

import torch
from torch import nn

from ._checks import non_negative_int, one_of, positive_int, probability

__all__ = ["DROPOUT_KINDS", "dropout_layer", "MLP", "CNN1d", "CNN2d", "n_parameters"]

DROPOUT_KINDS = ("none", "element", "channel")


def dropout_layer(p: float, kind: str, spatial_dims: int = 0) -> nn.Module:
    """The torch layer for dropout ``kind`` at rate ``p`` on inputs with ``spatial_dims`` (0, 1 or 2).

    ``p == 0`` or ``kind == "none"`` gives :class:`torch.nn.Identity`.
    """
    p = probability("p", p)
    one_of("kind", kind, DROPOUT_KINDS)
    if kind == "none" and p > 0:
        raise ValueError(f"p must be 0 when kind is 'none', got p={p}")
    if spatial_dims not in (0, 1, 2):
        raise ValueError(f"spatial_dims must be 0, 1 or 2, got {spatial_dims!r}")
    if kind == "channel" and spatial_dims == 0:
        raise ValueError("kind='channel' needs feature maps: use it in CNN1d or CNN2d, not MLP")
    if kind == "none" or p == 0:
        return nn.Identity()
    if kind == "element":
        return nn.Dropout(p)
    return nn.Dropout1d(p) if spatial_dims == 1 else nn.Dropout2d(p)


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _int_tuple(name: str, values) -> tuple:
    """``values`` as a tuple, or a TypeError naming ``name`` when it is not a sequence."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a tuple of ints, got {type(values).__name__}")
    return tuple(values)


def _check_layers(layers, n_blocks: int) -> tuple[int, ...]:
    layers = _int_tuple("dropout_layers", layers)
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n_blocks:
            raise ValueError(f"dropout_layers must hold block indices in 0..{n_blocks - 1}, got {layers}")
    return layers


class MLP(nn.Module):
    """Multilayer perceptron: input (N, *input_shape) -> logits (N, out_features).

    Inputs are flattened first, so it takes MNIST-1D signals (N, 40) as well as
    digit images (N, 1, 8, 8) with ``in_features=64``. ``p`` is the dropout rate
    after each hidden ReLU, ``p_input`` the rate on the inputs (both element-wise).
    """

    def __init__(self, in_features: int = 40, hidden: tuple[int, ...] = (100, 100),
                 out_features: int = 10, p: float = 0.0, kind: str = "element",
                 p_input: float = 0.0):
        super().__init__()
        in_features = positive_int("in_features", in_features)
        out_features = positive_int("out_features", out_features)
        hidden = tuple(positive_int("hidden", h) for h in _int_tuple("hidden", hidden))
        if kind == "channel":
            raise ValueError("kind must be 'none' or 'element' for an MLP, got 'channel'")
        dropout_layer(p, kind)  # validate p and kind even when there is no hidden layer
        layers: list[nn.Module] = [nn.Flatten(), dropout_layer(p_input, "element" if p_input else "none")]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), dropout_layer(p, kind)]
            width = h
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, *input_shape) -> logits (N, out_features)."""
        return self.net(x)


class _ConvNet(nn.Module):
    """Conv blocks (conv -> ReLU -> dropout) followed by a linear read-out."""

    spatial_dims = 1

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Post-ReLU activations of each conv block (before its dropout), e.g. (N, C, L_i)."""
        x = self._as_maps(x)
        maps = []
        for block in self.blocks:
            conv, act, drop = block
            a = act(conv(x))
            maps.append(a)
            x = drop(a)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x -> logits (N, n_classes)."""
        x = self._as_maps(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x.flatten(1))


class CNN1d(_ConvNet):
    """The MNIST-1D baseline CNN (``ConvBase`` of Greydanus & Kobak), with dropout.

    Input (N, L) or (N, 1, L) -> logits (N, n_classes). Three Conv1d layers with
    ``channels`` filters, kernels 5/3/3, padding 1 and the given ``stride``; with the
    defaults (L=40, stride 2) the maps have 19, 10 and 5 positions and the net 5,210
    parameters. ``stride=1`` keeps wide maps (38 positions in each layer). Dropout of
    ``kind`` at rate ``p`` follows the ReLU of each block listed in ``dropout_layers``.
    """

    spatial_dims = 1

    def __init__(self, length: int = 40, channels: int = 25, stride: int = 2,
                 n_classes: int = 10, p: float = 0.0, kind: str = "element",
                 dropout_layers: tuple[int, ...] = (0, 1, 2)):
        super().__init__()
        length = positive_int("length", length)
        channels = positive_int("channels", channels)
        stride = positive_int("stride", stride)
        n_classes = positive_int("n_classes", n_classes)
        dropout_layers = _check_layers(dropout_layers, 3)
        self.length = length
        blocks, c_in, size = [], 1, length
        for i, k in enumerate((5, 3, 3)):
            size = (size + 2 - k) // stride + 1
            if size < 1:
                raise ValueError(f"length={length} is too short for three convolutions with stride {stride}")
            p_i = p if i in dropout_layers else 0.0
            blocks.append(nn.Sequential(nn.Conv1d(c_in, channels, k, stride=stride, padding=1), nn.ReLU(),
                                        dropout_layer(p_i, kind if p_i else "none", spatial_dims=1)))
            c_in = channels
        dropout_layer(p, kind, spatial_dims=1)  # validate p and kind even if no layer uses them
        self.blocks = nn.ModuleList(blocks)
        self.map_sizes = self._map_sizes(length, stride)
        self.head = nn.Linear(channels * size, n_classes)

    @staticmethod
    def _map_sizes(length, stride):
        sizes, size = [], length
        for k in (5, 3, 3):
            size = (size + 2 - k) // stride + 1
            sizes.append(size)
        return tuple(sizes)

    def _as_maps(self, x):
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[2] != self.length:
            raise ValueError(f"x must have shape (N, {self.length}) or (N, 1, {self.length}), got {tuple(x.shape)}")
        return x


class CNN2d(_ConvNet):
    """A small CNN for the 8x8 digits: input (N, 1, 8, 8) -> logits (N, n_classes).

    Conv2d(1, 16, 3, padding 1) -> (N, 16, 8, 8), Conv2d(16, 32, 3, stride 2, padding 1)
    -> (N, 32, 4, 4), then a linear read-out: 9,930 parameters with the defaults.
    Dropout of ``kind`` (element: Dropout, channel: Dropout2d) at rate ``p`` follows the
    ReLU of each block listed in ``dropout_layers``.
    """

    spatial_dims = 2

    def __init__(self, channels: tuple[int, int] = (16, 32), n_classes: int = 10,
                 p: float = 0.0, kind: str = "element", dropout_layers: tuple[int, ...] = (0, 1)):
        super().__init__()
        channels = _int_tuple("channels", channels)
        if len(channels) != 2:
            raise ValueError(f"channels must hold two ints (one per conv block), got {channels}")
        c1, c2 = (positive_int("channels", c) for c in channels)
        n_classes = positive_int("n_classes", n_classes)
        dropout_layers = _check_layers(dropout_layers, 2)
        dropout_layer(p, kind, spatial_dims=2)
        specs = [(1, c1, 1), (c1, c2, 2)]
        blocks = []
        for i, (c_in, c_out, stride) in enumerate(specs):
            p_i = p if i in dropout_layers else 0.0
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.ReLU(),
                                        dropout_layer(p_i, kind if p_i else "none", spatial_dims=2)))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(c2 * 4 * 4, n_classes)

    def _as_maps(self, x):
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"x must have shape (N, 1, 8, 8), got {tuple(x.shape)}")
        return x
