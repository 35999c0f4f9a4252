"""How fast is a batched ensemble, compared with a Python loop and with the machine's limit?

In one run, on this machine: for K in 4, 16, 64 members and for the MNIST-1D MLP
(40-100-100-10) and CNN (ConvBase, 5,210 parameters), one epoch of bootstrap training
(4000 examples, batch 100 per member, Adam) followed by the members' test
probabilities, timed

(a) as a Python loop over K separate ``nn.Module`` members, each stepped as
    ``bagdrop.train.fit`` does (``torch.optim.Adam``, default implementation), and the
    same loop with ``Adam(fused=True)``, the implementation the batched ensemble uses;
(b) batched, as :class:`bagdrop.ensemble.Ensemble` (``fit(epochs=1)``).

It also measures the float32 matmul throughput with a large ``torch.matmul`` and
reports the batched networks' achieved GFLOP/s (forward + backward counted as 3x the
forward FLOPs of the training examples, plus 1x for the test predictions) as a
fraction of it. Times are the best of ``--reps`` rounds in which loop and batched
runs alternate, so a change in the machine's load hits both alike. ``--clock cpu``
times this process's CPU time instead of the wall clock: on a machine shared with
other processes it measures the work, not the waiting (with ``--threads 1`` only).

    python benchmarks/ensemble_speed.py [--threads 1] [--reps 2] [--clock wall] [--json]

With ``--json`` the last line is one JSON object: speedup_mlp_k64, speedup_cnn_k16,
peak_fraction_mlp_k64, matmul_gflops, threads (plus the speedups over the fused-Adam
loop, the clock, the load average and every measured time).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
import torch.nn.functional as F
from torch import nn

import bagdrop as bd

ARCHS = {
    "mlp": lambda: bd.models.MLP(),
    "cnn": lambda: bd.models.CNN1d(),
}
BATCH = 100
LR = 1e-2


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-add FLOPs (2 per MAC) of one forward pass of ``model`` on one example ``x``."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            per_output = mod.in_channels // mod.groups * mod.weight[0, 0].numel()
            total += 2 * per_output * out[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


def matmul_gflops(n: int = 2048, reps: int = 5, clock=time.perf_counter) -> float:
    """Best float32 throughput of an n x n by n x n torch.matmul, in GFLOP/s."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = clock()
        a @ b
        best = min(best, clock() - t)
    return 2 * n**3 / best / 1e9


