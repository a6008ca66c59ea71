"""Why the default configuration: accuracy against lam, dim, the graph and the spectral cut-off rcond on digits.

Everything is measured on the default data (scikit-learn digits, 1437 unlabelled training digits x 2 augmented
views, 360 held-out test digits), with the default kernel (RBF at the median distance between views) and the main
probe of `kssl run` (cosine 1-NN on f(x)), at 1 and 5 labels per class over 8 seeded label draws (the same draws
for every row). The Gram is decomposed ONCE (`rcond = 0`); every row reuses it (`spectral.truncate` cuts it at
each rcond), so the whole study costs one eigendecomposition plus small solves.

Tables:
  0. the base kernel: kernel ridge and 1-NN under the (normalised) base kernel;
  1. lam x dim for each objective (graph: view cliques + 10-NN, rcond = 1e-5);
  2. the graph: view cliques only, + k-NN for k = 5, 10, 20, mutual 10-NN (lam = 0.1, default dim);
  3. the spectral cut-off rcond (lam = 0.1, default dim, view cliques + 10-NN), with the rank kept and solve time.

Usage:
  python experiments/study_default.py            # about 3-5 minutes on 2 CPU cores
  python experiments/study_default.py --quick    # fewer rows (no rcond = 1e-6, dim 50 or lam = 1)
"""

from __future__ import annotations

import argparse
import sys
import time

import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import evaluate, graphs, kernels, spectral
from kernel_ssl_jax.lab import config, experiment

