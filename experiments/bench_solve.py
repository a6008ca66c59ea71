"""Benchmark: `kssl.solve` against scikit-learn KernelPCA on the same Gram (issue: core library, "Speed").

For N views of digits (N/4 sources x 4 noisy views), RBF kernel at the median distance, dim 32, lam 0.1, it times
  - `kssl.solve` end to end (Gram, checks, eigendecomposition, closed form, loss), after compilation,
  - the closed form alone on a precomputed Gram (`spectral.solve_gram`), auto (structured),
  - the dense path with a k-NN graph (not a view-clique graph: no structured shortcut, and no degenerate top
    eigenvalue) on the same Gram, contrastive before and after issue 14: `knn-eigh` (one eigh of K, one partial eigh
    of the target) and `knn-chol` (`"dense-cholesky"`: Cholesky factor of K, one generalized subset eigenproblem,
    what `kssl.solve` runs now), and vicreg (still `"dense-eigh"`),
  - `KernelPCA(n_components=32, kernel="precomputed", eigen_solver="dense" / "arpack").fit` on the same Gram,
and prints the ratios measured in the same run (the cases interleaved), the loss difference of the two k-NN paths and
the float32 accuracy of `kssl.solve` on the k-NN problem (loss relative to float64). Set OPENBLAS_NUM_THREADS before
running to pin the threads.

  python experiments/bench_solve.py [--sizes 500 1000 2000 4000] [--repeats 3] [--knn 10]
"""

import argparse
import functools
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
    A_knn = kssl.graphs.knn(X, args.knn)
    rows = spectral._rows(A_knn)

    def run_solve():
        return kssl.solve("contrastive", X, A, kernel=k, dim=args.dim, lam=0.1).coef

    def run_core(method, objective="contrastive", graph=A, rc=rcond):
        return spectral.solve_gram(objective, K, graph, dim=args.dim, lam=0.1, rcond=rc, method=method)[0]

    cases = {
        "solve": run_solve,
        "core": lambda: run_core("auto"),
        # contrastive, k-NN graph, lam 0.1: before (eigendecomposition of K, every positive eigenvalue kept, as the
        # default cut-off does) and after (Cholesky factor + generalized subset eigenproblem, what `solve` runs now)
        "knn-eigh": lambda: run_core("dense", graph=A_knn, rc=0.0),
        "knn-chol": lambda: spectral._dense_cholesky(K, rows, 0.1, args.dim)[0],
        "vicreg": lambda: run_core("dense", objective="vicreg", graph=A_knn),
    }
    for fn in cases.values():  # compile
        fn()
    Kn = np.asarray(K)
    kpca = {"kpca": lambda: KernelPCA(args.dim, kernel="precomputed", eigen_solver="dense").fit(Kn),
            "arpack": lambda: KernelPCA(args.dim, kernel="precomputed", eigen_solver="arpack").fit(Kn)}
    # interleaved, so that a change of load on shared cores affects both sides of a ratio alike
    times = {name: np.inf for name in list(cases) + list(kpca)}
    for _ in range(args.repeats):
        for name, fn in list(cases.items()) + list(kpca.items()):
            times[name] = min(times[name], best_time(fn, 1))
    t_kpca = times["kpca"]
    loss = functools.partial(kssl.objectives.loss_from_coef, "contrastive", K=K, lam=0.1, A=A_knn)
    old, new = float(loss(cases["knn-eigh"]())), float(loss(cases["knn-chol"]()))
    sol32 = kssl.solve("contrastive", X, A_knn, kernel=k, dim=args.dim, lam=0.1, dtype=np.float32)
    ratios = " ".join(f"{times[name] / t_kpca:>{len(name) + 5}.2f}" for name in RATIOS)
    print(f"{N:>6} {' '.join(f'{times[name]:>8.3f}' for name in NAMES)} {ratios} {abs(new - old) / abs(old):>13.2e} "
          f"{abs(float(sol32.loss) - old) / abs(old):>10.2e} {sol32.method}", flush=True)


NAMES = ("solve", "core", "knn-eigh", "knn-chol", "vicreg", "kpca", "arpack")
RATIOS = ("solve", "core", "knn-eigh", "knn-chol", "vicreg", "arpack")


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
    print("times in s (best of --repeats, interleaved); solve: kssl.solve, clique graph (structured); core: "
          "solve_gram, auto; knn-eigh / knn-chol: contrastive, k-NN graph, dense path before (eigendecomposition) / "
          "after (dense-cholesky); vicreg: solve_gram vicreg, k-NN graph (dense-eigh); kpca / arpack: KernelPCA "
          "eigen_solver dense / arpack; x/kpca: ratio to kpca in the same run; chol-eigh: loss rel diff of the two "
          "knn paths (float64); f32: kssl.solve float32 (method named) vs the float64 loss")
    X0 = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    ratio_names = " ".join(f"{n + '/kpca':>{len(n) + 5}}" for n in RATIOS)
    print(f"{'N':>6} {' '.join(f'{n:>8}' for n in NAMES)} {ratio_names} {'chol-eigh':>13} {'f32':>10} f32 method")
    for N in args.sizes:
        bench_size(N, X0, rng, args)
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
