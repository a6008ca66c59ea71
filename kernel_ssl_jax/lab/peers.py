"""Peer methods of `kssl run` (`eval.peers`): reference rows evaluated on the same label draws as kernel SSL.

- `label_spreading`: scikit-learn's `LabelSpreading` on the clean training AND test inputs (transductive: it sees
  the unlabelled test inputs, never their labels), on the raw inputs. Grid: scikit-learn's defaults (rbf,
  `gamma = 20`, `alpha = 0.2`) and a k-NN kernel with `n_neighbors` in `select.knn` x `alpha` in `select.alpha`.
- `laplacian_eigenmaps`: `sklearn.manifold.SpectralEmbedding` of the same graph as kernel SSL (view cliques + k-NN,
  `graph.cliques`, `graph.mutual`) with the clean training and test samples added as nodes (transductive): each
  clean sample joins the clique of its own views, and the k-NN graph is over all nodes. The probe of `[eval]`
  (cosine k-NN by default) on the embedding. Grid: `select.knn` x `select.clique_weight` x `select.dim` (one
  embedding per graph at the largest dim; smaller dims are its leading columns).
- `laplacian_eigenmaps_knn`: the same on the k-NN graph of the clean training and test inputs alone (no views, no
  cliques): the graph method a user would run without augmentations. Grid: `select.knn` x `select.dim`.
- `kernel_pca`: `sklearn.decomposition.KernelPCA` of the Gram of the views under the base kernel (the Gram of
  `kssl run`, centred by KernelPCA), the clean training and test samples projected (inductive). Grid:
  `select.kernel` x `select.bandwidth_scale` x `select.dim` (nested leading components).

Each builder returns `select.Candidate`s: hyper-parameters, a predictor over training indices (for the selection
protocol of `select`, which never sees the test split) and a predictor of the test labels (scored once, at the end).
Without `--select` each peer is its single default point (scikit-learn's defaults; `ssl.dim` and `graph.knn`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse

from kernel_ssl_jax.lab import select as _select

__all__ = ["label_spreading", "label_spreading_grid", "laplacian_eigenmaps", "kernel_pca", "LABELS"]

LABELS = {
    "label_spreading": "LabelSpreading, transductive",
    "laplacian_eigenmaps": "SpectralEmbedding of the SSL graph, transductive",
    "laplacian_eigenmaps_knn": "SpectralEmbedding of the k-NN graph of the clean inputs, transductive",
    "kernel_pca": "KernelPCA of the views",
}
"""How each peer is labelled in the printed table and results.json (its `probe` field)."""


# --------------------------------------------------------------------------------------------------------------------
# LabelSpreading (transductive, raw inputs)


def label_spreading(X_train, X_test, y_train, grid: Sequence[Mapping[str, Any]]) -> list[_select.Candidate]:
    """One candidate per `LabelSpreading` parameter set of `grid`, fitted on train + test inputs per labelled set."""
    from sklearn.semi_supervised import LabelSpreading

    X_all = np.concatenate([np.asarray(X_train), np.asarray(X_test)])
    n_train = np.asarray(X_train).shape[0]
    y = np.asarray(y_train)

    def make(params):
        cache: dict[bytes, np.ndarray] = {}

        def transduce(idx):
            key = np.asarray(idx).tobytes()
            if key not in cache:
                labels = np.full(X_all.shape[0], -1)
                labels[idx] = y[idx]
                with warnings.catch_warnings():  # rbf at gamma = 20 leaves some points unreached (0 / 0)
                    warnings.simplefilter("ignore")
                    model = LabelSpreading(**params).fit(X_all, labels)
                cache.clear()
                cache[key] = np.asarray(model.transduction_)
            return cache[key]

        return _select.Candidate(dict(params), lambda idx, query: transduce(idx)[query],
                             lambda idx: transduce(idx)[n_train:])

    return [make(p) for p in grid]


def label_spreading_grid(sel: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """scikit-learn's defaults, then (with `[select]`) the k-NN kernel over `select.knn` x `select.alpha`."""
    grid: list[dict[str, Any]] = [{"kernel": "rbf", "gamma": 20.0, "alpha": 0.2}]
    if sel is not None:
        grid += [{"kernel": "knn", "n_neighbors": k, "alpha": a, "max_iter": 100}
                 for k in sel["knn"] if k > 0 for a in sel["alpha"]]
    return grid


# --------------------------------------------------------------------------------------------------------------------
# Laplacian eigenmaps of the SSL graph, or of the plain k-NN graph of the clean inputs (transductive)


