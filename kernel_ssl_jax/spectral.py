"""Closed-form optimal representations (SPEC.md §3), the `Solution` they produce, and the induced kernel.

All objectives share one eigendecomposition `K = U diag(s) U^T` of the Gram of the training views
(`decompose`). Every target of SPEC.md §3 lives in range(K), so each solver works in the coordinates of `U`:
with `f = sqrt(s / (s + lam))` (the filter `F`) and `g = (s^2 + lam s)^-1/2` (`S^{+1/2}`), both zero outside the
kept eigenvalues, the solution is `C = C_u U^T` for a small `(M, N)` matrix `C_u` found from one eigendecomposition
of the target written in those coordinates. Nothing forms `F`, `S^{+1/2}` or `K^+` as N x N matrices.

When `A` is a view-clique graph (`A = E E^T`, the default), the contrastive target `F A F = (F E)(F E)^T` has rank at
most n (the number of sources), and its eigenpairs come from the `(n, n)` matrix `(F E)^T (F E)`: that is the
"structured" method, exact and cheaper than the dense one. For `lam > 0`, `solve` computes that matrix as
`E^T K (K + lam I)^-1 E` from one Cholesky factorisation, with no eigendecomposition of K at all.

The representer form. For `contrastive` (any `lam`), `barlow` and `lam = 0`, the optimum over all of `H` has the
form `W = C Phi^*` (SPEC.md §1). For `vicreg` and `vicreg_hard` with `lam > 0` it does not: the ridge sits inside
`Q`, so a map that vanishes on every training view adds variance for free (`Z = 0`, `lam W W^* = I` gives loss 0).
Their closed forms here are the optima over the span of the training views, `W = C Phi^*`, which is the meaningful
problem (`tests/test_spectral.py::test_vicreg_ridge_optimum_is_over_the_span_of_the_views` shows the collapse).

The target's top (for vicreg_hard: bottom) `dim` eigenpairs come from LAPACK's subset driver on CPU
(`_eigh_extreme`), which reduces the target to tridiagonal form once and computes only `dim` eigenvectors.

Ties. For the clique graph at `lam = 0` the top eigenvalue is degenerate and the optimum is not unique. Ties are
broken by the eigenvector order LAPACK returns (subset driver on CPU, full eigendecomposition elsewhere), which is
deterministic for a given input and backend, and each eigenvector's sign is fixed so that its largest entry is
positive. Losses, induced kernels on the span, and
subspaces are unique; raw coefficients of a degenerate problem are not, so tests compare the former.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives

Array = jax.Array

DEFAULT_LAM = 0.1
METHODS = ("auto", "dense", "structured", "nystrom", "rff", "linear")
FEATURE_METHODS = ("nystrom", "rff", "linear")
# Above this many views, `method="auto"` leaves the O(N^3) exact paths for Nystrom features (unless A is a view-clique
# graph for contrastive, whose structured path stays exact and needs one Cholesky factorisation).
AUTO_NYSTROM_ABOVE = 20_000
# A target's top `dim` eigenpairs come from LAPACK's subset driver (on CPU) when `dim` is at most this share of its
# size; above it the subset saves little over the full eigendecomposition.
PARTIAL_EIGH_MAX_FRACTION = 0.5

__all__ = [
    "DEFAULT_LAM",
    "GramEigh",
    "Solution",
    "decompose",
    "features",
    "induced_kernel",
    "solve",
    "solve_gram",
    "truncate",
]


class GramEigh(NamedTuple):
    """`K = U diag(s) U^T` with eigenvalues at or below `rcond * max(s)` set to 0 (ascending order).

    Attributes:
      s: `(N,)` kept eigenvalues, zero where dropped.
      U: `(N, N)` eigenvectors, one per column.
      rank: number of kept eigenvalues (a 0-d array).
    """

    s: Array
    U: Array
    rank: Array


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """An optimal (or trained) linear representation in the representer form `f(x) = C k(X_train, x)`.

    Attributes:
      coef: `(dim, N)` coefficients `C`.
      train_x: `(N, d)` training views `X`.
      kernel: the base kernel `k`.
      eigenvalues: `(dim,)` eigenvalues of the target kept by the solver (for `contrastive`/`vicreg` the diagonal of
        `Q = C S C^T`; for `vicreg_hard` the Dirichlet energies; for `barlow` the eigenvalues `l` of SPEC §3.4).
      loss: the objective (SPEC.md §2) at the solution.
      gram_eigenvalues: `(N,)` kept eigenvalues of `K` (ascending, zero where dropped), or empty.
      objective, dim, lam, beta, method: how it was obtained (static metadata).
      loss_history: losses along training for gradient solutions, else empty.
    """

    coef: Array
    train_x: Array
    kernel: Any
    eigenvalues: Array
    loss: Array
    gram_eigenvalues: Array
    loss_history: Array
    objective: str = dataclasses.field(metadata=dict(static=True), default="contrastive")
    dim: int = dataclasses.field(metadata=dict(static=True), default=1)
    lam: float = dataclasses.field(metadata=dict(static=True), default=DEFAULT_LAM)
    beta: float = dataclasses.field(metadata=dict(static=True), default=1.0)
    method: str = dataclasses.field(metadata=dict(static=True), default="dense")

    def features(self, X, block_size: int | None = None) -> Array:
        """`f(x) = C k_X(x)` for each row of `X`: `(n, dim)`. See `features`."""
        return features(self, X, block_size=block_size)

    def induced_kernel(self, Xa, Xb=None, block_size: int | None = None) -> Array:
        """`k*(Xa, Xb) = f(Xa) f(Xb)^T`: `(na, nb)`. See `induced_kernel`."""
        return induced_kernel(self, Xa, Xb, block_size=block_size)

    @property
    def representations(self) -> Array:
        """Training representations `Z = C K`, `(dim, N)` (SPEC layout)."""
        return features(self, self.train_x).T


def features(sol: Solution, X, block_size: int | None = None) -> Array:
    """Out-of-sample representations `f(x) = C k_X(x)`, one row per sample (SPEC.md §3, "Out of sample").

    Sample-wise: row `i` depends on `X[i]` only. With `block_size`, rows are processed in blocks so memory stays
    O(block_size * N).

    Args:
      sol: a `Solution`.
      X: `(n, d)` points.
      block_size: rows per block, or None for one block.

    Returns:
      `(n, dim)` array.

    Raises:
      ValueError: if `X` is not 2-D with the training feature dimension, or holds NaN/Inf.
    """
    X = _check_x(X, name="X", d=sol.train_x.shape[1])
    X = X.astype(sol.train_x.dtype)
    n = X.shape[0]
    if block_size is None or block_size >= n:
        return _kernels.gram(sol.kernel, X, sol.train_x) @ sol.coef.T
    return jnp.concatenate(
        [_kernels.gram(sol.kernel, X[i : i + block_size], sol.train_x) @ sol.coef.T for i in range(0, n, block_size)]
    )


def induced_kernel(sol: Solution, Xa, Xb=None, block_size: int | None = None) -> Array:
    """Induced kernel `K*_ab = k(Xa, X) C^T C k(X, Xb)` between two sets of points (`Xb=None`: `Xb = Xa`).

    Returns:
      `(na, nb)` array.
    """
    Fa = features(sol, Xa, block_size)
    Fb = Fa if Xb is None else features(sol, Xb, block_size)
    return Fa @ Fb.T


# --------------------------------------------------------------------------------------------------------------------
# Validation


def _check_x(X, name: str = "X", d: int | None = None) -> Array:
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"{name} must have {d} features (as the training views), got {X.shape[1]}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.zeros(()).dtype)
    if not bool(jnp.all(jnp.isfinite(X))):
        raise ValueError(f"{name} contains NaN or Inf")
    return X


def _check_scalar(name: str, value, *, allow_zero: bool = True) -> float:
    return float(_kernels._check_nonneg(name, value, strict=not allow_zero))


def _check_dim(dim) -> int:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"dim must be a positive integer, got {dim!r}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return int(dim)


def _check_rank(dim: int, rank: int, rcond: float) -> None:
    if dim > rank:
        raise ValueError(f"dim = {dim} exceeds the rank of the Gram matrix ({rank} at rcond={rcond:.3g}); "
                         f"the largest feasible dim is {rank}")


def _is_linear(kernel) -> bool:
    return isinstance(kernel, _kernels.Kernel) and kernel.name == "linear"


def _check_pairs(pairs, n: int) -> tuple[Array, Array]:
    try:
        v1, v2 = pairs
    except (TypeError, ValueError):
        raise ValueError("pairs must be a tuple (v1, v2) of index arrays of paired views") from None
    v1, v2 = np.asarray(v1), np.asarray(v2)
    if v1.ndim != 1 or v1.shape != v2.shape or v1.size == 0:
        raise ValueError(f"pairs must be two non-empty 1-D index arrays of equal length, got shapes {v1.shape}, "
                         f"{v2.shape}")
    if not (np.issubdtype(v1.dtype, np.integer) and np.issubdtype(v2.dtype, np.integer)):
        raise ValueError("pairs must hold integer view indices")
    if min(v1.min(), v2.min()) < 0 or max(v1.max(), v2.max()) >= n:
        raise ValueError(f"pairs must index views in [0, {n - 1}]")
    return jnp.asarray(v1, dtype=jnp.int32), jnp.asarray(v2, dtype=jnp.int32)


# --------------------------------------------------------------------------------------------------------------------
# The closed forms, in the eigenbasis of K


@functools.partial(jax.jit, static_argnames=())
def decompose(K: Array, rcond) -> GramEigh:
    """Eigendecomposition of a Gram `K`, keeping eigenvalues above `rcond * max(s)` (SPEC.md §3)."""
    s, U = jnp.linalg.eigh(0.5 * (K + K.T))
    keep = s > rcond * jnp.max(s)
    return GramEigh(jnp.where(keep, s, 0.0), U, jnp.sum(keep))


def truncate(eig: GramEigh, rcond: float) -> GramEigh:
    """Keeps the eigenpairs of `eig` above `rcond` times the largest eigenvalue, as an `(N, r)` basis.

    Every solver accepts the compact form and gives the same solution as the full decomposition at this `rcond` (the
    dropped directions carry zero weight in every closed form), with targets of size `r x r` instead of `N x N`. A
    study can decompose once with `rcond = 0` and truncate at several cut-offs. Runs on the host (the rank sets
    a shape).
    """
    s = np.asarray(eig.s)
    idx = np.flatnonzero(s > rcond * s.max())
    if idx.size == s.size:  # nothing dropped: no copy of U
        return GramEigh(eig.s, eig.U, jnp.asarray(idx.size))
    return GramEigh(eig.s[idx], eig.U[:, idx], jnp.asarray(idx.size))


def _fix_signs(V: Array) -> Array:
    # Deterministic signs: the largest-magnitude entry of each eigenvector is positive.
    idx = jnp.argmax(jnp.abs(V), axis=0)
    signs = jnp.sign(V[idx, jnp.arange(V.shape[1])])
    return V * jnp.where(signs == 0, 1.0, signs)[None, :]


def _filters(s: Array, lam) -> tuple[Array, Array]:
    """`f = sqrt(s / (s + lam))` (the filter F) and `g = (s^2 + lam s)^-1/2` (S^{+1/2}), zero where s = 0."""
    kept = s > 0
    safe = jnp.where(kept, s, 1.0)
    f = jnp.where(kept, jnp.sqrt(safe / (safe + lam)), 0.0)
    g = jnp.where(kept, 1.0 / jnp.sqrt(safe * safe + lam * safe), 0.0)
    return f, g


def _eigh_subset_host(R, lo: int, hi: int):
    # LAPACK's ?syevr for the eigenpairs lo..hi (ascending): one tridiagonal reduction, then only hi - lo + 1
    # eigenvectors are computed and back-transformed. Inside a degenerate cluster ?syevr may return fewer pairs than
    # asked (scipy/scipy#13913; here: the vicreg target of a view-clique graph, eigenvalue 1 with multiplicity n, at
    # N = 4000: 29 of 32, and ?syevx the same) or fail: then the full divide-and-conquer driver, at the price of a
    # second tridiagonal reduction. NaN in, NaN out (as jnp.linalg.eigh), never a host exception.
    R = np.asarray(R)
    k = hi - lo + 1
    if not np.all(np.isfinite(R)):
        return np.full((k,), np.nan, R.dtype), np.full((R.shape[0], k), np.nan, R.dtype)
    try:
        w, V = scipy.linalg.eigh(R, subset_by_index=(lo, hi), driver="evr", check_finite=False)
        if (w.shape == (k,) and np.all(np.isfinite(w)) and np.all(np.isfinite(V))
                and np.max(np.abs(V.T @ V - np.eye(k))) < 1e3 * R.shape[0] * np.finfo(R.dtype).eps):
            return w.astype(R.dtype), V.astype(R.dtype)
    except np.linalg.LinAlgError:
        pass
    w, V = scipy.linalg.eigh(R, driver="evd", check_finite=False)
    return w[lo : hi + 1].astype(R.dtype), V[:, lo : hi + 1].astype(R.dtype)


def _eigh_extreme(R: Array, k: int, largest: bool, partial: bool = True) -> tuple[Array, Array]:
    """The `k` largest (descending) or smallest (ascending) eigenpairs of a symmetric `(n, n)` matrix.

    On CPU, with `partial` and for `k <= PARTIAL_EIGH_MAX_FRACTION * n`, LAPACK's subset driver (`scipy.linalg.eigh(...,
    subset_by_index, driver="evr")` through `jax.pure_callback`, sequential under `vmap`); elsewhere, and for larger
    `k`, `jnp.linalg.eigh` (a callback on an accelerator would copy the matrix to the host). The platform is chosen
    per lowering (`jax.lax.platform_dependent`), so one jitted function serves both. Within a degenerate eigenvalue
    cut by `k` the two drivers may return different (equally optimal) vectors: SPEC §3.5 ties.
    """
    n = R.shape[-1]

    def full(R):
        w, V = jnp.linalg.eigh(R)
        return (w[::-1][:k], V[:, ::-1][:, :k]) if largest else (w[:k], V[:, :k])

    if not partial or k > PARTIAL_EIGH_MAX_FRACTION * n:
        return full(R)
    lo, hi = (n - k, n - 1) if largest else (0, k - 1)

    def partial(R):
        shapes = (jax.ShapeDtypeStruct((k,), R.dtype), jax.ShapeDtypeStruct((n, k), R.dtype))
        w, V = jax.pure_callback(functools.partial(_eigh_subset_host, lo=lo, hi=hi), shapes, R,
                                 vmap_method="sequential")
        return (w[::-1], V[:, ::-1]) if largest else (w, V)

    return jax.lax.platform_dependent(R, cpu=partial, default=full)


def _top(R: Array, dim: int, partial: bool = True) -> tuple[Array, Array]:
    """`[R]_M+`: the `dim` largest eigenpairs of a symmetric matrix, descending, eigenvalues clipped at 0."""
    w, V = _eigh_extreme(0.5 * (R + R.T), dim, largest=True, partial=partial)
    return jnp.maximum(w, 0.0), _fix_signs(V)


def _pad_rows(C_u: Array, w: Array, dim: int) -> tuple[Array, Array]:
    # A target of rank < dim yields zero rows: they are optimal (eigenvalue 0) and keep the output shape fixed.
    missing = dim - C_u.shape[0]
    if missing <= 0:
        return C_u, w
    return jnp.pad(C_u, ((0, missing), (0, 0))), jnp.pad(w, (0, missing))


@functools.partial(jax.jit, static_argnames=("objective", "dim", "n_sources", "partial"))
def _solve_eigh(objective, eig: GramEigh, A, groups, v1, v2, lam, beta, dim, n_sources, partial=True):
    """Returns `(C, eigenvalues)` for one objective from the eigendecomposition of K (SPEC.md §3.1-3.4).

    `partial=False` keeps the target's subset driver off (`_subset_cuts_a_cluster`).
    """
    s, U = eig.s, eig.U
    f, g = _filters(s, lam)
    kept = (s > 0).astype(s.dtype)
    if objective == "contrastive" and n_sources:
        # Structured: F A F = (F E)(F E)^T with E^T U a segment sum; eigenpairs from the (n, n) Gram of F E.
        B = jax.ops.segment_sum(U, groups, num_segments=n_sources) * f[None, :]  # (n, N) = (diag(f) U^T E)^T
        mu, W = _top(B @ B.T, min(dim, n_sources))
        # C_u = diag(sqrt mu) V^T diag(g) with V = B^T W diag(mu^-1/2): the square roots cancel.
        C_u, mu = _pad_rows((W.T @ B) * g[None, :], mu, dim)
        return C_u @ U.T, mu
    if objective == "barlow":
        # U^T S12 U = sym(diag(s) U[v1]^T U[v2] diag(s)); R = K^{+1/2} S12 K^{+1/2} in U coordinates.
        r = jnp.sqrt(s)
        P = (U[v1].T @ U[v2]) * (r[:, None] * r[None, :])
        ell, Qv = _top(P, dim)
        ginv = jnp.where(s > 0, 1.0 / jnp.where(s > 0, r, 1.0), 0.0)
        C_u = (Qv.T / jnp.sqrt(jnp.where(ell > 0, ell, 1.0))[:, None]) * ginv[None, :]
        return jnp.where((ell > 0)[:, None], C_u, 0.0) @ U.T, ell
    if objective == "contrastive":
        FA = f[:, None] * (U.T @ A @ U)  # diag(f) U^T A U
        mu, V = _top(FA * f[None, :], dim)
        # C_u = diag(sqrt mu) V^T diag(g) = diag(mu^-1/2) V^T diag(f) U^T A U diag(f g), as V^T R = diag(mu) V^T.
        # f g = 1 / (s + lam) is bounded by 1 / lam where g is not: a direction with tiny s enters with its small
        # weight instead of an amplified rounding error, so `solve` need not drop any direction when lam > 0.
        h = jnp.where(s > 0, 1.0 / jnp.where(s > 0, s + lam, 1.0), 0.0)
        # Numerically zero target eigenvalues get zero rows (optimal, as beyond the target's rank).
        live = mu > mu[0] * s.shape[0] * jnp.finfo(s.dtype).eps
        C_u = (V.T @ FA) * h[None, :] / jnp.sqrt(jnp.where(live, mu, 1.0))[:, None]
        return jnp.where(live[:, None], C_u, 0.0) @ U.T, mu
    degrees = jnp.sum(A, axis=1)
    FLF = f[:, None] * (U.T @ (jnp.diag(degrees) - A) @ U) * f[None, :]
    if objective == "vicreg":
        mu, V = _top(jnp.diag(kept) - 0.5 * beta * FLF, dim, partial)
        return (jnp.sqrt(mu)[:, None] * V.T * g[None, :]) @ U.T, mu
    # vicreg_hard: the smallest eigenvectors of F L F within range(K). Directions outside the range are lifted
    # above the spectrum of F L F (whose norm is at most ||L|| <= 2 max degree) so they are never chosen.
    lift = 2.0 * jnp.max(degrees) + 1.0
    w, V = _eigh_extreme(0.5 * (FLF + FLF.T) + jnp.diag(lift * (1.0 - kept)), dim, largest=False, partial=partial)
    Y = _fix_signs(V).T
    return (Y * g[None, :]) @ U.T, w


@functools.partial(jax.jit, static_argnames=("dim", "n_sources"))
def _solve_clique_cholesky(K, groups, lam, dim, n_sources):
    """Contrastive with a view-clique `A = E E^T` and `lam > 0`, without an eigendecomposition of K.

    The target's nonzero eigenpairs come from `H = E^T F^2 E = E^T K (K + lam I)^-1 E = E^T E - lam E^T Y` with
    `Y = (K + lam I)^-1 E` (one Cholesky factorisation), and `C = W_M^T Y^T` since `F S^{+1/2} = (K + lam I)^-1`
    on range(K). Directions of K below `rcond` are not dropped but enter with weight `s / (s + lam)`, a difference
    of order `rcond * max(s) / lam` from the dense path.
    """
    N = K.shape[0]
    E = jax.nn.one_hot(groups, n_sources, dtype=K.dtype)
    factor = jax.scipy.linalg.cho_factor(K + lam * jnp.eye(N, dtype=K.dtype), lower=True)
    Y = jax.scipy.linalg.cho_solve(factor, E)
    H = E.T @ E - lam * (E.T @ Y)
    mu, W = _top(H, min(dim, n_sources))
    C, mu = _pad_rows(W.T @ Y.T, mu, dim)
    return C, mu


def check_barlow_feasible(eigenvalues, dim: int, rcond: float) -> None:
    """Raises unless the top `dim` Barlow eigenvalues `l` (SPEC §3.4) are positive, naming the largest feasible dim."""
    tol = rcond * float(jnp.max(jnp.abs(eigenvalues)))
    feasible = int(jnp.sum(eigenvalues > tol))
    if feasible < dim:
        raise ValueError(f"barlow: only {feasible} directions have positive cross-view correlation, so "
                         f"sym(Z1 Z2^T) = I cannot hold for dim = {dim}; the largest feasible dim is {feasible}")


def _solver_rcond(objective: str, lam: float, rcond: float) -> float:
    """The DEFAULT cut-off on K's eigenvalues (when the caller gives no `rcond`): `rcond`, or 0 where the solution is
    bounded without one. An explicit `rcond` is always applied as given.

    Contrastive with `lam > 0` weights direction `s` by `s / (s + lam)` and its coefficients by `1 / (s + lam)`
    (`_solve_eigh`), so it keeps every positive eigenvalue, as the Cholesky and feature paths do. Dropping those
    below `rcond` instead removes weights of up to `rcond * max(s) / lam`: with the default `N * eps`
    that is rounding in float64 but cost 7.6e-2 of the loss in float32 (N = 2000, k-NN graph, lam = 0.1;
    `experiments/bench_solve.py`), against 8e-7 without the cut. The others divide by `s` or `sqrt(s)` without a
    bound (pseudo-inverses; the vicreg optima over the span sit on K's smallest eigenvalues) and keep the cut-off.
    """
    return 0.0 if objective == "contrastive" and lam > 0 else rcond


def _subset_cuts_a_cluster(objective: str, A, dim: int) -> bool:
    """Whether the `dim` extreme eigenpairs of the target cut through an exactly degenerate eigenvalue.

    The vicreg target `P - (beta/2) F L F` has eigenvalue 1, and `F L F` (vicreg_hard) eigenvalue 0, once for each
    connected component of `A` (`F v` constant on each component). With more components than `dim` (a view-clique
    graph has one per source) the optimum is any `dim`-dimensional subspace of that eigenspace, and LAPACK's subset
    driver, asked to cut through it, is unreliable (`_eigh_subset_host`): the full driver is used instead.
    """
    if objective not in ("vicreg", "vicreg_hard") or A is None:
        return False
    n_components, _ = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(np.asarray(A) != 0),
                                                                directed=False)
    return n_components > dim


def solve_gram(objective: str, K, A=None, *, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
               pairs=None, rcond: float | None = None, method: str = "auto", eig: GramEigh | None = None):
    """Closed form from a precomputed Gram `K` of the training views. Returns `(coef, eigenvalues, eig, method)`.

    This is the numerical core of `solve` (which validates its input first); `eig` lets several objectives share
    one eigendecomposition of `K`.
    """
    K = jnp.asarray(K)
    N = K.shape[0]
    default_rcond = rcond is None
    if default_rcond:
        rcond = N * float(jnp.finfo(K.dtype).eps)
    if eig is None:
        eig = decompose(K, _solver_rcond(objective, lam, rcond) if default_rcond else rcond)
    groups, n_sources = jnp.zeros((N,), jnp.int32), 0
    if objective == "contrastive" and method in ("auto", "structured"):
        found = _graphs.clique_groups(A)
        if found is not None:
            groups, n_sources, method = jnp.asarray(found), int(found.max()) + 1, "structured"
        elif method == "structured":
            raise ValueError("method='structured' needs A to be a view-clique graph (graphs.from_groups)")
    elif method == "structured":
        raise ValueError(f"method='structured' is available for 'contrastive' only, not {objective!r}")
    if method == "auto":
        method = "dense"
    v1, v2 = pairs if pairs is not None else (jnp.zeros((0,), jnp.int32),) * 2
    if A is None:
        A = jnp.zeros((0, 0), K.dtype)
    partial = not _subset_cuts_a_cluster(objective, A, dim)
    coef, w = _solve_eigh(objective, eig, jnp.asarray(A, K.dtype), groups, v1, v2, lam, beta, dim, n_sources,
                          partial=partial)
    return coef, w, eig, method


def solve(objective: str, X, A=None, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
          pairs=None, groups=None, rcond: float | None = None, method: str = "auto", dtype=None,
          block_size: int | None = None, **feature_options) -> Solution:
    """Optimal linear representation in the kernel regime, in closed form (SPEC.md §3).

    Args:
      objective: `"contrastive"`, `"vicreg"`, `"vicreg_hard"` or `"barlow"`.
      X: `(N, d)` training views.
      A: `(N, N)` relationship matrix (all objectives but `barlow`), e.g. `graphs.from_groups(groups)`.
      kernel: a `kernels.Kernel` (or a callable `k(x, y)` on single examples).
      dim: output dimension M, at most the rank of K (after `rcond`).
      lam: ridge strength on the map (`lam ||W||_HS^2`), default 0.1, in the units of K's eigenvalues.
        `lam = 0` is the pseudo-inverse solution (pure instance discrimination on training views). Unused by
        `barlow`, whose solution is the minimum-norm one.
      beta: invariance weight of `vicreg` (ignored by the others).
      pairs: `(v1, v2)` index arrays of paired views, for `barlow` (`graphs.pairs_from_groups`).
      rcond: eigenvalues of K at or below `rcond * max` are dropped; default `N * eps`. The rank at `rcond` bounds
        `dim`. Without an explicit `rcond`, contrastive with `lam > 0` keeps every positive eigenvalue: its filter is
        bounded and the default cut-off would only add an error of `rcond * max / lam` (7.6e-2 of the loss in
        float32 at N = 2000). An explicit `rcond` is applied as given (e.g. to keep the spectrum of a study fixed).
      groups: `(N,)` source id of each view, instead of `A`: the view-clique graph `graphs.from_groups(groups)`.
        The feature-space methods never form it, so at large N pass `groups`, not `A`.
      method: `"auto"`, `"dense"`, `"structured"` (contrastive with a view-clique `A`), or a feature-space closed form
        (`lowrank.solve_features`): `"nystrom"` (any kernel), `"rff"` (rbf/laplacian), `"linear"` (linear kernel,
        exact). `"auto"` takes linear for the linear kernel with fewer input dimensions than views (O(N d^2), with the
        dense path's `rcond` and rank check), else structured when it applies, Nystrom features above
        `AUTO_NYSTROM_ABOVE` views, else dense; the one used is recorded in `Solution.method`.
      dtype: float dtype of the computation; default float64 when x64 is enabled, else float32.
      block_size: rows per block when computing the Gram (or the features).
      **feature_options: options of the feature-space methods (`n_landmarks`, `n_features`, `landmarks`, `key`,
        `devices`, `shard`; see `lowrank.solve_features`).

    Returns:
      A `Solution`.

    Raises:
      ValueError: bad shapes, NaN/Inf, non-symmetric or negative `A`, negative `lam`/`beta`, unknown objective or
        method, `dim` larger than the rank of K (the message gives the largest feasible value), or a `barlow`
        problem without `dim` positive correlation directions.
      TypeError: `dim` that is not an integer, `kernel` that is not callable.

    Example:
      >>> X = jax.random.normal(jax.random.key(0), (20, 3))
      >>> groups = jnp.repeat(jnp.arange(10), 2)
      >>> sol = solve("contrastive", X, _graphs.from_groups(groups), kernel=_kernels.rbf(1.0), dim=4)
      >>> sol.features(X).shape
      (20, 4)
    """
    _objectives.check_objective(objective)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if not callable(kernel):
        raise TypeError(f"kernel must be a kernels.Kernel or a callable k(x, y), got {kernel!r}")
    dim = _check_dim(dim)
    lam = _check_scalar("lam", lam)
    beta = _check_scalar("beta", beta)
    if rcond is not None:
        rcond = _check_scalar("rcond", rcond)
    X = _check_x(X)
    if dtype is not None:
        X = X.astype(dtype)
    N = X.shape[0]
    if groups is not None:
        if A is not None:
            raise ValueError("give either A or groups, not both")
        groups = _graphs.check_groups(groups, N)
    auto_linear = method == "auto" and _is_linear(kernel) and X.shape[1] < N and not feature_options
    if auto_linear:
        method = "linear"
    if method == "auto" and N > AUTO_NYSTROM_ABOVE and not (objective == "contrastive" and lam > 0 and (
            groups is not None or (A is not None and _graphs.clique_groups(A) is not None))):
        method = "nystrom"
    if method in FEATURE_METHODS:
        from kernel_ssl_jax import lowrank  # the feature-space solvers build on this module

        if auto_linear:  # the dense path's cut-off and rank check, so that "auto" keeps its meaning
            rcond = N * float(jnp.finfo(X.dtype).eps) if rcond is None else rcond
        sol = lowrank.solve_features(objective, X, A, kernel=kernel, dim=dim, lam=lam, beta=beta, pairs=pairs,
                                     groups=groups, method=method, rcond=rcond, block_size=block_size, dtype=dtype,
                                     **feature_options)
        if auto_linear:
            _check_rank(dim, int(jnp.sum(sol.gram_eigenvalues > 0)), rcond)
        return sol
    if feature_options:
        raise TypeError(f"options {sorted(feature_options)} apply to the feature-space methods {list(FEATURE_METHODS)}"
                        f" only, not method={method!r}")
    if groups is not None and objective != "barlow":
        A = _graphs.from_groups(groups, dtype=X.dtype)
    if groups is not None and objective == "barlow" and pairs is None:
        pairs = _graphs.pairs_from_groups(groups)
    if objective == "barlow":
        if pairs is None:
            raise ValueError("barlow needs pairs=(v1, v2), the index arrays of paired views "
                             "(see graphs.pairs_from_groups)")
        pairs = _check_pairs(pairs, N)
        A_checked = None
    else:
        if A is None:
            raise ValueError(f"{objective} needs the relationship matrix A, e.g. graphs.from_groups(groups)")
        A_checked = _graphs.check_adjacency(A, N).astype(X.dtype)
    if dim > N:
        raise ValueError(f"dim must be at most the number of views N = {N}, got {dim}")
    K = _kernels.gram(kernel, X, block_size=block_size)
    if not bool(jnp.all(jnp.isfinite(K))):
        raise ValueError("the Gram matrix of X under kernel has NaN or Inf: check the kernel parameters")
    default_rcond = rcond is None
    if default_rcond:
        rcond = N * float(jnp.finfo(K.dtype).eps)
    cliques = None
    if objective == "contrastive" and method in ("auto", "structured"):
        # Given groups already name the cliques; otherwise recognise them in A (O(N^2), once).
        cliques = groups if groups is not None else _graphs.clique_groups(A_checked)
        if cliques is None and method == "auto":
            method = "dense"
    if cliques is not None and lam > 0:
        # Every dim <= N is feasible here: directions beyond the target's rank (n sources) are zero rows.
        coef, w = _solve_clique_cholesky(K, jnp.asarray(cliques), lam, dim, int(cliques.max()) + 1)
        gram_eigenvalues, used = jnp.zeros((0,), K.dtype), "structured"
    else:
        eig = decompose(K, 0.0)
        s_host = np.asarray(eig.s)
        _check_rank(dim, int(np.sum(s_host > rcond * s_host.max())), rcond)
        # The targets only live on range(K): solve them in the kept eigenbasis, r x r instead of N x N.
        cut = _solver_rcond(objective, lam, rcond) if default_rcond else rcond
        coef, w, _, used = solve_gram(objective, K, A_checked, dim=dim, lam=lam, beta=beta, pairs=pairs,
                                      rcond=rcond, method=method, eig=truncate(eig, cut))
        gram_eigenvalues = jnp.where(eig.s > rcond * s_host.max(), eig.s, 0.0)
    if objective == "barlow":
        check_barlow_feasible(w, dim, rcond)
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A_checked, beta=beta)
    loss_value = _objectives.loss_from_coef(objective, coef, K, lam=lam, **kw)
    return Solution(coef=coef, train_x=X, kernel=kernel, eigenvalues=w, loss=loss_value,
                    gram_eigenvalues=gram_eigenvalues,
                    loss_history=jnp.zeros((0,), X.dtype), objective=objective, dim=dim, lam=lam, beta=beta,
                    method=used)
