"""Relationship (adjacency) matrices `A` between views, and their Laplacians (SPEC.md §1).

`A` is a dense symmetric non-negative `(N, N)` array. The default graph joins the views of one source: a block of
ones per source, self-loops included (`from_groups`). Graphs built from data (`knn`) or given as weights
(`from_weights`) can be added to it, e.g. `jnp.maximum(from_groups(groups), knn(views, 10))`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import validation as _v

Array = jax.Array

__all__ = [
    "from_groups",
    "knn",
    "from_weights",
    "normalize",
    "NORMALIZATIONS",
    "degree",
    "laplacian",
    "pairs_from_groups",
    "clique_groups",
    "check_adjacency",
    "check_groups",
]


def check_groups(groups, n: int | None = None) -> np.ndarray:
    """Validates group ids and relabels them `0..n_sources-1` in order of first appearance.

    Raises:
      ValueError: if `groups` is not a 1-D integer array, or its length is not `n`.
    """
    g = np.asarray(groups)
    if g.ndim != 1:
        raise ValueError(f"groups must be a 1-D array of source ids, got shape {g.shape}")
    if g.size and not np.issubdtype(g.dtype, np.integer):
        if not (np.issubdtype(g.dtype, np.floating) and np.all(np.isfinite(g)) and np.all(g == np.round(g))):
            raise ValueError(f"groups must hold integer source ids, got dtype {g.dtype}")
        g = g.astype(np.int64)
    if n is not None and g.shape[0] != n:
        raise ValueError(f"groups must have one entry per view: expected length {n}, got {g.shape[0]}")
    _, first, inverse = np.unique(g, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse].astype(np.int32)


def from_groups(groups, dtype=None) -> Array:
    """`A_ij = 1` iff views `i` and `j` come from the same source (self-loops included).

    Args:
      groups: `(N,)` integer source id of each view.
      dtype: float dtype of the result (default: JAX's default float).

    Returns:
      `(N, N)` block-diagonal (up to order) matrix of ones.

    Example:
      >>> from_groups([0, 0, 1, 1]).sum()
      Array(8., dtype=float64)
    """
    g = check_groups(groups)
    dtype = dtype or jnp.zeros(()).dtype
    return jnp.asarray(g[:, None] == g[None, :], dtype=dtype)


def pairs_from_groups(groups) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs `(i, j)`, `i < j`, of views that share a source: the paired views of Barlow Twins.

    Returns:
      `(v1, v2)`, two int arrays of equal length.

    Raises:
      ValueError: if some source has a single view (it cannot be paired).
    """
    g = check_groups(groups)
    counts = np.bincount(g)
    if np.any(counts < 2):
        raise ValueError(f"groups: every source needs at least 2 views to form pairs; source {int(np.argmin(counts))}"
                         " has 1")
    v1, v2 = np.nonzero(np.triu(g[:, None] == g[None, :], k=1))
    return v1.astype(np.int32), v2.astype(np.int32)


def _sq_dists(X: Array, Y: Array) -> Array:
    xx = jnp.sum(X * X, axis=1)[:, None]
    yy = jnp.sum(Y * Y, axis=1)[None, :]
    return jnp.maximum(xx + yy - 2.0 * X @ Y.T, 0.0)


def knn(X, k: int, *, mutual: bool = False, self_loops: bool = False, block_size: int = 2048) -> Array:
    """Symmetric k-nearest-neighbour graph (Euclidean) between the rows of `X`.

    Args:
      X: `(N, d)` points (usually the views).
      k: neighbours per point, not counting the point itself.
      mutual: keep an edge only if each end is among the other's neighbours (default: either).
      self_loops: put ones on the diagonal.
      block_size: rows of the distance matrix computed at a time (memory O(block_size * N)).

    Returns:
      `(N, N)` 0/1 symmetric matrix.

    Raises:
      ValueError: if `X` is not a finite 2-D array, or `k` is not in `[1, N - 1]`.
    """
    # Integer data (e.g. uint8 pixels) would overflow in the squared distances: the default float dtype is used.
    X = _v.array("X", X)
    n = X.shape[0]
    block_size = _v.integer("block_size", block_size)
    k = _v.integer(f"k (neighbours among {n} points)", k, maximum=n - 1)
    return _knn(X, k, bool(mutual), bool(self_loops), min(block_size, n))


@functools.partial(jax.jit, static_argnames=("k", "mutual", "self_loops", "block_size"))
def _knn(X: Array, k: int, mutual: bool, self_loops: bool, block_size: int) -> Array:
    n = X.shape[0]
    rows = []
    for start in range(0, n, block_size):
        block = X[start : start + block_size]
        d2 = _sq_dists(block, X)
        # Exclude the point itself, also when duplicates are at distance 0.
        idx = jnp.arange(block.shape[0])
        d2 = d2.at[idx, start + idx].set(jnp.inf)
        _, nbrs = jax.lax.top_k(-d2, k)
        rows.append(nbrs)
    nbrs = jnp.concatenate(rows, axis=0)
    directed = jnp.zeros((n, n), dtype=X.dtype).at[jnp.arange(n)[:, None], nbrs].set(1.0)
    A = jnp.minimum(directed, directed.T) if mutual else jnp.maximum(directed, directed.T)
    if self_loops:
        A = A.at[jnp.diag_indices(n)].set(1.0)
    return A


def check_adjacency(A, n: int | None = None, name: str = "A", nonnegative: bool = True) -> Array:
    """Validates a relationship matrix: square `(n, n)`, finite, symmetric, non-negative (unless `nonnegative=False`:
    a signed contrastive target, e.g. the centred Gram of the kernel PCA equivalence or `I - (beta/2) L`).

    Raises:
      ValueError: naming `name` and what was expected.
    """
    if isinstance(A, jax.core.Tracer):
        raise TypeError(f"{name} must be a concrete array to be validated, not a traced value")
    An = np.asarray(A)  # checked with numpy: inside an outer jax.jit, jnp ops on a concrete array are staged
    if An.ndim != 2 or An.shape[0] != An.shape[1]:
        raise ValueError(f"{name} must be a square (N, N) matrix, got shape {An.shape}")
    if n is not None and An.shape[0] != n:
        raise ValueError(f"{name} must be ({n}, {n}) to match the {n} views, got shape {An.shape}")
    if not (np.issubdtype(An.dtype, np.number) or An.dtype == bool) or np.issubdtype(An.dtype, np.complexfloating):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {An.dtype}")
    An = An.astype(An.dtype if np.issubdtype(An.dtype, np.floating) else jnp.zeros(()).dtype, copy=False)
    lo, hi = (float(An.min()), float(An.max())) if An.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # min and max are NaN when any entry is (NaN propagates)
        raise ValueError(f"{name} contains NaN or Inf")
    if An.size and not _symmetric(An, 1e-12 * max(hi, -lo, 1.0)):
        raise ValueError(f"{name} must be symmetric")
    if nonnegative and lo < 0:
        raise ValueError(f"{name} must be non-negative (a relationship weight cannot be negative), got minimum "
                         f"{lo:g}")
    return jnp.asarray(An)


def _symmetric(An: np.ndarray, tol: float, block: int = 256) -> bool:
    # |A - A^T| <= tol, compared in square tiles (the transposed read stays in cache; no N x N temporary)
    n = An.shape[0]
    for i in range(0, n, block):
        for j in range(i, n, block):
            if np.max(np.abs(An[i:i + block, j:j + block] - An[j:j + block, i:i + block].T)) > tol:
                return False
    return True


def from_weights(W) -> Array:
    """A weighted graph from a symmetric non-negative weight matrix, validated."""
    return check_adjacency(W, name="W")


def degree(A) -> Array:
    """Degrees `A 1`, shape `(N,)`."""
    return jnp.sum(jnp.asarray(A), axis=1)


NORMALIZATIONS = ("none", "sym")
"""The edge weightings of `normalize`."""


def normalize(A, kind: str = "sym") -> Array:
    """Degree weighting of a relationship matrix.

    Args:
      A: `(N, N)` symmetric non-negative relationship matrix (validated unless traced).
      kind: `"sym"`: the symmetric normalisation `D^-1/2 A D^-1/2` (`D = diag(A 1)`; isolated nodes, of degree 0,
        keep zero rows), whose normalised Laplacian `I - D^-1/2 A D^-1/2` is that of spectral clustering and of
        scikit-learn's `SpectralEmbedding`; `"none"`: `A` unchanged.

    Note that `laplacian(normalize(A))` is `diag(A_sym 1) - A_sym`, not `I - A_sym`: the rows of `A_sym` need
    not sum to 1.

    Raises:
      TypeError: `kind` is not a string, or `A` is not an array of real numbers.
      ValueError: `kind` is not one of `NORMALIZATIONS`, or `A` is not square, symmetric, finite and non-negative.
    """
    kind = _v.choice("kind", kind, NORMALIZATIONS)
    A = jnp.asarray(A) if _v.is_traced(A) else check_adjacency(A)
    if kind == "none":
        return A
    d = degree(A)
    inv_sqrt = jnp.where(d > 0, 1.0 / jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0)
    return (inv_sqrt[:, None] * inv_sqrt[None, :]) * A  # an exactly symmetric scaling of a symmetric A


def laplacian(A) -> Array:
    """Graph Laplacian `L = D - A`."""
    A = jnp.asarray(A)
    return jnp.diag(degree(A)) - A


def clique_groups(A) -> np.ndarray | None:
    """Recognises a view-clique graph: returns `groups` if `A == from_groups(groups)` exactly, else None.

    The solvers use it to take the structured path for the default graph without being told. Cost O(N^2).
    """
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        return None
    if not np.all(np.diag(A) == 1):
        return None
    # Each row's first 1 names its clique; the graph is a union of cliques iff A matches those labels exactly.
    labels = np.argmax(A == 1, axis=1)
    if not np.array_equal(A, (labels[:, None] == labels[None, :]).astype(A.dtype)):
        return None
    return check_groups(labels)
