"""Benchmark: `kssl.solve` against scikit-learn KernelPCA on the same Gram (issue: core library, "Speed").

For N views of digits (N/4 sources x 4 noisy views), RBF kernel at the median distance, dim 32, lam 0.1, it times
  - `kssl.solve` end to end (Gram, checks, eigendecomposition, closed form, loss), after compilation,
  - the closed form alone on a precomputed Gram (`spectral.solve_gram`), auto (structured) and dense methods,
  - the dense path proper (one eigh of K, one partial eigh of the target) on the same Gram: contrastive and vicreg
    with a k-NN graph (not a view-clique graph: no structured shortcut, and no degenerate top eigenvalue),
  - `KernelPCA(n_components=32, kernel="precomputed", eigen_solver="dense").fit` on the same Gram,
and prints the ratios measured in the same run, then the float32 accuracy of the dense k-NN contrastive solve (loss
relative to float64). Set OPENBLAS_NUM_THREADS before running to pin the threads.

  python experiments/bench_solve.py [--sizes 500 1000 2000 4000] [--repeats 3] [--knn 10]
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

    def run_core(method, objective="contrastive", graph=A):
        return spectral.solve_gram(objective, K, graph, dim=args.dim, lam=0.1, rcond=rcond, method=method)[0]

    A_knn = kssl.graphs.knn(X, args.knn)
    cases = {
        "solve": run_solve,
        "core": lambda: run_core("auto"),
        "dense": lambda: run_core("dense"),
        "knn": lambda: run_core("dense", graph=A_knn),
        "vicreg": lambda: run_core("dense", objective="vicreg", graph=A_knn),
    }
    for fn in cases.values():  # compile
        fn()
    times = {name: best_time(fn, args.repeats) for name, fn in cases.items()}
    Kn = np.asarray(K)
    t_kpca = best_time(lambda: KernelPCA(args.dim, kernel="precomputed", eigen_solver="dense").fit(Kn),
                       args.repeats)
    ls = float(kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1).loss)
    ld = float(kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1, method="dense").loss)
    knn64, knn32 = (float(kssl.solve("contrastive", X, A_knn, kernel=k, dim=args.dim, lam=0.1, method="dense",
                                     dtype=dt).loss) for dt in (np.float64, np.float32))
    ratios = " ".join(f"{times[name] / t_kpca:>{len(name) + 5}.2f}" for name in cases)
    print(f"{N:>6} {' '.join(f'{t:>8.3f}' for t in times.values())} {t_kpca:>8.3f} {ratios} "
          f"{abs(ls - ld) / abs(ld):>14.2e} {abs(knn32 - knn64) / abs(knn64):>12.2e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--knn", type=int, default=10, help="neighbours of the k-NN graph of the dense case")
    args = parser.parse_args()
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} cores={os.cpu_count()} "
          f"load={' '.join(f'{v:.2f}' for v in os.getloadavg())} backend={jax.default_backend()} "
          f"jax={jax.__version__} python={platform.python_version()}")
    print("times in s (best of --repeats); solve: kssl.solve, clique graph (structured); core: solve_gram, auto; "
          "dense: solve_gram, dense method, clique graph; knn: solve_gram contrastive, k-NN graph (dense path); "
          "vicreg: solve_gram vicreg, k-NN graph (dense path); loss rel diff: structured vs dense; "
          "f32 knn: float32 vs float64 loss of the dense k-NN contrastive solve")
    X0 = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    names = ("solve", "core", "dense", "knn", "vicreg")
    ratio_names = " ".join(f"{n + '/kpca':>{len(n) + 5}}" for n in names)
    header = (f"{'N':>6} {' '.join(f'{n:>8}' for n in names)} {'kpca':>8} {ratio_names} {'loss rel diff':>14} "
              f"{'f32 knn':>12}")
    print(header)
    for N in args.sizes:
        bench_size(N, X0, rng, args)
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
