"""Benchmark: structured and feature-space (low-rank) closed forms at scale (issue 5, "Benchmarks").

Data: digits sources (scikit-learn 8x8, `kssl.data.digits`, train split) with augmented views (random affine warp,
<= 10 degrees and 1 pixel, plus Gaussian noise 0.05), view-clique graph, RBF kernel at the median distance,
contrastive, lam 0.1, dim 32. Downstream probes (`kssl.evaluate`): ridge probe and cosine 1-NN on the features of the
1437 clean training digits, scored on the 360 held-out test digits.

Parts (each measurement runs in its own subprocess, so `ru_maxrss` is its own peak memory):

  a  structured (`kssl.solve(method="auto")`: Cholesky path for the clique graph) vs dense (`method="dense"`) at
     N = 4000 (1000 sources x 4 views): time after compilation, speed ratio, equality of losses and induced kernels;
     and scikit-learn `KernelPCA(eigen_solver="dense", n_components=32).fit` on the same (precomputed) Gram.
  b  Nystrom (m = 2000 kmeans++ landmarks, `lowrank.solve_features`) at N = 100,000 views (1250 x 80): end-to-end
     time (compilation included) and peak memory; downstream accuracy of Nystrom vs the exact path at N = 8000.
  c  time to accuracy against scikit-learn on the same N = 8000 views: the size knobs of each method are swept (kssl
     Nystrom landmarks m and dim; `Nystroem(n_components=m) + PCA(dim)`; `KernelPCA(eigen_solver="randomized",
     n_components=dim)` fitted on random subsets of 2000 and 4000 views and on all of them; see SWEEPS). Target = the
     best accuracy any scikit-learn configuration reaches; reported per probe: the fastest kssl and the fastest
     scikit-learn configuration that reach it (warm fit times; kssl's first fit, with compilation, too), their ratio.
  d  Gram: blockwise `kssl.gram` (rbf) vs `sklearn.metrics.pairwise.rbf_kernel` at N = 10,000.
  f  float32 accuracy: each contrastive path (dense, structured, Nystrom, random features) in float32 vs float64 on
     the same data: relative error of the loss and of the induced kernel on the test digits, probe accuracy.

Usage:
  python experiments/bench_scale.py                  # the full benchmark (part c alone: 20 min on 2 busy cores)
  python experiments/bench_scale.py --quick          # tiny sizes, a smoke run
  python experiments/bench_scale.py --parts a d --json out.json
Set OPENBLAS_NUM_THREADS before running to pin BLAS threads; KSSL_ENABLE_X64=0 runs in float32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

SIZES = {
    "full": dict(a_sources=1000, a_views=4, b_sources=1250, b_views=80, landmarks=2000, e_sources=1000, e_views=8,
                 gram_n=10000, f_sources=250, f_views=4, repeats=2),
    "quick": dict(a_sources=100, a_views=4, b_sources=100, b_views=8, landmarks=200, e_sources=100, e_views=4,
                  gram_n=1000, f_sources=50, f_views=4, repeats=1),
}
# Part c: the size knobs of each method. kssl Nystrom: landmarks m at dim DIM, then each of c_kssl_dims at each of
# c_kssl_dims_m; scikit-learn Nystroem + PCA: n_components m with PCA(DIM), then each PCA dim of c_nystroem_dims at each
# m of c_nystroem_dims_m; KernelPCA randomized: every n_components of c_kpca_dims, fitted on a random subset of each
# number of views in c_kpca_fit (all views where it is N or more).
SWEEPS = {
    "full": dict(c_kssl_m=[10, 20, 50, 100, 200, 500, 1000, 2000], c_kssl_dims=[64, 128, 256],
                 c_kssl_dims_m=[500, 1000], c_nystroem_m=[20, 50, 100, 200, 500, 1000, 2000],
                 c_nystroem_dims=[64, 128, 256], c_nystroem_dims_m=[1000, 2000], c_kpca_dims=[32, 64, 128, 256],
                 c_kpca_fit=[2000, 4000, 8000]),
    "quick": dict(c_kssl_m=[10, 50, 200], c_kssl_dims=[64], c_kssl_dims_m=[200], c_nystroem_m=[20, 50, 200],
                  c_nystroem_dims=[64], c_nystroem_dims_m=[200], c_kpca_dims=[32, 64], c_kpca_fit=[200, 400]),
}
DIM = 32
LAM = 0.1


# --------------------------------------------------------------------------------------------------------------------
# Shared helpers (run inside the subprocesses)


def _env():
    import jax

    dev = jax.devices()[0]
    return dict(backend=jax.default_backend(), device=getattr(dev, "device_kind", str(dev)),
                n_devices=len(jax.devices()),
                x64=bool(jax.config.jax_enable_x64), jax=jax.__version__, python=platform.python_version(),
                openblas_threads=os.environ.get("OPENBLAS_NUM_THREADS", "unset"), cores=os.cpu_count(),
                matmul_precision=str(jax.config.jax_default_matmul_precision))


def _peak():
    """Peak host memory of this process (GiB) and, on accelerators, the device's peak bytes in use (GiB)."""
    import jax

    out = dict(maxrss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            out["device_peak_gib"] = stats["peak_bytes_in_use"] / 2**30
    except Exception:  # CPU devices may have no memory stats
        pass
    return out


def _block(x):
    import jax

    return jax.block_until_ready(x)


def _data(n_sources, n_views, seed=0):
    """`(views, groups, probe)`: views of the first n_sources training digits; probe = clean train/test digits."""
    import jax
    import numpy as np

    import kernel_ssl_jax as kssl

    ds = kssl.data.digits(seed=0)
    src = ds.X_train[np.arange(n_sources) % ds.X_train.shape[0]]
    aug = kssl.augment.compose(kssl.augment.affine((8, 8), max_degrees=10.0, max_shift=1.0),
                               kssl.augment.gaussian_noise(0.05))
    views, groups = kssl.augment.make_views(jax.random.key(seed), jax.numpy.asarray(src), n_views, aug)
    probe = (ds.X_train, ds.y_train, ds.X_test, ds.y_test)
    return np.asarray(views), np.asarray(groups), probe


def _accuracy(F_train, y_train, F_test, y_test):
    import numpy as np

    from kernel_ssl_jax import evaluate

    ridge = float(np.mean(np.asarray(evaluate.ridge_probe(F_train, y_train, F_test)) == y_test))
    nn = float(np.mean(np.asarray(evaluate.knn_cosine(F_train, y_train, F_test, k=1)) == y_test))
    return dict(acc_ridge=100 * ridge, acc_1nn=100 * nn)


def _best(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = _block(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def _rel(a, b):
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# --------------------------------------------------------------------------------------------------------------------
# Tasks (one subprocess each)


def task_structured(n_sources, n_views, repeats):
    import numpy as np
    from sklearn.decomposition import KernelPCA

    import kernel_ssl_jax as kssl

    X, groups, probe = _data(n_sources, n_views)
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))
    A = kssl.graphs.from_groups(groups)
    X_test = probe[2]

    def run(method, **kw):
        return kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=LAM, method=method, **kw)

    run("auto"), run("dense"), run("dense", rcond=0.0)  # compile
    t_auto, auto = _best(lambda: run("auto"), repeats)
    t_dense, dense = _best(lambda: run("dense"), repeats)  # "dense-cholesky" since issue 14
    # the dense path before issue 14: eigendecomposition of K, every positive eigenvalue kept (an explicit rcond = 0)
    t_eigh, eigh = _best(lambda: run("dense", rcond=0.0), repeats)
    t_gram, K = _best(lambda: kssl.gram(k, X), repeats)
    Kn = np.asarray(K)
    t_kpca, _ = _best(lambda: KernelPCA(DIM, kernel="precomputed", eigen_solver="dense").fit(Kn), repeats)
    return dict(N=X.shape[0], method_auto=auto.method, t_auto=t_auto, t_dense=t_dense, t_gram=t_gram, t_kpca=t_kpca,
                method_dense=dense.method, t_dense_eigh=t_eigh, eigh_over_dense=t_eigh / t_dense,
                rel_loss_eigh=abs(float(eigh.loss) - float(dense.loss)) / abs(float(eigh.loss)),
                dense_over_auto=t_dense / t_auto, kpca_over_auto=t_kpca / t_auto,
                kpca_over_auto_minus_gram=t_kpca / max(t_auto - t_gram, 1e-9),
                loss_auto=float(auto.loss), loss_dense=float(dense.loss),
                rel_loss=abs(float(auto.loss) - float(dense.loss)) / abs(float(dense.loss)),
                rel_induced_kernel=_rel(auto.induced_kernel(X_test), dense.induced_kernel(X_test)), **_peak())


