"""Benchmark: `kssl.solve` against scikit-learn KernelPCA on the same Gram (issue: core library, "Speed").

For N views of digits (N/4 sources x 4 noisy views), RBF kernel at the median distance, dim 32, it times
  - `kssl.solve` end to end (Gram, checks, eigendecomposition, closed form, loss), after compilation,
  - the closed form alone on a precomputed Gram (`spectral.solve_gram`), auto (structured) and dense methods,
  - `KernelPCA(n_components=32, kernel="precomputed", eigen_solver="dense").fit` on the same Gram,
and prints the ratios measured in the same run. Set OPENBLAS_NUM_THREADS before running to pin the threads.

  python experiments/bench_solve.py [--sizes 500 1000 2000 4000] [--repeats 3]
"""

import argparse
import os
import platform
import time

import jax
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import KernelPCA

import kernel_ssl_jax as kssl
from kernel_ssl_jax import spectral


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_size(N, X0, rng, args):
    """One row of the table: times for N views."""
    n = N // 4
    X = np.repeat(X0[:n], 4, axis=0) + 0.05 * rng.normal(size=(N, X0.shape[1]))
    groups = np.repeat(np.arange(n), 4)
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))
    A = kssl.graphs.from_groups(groups)
    K = kssl.gram(k, X)
    rcond = N * np.finfo(np.float64).eps

    def run_solve():
        return kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1).coef

    def run_core(method):
        return spectral.solve_gram("contrastive", K, A, dim=args.dim, lam=0.1, rcond=rcond, method=method)[0]

    run_solve(), run_core("auto"), run_core("dense")  # compile
    t_solve = best_time(run_solve, args.repeats)
    t_core = best_time(lambda: run_core("auto"), args.repeats)
    t_dense = best_time(lambda: run_core("dense"), args.repeats)
    Kn = np.asarray(K)
    t_kpca = best_time(lambda: KernelPCA(args.dim, kernel="precomputed", eigen_solver="dense").fit(Kn),
                       args.repeats)
    ls = float(kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1).loss)
    ld = float(kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1, method="dense").loss)
    print(f"{N:>6} {t_solve:>8.3f} {t_core:>8.3f} {t_dense:>8.3f} {t_kpca:>8.3f} {t_solve / t_kpca:>11.2f} "
          f"{t_core / t_kpca:>10.2f} {t_dense / t_kpca:>11.2f} {abs(ls - ld) / abs(ld):>14.2e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=32)
    args = parser.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} cores={os.cpu_count()} "
          f"backend={jax.default_backend()} jax={jax.__version__} python={platform.python_version()}")
    X0 = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    header = (f"{'N':>6} {'solve':>8} {'core':>8} {'dense':>8} {'kpca':>8} {'solve/kpca':>11} {'core/kpca':>10} "
              f"{'dense/kpca':>11} {'loss rel diff':>14}")
    print(header)
    for N in args.sizes:
        bench_size(N, X0, rng, args)

if __name__ == "__main__":
    main()