def _graph(nodes: np.ndarray, node_groups: np.ndarray | None, knn: int, *, cliques: bool, mutual: bool,
           clique_weight: float = 1.0):
    """Sparse symmetric graph: cliques of equal `node_groups` (>= 0) with edges of weight `clique_weight`, and a
    k-NN graph over `nodes` whose other edges weigh 1 (as `experiment.build_graph` joins them for kernel SSL)."""
    from sklearn.neighbors import kneighbors_graph

    n = nodes.shape[0]
    A = scipy.sparse.csr_matrix((n, n))
    if knn:
        G = kneighbors_graph(nodes, knn, mode="connectivity", include_self=False)
        A = G.minimum(G.T) if mutual else G.maximum(G.T)
    if cliques:
        member = np.flatnonzero(node_groups >= 0)
        E = scipy.sparse.csr_matrix((np.ones(member.size), (member, node_groups[member])),
                                    shape=(n, int(node_groups.max()) + 1))
        C = (E @ E.T).tocsr()
        C.setdiag(0)
        C.eliminate_zeros()
        mask = C.sign()
        A = scipy.sparse.csr_matrix(A - A.multiply(mask) + clique_weight * mask)
        A.eliminate_zeros()
    return A.tocsr()


def laplacian_eigenmaps(views, groups, X_train, X_test, y_train, knns: Sequence[int], dims: Sequence[int],
                        ev: Mapping[str, Any], n_classes: int, *, cliques: bool = True, mutual: bool = False,
                        clique_weights: Sequence[float] = (1.0,), report_weight: bool = False,
                        seed: int = 0) -> list[_select.Candidate]:
    """Candidates over `knns` x `clique_weights` x `dims` (see the module docstring); `views, groups` as `kssl run`
    makes them, or both None for the k-NN graph of the clean training and test inputs alone (no views, no cliques:
    the peer `laplacian_eigenmaps_knn`). `report_weight`: name the clique weight in each candidate's parameters (a
    `select.clique_weight` grid)."""
    from sklearn.manifold import SpectralEmbedding

    Xtr, Xte = (np.asarray(a, dtype=np.float64) for a in (X_train, X_test))
    n_train, n_test = Xtr.shape[0], Xte.shape[0]
    if views is None:
        V, node_groups, cliques, clique_weights = np.zeros((0, Xtr.shape[1])), None, False, [1.0]
    else:
        V = np.asarray(views, dtype=np.float64)
        # Each clean sample joins the clique of its own views; test samples have views only when they are in the
        # pool (`views.transductive`: sources n_train + j).
        groups = np.asarray(groups)
        test_groups = n_train + np.arange(n_test) if groups.max() + 1 == n_train + n_test else -np.ones(n_test, int)
        node_groups = np.concatenate([groups, np.arange(n_train), test_groups])
    n_views = V.shape[0]
    nodes = np.concatenate([V, Xtr, Xte])
    out = []
    for k, w in ((k, w) for k in knns if k > 0 for w in clique_weights):
        A = _graph(nodes, node_groups, k, cliques=cliques, mutual=mutual, clique_weight=w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "graph is not fully connected" for a mutual graph: still embedded
            emb = SpectralEmbedding(n_components=max(dims), affinity="precomputed",
                                    random_state=seed).fit_transform(A)
        F_train, F_test = emb[n_views:n_views + n_train], emb[n_views + n_train:]
        params = {"knn": k, **({"clique_weight": w} if report_weight else {})}
        out += [_select.feature_candidate({**params, "dim": d}, F_train[:, :d], F_test[:, :d], y_train, ev,
                                          n_classes) for d in sorted(dims)]
    return out


# --------------------------------------------------------------------------------------------------------------------
# Kernel PCA of the views (inductive)


def kernel_pca(grams: Sequence[tuple[Mapping[str, Any], Any, Any, Any]], y_train, dims: Sequence[int],
               ev: Mapping[str, Any], n_classes: int, *, seed: int = 0) -> list[_select.Candidate]:
    """Candidates over the `(params, K_views, K_train_views, K_test_views)` of `grams` x `dims`; `params` names the
    Gram's point of the `[select]` grid (kernel, bandwidth factor)."""
    from sklearn.decomposition import KernelPCA

    out = []
    for params, K, K_train, K_test in grams:
        kpca = KernelPCA(n_components=max(dims), kernel="precomputed", eigen_solver="arpack", random_state=seed)
        kpca.fit(np.asarray(K))
        F_train, F_test = kpca.transform(np.asarray(K_train)), kpca.transform(np.asarray(K_test))
        out += [_select.feature_candidate({**params, "dim": d}, F_train[:, :d], F_test[:, :d],
                                          y_train, ev, n_classes) for d in sorted(dims)]
    return out
