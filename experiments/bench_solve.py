"""Benchmark: `kssl.solve` against scikit-learn KernelPCA, each side computing its own RBF Gram (issue 14).

For N views of digits (N/4 sources x 4 noisy views), RBF kernel at the median distance, dim 32, lam 0.1, it times,
end to end from the views (each case builds its Gram):
  - `clique`: `kssl.solve` contrastive on the view-clique graph (`"structured-cholesky"`),
  - `knn-krylov`: `kssl.solve(..., method="dense")` contrastive on a k-NN graph (no structured shortcut, no degenerate
    top eigenvalue), which runs `"dense-krylov"` (Cholesky factor of K + lam I, block Krylov eigensolver),
  - `knn-chol`: the same with `eigensolver="exact"` (`"dense-cholesky"`: Cholesky factor of K, one generalized
    subset eigenproblem, the dense path before the Krylov solver),
  - `knn-eigh`: the same with `rcond=0.0` (`"dense-eigh"`: one eigendecomposition of K, every positive eigenvalue
    kept, the dense path before issue 14),
  - `vicreg`: `kssl.solve("vicreg", ..., method="dense")` on the k-NN graph (`"dense-eigh"`),
  - `kpca` / `arpack`: `sklearn.metrics.pairwise.rbf_kernel` + `KernelPCA(n_components=32, kernel="precomputed",
    eigen_solver="dense" / "arpack").fit`,
interleaved, and prints the ratios to `kpca` measured in the same run, the loss difference of the k-NN paths
(`dense-cholesky` and `dense-krylov` against `dense-eigh`), the induced kernel difference of `dense-krylov` against
`dense-cholesky` on the training views, and the float32 accuracy of `kssl.solve` on the k-NN problem (loss relative
to float64). A library without the `eigensolver` option (`--before-src`) runs its default route in both k-NN rows.

Before / after: `--before-src DIR` runs each size a second time, right after, with the library of DIR (an export of an
earlier commit, e.g. `git archive COMMIT kernel_ssl_jax | tar -x -C DIR`) in a subprocess, and prints both rows and the
after / before ratio of each case's ratio to KernelPCA. Set OPENBLAS_NUM_THREADS before running to pin the threads.

  python experiments/bench_solve.py [--sizes 2000 4000] [--repeats 3] [--knn 10] [--before-src DIR]
"""

import argparse
import inspect
import json
import os
import platform
import subprocess
import sys
import time

import jax
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import KernelPCA
from sklearn.metrics.pairwise import rbf_kernel

import kernel_ssl_jax as kssl

NAMES = ("clique", "knn-krylov", "knn-chol", "knn-eigh", "vicreg", "kpca", "arpack")
RATIOS = ("clique", "knn-krylov", "knn-chol", "knn-eigh", "vicreg", "arpack")
METHODS = {"clique": "structured-cholesky", "knn-krylov": "dense-krylov", "knn-chol": "dense-cholesky",
           "knn-eigh": "dense-eigh", "vicreg": "dense-eigh"}
EXACT = "eigensolver" in inspect.signature(kssl.solve).parameters  # False for a library before the Krylov solver