def loop_epoch(factory, split, index: torch.Tensor, fused: bool = False, seed: int = 0) -> torch.Tensor:
    """One epoch for each of K separate modules, one after the other; returns (K, N_test, C).

    The step is bd.train.fit's: torch.optim.Adam with its default (for-loop) implementation,
    or with ``fused=True``, the implementation the batched ensemble uses.
    """
    x, y = split.x_train, split.y_train
    g = torch.Generator().manual_seed(seed)
    probs = []
    for i, rows in enumerate(index):
        torch.manual_seed(seed + i)
        model = factory().train()
        opt = torch.optim.Adam(model.parameters(), lr=LR, fused=fused or None)
        order = rows[torch.randperm(len(rows), generator=g)]
        for s in range(0, len(order), BATCH):
            idx = order[s:s + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        probs.append(bd.train.predict_proba(model, split.x_test))
    return torch.stack(probs)


def batched_epoch(factory, split, k: int, seed: int = 0):
    """One epoch of a k-member batched Ensemble. Its fit ends with one evaluation of every
    member on the test set, the counterpart of the loop's test probabilities."""
    ens = bd.ensemble.Ensemble(factory, k, seed=seed)
    return ens.fit(split, epochs=1, lr=LR, batch_size=BATCH, bootstrap=True, seed=seed, progress=False)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def best_times(fns, reps: int, clock) -> list[float]:
    """Best time of each function over ``reps`` rounds; the functions alternate within a
    round, so a change in the machine's load hits them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for j, fn in enumerate(fns):
            t = clock()
            fn()
            best[j] = min(best[j], clock() - t)
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=bd.DEFAULT_THREADS, help="torch intra-op threads")
    parser.add_argument("--reps", type=int, default=2, help="runs per timing; the best is kept")
    parser.add_argument("--ks", type=str, default="4,16,64", help="ensemble sizes, comma separated")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall clock, or this process's CPU time (robust to other processes "
                             "sharing the cores; meaningful with --threads 1 only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.reps < 1:
        parser.error("--threads and --reps must be positive")
    clock = CLOCKS[args.clock]
    ks = [int(k) for k in args.ks.split(",")]
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    split = bd.data.mnist1d()
    n_train, n_test = len(split.x_train), len(split.x_test)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    # warm up: first optimizer (imports torch._dynamo), first convolutions, thread pool
    for arch, factory in ARCHS.items():
        batched_epoch(factory, split.subset(400), 2)
        loop_epoch(factory, split.subset(400), torch.arange(400).expand(1, 400))
    peak = matmul_gflops(clock=clock)

    rows = []
    for arch, factory in ARCHS.items():
        fwd = forward_flops(factory(), split.x_train[:1])
        for k in ks:
            index = bd.bagging.bootstrap_indices(n_train, k, torch.Generator().manual_seed(0))
            t_loop, t_fused, t_batched = best_times([
                lambda: loop_epoch(factory, split, index),
                lambda: loop_epoch(factory, split, index, fused=True),
                lambda: batched_epoch(factory, split, k)], args.reps, clock)
            flops = k * fwd * (3 * n_train + n_test)
            rows.append({"arch": arch, "k": k, "loop_s": t_loop, "loop_fused_s": t_fused, "batched_s": t_batched,
                         "speedup": t_loop / t_batched, "speedup_fused_loop": t_fused / t_batched,
                         "batched_gflops": flops / t_batched / 1e9})
    peak = max(peak, matmul_gflops(clock=clock))  # the better of the measurements before and after
    for r in rows:
        r["peak_fraction"] = r["batched_gflops"] / peak
    elapsed = time.perf_counter() - start

    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.clock} clock, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}; load average {load:.2f} at start, "
          f"{os.getloadavg()[0]:.2f} at end")
    print(f"float32 matmul peak (2048^3): {peak:.1f} GFLOP/s")
    print(f"one epoch = {n_train} bootstrap examples per member, batch {BATCH}, Adam; "
          f"plus the members' test probabilities ({n_test} examples)")
    print()
    header = (f"{'net':<4} {'K':>3} {'loop s':>8} {'batched s':>10} {'speedup':>8} {'GFLOP/s':>8} {'of peak':>8}"
              f" {'fused-Adam loop s':>18} {'speedup':>8}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['arch']:<4} {r['k']:>3} {r['loop_s']:>8.3f} {r['batched_s']:>10.3f} {r['speedup']:>7.1f}x "
              f"{r['batched_gflops']:>8.1f} {r['peak_fraction']:>8.1%} {r['loop_fused_s']:>18.3f} "
              f"{r['speedup_fused_loop']:>7.1f}x")
    print("loop: K modules one after the other, each stepped as bd.train.fit does (default Adam);\n"
          "fused-Adam loop: the same with the fused Adam the batched ensemble uses.")
    print(f"\n(total {elapsed:.0f} s)")

    def pick(arch, k, key):
        return next((r[key] for r in rows if r["arch"] == arch and r["k"] == k), None)

    result = {
        "speedup_mlp_k64": pick("mlp", 64, "speedup"),
        "speedup_cnn_k16": pick("cnn", 16, "speedup"),
        "peak_fraction_mlp_k64": pick("mlp", 64, "peak_fraction"),
        "speedup_mlp_k64_fused_loop": pick("mlp", 64, "speedup_fused_loop"),
        "speedup_cnn_k16_fused_loop": pick("cnn", 16, "speedup_fused_loop"),
        "matmul_gflops": peak,
        "threads": args.threads,
        "clock": args.clock,
        "load_average": load,
        "seconds": elapsed,
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
