"""K networks of one architecture trained simultaneously, as one batched model.

An :class:`Ensemble` stacks the parameters of ``k`` members built by a factory of
:mod:`bagdrop.models` (MLP, CNN1d, CNN2d) along a leading member axis. One training
step runs every member at once: linear layers as batched matmuls
(:func:`torch.baddbmm`), convolutions as im2col followed by one batched matmul (measured
faster here than a grouped convolution with ``groups=k`` or ``torch.func.vmap``; see
``benchmarks/ensemble_backends.py``), and one gather fetches every member's minibatch.
Each member keeps what makes an ensemble an ensemble:

- its own initialisation: member ``i`` is exactly ``factory()`` built after
  ``torch.manual_seed(seed + i)``;
- its own training sample (the whole training set, or its own bootstrap sample from
  :func:`bagdrop.bagging.bootstrap_indices`) and its own minibatch order;
- its own dropout masks, with torch's semantics (inverted dropout: kept units are
  scaled by ``1 / (1 - p)`` in training, nothing changes at test time; channel dropout
  drops whole feature maps, per member and per example).

The loss of a step is the *sum* of the members' mean minibatch losses, so the
gradient with respect to member ``i``'s slice is member ``i``'s own gradient, and one
Adam over the stacked parameters equals ``k`` independent Adams (Adam is elementwise).
"""
from __future__ import annotations

import copy
import itertools
import math
from typing import Callable

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import bagging
from ._checks import non_negative_float, non_negative_int, one_of, positive_float, positive_int, torch_device
from .data import Split
from .models import MLP, _ConvNet
from .train import progress_bar

__all__ = ["Ensemble"]

MODES = ("weight_scaling", "mc")
COMBINES = ("mean", "geometric")

# Activation elements held at once while predicting; bounds memory in eval and MC mode.
_EVAL_ELEMENTS = 1 << 22


def _dropout_op(module: nn.Module):
    """('dropout', p, channel?) for a torch dropout layer, None for anything else."""
    if type(module) is nn.Dropout:
        return ("dropout", float(module.p), False)
    if type(module) in (nn.Dropout1d, nn.Dropout2d):
        return ("dropout", float(module.p), True)
    return None