def task_exact(n_sources, n_views, warm=True):
    import kernel_ssl_jax as kssl

    X, groups, (Xtr, ytr, Xte, yte) = _data(n_sources, n_views)
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))
    A = kssl.graphs.from_groups(groups)
    t0 = time.perf_counter()
    sol = _block(kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=LAM))
    t_fit = time.perf_counter() - t0
    t_warm = _best(lambda: kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=LAM), 1)[0] if warm else None
    F_tr, F_te = sol.features(Xtr, block_size=2048), sol.features(Xte)
    return dict(N=X.shape[0], method=sol.method, t_fit=t_fit, t_fit_warm=t_warm, loss=float(sol.loss),
                **_accuracy(F_tr, ytr, F_te, yte), **_peak())


def task_nystrom(n_sources, n_views, m, landmarks, method="nystrom", warm=False, repeats=1, dim=DIM):
    """End to end (compilation included), with the time of each stage; `warm`: the best of `repeats` more fits,
    compiled."""
    import jax

    import kernel_ssl_jax as kssl
    from kernel_ssl_jax import featuremaps, lowrank

    t0 = time.perf_counter()
    X, groups, (Xtr, ytr, Xte, yte) = _data(n_sources, n_views)
    t_views = time.perf_counter() - t0
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))

    def fit():
        t0 = time.perf_counter()
        if method == "rff":
            fmap = featuremaps.feature_map(k, "rff", n_features=m, key=jax.random.key(0), points=X)
        else:
            fmap = featuremaps.feature_map(k, "nystrom", n_features=m, key=jax.random.key(0), points=X,
                                           landmarks=landmarks)
        _block(fmap)
        t_map = time.perf_counter() - t0
        t0 = time.perf_counter()
        sol = _block(lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=dim, lam=LAM,
                                            feature_map=fmap))
        return fmap, sol, t_map, time.perf_counter() - t0

    fmap, sol, t_map, t_solve = fit()
    t_warm = min(sum(fit()[2:]) for _ in range(repeats)) if warm else None
    t0 = time.perf_counter()
    F_tr, F_te = _block(sol.features(Xtr, block_size=4096)), _block(sol.features(Xte))
    t_features = time.perf_counter() - t0
    return dict(N=X.shape[0], m=m, dim=dim, D=fmap.dim, landmarks=landmarks if method == "nystrom" else method,
                t_views=t_views, t_feature_map=t_map, t_solve=t_solve, t_fit=t_map + t_solve, t_fit_warm=t_warm,
                t_features_probe=t_features, loss=float(sol.loss), **_accuracy(F_tr, ytr, F_te, yte), **_peak())


