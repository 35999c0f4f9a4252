"""Which way of batching an ensemble is fastest here? One training step, three ways.

For the MNIST-1D MLP (K=64) and CNN (K=16), one Adam step of all K members on their
own minibatches of 100 (no dropout), timed as the best of ``--reps`` rounds in which the
ways alternate:

- ``torch.func``: ``stack_module_state`` + ``functional_call`` under
  ``vmap(randomness="different")`` (torch turns a vmapped convolution into a grouped one);
- ``grouped conv``: stacked weights, linear layers as ``baddbmm`` and convolutions as
  one ``conv1d(groups=K)`` (the first version of ``bagdrop.ensemble``);
- ``bagdrop``: :class:`bagdrop.ensemble.Ensemble` as it is now, linear layers as
  ``baddbmm`` and convolutions as im2col (strided slices of the maps, kept channel-major
  as (K, C, B, length)) + ``baddbmm``.

The three compute the same function; the script checks their losses agree.

    python benchmarks/ensemble_backends.py [--threads 1] [--reps 20] [--clock wall]
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


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def best_times(fns: dict, reps: int, clock) -> dict:
    """Best time of each function; they alternate within each of ``reps`` rounds."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(reps):
        for name, fn in fns.items():
            t = clock()
            fn()
            best[name] = min(best[name], clock() - t)
    return best


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
        k = x.shape[0]
        nd = len(kernel)
        conv = F.conv1d if nd == 1 else F.conv2d
        # bagdrop's maps are (k, C, B, *spatial); a grouped convolution wants (B, k*C, *spatial)
        xg = x.movedim(2, 0).reshape(x.shape[2], -1, *x.shape[3:])
        w = torch.stack([self.member_parameter(wj, i) for i in range(k)])  # (k, out, in, *kernel)
        out = conv(xg, w.reshape(-1, *w.shape[2:]), self.params[bj].reshape(-1), stride, padding, 1, k)
        return out.reshape(out.shape[0], k, -1, *out.shape[2:]).movedim(0, 2)  # (k, out, B, *spatial)


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
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall clock or this process's CPU time (use with --threads 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    split = bd.data.mnist1d()
    print(f"{args.threads} thread(s), {args.clock} clock; load average {os.getloadavg()[0]:.2f}; ms per "
          f"training step (all K members, batch {B} each), best of {args.reps} alternating rounds")
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
        times = best_times({n: (lambda step=step: step(x, y)) for n, (step, _) in backends.items()},
                           args.reps, CLOCKS[args.clock])
        fastest = min(times.values())
        for n, t in times.items():
            print(f"{name} K={k:<3} {n:<18} {t * 1e3:8.2f} ms  {t / fastest:5.2f}x the fastest")


if __name__ == "__main__":
    main()
