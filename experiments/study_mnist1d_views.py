"""MNIST-1D: how much class information the views and the graphs carry (the explanation side of the mnist1d study).

Measured on the TRAINING split only (its labels are read for this analysis, never for choosing anything), for each
augmentation set given with `--views NAME=KEY:VALUE,...`:

- `knn purity`: the fraction of the 10 nearest views (Euclidean distance, the order of the RBF kernel) of a view,
  among the views of OTHER signals, that show a signal of the same class: how many of the k-NN edges of the graph
  join same-class signals (chance 0.1);
- `nn same class`: the same for the single nearest view (the edge the k-NN graph trusts most);
- `clean-to-view nn`: for each clean training signal, whether its nearest view of another signal is of its class:
  what the inductive map sees when it reads a clean signal through the views.

For reference the script also prints the leave-one-out 1-NN accuracy of the clean training signals under the plain
Euclidean distance and under the distance minimised over circular shifts (a translation-invariant nearest neighbour:
the ceiling that a shift augmentation aims at).

Usage:
  python experiments/study_mnist1d_views.py --seeds 0 1 2 \\
      --views none=noise:0.0 \\
      --views old=noise:0.1,mask:0.1 \\
      --views signal=signal_shift:13,time_scale:0.22,amplitude:0.2,slope:0.24,corr_noise:0.05
"""

from __future__ import annotations

import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import augment
from kernel_ssl_jax.lab import data


def _sq_dist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    return np.maximum((A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T, 0.0)


def view_purity(X: np.ndarray, y: np.ndarray, spec: dict, n_views: int, seed: int, k: int = 10) -> dict:
    aug = augment.from_config(spec, None)
    views, groups = augment.make_views(jax.random.key(seed), jnp.asarray(X), n_views, aug)
    V, g = np.asarray(views), np.asarray(groups)
    D = _sq_dist(V, V)
    D[g[:, None] == g[None, :]] = np.inf  # only views of other signals
    nearest = np.argsort(D, axis=1)[:, :k]
    same = y[g[nearest]] == y[g][:, None]
    Dc = _sq_dist(X, V)
    Dc[np.arange(X.shape[0])[:, None] == g[None, :]] = np.inf
    return {"knn purity": same.mean(), "nn same class": same[:, 0].mean(),
            "clean-to-view nn": np.mean(y[g[Dc.argmin(1)]] == y)}


def loo_1nn(X: np.ndarray, y: np.ndarray, shifts: bool) -> float:
    if shifts:
        D = np.min([_sq_dist(X, np.roll(X, s, axis=1)) for s in range(X.shape[1])], axis=0)
    else:
        D = _sq_dist(X, X)
    np.fill_diagonal(D, np.inf)
    return float(np.mean(y[D.argmin(1)] == y))


def _parse(text: str) -> tuple[str, dict]:
    name, _, body = text.partition("=")
    spec = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition(":")
        spec[key] = float(value)
    return name, spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--views", action="append", default=[], metavar="NAME=KEY:VALUE,...")
    parser.add_argument("--n-views", type=int, default=4)
    parser.add_argument("--max-train", type=int, default=600)
    args = parser.parse_args(argv)
    sets = [_parse(v) for v in args.views] or [("none", {})]
    rows: dict[str, list[dict]] = {name: [] for name, _ in sets}
    ref = {"1-NN (LOO, Euclidean)": [], "1-NN (LOO, min over circular shifts)": []}
    for seed in args.seeds:
        ds = data.mnist1d(seed=seed, max_train=args.max_train, max_test=10)
        X, y = np.asarray(ds.X_train, np.float64), np.asarray(ds.y_train)
        for name, spec in sets:
            rows[name].append(view_purity(X, y, spec, args.n_views, seed))
        ref["1-NN (LOO, Euclidean)"].append(loo_1nn(X, y, False))
        ref["1-NN (LOO, min over circular shifts)"].append(loo_1nn(X, y, True))
    print(f"{args.max_train} training signals, {args.n_views} views each, seeds {args.seeds}: mean ± std over seeds\n")
    print("| views | knn purity (10 nearest views) | nearest view same class | clean signal's nearest view |")
    print("|---|---|---|---|")
    for name, spec in sets:
        cells = [np.array([r[m] for r in rows[name]]) for m in ("knn purity", "nn same class", "clean-to-view nn")]
        print(f"| {name} ({', '.join(f'{k} {v:g}' for k, v in spec.items()) or 'identity'}) | "
              + " | ".join(f"{c.mean():.3f} ± {c.std(ddof=1) if c.size > 1 else 0:.3f}" for c in cells) + " |")
    for name, values in ref.items():
        v = np.array(values)
        print(f"\n{name}: {v.mean():.3f} ± {v.std(ddof=1) if v.size > 1 else 0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