def task_sklearn(n_sources, n_views, which, m=0, dim=DIM, n_fit=0, repeats=1):
    """`which="kpca_randomized"`: `KernelPCA(dim, eigen_solver="randomized")` fitted on `n_fit` random views (0: all);
    `"nystroem_pca"`: `Nystroem(n_components=m) + PCA(min(dim, m))` on all views. Fit time: best of `repeats`."""
    import numpy as np
    from sklearn.decomposition import PCA, KernelPCA
    from sklearn.kernel_approximation import Nystroem
    from sklearn.pipeline import make_pipeline

    import kernel_ssl_jax as kssl

    X, _, (Xtr, ytr, Xte, yte) = _data(n_sources, n_views)
    gamma = 1.0 / (2.0 * kssl.median_bandwidth(X) ** 2)
    if which == "kpca_randomized":
        if 0 < n_fit < X.shape[0]:
            X = X[np.random.default_rng(0).choice(X.shape[0], n_fit, replace=False)]

        def make():
            return KernelPCA(dim, kernel="rbf", gamma=gamma, eigen_solver="randomized", random_state=0)
    else:
        def make():
            return make_pipeline(Nystroem(kernel="rbf", gamma=gamma, n_components=m, random_state=0),
                                 PCA(min(dim, m), random_state=0))
    times = []
    for _ in range(repeats):
        model = make()
        t0 = time.perf_counter()
        model.fit(X)
        times.append(time.perf_counter() - t0)
    F_tr, F_te = model.transform(Xtr), model.transform(Xte)
    return dict(N=X.shape[0], which=which, m=m, dim=dim, t_fit=min(times), t_fit_first=times[0],
                **_accuracy(np.asarray(F_tr), ytr, np.asarray(F_te), yte), **_peak())