BUDGETS = (1, 5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rows")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="config override applied to the default configuration (as kssl run --set)")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    cfg = config.load_config(overrides=args.overrides)
    base_cfg = config.validate({**cfg, "ssl": {**cfg["ssl"], "rcond": 0.0}})
    progress = experiment.Progress(True)
    prep0 = experiment.prepare(base_cfg, progress)  # one decomposition, every positive eigenpair kept
    full_eig = prep0.eig
    ds, kernel, views, groups = prep0.ds, prep0.kernel, prep0.views, prep0.groups
    y_train, y_test = ds.y_train, ds.y_test
    n_draws, seed = cfg["eval"]["n_draws"], cfg["eval"]["seed"]
    dim0, lam0, rcond0 = cfg["ssl"]["dim"], cfg["ssl"]["lam"], cfg["ssl"]["rcond"]

    with progress.stage("cross-Grams", "training and test digits against the views"):
        K_train_views = kernels.gram(kernel, jnp.asarray(ds.X_train), views)
        K_test_views = kernels.gram(kernel, jnp.asarray(ds.X_test), views)
        K_base = np.asarray(kernels.gram(kernel, jnp.asarray(ds.X_train)))
        K_base_test = np.asarray(kernels.gram(kernel, jnp.asarray(ds.X_test), jnp.asarray(ds.X_train)))

    def curve(predict):
        res = evaluate.accuracy_vs_labels(predict, y_train, y_test, BUDGETS, n_draws, seed)
        return [res[str(b)]["mean"] for b in BUDGETS], [res[str(b)]["std"] for b in BUDGETS]

    def nn_accuracy(coef):
        F_train = np.asarray(K_train_views @ coef.T)
        F_test = np.asarray(K_test_views @ coef.T)
        return curve(lambda idx: evaluate.knn_cosine(F_train[idx], y_train[idx], F_test, k=1))

    graphs_cache: dict = {}

    def graph(knn: int, mutual: bool = False):
        if (knn, mutual) not in graphs_cache:
            A = graphs.from_groups(groups, dtype=views.dtype)
            if knn:
                A = jnp.maximum(A, graphs.knn(views, knn, mutual=mutual))
            graphs_cache[knn, mutual] = A
        return graphs_cache[knn, mutual]

    eig_cache: dict = {}

    def cell(objective, *, lam=lam0, dim=dim0, knn=cfg["graph"]["knn"], mutual=False, rcond=rcond0):
        if rcond not in eig_cache:
            eig_cache[rcond] = spectral.truncate(full_eig, rcond)
        prep = prep0._replace(eig=eig_cache[rcond], A=graph(knn, mutual) if objective != "barlow" else None)
        t = time.perf_counter()
        sols, _ = experiment.fit_objectives(prep, objectives=[objective], dim=dim, lam=lam)
        sols[objective].coef.block_until_ready()
        solve_time = time.perf_counter() - t
        (m, s) = nn_accuracy(sols[objective].coef)
        return m, s, solve_time, int(eig_cache[rcond].rank)

    def fmt(m, s):
        return "  ".join(f"{a:.3f}±{b:.3f}" for a, b in zip(m, s, strict=True))

    def emit(line=""):
        print(line, flush=True)

    head = "  ".join(f"{b} label{'s' if b > 1 else ''}".rjust(11) for b in BUDGETS)

    # 0. Base kernel.
    n_classes = int(y_train.max()) + 1
    krr = curve(lambda idx: evaluate.kernel_ridge_classify(
        K_base[np.ix_(idx, idx)], y_train[idx], K_base_test[:, idx], reg=cfg["eval"]["kernel_ridge_reg"],
        n_classes=n_classes))
    nn = curve(lambda idx: experiment.kernel_knn(K_base_test[:, idx], y_train[idx], 1, n_classes))
    emit(f"\nDigits: {ds.X_train.shape[0]} unlabelled training digits x {cfg['views']['n_views']} views "
         f"(N = {views.shape[0]}), {ds.X_test.shape[0]} test digits; cosine 1-NN on f(x), mean±std over "
         f"{n_draws} label draws; accuracy at {BUDGETS} labels per class.")
    emit(f"\nTable 0. Base kernel ({kernel!r})")
    emit(f"{'probe':<34}{head}")
    emit(f"{'kernel ridge (base)':<34}{fmt(*krr)}")
    emit(f"{'1-NN under the base kernel':<34}{fmt(*nn)}")

    objectives = cfg["ssl"]["objectives"]
    lams = [0.0, 0.01, 0.1] + ([] if args.quick else [1.0])
    dims = [10, 20] + ([] if args.quick else [50])
    knn0 = cfg["graph"]["knn"]

    # 1. lam x dim.
    emit(f"\nTable 1. lam x dim (graph: view cliques + {knn0}-NN, rcond = {rcond0:g}); barlow ignores lam")
    emit(f"{'objective':<14}{'lam':>6}{'dim':>5}   {head}")
    for objective in objectives:
        for lam in (lams if objective != "barlow" else [lam0]):
            for dim in dims:
                m, s, _, _ = cell(objective, lam=lam, dim=dim)
                emit(f"{objective:<14}{lam:>6g}{dim:>5}   {fmt(m, s)}")

    # 2. Graph.
    emit(f"\nTable 2. Graph (lam = {lam0:g}, dim = {dim0}, rcond = {rcond0:g}); barlow uses view pairs only")
    emit(f"{'objective':<14}{'graph':<24}{head}")
    variants = [(0, False, "view cliques"), (5, False, "cliques + 5-NN"), (10, False, "cliques + 10-NN"),
                (20, False, "cliques + 20-NN"), (10, True, "cliques + mutual 10-NN")]
    for objective in (o for o in objectives if o != "barlow"):
        for knn, mutual, label in variants:
            m, s, _, _ = cell(objective, knn=knn, mutual=mutual)
            emit(f"{objective:<14}{label:<24}{fmt(m, s)}")

    # 3. rcond.
    rconds = ([] if args.quick else [1e-6]) + [1e-5, 1e-4, 1e-3]
    emit(f"\nTable 3. Spectral cut-off rcond (lam = {lam0:g}, dim = {dim0}, view cliques + {knn0}-NN)")
    emit(f"{'objective':<14}{'rcond':>7}{'rank':>6}{'solve s':>9}   {head}")
    for objective in objectives:
        for rcond in rconds:
            m, s, t, r = cell(objective, rcond=rcond)
            emit(f"{objective:<14}{rcond:>7g}{r:>6}{t:>9.1f}   {fmt(m, s)}")

    emit(f"\nstudy time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
