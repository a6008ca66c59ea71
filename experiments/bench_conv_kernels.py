"""Gram throughput of the convolutional kernels (pairs of images per second) on 8x8 digits.

`cnngp` / `cntk` with the `flatten` readout carry the P = 64 same-pixel terms per pair of images; `gap` all
P^2 = 4096 pixel pairs, so expect it to be ~64 times slower per pair. Each Gram is computed once to compile, then
timed (best of `--repeats`); the symmetric Gram `gram(k, X)` of N digits has N^2 pairs.

    python experiments/bench_conv_kernels.py                       # N = 2000 for every kernel (GPU)
    python experiments/bench_conv_kernels.py --n 2000 --n-gap 200  # the 2-core CPU: gap at N = 2000 takes an hour
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np
from sklearn.datasets import load_digits

import kernel_ssl_jax as kssl


def bench(name: str, readout: str, n: int, depth: int, repeats: int) -> dict:
    X = np.resize(load_digits().data / 16.0, (n, 64))
    k = kssl.kernels.by_name(name, image_shape=(8, 8, 1), depth=depth, readout=readout)
    t = time.perf_counter()
    kssl.gram(k, X).block_until_ready()
    first = time.perf_counter() - t
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        kssl.gram(k, X).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return {"kernel": name, "readout": readout, "n": n, "depth": depth, "seconds": best,
            "first_call_seconds": first, "pairs_per_second": n * n / best}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="digits for the flatten readout")
    p.add_argument("--n-gap", type=int, default=None, help="digits for the gap readout (default: --n)")
    p.add_argument("--readouts", nargs="+", default=["flatten", "gap"], choices=["flatten", "gap"])
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    print("jax", jax.__version__, "backend", jax.default_backend(), "devices", jax.devices(),
          "OPENBLAS_NUM_THREADS", os.environ.get("OPENBLAS_NUM_THREADS"), flush=True)
    rows = []
    for readout in args.readouts:
        n = args.n if readout == "flatten" or args.n_gap is None else args.n_gap
        for name in ("cnngp", "cntk"):
            r = bench(name, readout, n, args.depth, args.repeats)
            rows.append(r)
            print(f"{name:6s} {readout:8s} N = {n:5d} depth {args.depth}: {r['seconds']:8.2f} s  "
                  f"{r['pairs_per_second']:12,.0f} pairs/s  (first call {r['first_call_seconds']:.2f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