def task_gram(n, repeats):
    """`kssl.gram(k, X)` (exactly symmetric, exact diagonal), `kssl.gram(k, X, X)` (the plain cross Gram), both in
    row blocks of 2048, against scikit-learn's `rbf_kernel(X)`."""
    import numpy as np
    from sklearn.metrics.pairwise import rbf_kernel

    import kernel_ssl_jax as kssl

    X, _, _ = _data(max(1, n // 8), 8)
    X = X[:n]
    h = kssl.median_bandwidth(X)
    k = kssl.kernels.rbf(h)
    Xj = kssl.kernels._as_2d("X", X)
    out = dict(N=n)
    for name, fn in [("t_kssl_sym", lambda: kssl.gram(k, Xj, block_size=2048)),
                     ("t_kssl_cross", lambda: kssl.gram(k, Xj, Xj, block_size=2048))]:
        _block(fn())  # compile
        out[name], K = _best(fn, repeats)
        del K
    Xn = np.asarray(X, dtype=np.asarray(Xj).dtype)
    out["t_sklearn"], K_sk = _best(lambda: rbf_kernel(Xn, gamma=1.0 / (2.0 * h * h)), repeats)
    out["max_abs_diff"] = float(np.max(np.abs(np.asarray(kssl.gram(k, Xj, block_size=2048)) - K_sk)))
    out["sklearn_over_kssl_sym"] = out["t_sklearn"] / out["t_kssl_sym"]
    out["sklearn_over_kssl_cross"] = out["t_sklearn"] / out["t_kssl_cross"]
    return dict(**out, **_peak())


def task_float32(n_sources, n_views, m):
    """Each path once in float32 and once in float64 (x64 enabled), on the same data: relative differences."""
    import jax
    import jax.numpy as jnp

    import kernel_ssl_jax as kssl
    from kernel_ssl_jax import featuremaps, lowrank

    if not jax.config.jax_enable_x64:
        return dict(skipped="needs KSSL_ENABLE_X64=1 (float64 reference)")
    X, groups, (Xtr, ytr, Xte, yte) = _data(n_sources, n_views)
    k = kssl.kernels.rbf(kssl.median_bandwidth(X))
    A = kssl.graphs.from_groups(groups)
    out = dict(N=X.shape[0], m=m)
    fmap64 = featuremaps.feature_map(k, "nystrom", n_features=m, key=jax.random.key(0), points=X)
    # The same frequencies in both precisions.
    rff64 = featuremaps.feature_map(k, "rff", n_features=2 * m, key=jax.random.key(0), points=X)
    rff32 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32) if hasattr(a, "astype") else a, rff64)
    for name, run in [
        ("dense", lambda dt: kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=LAM, method="dense", dtype=dt)),
        ("structured", lambda dt: kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=LAM, dtype=dt)),
        ("nystrom", lambda dt: lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=DIM, lam=LAM,
                                                      landmarks=fmap64.landmarks, dtype=dt)),
        ("rff", lambda dt: lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=DIM, lam=LAM,
                                                  feature_map=rff64 if dt == jnp.float64 else rff32, dtype=dt)),
    ]:
        s64, s32 = run(jnp.float64), run(jnp.float32)
        F64, F32 = s64.features(Xte), s32.features(Xte.astype("float32"))
        out[name] = dict(rel_loss=abs(float(s32.loss) - float(s64.loss)) / abs(float(s64.loss)),
                         rel_induced_kernel=_rel(F32 @ F32.T, F64 @ F64.T),
                         finite=bool(jnp.all(jnp.isfinite(F32))),
                         acc64=_accuracy(s64.features(Xtr), ytr, F64, yte)["acc_ridge"],
                         acc32=_accuracy(s32.features(Xtr.astype("float32")), ytr, F32, yte)["acc_ridge"])
    return out


