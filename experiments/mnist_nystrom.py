"""Full MNIST (or Fashion-MNIST) through the Nystrom closed form: time and peak memory of every stage.

`kssl run` eigendecomposes the N x N Gram of the views (the dense path), so it is limited to a few thousand training
samples (`data.max_train`). This script runs the feature-space path instead: 60,000 training digits x 2 augmented
views = 120,000 views, contrastive with the view-clique graph given as `groups` (nothing N x N is formed), RBF at the
median distance, Nystrom with m k-means++ landmarks; then the features of the 10,000 test digits and a ridge probe on
the clean training features with 10 labels per class and with all labels.

  python experiments/mnist_nystrom.py                          # MNIST, fetched into the cache folder on first use
  python experiments/mnist_nystrom.py --data fashion_mnist --landmarks 1000
  python experiments/mnist_nystrom.py --synthetic              # random 28 x 28 images of the same size, offline

It prints the time of each stage (first call, including compilation) and the peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

import kernel_ssl_jax as kssl
from kernel_ssl_jax import evaluate
from kernel_ssl_jax.lab import data


def _synthetic(n_train: int, n_test: int) -> data.Dataset:
    rng = np.random.default_rng(0)
    X = rng.random((n_train + n_test, 784))
    y = np.arange(n_train + n_test) % 10
    return data.Dataset(X[:n_train], y[:n_train], X[n_train:], y[n_train:], (28, 28), "synthetic")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="mnist", choices=("mnist", "fashion_mnist"))
    ap.add_argument("--synthetic", action="store_true", help="random images of MNIST's size instead (no download)")
    ap.add_argument("--max-train", type=int, default=60000)
    ap.add_argument("--landmarks", type=int, default=2000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--lam", type=float, default=0.1)
    args = ap.parse_args()

    times = {}
    t = time.perf_counter()
    ds = _synthetic(args.max_train, 10000) if args.synthetic else data.load(args.data, max_train=args.max_train)
    times["data"] = time.perf_counter() - t

    t = time.perf_counter()
    aug = kssl.augment.from_config({"rotation": 12.0, "shift": 0.5, "noise": 0.03}, (28, 28))
    views, groups = kssl.augment.make_views(jax.random.key(0), jnp.asarray(ds.X_train), 2, aug)
    views.block_until_ready()
    times["views"] = time.perf_counter() - t

    t = time.perf_counter()
    k = kssl.kernels.rbf(bandwidth=kssl.median_bandwidth(np.asarray(views), max_points=2000))
    sol = kssl.solve("contrastive", views, groups=np.asarray(groups), kernel=k, dim=args.dim, lam=args.lam,
                     method="nystrom", n_landmarks=args.landmarks, key=jax.random.key(0))
    jax.block_until_ready(sol.loss)
    times["solve"] = time.perf_counter() - t

    t = time.perf_counter()
    F_train = np.asarray(sol.features(jnp.asarray(ds.X_train)))
    F_test = np.asarray(sol.features(jnp.asarray(ds.X_test)))
    times["features"] = time.perf_counter() - t

    t = time.perf_counter()
    acc = evaluate.accuracy_vs_labels(
        lambda idx: evaluate.ridge_probe(F_train[idx], ds.y_train[idx], F_test, n_classes=10),
        ds.y_train, ds.y_test, [10, "all"], 3, 0)
    times["evaluate"] = time.perf_counter() - t

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
    print(f"{ds.name}: {views.shape[0]} views of {ds.X_train.shape[0]} samples, Nystrom m = {args.landmarks}, "
          f"dim {args.dim}, lam {args.lam:g}, method {sol.method}")
    print("times (s, first call with compilation): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items())
          + f", total {sum(times.values()):.1f}")
    print(f"peak resident memory {peak:.2f} GiB")
    print("ridge probe accuracy: " + ", ".join(f"{b} labels/class {r['mean']:.3f}" for b, r in acc.items()))


if __name__ == "__main__":
    main()