def best_time(fn):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def bench_size(N, args):
    """Times (s) of each case for N views, the loss difference of the two k-NN paths, the float32 error."""
    X0 = load_digits().data / 16.0
    rng = np.random.default_rng(N)
    n = N // 4
    X = np.repeat(X0[:n], 4, axis=0) + 0.05 * rng.normal(size=(N, X0.shape[1]))
    groups = np.repeat(np.arange(n), 4)
    bw = kssl.median_bandwidth(X)
    k = kssl.kernels.rbf(bw)
    A_knn = np.asarray(kssl.graphs.knn(X, args.knn))
    kw = dict(kernel=k, dim=args.dim, lam=0.1)

    def sol(name):
        if name == "clique":
            return kssl.solve("contrastive", X, groups=groups, **kw)
        if name == "vicreg":
            return kssl.solve("vicreg", X, A_knn, method="dense", **kw)
        exact = dict(eigensolver="exact") if name == "knn-chol" and EXACT else {}
        return kssl.solve("contrastive", X, A_knn, method="dense", rcond=0.0 if name == "knn-eigh" else None, **kw,
                          **exact)

    def kpca(solver):
        Kn = rbf_kernel(X, gamma=0.5 / bw**2)
        return KernelPCA(args.dim, kernel="precomputed", eigen_solver=solver).fit(Kn)

    cases = {name: (lambda name=name: sol(name).coef) for name in METHODS}
    cases.update(kpca=lambda: kpca("dense"), arpack=lambda: kpca("arpack"))
    for name in METHODS:  # compile, and check the route
        if EXACT and sol(name).method != METHODS[name]:
            raise RuntimeError(f"{name}: ran {sol(name).method}, expected {METHODS[name]} ({sol(name).reason})")
    times = {name: np.inf for name in cases}
    for _ in range(args.repeats):  # interleaved: a change of load on shared cores affects both sides of a ratio alike
        for name, fn in cases.items():
            times[name] = min(times[name], best_time(fn))
    eigh, chol, krylov = sol("knn-eigh"), sol("knn-chol"), sol("knn-krylov")
    old = float(eigh.loss)
    sol32 = kssl.solve("contrastive", X, A_knn, kernel=k, dim=args.dim, lam=0.1, dtype=np.float32)
    k_chol, k_kry = np.asarray(chol.induced_kernel(X)), np.asarray(krylov.induced_kernel(X))
    return dict(times=times, diff=abs(float(chol.loss) - old) / abs(old),
                diff_kry=abs(float(krylov.loss) - old) / abs(old),
                kernel_kry=float(np.linalg.norm(k_kry - k_chol) / np.linalg.norm(k_chol)),
                f32=abs(float(sol32.loss) - old) / abs(old), f32_method=sol32.method)


def print_row(label, N, r):
    t = r["times"]
    ratios = " ".join(f"{t[name] / t['kpca']:>{len(name) + 5}.2f}" for name in RATIOS)
    print(f"{label:>6} {N:>6} {' '.join(f'{t[name]:>10.3f}' for name in NAMES)} {ratios} {r['diff']:>10.2e} "
          f"{r['diff_kry']:>10.2e} {r['kernel_kry']:>10.2e} {r['f32']:>9.2e} {r['f32_method']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 4000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--knn", type=int, default=10, help="neighbours of the k-NN graph of the dense case")
    parser.add_argument("--before-src", help="directory holding the library before the change (kernel_ssl_jax/)")
    parser.add_argument("--row", action="store_true", help=argparse.SUPPRESS)  # one size, as JSON (subprocess)
    args = parser.parse_args()
    if args.row:
        print(json.dumps(bench_size(args.sizes[0], args)))
        return
    print(f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} cores={os.cpu_count()} "
          f"load={' '.join(f'{v:.2f}' for v in os.getloadavg())} backend={jax.default_backend()} "
          f"jax={jax.__version__} python={platform.python_version()}")
    print("times in s (best of --repeats, interleaved), each from the views (Gram included); clique: "
          "structured-cholesky; knn-krylov / knn-chol / knn-eigh: contrastive, k-NN graph, dense-krylov / "
          "dense-cholesky / dense-eigh (before issue 14); vicreg: k-NN graph, dense-eigh; kpca / arpack: rbf_kernel + "
          "KernelPCA dense / arpack; x/kpca: ratio to kpca in the same run; chol-eigh, kry-eigh: loss rel diff of the "
          "knn paths (float64); kry-chol K: induced kernel rel diff on the training views; f32: kssl.solve float32 "
          "(method named) vs the float64 loss")
    ratio_names = " ".join(f"{n + '/kpca':>{len(n) + 5}}" for n in RATIOS)
    print(f"{'lib':>6} {'N':>6} {' '.join(f'{n:>10}' for n in NAMES)} {ratio_names} {'chol-eigh':>10} "
          f"{'kry-eigh':>10} {'kry-chol K':>10} {'f32':>9} f32 method")
    for N in args.sizes:
        after = bench_size(N, args)
        print_row("after", N, after)
        if args.before_src:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(args.before_src))
            cmd = [sys.executable, os.path.abspath(__file__), "--row", "--sizes", str(N), "--repeats",
                   str(args.repeats), "--dim", str(args.dim), "--knn", str(args.knn)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            before = json.loads(out.strip().splitlines()[-1])
            print_row("before", N, before)
            ta, tb = after["times"], before["times"]
            print(f"{'a/b':>6} {N:>6} {' ' * 11 * len(NAMES)}"
                  + " ".join(f"{(ta[n] / ta['kpca']) / (tb[n] / tb['kpca']):>{len(n) + 5}.2f}" for n in RATIOS),
                  flush=True)
    print(f"load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