TASKS = dict(structured=task_structured, exact=task_exact, nystrom=task_nystrom, sklearn=task_sklearn,
             gram=task_gram, float32=task_float32)


# --------------------------------------------------------------------------------------------------------------------
# Part c: time to accuracy


def _spawn(name, timeout, src=None, **kwargs):
    """Runs one task in a subprocess; `src`: a directory holding another version of the library (before / after)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--task", name, "--task-args", json.dumps(kwargs)]
    env = dict(os.environ, KSSL_BENCH_SRC=os.path.abspath(src)) if src else None
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(task=name, args=kwargs, error=f"timed out after {timeout} s")
    wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return dict(task=name, args=kwargs, error=(proc.stderr or proc.stdout)[-2000:])
    result = json.loads(lines[-1])
    result.update(task=name, args=kwargs, subprocess_wall=wall)
    return result


def _fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else str(v)


def _row(label, r, keys):
    if "error" in r:
        return f"  {label:<34} ERROR: {r['error'].strip().splitlines()[-1] if r['error'].strip() else '?'}"
    return f"  {label:<34} " + "  ".join(f"{k}={_fmt(r.get(k, '-'), s)}" for k, s in keys)


def time_to_accuracy(kssl_rows, sklearn_rows, probe):
    """Target = the best `probe` accuracy of any scikit-learn row; returns the target and, per side, the fastest
    row (by warm fit time) that reaches it (None when no row does)."""
    ok = [r for r in kssl_rows + sklearn_rows if "error" not in r]
    sk = [r for r in ok if r["side"] == "sklearn"]
    if not sk:
        return None

    def fastest(side, target):
        rows = [r for r in ok if r["side"] == side and r[probe] >= target - 1e-9]
        return min(rows, key=lambda r: r["t_warm"]) if rows else None

    target = max(r[probe] for r in sk)
    best_kssl = max((r[probe] for r in ok if r["side"] == "kssl"), default=None)
    k, s = fastest("kssl", target), fastest("sklearn", target)
    return dict(probe=probe, target=target, best_kssl=best_kssl, kssl=k, sklearn=s,
                sklearn_over_kssl_warm=s["t_warm"] / k["t_warm"] if k and s else None,
                sklearn_over_kssl_first=s["t_warm"] / k["t_first"] if k and s else None)


def sweep_c(results, save, T, size, sweep, exact, nys):
    """Part c: each method's size knob swept on the same views; time to the best scikit-learn accuracy."""
    ns, nv, m0 = size["e_sources"], size["e_views"], size["landmarks"]
    N = ns * nv
    rows = []

    def add(side, method, knob, r, t_first, t_warm):
        row = dict(side=side, method=method, knob=knob, t_first=t_first, t_warm=t_warm,
                   acc_ridge=r.get("acc_ridge"), acc_1nn=r.get("acc_1nn"), maxrss_gib=r.get("maxrss_gib"))
        if "error" in r:
            row["error"] = r["error"]
        rows.append(row)
        err = r["error"].strip().splitlines()[-1] if "error" in r and r["error"].strip() else None
        print(f"  {side:<7} {method:<26} {knob:<16} " + (f"ERROR: {err}" if "error" in r else
              f"first {_fmt(t_first, '7.3f')} s  warm {_fmt(t_warm, '7.3f')} s  ridge {r['acc_ridge']:5.1f}  "
              f"1-NN {r['acc_1nn']:5.1f}  load {os.getloadavg()[0]:.2f}"), flush=True)
        results["parts"]["c_sweep"] = rows
        save()

    print(f"(c) size sweeps at N = {N} ({ns} sources x {nv} views); fit times: warm = best of {size['repeats']} "
          "(kssl: after a first fit that compiles), first = the first fit")
    if "error" not in exact:
        print(f"  context: kssl exact ({exact.get('method')}) fit {exact['t_fit']:.2f} s first, "
              f"{_fmt(exact.get('t_fit_warm'), '.2f')} s warm, ridge {exact['acc_ridge']:.1f}, "
              f"1-NN {exact['acc_1nn']:.1f}")
    kssl = [(m, DIM) for m in sweep["c_kssl_m"]]
    kssl += [(m, d) for m in sweep["c_kssl_dims_m"] for d in sweep["c_kssl_dims"] if (m, d) not in kssl]
    for m, dim in kssl:
        if nys is not None and (m, dim) == (m0, DIM):
            r = nys
        else:
            r = _spawn("nystrom", T, n_sources=ns, n_views=nv, m=m, landmarks="kmeans++", warm=True,
                       repeats=size["repeats"], dim=dim)
        add("kssl", "Nystrom k-means++ (groups)", f"m={m} dim={dim}", r, r.get("t_fit"), r.get("t_fit_warm"))
    nystroem = [(m, DIM) for m in sweep["c_nystroem_m"]]
    nystroem += [(m, d) for m in sweep["c_nystroem_dims_m"] for d in sweep["c_nystroem_dims"] if (m, d) not in nystroem]
    for m, dim in nystroem:
        r = _spawn("sklearn", T, n_sources=ns, n_views=nv, which="nystroem_pca", m=m, dim=dim, repeats=size["repeats"])
        add("sklearn", "Nystroem + PCA", f"m={m} dim={min(dim, m)}", r, r.get("t_fit_first"), r.get("t_fit"))
    for n_fit in sorted({min(n, N) for n in sweep["c_kpca_fit"]}):
        for dim in sweep["c_kpca_dims"]:
            r = _spawn("sklearn", T, n_sources=ns, n_views=nv, which="kpca_randomized", dim=dim, n_fit=n_fit,
                       repeats=size["repeats"])
            add("sklearn", "KernelPCA randomized", f"dim={dim} fit={n_fit}", r, r.get("t_fit_first"), r.get("t_fit"))
    kssl_rows = [r for r in rows if r["side"] == "kssl"]
    sk_rows = [r for r in rows if r["side"] == "sklearn"]
    summary = [time_to_accuracy(kssl_rows, sk_rows, probe) for probe in ("acc_ridge", "acc_1nn")]
    results["parts"]["c_time_to_accuracy"] = summary
    save()
    for t in summary:
        if t is None:
            print("  time to accuracy: no scikit-learn result")
            continue
        k, s = t["kssl"], t["sklearn"]
        print(f"  time to accuracy, {t['probe']}: target {t['target']:.1f} (best scikit-learn; best kssl "
              f"{_fmt(t['best_kssl'], '.1f')})")
        print("    fastest kssl reaching it:    "
              + (f"{k['method']} {k['knob']}: warm {k['t_warm']:.3f} s (first {k['t_first']:.2f} s), "
                 f"acc {k[t['probe']]:.1f}" if k else "none"))
        print("    fastest sklearn reaching it: "
              + (f"{s['method']} {s['knob']}: warm {s['t_warm']:.3f} s, acc {s[t['probe']]:.1f}" if s else "none"))
        if k and s:
            print(f"    sklearn / kssl time: {t['sklearn_over_kssl_warm']:.1f}x (kssl warm), "
                  f"{t['sklearn_over_kssl_first']:.2f}x (kssl first fit, compilation included)", flush=True)


