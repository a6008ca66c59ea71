"""Benchmark: the batched sweep against a Python loop of single `kssl.solve` calls, in the same run.

A 5 x 5 grid of RBF bandwidth x lam on digits views (default: 500 unlabelled samples x 2 views = 1000 views, the
default graph of view cliques + 10-NN, dim 20, rcond 1e-5). The loop calls `kssl.solve` once per point and
objective (each call builds the Gram and eigendecomposes it). The batched sweep, as `kssl sweep` does it, builds one
Gram and ONE eigendecomposition per bandwidth (`experiment.decompose`) and solves all five lam in one `jax.vmap`
call per objective (`sweep.solve_batch`). Both are warmed up (compiled) first; the times are the best of
`--repeat` runs. It also checks that both give the same losses.

  python experiments/bench_sweep.py                           # contrastive
  python experiments/bench_sweep.py --objectives contrastive vicreg vicreg_hard barlow
  python experiments/bench_sweep.py --before-src DIR    # then the same with the library in DIR (before / after)

`--before-src DIR` (an export of an earlier commit: `git archive COMMIT kernel_ssl_jax | tar -x -C DIR`) runs the
same measurement again right after, in a subprocess with that library, and prints both and the after / before ratios.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import jax
import numpy as np

import kernel_ssl_jax as kssl
from kernel_ssl_jax import kernels, objectives
from kernel_ssl_jax.lab import config, experiment, sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-train", type=int, default=500)
    ap.add_argument("--objectives", nargs="+", default=["contrastive"])
    ap.add_argument("--dim", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--before-src", metavar="DIR", help="also run with the library in DIR and compare")
    args = ap.parse_args()

    cfg = config.load_config(overrides=[f"data.max_train={args.max_train}", "eval.labels_per_class=[1]"])
    rcond = cfg["ssl"]["rcond"]
    ds = experiment.load_data(cfg)
    views, groups = experiment.build_views(cfg, ds)
    A = experiment.build_graph(cfg, views, groups)
    pairs = kssl.graphs.pairs_from_groups(groups)
    median = kernels.median_bandwidth(np.asarray(views))
    bandwidths = [median * f for f in (0.5, 0.75, 1.0, 1.5, 2.0)]
    lams = [0.0, 0.01, 0.1, 1.0, 10.0]
    dim = args.dim

    def loop():
        losses = {}
        for bw in bandwidths:
            for lam in lams:
                for o in args.objectives:
                    sol = kssl.solve(o, views, None if o == "barlow" else A, kernel=kernels.rbf(bw), dim=dim, lam=lam,
                                     pairs=pairs, rcond=rcond)
                    losses[(bw, lam, o)] = float(sol.loss)
        return losses

    def batched():
        losses = {}
        for bw in bandwidths:
            K = kernels.gram(kernels.rbf(bw), views)
            eig, _ = experiment.decompose(K, rcond)
            for o in args.objectives:
                coefs, _, _ = sweep.solve_batch(o, K, eig, A, pairs, lams, [1.0] * len(lams), dim)
                kw = {"pairs": pairs} if o == "barlow" else {"A": A, "beta": 1.0}
                for i, lam in enumerate(lams):
                    losses[(bw, lam, o)] = float(objectives.loss_from_coef(o, coefs[i], K, lam=lam, **kw))
        return losses

    def best(fn):
        times, out = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t)
        return min(times), out

    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(unset)')} "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '(unset)')} cpus={os.cpu_count()} jax {jax.__version__} "
          f"device {jax.devices()[0].device_kind}")
    print(f"digits: {views.shape[0]} views, grid 5 bandwidths x 5 lam, objectives {', '.join(args.objectives)}, "
          f"dim {dim}, rcond {rcond:g}")
    t = time.perf_counter()
    loop()
    batched()
    print(f"warm-up (compilation) {time.perf_counter() - t:.1f} s")
    t_loop, l_loop = best(loop)
    t_batch, l_batch = best(batched)
    rel = max(abs(l_loop[k] - l_batch[k]) / max(abs(l_loop[k]), 1e-300) for k in l_loop)
    n = len(l_loop)
    print(f"loop of single kssl.solve calls: {t_loop:.2f} s ({t_loop / n * 1e3:.0f} ms per point and objective)")
    print(f"batched sweep (1 eigh per bandwidth, vmap over lam): {t_batch:.2f} s "
          f"({t_batch / n * 1e3:.0f} ms per point and objective)")
    print(f"speed-up: {t_loop / t_batch:.1f}x; largest relative loss difference {rel:.2e}")
    print(f"RESULT loop={t_loop:.4f} batched={t_batch:.4f}", flush=True)
    if args.before_src:
        argv = [a for i, a in enumerate(sys.argv[1:]) if a != "--before-src" and sys.argv[i] != "--before-src"]
        env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before_src))
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *argv], env=env, capture_output=True,
                             text=True, check=True).stdout
        print("before (" + args.before_src + "):\n  " + "\n  ".join(out.strip().splitlines()[2:]))
        b = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split()[1:])
        print(f"after / before: loop {t_loop / float(b['loop']):.2f}, batched {t_batch / float(b['batched']):.2f}")


if __name__ == "__main__":
    main()
