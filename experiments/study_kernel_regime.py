"""The kernel regime, observed (SPEC.md §7): finite networks against their infinite-width kernels, on digits.

Parts (`--parts`, default all):

- `mc`: Monte Carlo convergence of the empirical NNGP / NTK of random networks (MLP, CNN flatten, CNN gap; depth 2)
  to `nngp`/`ntk`/`cnngp`/`cntk` on 8 digits (8x8), and of the cross-output NTK terms to 0: mean relative Frobenius
  error over draws against width, with the fitted log-log slope (theory: -1/2).
- `spread`: the exact setting of `tests/test_networks.py` (4 random points, two widths, 12 draws) over `--seeds`
  seeds: mean, standard deviation and worst deviation from -1/2 of each fitted slope; this sets the test's tolerance.
- `chain`: `kernel_ssl_jax.lab.regime.chain` (the implementation behind `kssl compare --network`) on this script's
  data: contrastive (`lam = 0.1`, view cliques + 3-NN graph, `dim = 1`: the case where `train="all"` has SPEC's
  ridge exactly, see `network_training`) on noisy views of digits, an MLP (or `--network cnn`) of depth 2 trained
  per width; each link's distance between normalised induced kernels on held-out digits:
  network (all layers, centred output) -> linearised network -> closed form with the empirical NTK at init ->
  closed form with the analytic NTK; and readout-only training -> closed form with the empirical NNGP -> analytic
  NNGP. Distance: `|| K1 / ||K1|| - K2 / ||K2|| ||_F` (`regime.normalised_distance`).

    python experiments/study_kernel_regime.py                       # all parts, a few minutes on 2 CPU cores
    python experiments/study_kernel_regime.py --parts chain --widths 64 256 1024 --steps 3000
    python experiments/study_kernel_regime.py --parts chain --network cnn --widths 8 32 128
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.datasets import load_digits

import kernel_ssl_jax as kssl
from kernel_ssl_jax import networks
from kernel_ssl_jax.lab import regime


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
        print(f"  {name:12s} slopes  " + "  ".join(f"{regime.loglog_slope(widths, errs[:, j]):+.3f}" for j in range(3)))


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
            slopes.append([regime.loglog_slope(widths, errs[:, j]) for j in range(3)])
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


def part_chain(args):
    X, groups, X_test = _digits_views(args.sources, 2, args.test, 0.1, seed=0)
    A = np.maximum(np.asarray(kssl.graphs.from_groups(groups)), np.asarray(kssl.graphs.knn(X, 3)))
    print(f"== chain: {args.objective}, lam = {args.lam}, {args.sources} digits x 2 noisy views, cliques + 3-NN graph, "
          f"dim = {args.dim}, {args.test} held-out digits, {args.network} depth 2, {args.optimizer} lr {args.lr}, "
          f"{args.steps} steps; distances between normalised induced kernels on the held-out digits")
    result = regime.chain(args.objective, X, A, X_test=X_test, network=args.network, widths=args.widths, depth=2,
                          image_shape=(8, 8), readout=args.readout, dim=args.dim, lam=args.lam, steps=args.steps,
                          learning_rate=args.lr, optimizer=args.optimizer, init_scale=args.init_scale,
                          block_size=args.block, progress=lambda line: print("  " + line, flush=True))
    print(regime.format_chain(result))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", nargs="+", default=["mc", "spread", "chain"], choices=["mc", "spread", "chain"])
    p.add_argument("--draws", type=int, default=8, help="networks per width (mc)")
    p.add_argument("--mc-widths-mlp", type=int, nargs="+", default=[64, 256, 1024, 2048])
    p.add_argument("--mc-widths-cnn", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--seeds", type=int, default=10, help="seeds of the spread part")
    p.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024, 2048], help="widths or channels (chain)")
    p.add_argument("--network", choices=regime.NETWORKS, default="mlp", help="network of the chain")
    p.add_argument("--readout", choices=["flatten", "gap"], default="flatten", help="CNN readout (chain)")
    p.add_argument("--objective", default="contrastive", help="objective of the chain (not vicreg_hard)")
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
    p.add_argument("--block", type=int, default=None,
                   help="examples per Jacobian block of the empirical NTK (default: regime.JACOBIAN_BUDGET)")
    args = p.parse_args(argv)
    print("jax", jax.__version__, jax.default_backend(), "float64" if jnp.zeros(()).dtype == jnp.float64 else "")
    for part in args.parts:
        t = time.time()
        {"mc": part_mc, "spread": part_spread, "chain": part_chain}[part](args)
        print(f"   part {part}: {time.time() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