# --------------------------------------------------------------------------------------------------------------------
# Orchestration


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c", "d", "f"], choices=["a", "b", "c", "d", "f"])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--json", metavar="OUT", help="write all results to this JSON file")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per measurement subprocess")
    parser.add_argument("--before-src", metavar="DIR", help="part b: also run the N = 100,000 Nystrom fit with the "
                        "library in DIR (an export of an earlier commit: `git archive COMMIT kernel_ssl_jax | tar -x "
                        "-C DIR`), right after, and print before / after")
    for key, value in SIZES["full"].items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None, help=f"default {value} (full)")
    for key, value in SWEEPS["full"].items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, nargs="+", default=None,
                            help=f"part c sweep, default {' '.join(map(str, value))} (full)")
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--task-args", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.task:  # inside a measurement subprocess
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sys.path.insert(0, os.environ.get("KSSL_BENCH_SRC") or root)
        result = TASKS[args.task](**json.loads(args.task_args))
        result["env"] = _env()
        print(json.dumps(result), flush=True)
        return

    size = dict(SIZES["quick" if args.quick else "full"])
    sweep = dict(SWEEPS["quick" if args.quick else "full"])
    for table in (size, sweep):
        for key in table:
            if getattr(args, key) is not None:
                table[key] = getattr(args, key)
    load = os.getloadavg()
    header = (f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')} "
              f"KSSL_ENABLE_X64={os.environ.get('KSSL_ENABLE_X64', 'unset (1)')} cores={os.cpu_count()} "
              f"python={platform.python_version()} load average at start={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(header, flush=True)
    results = dict(sizes=size, sweeps=sweep, load_start=load, parts={})
    T = args.timeout

    def save():
        # After every part, so that a run cut short (e.g. by a time limit) still leaves its results.
        if args.json:
            results["load_end"] = os.getloadavg()
            with open(args.json + ".tmp", "w") as f:
                json.dump(results, f, indent=1, default=str)
            os.replace(args.json + ".tmp", args.json)

    if "a" in args.parts:
        r = _spawn("structured", T, n_sources=size["a_sources"], n_views=size["a_views"], repeats=size["repeats"])
        results["parts"]["a"] = r
        print(f"(a) structured vs dense, contrastive, dim {DIM}, lam {LAM}, N = {r.get('N')}; env {r.get('env')}")
        print(_row("kssl.solve auto / dense [s]", r, [("method_auto", "s"), ("t_auto", ".3f"), ("t_dense", ".3f"),
                                                      ("dense_over_auto", ".1f")]))
        print(_row("dense path: now / before issue 14 [s]", r, [("method_dense", "s"), ("t_dense", ".3f"),
                                                                ("t_dense_eigh", ".3f"), ("eigh_over_dense", ".2f"),
                                                                ("rel_loss_eigh", ".1e")]))
        print(_row("KernelPCA dense on the Gram [s]", r, [("t_kpca", ".3f"), ("kpca_over_auto", ".2f"),
                                                          ("t_gram", ".3f")]))
        print(_row("equality auto vs dense", r, [("rel_loss", ".1e"), ("rel_induced_kernel", ".1e"),
                                                 ("maxrss_gib", ".2f")]), flush=True)
        save()

    if "b" in args.parts or "c" in args.parts:
        ns, nv, m = size["e_sources"], size["e_views"], size["landmarks"]
        exact = _spawn("exact", T, n_sources=ns, n_views=nv)
        nys = None
        if "b" in args.parts or m in sweep["c_kssl_m"]:
            nys = _spawn("nystrom", T, n_sources=ns, n_views=nv, m=m, landmarks="kmeans++", warm=True,
                         repeats=size["repeats"])
            results["parts"]["b_nystrom_small"] = nys
        results["parts"]["b_exact"] = exact
        if "b" in args.parts:
            big = _spawn("nystrom", T, n_sources=size["b_sources"], n_views=size["b_views"], m=m,
                         landmarks="kmeans++")
            results["parts"]["b_nystrom_big"] = big
            runs = [("", big)]
            if args.before_src:
                before = _spawn("nystrom", T, src=args.before_src, n_sources=size["b_sources"],
                                n_views=size["b_views"], m=m, landmarks="kmeans++")
                results["parts"]["b_nystrom_big_before"] = before
                runs = [("after: ", big), ("before: ", before)]
            print(f"(b) Nystrom m = {m} at N = {big.get('N')} (end to end, compilation included)")
            for label, r in runs:
                print(_row(label + "stages [s]", r, [("t_views", ".1f"), ("t_feature_map", ".1f"),
                                                     ("t_solve", ".1f"), ("t_fit", ".1f"),
                                                     ("t_features_probe", ".1f")]))
                print(_row(label + "memory / accuracy", r, [("maxrss_gib", ".2f"), ("device_peak_gib", ".2f"),
                                                            ("acc_ridge", ".1f"), ("acc_1nn", ".1f"),
                                                            ("loss", ".10g")]))
            if args.before_src and "t_fit" in big and "t_fit" in runs[1][1]:
                print(f"    fit after / before: {big['t_fit'] / runs[1][1]['t_fit']:.2f}; loss rel diff "
                      f"{abs(big['loss'] - runs[1][1]['loss']) / abs(runs[1][1]['loss']):.1e}")
            print(f"    downstream at N = {exact.get('N')}: exact vs Nystrom m = {m}")
            print(_row(f"exact ({exact.get('method')})", exact, [("t_fit", ".2f"), ("acc_ridge", ".1f"),
                                                                ("acc_1nn", ".1f"), ("maxrss_gib", ".2f")]))
            print(_row("Nystrom kmeans++", nys, [("t_fit", ".2f"), ("acc_ridge", ".1f"), ("acc_1nn", ".1f"),
                                                 ("maxrss_gib", ".2f")]))
            if "error" not in exact and "error" not in nys:
                print(f"    accuracy difference (Nystrom - exact): ridge {nys['acc_ridge'] - exact['acc_ridge']:+.1f}"
                      f" points, 1-NN {nys['acc_1nn'] - exact['acc_1nn']:+.1f} points", flush=True)
            save()
        if "c" in args.parts:
            sweep_c(results, save, T, size, sweep, exact, nys)

    if "d" in args.parts:
        r = _spawn("gram", T, n=size["gram_n"], repeats=size["repeats"])
        results["parts"]["d"] = r
        print(f"(d) RBF Gram at N = {r.get('N')}")
        print(_row("kssl.gram(k, X) vs rbf_kernel [s]", r, [("t_kssl_sym", ".3f"), ("t_sklearn", ".3f"),
                                                            ("sklearn_over_kssl_sym", ".2f"), ("max_abs_diff", ".1e")]))
        print(_row("kssl.gram(k, X, X) vs rbf_kernel [s]", r, [("t_kssl_cross", ".3f"),
                                                               ("sklearn_over_kssl_cross", ".2f")]), flush=True)
        save()

    if "f" in args.parts:
        r = _spawn("float32", T, n_sources=size["f_sources"], n_views=size["f_views"],
                   m=min(size["landmarks"], size["f_sources"] * size["f_views"] // 2))
        results["parts"]["f"] = r
        print(f"(f) float32 vs float64 on the same data, N = {r.get('N')}")
        if "error" in r or "skipped" in r:
            print("  ", r.get("error", r.get("skipped")))
        else:
            for name in ("dense", "structured", "nystrom", "rff"):
                v = r[name]
                print(f"  {name:<16} rel loss {v['rel_loss']:.1e}  rel induced kernel {v['rel_induced_kernel']:.1e}"
                      f"  finite {v['finite']}  ridge acc f64 {v['acc64']:.1f} f32 {v['acc32']:.1f}")

    save()
    end = os.getloadavg()
    print(f"load average at end={end[0]:.2f} {end[1]:.2f} {end[2]:.2f}")
    if args.json:
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