class _Im2col(torch.autograd.Function):
    """Columns of a convolution on channel-major maps, with a lean backward.

    x (k, C, B, *spatial) -> cols (k, taps * C, B * prod(spatial_out)): for every kernel
    offset (taps = prod(kernel), in ``itertools.product`` order) the strided slice of
    the zero-padded maps. Autograd through the slices would allocate and add one
    zero-filled copy of the input per tap; this backward adds every tap's gradient
    into one buffer.
    """

    @staticmethod
    def _slices(kernel, stride, size):
        for offset in itertools.product(*(range(kd) for kd in kernel)):
            yield (..., *(slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, stride, size)))

    @staticmethod
    def output_size(x, kernel, stride, padding) -> tuple[int, ...]:
        """Spatial size of the output maps for input x (..., *spatial)."""
        nd = len(kernel)
        return tuple((x.shape[-nd + d] + 2 * padding[d] - kernel[d]) // stride[d] + 1 for d in range(nd))

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        pad = []
        for q in reversed(padding):
            pad += [q, q]
        xp = F.pad(x, pad) if any(padding) else x
        size = _Im2col.output_size(x, kernel, stride, padding)
        ctx.geometry = (kernel, stride, padding, size, tuple(xp.shape))
        cols = torch.stack([xp[sl] for sl in _Im2col._slices(kernel, stride, size)], 1)  # (k, taps, C, B, *out)
        return cols.reshape(x.shape[0], -1, math.prod(cols.shape[3:]))

    @staticmethod
    def backward(ctx, grad_cols):
        kernel, stride, padding, size, padded = ctx.geometry
        grad_cols = grad_cols.reshape(padded[0], -1, *padded[1:3], *size)
        grad = grad_cols.new_zeros(padded)
        for t, sl in enumerate(_Im2col._slices(kernel, stride, size)):
            grad[sl] += grad_cols[:, t]
        inner = (..., *(slice(q, n - q) for q, n in zip(padding, padded[-len(kernel):])))
        return grad[inner], None, None, None


class Ensemble(nn.Module):
    """``k`` members of the network ``factory()``, stacked and trained as one batched model.

    Parameters
    ----------
    factory: a callable with no arguments returning a :class:`bagdrop.models.MLP`,
        :class:`~bagdrop.models.CNN1d` or :class:`~bagdrop.models.CNN2d` (or an
        ``nn.Sequential`` of Flatten/Linear/ReLU/Dropout layers), e.g.
        ``lambda: bd.models.CNN1d(p=0.1)``.
    k: number of members.
    seed: member ``i`` is initialised as ``factory()`` after ``torch.manual_seed(seed + i)``.
        Torch's global random state is left as it was.

    Stacked parameters have shape (k, *shape of the member's parameter). After
    :meth:`fit`, :attr:`bootstrap_index` (k, M) holds the training indices of each
    member.
    """

    def __init__(self, factory: Callable[[], nn.Module], k: int, seed: int = 0):
        super().__init__()
        if isinstance(factory, nn.Module) or not callable(factory):
            raise TypeError(f"factory must be a callable returning an nn.Module, got {type(factory).__name__}")
        self.k = positive_int("k", k)
        self.seed = non_negative_int("seed", seed)
        members = []
        with torch.random.fork_rng(devices=[]):
            for i in range(self.k):
                torch.manual_seed(self.seed + i)
                m = factory()
                if not isinstance(m, nn.Module):
                    raise TypeError(f"factory must return an nn.Module, got {type(m).__name__}")
                members.append(m)
        template = members[0]
        names = [n for n, _ in template.named_parameters()]
        if list(dict(template.named_buffers())):
            raise TypeError("factory must build a network without buffers (no batch norm)")
        for m in members[1:]:
            if type(m) is not type(template) or [
                    (n, p.shape) for n, p in m.named_parameters()] != [
                    (n, p.shape) for n, p in template.named_parameters()]:
                raise ValueError("factory must return networks of one architecture on every call")
        self._names = names
        self._index = {n: j for j, n in enumerate(names)}
        # Stacked layouts chosen so that every layer is one baddbmm without transposes:
        # Linear weights (k, in, out); convolution weights (k, out, taps * in), to multiply
        # the im2col columns of channel-major maps. See _to_stacked / member_parameter.
        self._layout: dict[int, tuple] = {}
        for n, mod in template.named_modules():
            if type(mod) is nn.Linear:
                self._layout[self._index[f"{n}.weight"]] = ("linear",)
            elif type(mod) in (nn.Conv1d, nn.Conv2d):
                self._layout[self._index[f"{n}.weight"]] = ("conv", tuple(mod.kernel_size), mod.in_channels)
        self.params = nn.ParameterList(
            [nn.Parameter(torch.stack([self._to_stacked(j, dict(m.named_parameters())[n].detach())
                                       for m in members]))
             for j, n in enumerate(names)])
        # a plain attribute, not a submodule: its parameters are not the ensemble's
        self.__dict__["_template"] = copy.deepcopy(template).requires_grad_(False).eval()
        self._ops, self._input_check = self._compile(template)
        self.bootstrap_index: torch.Tensor | None = None
        with torch.no_grad():
            self._width = self._max_width(self._template)

    # ------------------------------------------------------------------ structure
    def _to_stacked(self, j: int, p: torch.Tensor) -> torch.Tensor:
        """A member's parameter ``j`` in the stacked layout (one member's slice)."""
        layout = self._layout.get(j)
        if layout is None:
            return p
        if layout[0] == "linear":
            return p.t()
        nd = len(layout[1])  # conv weight (out, in, *kernel) -> (out, *kernel, in) -> (out, taps * in)
        return p.permute(0, *range(2, 2 + nd), 1).reshape(p.shape[0], -1)

    def member_parameter(self, j: int, i: int) -> torch.Tensor:
        """Member ``i``'s parameter ``j`` (order of ``factory().parameters()``) in the member's own shape."""
        return self._from_stacked(j, self.params[j][i])

    def _from_stacked(self, j: int, q: torch.Tensor) -> torch.Tensor:
        """One member's slice ``q`` of stacked parameter ``j`` (or of its gradient) in the member's shape."""
        layout = self._layout.get(j)
        if layout is None:
            return q
        if layout[0] == "linear":
            return q.t()
        kernel, c_in = layout[1], layout[2]
        nd = len(kernel)
        return q.reshape(q.shape[0], *kernel, c_in).permute(0, nd + 1, *range(1, nd + 1))

    def _compile(self, model: nn.Module):
        """The member's forward pass as a list of ops on stacked tensors."""
        ops = []

        def seq(prefix: str, layers: nn.Sequential):
            for name, layer in layers.named_children():
                full = f"{prefix}{name}"
                t = type(layer)
                if t is nn.Flatten:
                    if (layer.start_dim, layer.end_dim) != (1, -1):
                        raise TypeError("factory's nn.Flatten layers must flatten dims 1..-1")
                    ops.append(("flatten",))
                elif t is nn.Identity:
                    continue
                elif t is nn.ReLU:
                    ops.append(("relu",))
                elif t is nn.Linear:
                    ops.append(("linear", self._index[f"{full}.weight"], self._index.get(f"{full}.bias")))
                elif t in (nn.Conv1d, nn.Conv2d):
                    if (layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
                            or any(d != 1 for d in layer.dilation)):
                        raise TypeError("factory's convolutions must use groups=1, dilation 1 and zero padding")
                    ops.append(("conv", self._index[f"{full}.weight"], self._index.get(f"{full}.bias"),
                                tuple(layer.kernel_size), tuple(layer.stride), tuple(layer.padding)))
                elif _dropout_op(layer) is not None:
                    if _dropout_op(layer)[1] > 0:
                        ops.append(_dropout_op(layer))
                else:
                    raise TypeError(f"factory's network holds an unsupported layer {t.__name__} ({full})")

        if isinstance(model, MLP):
            seq("net.", model.net)
            first = next(op for op in ops if op[0] == "linear")
            n_in = self.params[first[1]].shape[1]

            def check(x):
                if x.dim() < 2 or math.prod(x.shape[1:]) != n_in:
                    raise ValueError(f"x must have shape (N, ...) with {n_in} features per example, "
                                     f"got {tuple(x.shape)}")
                return x
            return ops, check
        if isinstance(model, _ConvNet):
            sample = model._as_maps(self._example_input(model))
            ops.append(("maps", tuple(sample.shape[1:])))
            for i, block in enumerate(model.blocks):
                seq(f"blocks.{i}.", block)
            ops.append(("flatten",))
            seq("", nn.ModuleDict({"head": model.head}))
            return ops, (lambda x: model._as_maps(x))
        if type(model) is nn.Sequential:
            seq("", model)
            if any(op[0] in ("conv", "dropout") and (op[0] == "conv" or op[2]) for op in ops):
                raise TypeError("an nn.Sequential factory may hold Flatten, Linear, ReLU and Dropout "
                                "layers only; use bagdrop.models.CNN1d/CNN2d for convolutions")
            if not any(op[0] == "linear" for op in ops):
                raise TypeError("factory's nn.Sequential must hold at least one Linear layer")
            return ops, (lambda x: x)
        raise TypeError("factory must build a bagdrop.models MLP, CNN1d or CNN2d (or an nn.Sequential), "
                        f"got {type(model).__name__}")

    @staticmethod
    def _example_input(model: nn.Module) -> torch.Tensor:
        if hasattr(model, "length"):
            return torch.zeros(1, 1, model.length)
        return torch.zeros(1, 1, 8, 8)

    @torch.no_grad()
    def _forward_one_example(self, model: nn.Module) -> torch.Tensor:
        """One member-shaped module applied to a single zero input (to fire forward hooks)."""
        if isinstance(model, _ConvNet):
            return model(self._example_input(model))
        first = next(op for op in self._ops if op[0] == "linear")
        return model(torch.zeros(1, self.params[first[1]].shape[1]))

    def _max_width(self, model: nn.Module) -> int:
        """Largest activation size per example of one member (for chunking predictions)."""
        widths = [1]
        hooks = [m.register_forward_hook(lambda mod, inp, out: widths.append(out[0].numel()))
                 for m in model.modules() if not list(m.children())]
        try:
            self._forward_one_example(model)
        finally:
            for h in hooks:
                h.remove()
        return max(widths)

    # ------------------------------------------------------------------ forward
    def n_dropout_sites(self) -> int:
        """Number of dropout layers (with p > 0) in a member."""
        return sum(op[0] == "dropout" for op in self._ops)

    def forward(self, x: torch.Tensor, dropout: bool | None = None,
                masks: list[torch.Tensor] | None = None, return_masks: bool = False):
        """Every member's outputs on its own inputs: x (k, B, *input_shape) -> (k, B, out).

        ``dropout`` (default: ``self.training``) samples fresh masks, independent per
        member, example and unit (or feature map, for channel dropout). ``masks``
        overrides them: one tensor per dropout layer (see :meth:`n_dropout_sites`),
        each of shape (k, B, *that layer's activation shape), or broadcastable to it
        (channel dropout: (k, B, C, 1) or (k, B, C, 1, 1)), holding the multipliers
        0 or 1 / (1 - p). ``return_masks=True`` returns ``(outputs, masks)`` with the
        masks used, in that format.
        """
        if dropout is None:
            dropout = self.training
        if x.dim() < 2 or x.shape[0] != self.k:
            raise ValueError(f"x must have shape (k={self.k}, B, ...), got {tuple(x.shape)}")
        if masks is not None:
            if not isinstance(masks, (list, tuple)) or len(masks) != self.n_dropout_sites():
                raise ValueError(f"masks must be a list of {self.n_dropout_sites()} tensors, one per dropout layer")
            dropout = True
        k, b = x.shape[0], x.shape[1]
        maps = False  # True while x holds feature maps, channel-major: (k, C, B, *spatial)
        fresh = False  # x is a new tensor nothing else holds: ReLU may work in place
        site = 0
        used = []
        w = self.params
        for op in self._ops:
            name = op[0]
            if name == "linear":
                if op[2] is None:
                    x = torch.bmm(x, w[op[1]])
                else:
                    x = torch.baddbmm(w[op[2]].unsqueeze(1), x, w[op[1]])
                fresh = True
                continue
            if name == "relu":
                x = torch.relu_(x) if fresh else torch.relu(x)
            elif name == "dropout":
                p, channel = op[1], op[2]
                if dropout:
                    if masks is not None:
                        m = masks[site].to(device=x.device, dtype=x.dtype)
                        if maps:
                            m = m.expand(k, b, *m.shape[2:]).transpose(1, 2)
                    else:
                        # channel dropout: one multiplier per map, member and example
                        shape = (*x.shape[:3], *[1] * (x.dim() - 3)) if channel else x.shape
                        # Bernoulli(1 - p) as uniform < 1 - p: several times faster than
                        # bernoulli_ on CPU; scaled by 1 / (1 - p) as torch's dropout does
                        m = torch.rand(shape, dtype=x.dtype, device=x.device).lt_(1 - p).div_(1 - p)
                    x = x * m
                    if return_masks:
                        used.append(m.transpose(1, 2) if maps else m.expand(k, b, *m.shape[2:]))
                site += 1
            elif name == "conv":
                x = self._conv(x, op)
                fresh = True
                continue
            elif name == "maps":
                x = x.reshape(k, b, *op[1]).transpose(1, 2)
                maps = True
            elif name == "flatten":
                if maps:
                    x = x.transpose(1, 2)
                    maps = False
                x = x.reshape(k, b, -1)
            fresh = False
        return (x, used) if return_masks else x

    def _conv(self, x: torch.Tensor, op) -> torch.Tensor:
        """A convolution of every member as one batched matmul (im2col).

        x (k, C_in, B, *spatial), channel-major -> (k, C_out, B, *spatial_out). The
        stacked weight (k, C_out, taps * C_in) multiplies the columns (:class:`_Im2col`)
        (k, taps * C_in, B * prod(spatial_out)): the long dimension B * positions is the
        matmul's last, which measured ~1.5x faster than putting it first.
        """
        _, wj, bj, kernel, stride, padding = op
        k, _, b = x.shape[:3]
        size = _Im2col.output_size(x, kernel, stride, padding)
        cols = _Im2col.apply(x, kernel, stride, padding)
        weight = self.params[wj]
        out = (torch.bmm(weight, cols) if bj is None
               else torch.baddbmm(self.params[bj].unsqueeze(2), weight, cols))
        return out.reshape(k, weight.shape[1], b, *size)

    def sample_masks(self, batch_size: int) -> list[torch.Tensor]:
        """Fresh dropout masks for a batch, in the format :meth:`forward` takes.

        One tensor per dropout layer, shape (k, batch_size, *activation shape) for
        element dropout and (k, batch_size, C, 1[, 1]) for channel dropout, holding
        0 or 1 / (1 - p) (torch's inverted dropout).
        """
        batch_size = positive_int("batch_size", batch_size)
        shapes = []
        hooks = []
        tmpl = self._template
        for m in tmpl.modules():
            op = _dropout_op(m)
            if op is not None and op[1] > 0:
                hooks.append(m.register_forward_hook(
                    lambda mod, inp, out, op=op: shapes.append((op, tuple(inp[0].shape[1:])))))
        try:
            self._forward_one_example(tmpl)
        finally:
            for h in hooks:
                h.remove()
        device = self.params[0].device
        masks = []
        for (_, p, channel), shape in shapes:
            if channel:
                shape = (shape[0], *([1] * (len(shape) - 1)))
            m = torch.rand(self.k, batch_size, *shape, device=device, dtype=self.params[0].dtype)
            m = m.lt_(1 - p).div_(1 - p)
            masks.append(m)
        return masks

    # ------------------------------------------------------------------ training
    def _loss(self, out: torch.Tensor, y: torch.Tensor, classify: bool) -> torch.Tensor:
        """Sum over members of each member's mean minibatch loss. out (k, B, C|1), y (k, B)."""
        if classify:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)) * self.k
        return F.mse_loss(out.reshape(y.shape), y) * self.k

    def fit(self, split: Split, epochs: int = 100, lr: float = 1e-2, batch_size: int = 100,
            bootstrap: bool | torch.Tensor = False, seed: int = 0, progress: bool = True,
            eval_every: int = 1, weight_decay: float = 0.0,
            device: torch.device | str | None = None) -> pd.DataFrame:
        """Train every member with Adam on ``split``; return the history.

        ``bootstrap=True`` gives each member its own bootstrap sample of the training
        set (:func:`bagdrop.bagging.bootstrap_indices`); ``False`` trains every member
        on all of it; a (k, M) int tensor gives each member the training indices in
        its row. ``seed`` fixes the bootstrap samples, each member's minibatch order
        (a fresh permutation per member and epoch) and the dropout masks.
        Classification minimises cross-entropy, regression (float targets, one
        output) squared error, both with batch size ``batch_size`` per member.

        Returns a DataFrame with one row per evaluation (every ``eval_every`` epochs
        and after the last): ``epoch``, ``step``, ``loss`` (mean member minibatch loss
        since the last row) and, on the test set in weight-scaling mode,
        ``member_test_error``, ``member_test_nll`` (means over members),
        ``ensemble_test_error``, ``ensemble_test_nll`` (arithmetic mean of the
        members' probabilities) for classification, or ``member_test_mse`` and
        ``ensemble_test_mse`` for regression. The ensemble is left in eval mode.
        """
        if not isinstance(split, Split):
            raise TypeError(f"split must be a bagdrop.data.Split, got {type(split).__name__}")
        epochs = positive_int("epochs", epochs)
        lr = positive_float("lr", lr)
        batch_size = positive_int("batch_size", batch_size)
        eval_every = positive_int("eval_every", eval_every)
        seed = non_negative_int("seed", seed)
        weight_decay = non_negative_float("weight_decay", weight_decay)
        if device is not None:
            self.to(torch_device("device", device))
        device = self.params[0].device
        split = split.to(device)
        classify = split.is_classification
        n = len(split.x_train)
        gen = torch.Generator().manual_seed(seed)
        if isinstance(bootstrap, bool):
            index = (bagging.bootstrap_indices(n, self.k, gen) if bootstrap
                     else torch.arange(n).expand(self.k, n).contiguous())
        elif isinstance(bootstrap, torch.Tensor):
            index = bagging._check_index(bootstrap.cpu(), n)
            if index.shape[0] != self.k or index.shape[1] == 0:
                raise ValueError(f"bootstrap must be a bool or a (k={self.k}, M) index tensor, "
                                 f"got shape {tuple(index.shape)}")
        else:
            raise TypeError(f"bootstrap must be a bool or a (k, M) index tensor, got {type(bootstrap).__name__}")
        if not classify:
            out_dim = self._out_dim()
            if out_dim != 1:
                raise ValueError(f"regression needs networks with one output, got out_features={out_dim}")
        elif self._out_dim() < split.n_classes:
            raise ValueError(f"the networks have {self._out_dim()} outputs but split has {split.n_classes} classes")
        self._check_x(split.x_train[:1], "split.x_train")
        self.bootstrap_index = index
        m = index.shape[1]
        x, y = split.x_train, split.y_train
        optimizer = self.optimizer(lr=lr, weight_decay=weight_decay)
        torch.manual_seed(seed)  # dropout masks
        steps_per_epoch = math.ceil(m / batch_size)
        rows, step = [], 0
        running = torch.zeros((), device=device)
        n_running = 0
        bar = progress_bar(total=epochs * steps_per_epoch, desc="steps", enabled=progress)
        try:
            for epoch in range(1, epochs + 1):
                self.train()
                perm = torch.stack([torch.randperm(m, generator=gen) for _ in range(self.k)])
                order = index.gather(1, perm).to(device)  # (k, M): member i's examples, in its order
                for s in range(0, m, batch_size):
                    idx = order[:, s:s + batch_size]  # (k, B): one gather for every member
                    out = self(x[idx], dropout=True)
                    loss = self._loss(out, y[idx], classify)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    running += loss.detach()
                    n_running += 1
                    step += 1
                    bar.update(1)
                if epoch % eval_every == 0 or epoch == epochs:
                    row = {"epoch": epoch, "step": step, "loss": running.item() / (n_running * self.k)}
                    row.update(self.evaluate(split.x_test, split.y_test))
                    rows.append(row)
                    running.zero_()
                    n_running = 0
        finally:
            bar.close()
        self.eval()
        return pd.DataFrame(rows)

    def optimizer(self, lr: float = 1e-2, weight_decay: float = 0.0) -> torch.optim.Adam:
        """The Adam that :meth:`fit` uses on the stacked parameters.

        Adam is elementwise, so one Adam over the stacks equals ``k`` Adams over the
        members. The fused implementation makes one pass over each stacked tensor
        instead of a dozen (same arithmetic, to float rounding).
        """
        fused = all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        return torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay, fused=fused or None)

    def _out_dim(self) -> int:
        last = [op for op in self._ops if op[0] == "linear"][-1]
        return self.params[last[1]].shape[2]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Member and ensemble test metrics in weight-scaling mode (see :meth:`fit`)."""
        if torch.is_floating_point(y):
            pred = self.member_predict(x)  # (k, N)
            y = y.to(pred.device)
            return {"member_test_mse": (pred - y).pow(2).mean().item(),
                    "ensemble_test_mse": (pred.mean(0) - y).pow(2).mean().item()}
        logp = self._member_log_proba(x, "weight_scaling", None)  # (k, N, C)
        y = y.to(logp.device)
        probs = logp.exp()
        ens = probs.mean(0)
        member_nll = -logp.gather(2, y.expand(self.k, -1).unsqueeze(2)).mean()
        return {
            "member_test_error": (logp.argmax(2) != y).float().mean().item(),
            "member_test_nll": member_nll.item(),
            "ensemble_test_error": (ens.argmax(1) != y).float().mean().item(),
            "ensemble_test_nll": -ens.gather(1, y.unsqueeze(1)).clamp_min(1e-12).log().mean().item(),
        }

    # ------------------------------------------------------------------ prediction
    def _check_x(self, x, name: str = "x") -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
        if not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a float tensor, got dtype {x.dtype}")
        try:
            self._input_check(x)
        except ValueError as e:
            raise ValueError(str(e).replace("x must", f"{name} must", 1)) from None
        return x

    @torch.no_grad()
    def _member_outputs(self, x: torch.Tensor, mode: str, samples: int | None, seed: int | None):
        """Raw outputs (k, N, out) or, in MC mode, (k, T, N, out)."""
        one_of("mode", mode, MODES)
        self._check_x(x)
        if mode == "mc":
            if samples is None:
                raise ValueError("samples must be given (a positive int) when mode='mc'")
            samples = positive_int("samples", samples)
            if self.n_dropout_sites() == 0:
                raise ValueError("mode='mc' needs networks with dropout (p > 0)")
        elif samples is not None:
            raise ValueError("samples is only used with mode='mc'")
        if seed is not None:
            seed = non_negative_int("seed", seed)
        t = samples if mode == "mc" else 1
        device = self.params[0].device
        x = x.to(device)
        n = len(x)
        chunk = max(1, _EVAL_ELEMENTS // (self.k * t * self._width))
        outs = []
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            for i in range(0, n, chunk):
                xc = x[i:i + chunk]
                xc = xc.unsqueeze(0).expand(t, *xc.shape).reshape(-1, *xc.shape[1:])
                out = self(xc.unsqueeze(0).expand(self.k, *xc.shape), dropout=(mode == "mc"))
                outs.append(out.reshape(self.k, t, len(x[i:i + chunk]), -1))
        out = torch.cat(outs, 2)
        return out if mode == "mc" else out[:, 0]

    def _member_log_proba(self, x, mode, samples, seed=None):
        return self._member_outputs(x, mode, samples, seed).log_softmax(-1)

    def member_proba(self, x: torch.Tensor, mode: str = "weight_scaling", samples: int | None = None,
                     seed: int | None = None) -> torch.Tensor:
        """Each member's class probabilities: x (N, *input_shape) -> (k, N, C).

        ``mode="weight_scaling"`` switches dropout off (torch's inverted dropout: the
        trained weights already carry the scaling); ``mode="mc"`` keeps it on and
        returns ``samples`` Monte Carlo passes per member, shape (k, T, N, C).
        ``seed`` makes the MC masks reproducible without touching torch's global
        random state.
        """
        return self._member_outputs(x, mode, samples, seed).softmax(-1)

    def predict_proba(self, x: torch.Tensor, combine: str = "mean", mode: str = "weight_scaling",
                      samples: int | None = None, seed: int | None = None) -> torch.Tensor:
        """The ensemble's class probabilities: x (N, *input_shape) -> (N, C).

        ``combine="mean"``: arithmetic mean of the member probabilities (and of the
        MC samples); ``combine="geometric"``: their normalised geometric mean,
        softmax of the mean log-probability. ``mode``/``samples``/``seed`` as in
        :meth:`member_proba`.
        """
        one_of("combine", combine, COMBINES)
        logp = self._member_log_proba(x, mode, samples, seed)
        logp = logp.reshape(-1, *logp.shape[-2:])  # (k*T, N, C)
        if combine == "mean":
            return logp.exp().mean(0)
        return logp.mean(0).softmax(-1)

    def member_predict(self, x: torch.Tensor, mode: str = "weight_scaling", samples: int | None = None,
                       seed: int | None = None) -> torch.Tensor:
        """Regression predictions of each member: x (N, *input_shape) -> (k, N), or (k, T, N) in MC mode."""
        if self._out_dim() != 1:
            raise ValueError(f"member_predict is for regression networks with one output, "
                             f"these have {self._out_dim()}")
        return self._member_outputs(x, mode, samples, seed).squeeze(-1)

    def predict(self, x: torch.Tensor, mode: str = "weight_scaling", samples: int | None = None,
                seed: int | None = None) -> torch.Tensor:
        """The ensemble's regression prediction, the mean over members (and samples): (N,)."""
        out = self.member_predict(x, mode, samples, seed)
        return out.reshape(-1, out.shape[-1]).mean(0)

    # ------------------------------------------------------------------ members
    def member(self, i: int) -> nn.Module:
        """Member ``i`` as an ordinary ``nn.Module``: a copy, in eval mode, on the ensemble's device and dtype."""
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"i must be an int, got {type(i).__name__}")
        if not -self.k <= i < self.k:
            raise ValueError(f"i must be a member index in [0, {self.k}), got {i}")
        m = copy.deepcopy(self._template).to(device=self.params[0].device, dtype=self.params[0].dtype)
        m.load_state_dict({n: self.member_parameter(j, i).detach().clone() for n, j in self._index.items()})
        return m.requires_grad_(True)

    def extra_repr(self) -> str:
        return f"k={self.k}, seed={self.seed}, member={type(self._template).__name__}"
