"""The kernel regime, observed (SPEC.md §7): finite networks against their infinite-width kernels, on digits.

Parts (`--parts`, default all):

- `mc`: Monte Carlo convergence of the empirical NNGP / NTK of random networks (MLP, CNN flatten, CNN gap; depth 2)
  to `nngp`/`ntk`/`cnngp`/`cntk` on 8 digits (8x8), and of the cross-output NTK terms to 0: mean relative Frobenius
  error over draws against width, with the fitted log-log slope (theory: -1/2).
- `spread`: the exact setting of `tests/test_networks.py` (4 random points, two widths, 12 draws) over `--seeds`
  seeds: mean, standard deviation and worst deviation from -1/2 of each fitted slope; this sets the test's tolerance.
- `chain`: contrastive (`lam = 0.1`, view cliques + 3-NN graph, `dim = 1`: the case where `train="all"` has SPEC's
  ridge exactly, see `network_training`) on noisy views of digits, an MLP of depth 2 trained per width; each link's
  distance between normalised induced kernels on held-out digits:
  network (all layers, centred output) -> linearised network -> closed form with the empirical NTK at init ->
  closed form with the analytic NTK; and readout-only training -> closed form with the empirical NNGP -> analytic
  NNGP. Distance: `|| K1 / ||K1|| - K2 / ||K2|| ||_F`.

    python experiments/study_kernel_regime.py                       # all parts, a few minutes on 2 CPU cores
    python experiments/study_kernel_regime.py --parts chain --widths 64 256 1024 --steps 3000
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import kernel_ssl_jax as kssl
from kernel_ssl_jax import networks


def _slope(widths, errors) -> float:
    return float(np.polyfit(np.log(widths), np.log(errors), 1)[0])


@functools.lru_cache(maxsize=None)
def _mc_fn(net, input_shape):
    def one(key, X):
        p = net.init(key, input_shape)
        return networks.empirical_nngp(net.features, p, X), networks.empirical_ntk(net.apply, p, X,
                                                                                   cross_outputs=True)

    return jax.jit(one)


def mc_errors(net, X, draws: int, seed: int) -> np.ndarray:
    """Mean over `draws` networks of the relative errors (nngp, ntk, cross-output ntk) of the empirical kernels."""
    Kn, Kt = np.asarray(kssl.gram(net.nngp, X)), np.asarray(kssl.gram(net.ntk, X))
    # Draws one at a time (a vmap over draws would hold every Jacobian at once).
    f = functools.partial(_mc_fn(net, X.shape[1:]), X=X)
    errs = []
    for key in jax.random.split(jax.random.key(seed), draws):
        en, et = (np.asarray(a) for a in f(key))
        diag = np.einsum("abmm->ab", et) / net.out_dim
        nt = np.linalg.norm(Kt)
        errs.append([np.linalg.norm(en - Kn) / np.linalg.norm(Kn), np.linalg.norm(diag - Kt) / nt,
                     np.linalg.norm(et[..., 0, 1]) / nt])
    return np.mean(errs, axis=0)


def part_mc(args):
    X = load_digits().data[:8] / 16.0
    print("== mc: relative error of the empirical kernels of random depth-2 networks (8 digits, "
          f"{args.draws} draws), columns nngp / ntk / cross-output ntk")
    cases = [("mlp", lambda w: networks.mlp(2, w, out_dim=2), args.mc_widths_mlp),
             ("cnn-flatten", lambda w: networks.cnn(2, w, (8, 8, 1), out_dim=2), args.mc_widths_cnn),
             ("cnn-gap", lambda w: networks.cnn(2, w, (8, 8, 1), out_dim=2, readout="gap"), args.mc_widths_cnn)]
    for name, make, widths in cases:
        errs = []
        for w in widths:
            t = time.time()
            errs.append(mc_errors(make(w), X, args.draws, seed=0))
            print(f"  {name:12s} width {w:5d}  " + "  ".join(f"{e:.4f}" for e in errs[-1])
                  + f"   ({time.time() - t:.1f} s)", flush=True)
        errs = np.array(errs)
        print(f"  {name:12s} slopes  " + "  ".join(f"{_slope(widths, errs[:, j]):+.3f}" for j in range(3)))


def part_spread(args):
    print(f"== spread: the setting of tests/test_networks.py over {args.seeds} seeds (slopes: mean, std, "
          "max |slope + 1/2|)")
    image = (4, 4, 1)
    cases = {
        "mlp": (lambda w: networks.mlp(2, w, out_dim=2, b_var=0.1), (32, 512), 3),
        "cnn-flatten": (lambda w: networks.cnn(2, w, image, out_dim=2, b_var=0.1, readout="flatten"), (8, 128), 16),
        "cnn-gap": (lambda w: networks.cnn(2, w, image, out_dim=2, b_var=0.1, readout="gap"), (8, 128), 16),
    }
    for name, (make, widths, d) in cases.items():
        X = np.random.default_rng(0).normal(size=(4, d))
        nets = [make(w) for w in widths]
        slopes = []
        for seed in range(args.seeds):
            errs = np.array([mc_errors(net, X, 12, seed) for net in nets])
            slopes.append([_slope(widths, errs[:, j]) for j in range(3)])
        slopes = np.array(slopes)
        for j, k in enumerate(("nngp", "ntk", "cross")):
            print(f"  {name:12s} {k:6s} mean {slopes[:, j].mean():+.3f}  std {slopes[:, j].std(ddof=1):.3f}  "
                  f"max dev {np.abs(slopes[:, j] + 0.5).max():.3f}", flush=True)


def _digits_views(n_sources: int, n_views: int, n_test: int, noise: float, seed: int):
    X_all = load_digits().data / 16.0
    rng = np.random.default_rng(seed)
    idx = rng.permutation(X_all.shape[0])
    src, test = X_all[idx[:n_sources]], X_all[idx[n_sources : n_sources + n_test]]
    views = np.repeat(src, n_views, axis=0) + noise * rng.normal(size=(n_sources * n_views, src.shape[1]))
    return views, np.repeat(np.arange(n_sources), n_views), test


def _normalised_distance(K1, K2) -> float:
    K1, K2 = np.asarray(K1), np.asarray(K2)
    return float(np.linalg.norm(K1 / np.linalg.norm(K1) - K2 / np.linalg.norm(K2)))


def part_chain(args):
    X, groups, X_test = _digits_views(args.sources, 2, args.test, 0.1, seed=0)
    A = np.maximum(np.asarray(kssl.graphs.from_groups(groups)), np.asarray(kssl.graphs.knn(X, 3)))
    N, dim, lam = X.shape[0], args.dim, args.lam
    Xall = np.concatenate([X, X_test])
    print(f"== chain: contrastive, lam = {lam}, {args.sources} digits x 2 noisy views, cliques + 3-NN graph, dim = "
          f"{dim}, {args.test} held-out digits, MLP depth 2, {args.optimizer} lr {args.lr}, {args.steps} steps; "
          "distances between normalised induced kernels on the held-out digits")
    analytic_ntk = kssl.solve("contrastive", X, A, kernel=kssl.kernels.ntk(2), dim=dim, lam=lam)
    analytic_nngp = kssl.solve("contrastive", X, A, kernel=kssl.kernels.nngp(2), dim=dim, lam=lam)
    K_ana = analytic_ntk.induced_kernel(X_test)
    K_ana_nngp = analytic_nngp.induced_kernel(X_test)
    print(f"  closed-form loss (analytic ntk) {float(analytic_ntk.loss):.4f}")
    rows = []
    for w in args.widths:
        t = time.time()
        net = networks.mlp(2, w, out_dim=dim)
        key = jax.random.key(w)
        params0 = jax.jit(net.init, static_argnums=1)(key, (X.shape[1],))
        common = dict(network=net, key=key, params0=params0, steps=args.steps, lam=lam,
                      optimizer=optax.sgd(args.lr) if args.optimizer == "sgd" else optax.adam(args.lr))
        s_net = kssl.train_network("contrastive", X, A, train="all", init_scale=args.init_scale, **common)
        s_lin = kssl.train_network("contrastive", X, A, train="all", linearize=True, init_scale=args.init_scale,
                                   **common)
        Theta = np.asarray(networks.empirical_ntk(net.apply, params0, Xall, block_size=args.block))
        coef = kssl.spectral.solve_gram("contrastive", Theta[:N, :N], A, dim=dim, lam=lam)[0]
        F_emp = Theta[N:, :N] @ np.asarray(coef).T
        K_net, K_lin, K_emp = s_net.induced_kernel(X_test), s_lin.induced_kernel(X_test), F_emp @ F_emp.T
        # Readout-only training on the frozen features; closed form with the empirical NNGP.
        s_ro = kssl.train_network("contrastive", X, A, train="readout", **common)
        Psi = np.asarray(jax.vmap(net.features, (None, 0))(params0, Xall))
        coef_ro = kssl.spectral.solve_gram("contrastive", Psi[:N] @ Psi[:N].T, A, dim=dim, lam=lam)[0]
        F_ro = (Psi[N:] @ Psi[:N].T) @ np.asarray(coef_ro).T
        row = dict(width=w, net_lin=_normalised_distance(K_net, K_lin), lin_emp=_normalised_distance(K_lin, K_emp),
                   emp_ana=_normalised_distance(K_emp, K_ana), net_ana=_normalised_distance(K_net, K_ana),
                   ro_emp=_normalised_distance(s_ro.induced_kernel(X_test), F_ro @ F_ro.T),
                   emp_ana_nngp=_normalised_distance(F_ro @ F_ro.T, K_ana_nngp),
                   loss_net=float(s_net.loss), loss_lin=float(s_lin.loss), loss_ro=float(s_ro.loss))
        rows.append(row)
        print("  width {width:5d}  net-lin {net_lin:.4f}  lin-empNTK {lin_emp:.4f}  empNTK-NTK {emp_ana:.4f}  "
              "net-NTK {net_ana:.4f} | readout-empNNGP {ro_emp:.4f}  empNNGP-NNGP {emp_ana_nngp:.4f} | "
              "losses net {loss_net:.4f} lin {loss_lin:.4f} readout {loss_ro:.4f}".format(**row)
              + f"  ({time.time() - t:.0f} s)", flush=True)
    if len(rows) > 1:
        widths = [r["width"] for r in rows]
        print("  log-log slopes against width: " + "  ".join(
            f"{k} {_slope(widths, [r[k] for r in rows]):+.2f}"
            for k in ("net_lin", "lin_emp", "emp_ana", "net_ana", "ro_emp", "emp_ana_nngp")))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["mc", "spread", "chain"], choices=["mc", "spread", "chain"])
    p.add_argument("--draws", type=int, default=8, help="networks per width (mc)")
    p.add_argument("--mc-widths-mlp", type=int, nargs="+", default=[64, 256, 1024, 2048])
    p.add_argument("--mc-widths-cnn", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--seeds", type=int, default=10, help="seeds of the spread part")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024, 2048], help="MLP widths (chain)")
    p.add_argument("--sources", type=int, default=8)
    p.add_argument("--dim", type=int, default=1, help="outputs (train='all' with lam > 0 needs 1)")
    p.add_argument("--lam", type=float, default=0.1)
    p.add_argument("--test", type=int, default=32)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd",
                   help="full-batch gradient descent (the NTK theory's optimiser: Adam's per-parameter steps do not "
                        "shrink with width, so the network leaves the lazy regime) or Adam")
    p.add_argument("--init-scale", type=float, default=0.1)
    p.add_argument("--block", type=int, default=8, help="examples per Jacobian block of the empirical NTK")
    args = p.parse_args(argv)
    print("jax", jax.__version__, jax.default_backend(), "float64" if jnp.zeros(()).dtype == jnp.float64 else "")
    for part in args.parts:
        t = time.time()
        {"mc": part_mc, "spread": part_spread, "chain": part_chain}[part](args)
        print(f"   part {part}: {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
