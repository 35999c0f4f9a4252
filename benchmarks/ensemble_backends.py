"""Which way of batching an ensemble is fastest here? One training step, three ways.

For the MNIST-1D MLP (K=64) and CNN (K=16), one Adam step of all K members on their
own minibatches of 100 (no dropout), timed as the best of ``--reps`` runs:

- ``torch.func``: ``stack_module_state`` + ``functional_call`` under
  ``vmap(randomness="different")`` (torch turns a vmapped convolution into a grouped one);
- ``grouped conv``: stacked weights, linear layers as ``baddbmm`` and convolutions as
  one ``conv1d(groups=K)`` (the first version of ``bagdrop.ensemble``);
- ``bagdrop``: :class:`bagdrop.ensemble.Ensemble` as it is now, linear layers as
  ``baddbmm`` and convolutions as im2col (strided slices of channels-last maps) + ``baddbmm``.

The three compute the same function; the script checks their losses agree.

    python benchmarks/ensemble_backends.py [--threads 1] [--reps 20]
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

import bagdrop as bd

CASES = {"mlp": (lambda: bd.models.MLP(), 64), "cnn": (lambda: bd.models.CNN1d(), 16)}
B = 100


def best(fn, reps):
    fn()
    t_best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best


def torch_func_step(factory, k, seed=0):
    members = []
    for i in range(k):
        torch.manual_seed(seed + i)
        members.append(factory())
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    opt = torch.optim.Adam(params.values(), lr=1e-2, fused=True)

    def one(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched = vmap(one, randomness="different")

    def loss(x, y):
        out = batched(params, buffers, x)
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)) * k

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss(x, y).backward()
        opt.step()
    return step, loss


class GroupedConv(bd.ensemble.Ensemble):
    """Stacked weights with convolutions as one grouped convolution (groups=k)."""

    def _conv(self, x, op):
        _, wj, bj, kernel, stride, padding = op
        k, b = x.shape[:2]
        nd = len(kernel)
        conv = F.conv1d if nd == 1 else F.conv2d
        xg = x.movedim(-1, 2).transpose(0, 1)  # (B, k, C, *spatial)
        xg = xg.reshape(b, -1, *xg.shape[3:])
        w = torch.stack([self.member_parameter(wj, i) for i in range(k)])  # (k, out, in, *kernel)
        out = conv(xg, w.reshape(-1, *w.shape[2:]), self.params[bj].reshape(-1), stride, padding, 1, k)
        out = out.reshape(b, k, -1, *out.shape[2:]).transpose(0, 1)  # (k, B, out, *spatial)
        return out.movedim(2, -1)


def ensemble_step(cls, factory, k, seed=0):
    ens = cls(factory, k, seed=seed).train()
    opt = ens.optimizer(lr=1e-2)

    def loss(x, y):
        return ens._loss(ens(x), y, True)

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        loss(x, y).backward()
        opt.step()
    return step, loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=bd.DEFAULT_THREADS)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = bd.data.mnist1d()
    print(f"{args.threads} thread(s); load average {os.getloadavg()[0]:.2f}; ms per training step "
          f"(all K members, batch {B} each), best of {args.reps}")
    for name, (factory, k) in CASES.items():
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, len(split.x_train), (k, B), generator=g)
        x, y = split.x_train[idx], split.y_train[idx]
        backends = {
            "torch.func vmap": torch_func_step(factory, k),
            "grouped conv": ensemble_step(GroupedConv, factory, k),
            "bagdrop (im2col)": ensemble_step(bd.ensemble.Ensemble, factory, k),
        }
        if name == "mlp":
            del backends["grouped conv"]  # no convolution: the same code as bagdrop
        losses = {n: loss(x, y).item() for n, (_, loss) in backends.items()}
        ref = next(iter(losses.values()))
        assert all(abs(v - ref) < 1e-4 * k for v in losses.values()), losses
        times = {n: best(lambda: step(x, y), args.reps) for n, (step, _) in backends.items()}
        fastest = min(times.values())
        for n, t in times.items():
            print(f"{name} K={k:<3} {n:<18} {t * 1e3:8.2f} ms  {t / fastest:5.2f}x the fastest")


if __name__ == "__main__":
    main()
