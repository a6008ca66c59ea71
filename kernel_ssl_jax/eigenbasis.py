"""The one closed-form core (SPEC.md §3): every objective solved in an orthonormal eigenbasis of the views' Gram.

Every solver path only prepares the inputs of this module and maps its output back:

- `s`: the kept eigenvalues of the Gram `K` of the training views (zero where dropped), in some orthonormal basis;
- the **target in whitened eigen-coordinates** `T = diag(sqrt s) U^T X U diag(sqrt s)` (r x r), where `U` are the
  eigenvectors of `K` and `X` is `A` (contrastive), the Laplacian `L` (vicreg, vicreg_hard) or the cross-view
  matrix `E1 E2^T` (barlow: `T = diag(sqrt s) U[v1]^T U[v2] diag(sqrt s)`). For contrastive with a low-rank
  `A = B_0^T B_0` the path may pass the factor `B = B_0 U diag(sqrt s)` (n x r) instead (`Factor`).

In these coordinates a view's feature vector is `y(x) = diag(s^-1/2) U^T k_X(x)` (kernel PCA whitening), and the
core returns `Cs` (M x r) with `f(x) = Cs y(x)`. The dense path (`spectral`: `U` from `eigh(K)`) maps back with
`C = Cs diag(s^-1/2) U^T`; the feature-space paths (`lowrank`: `Psi^T Psi = V diag(s) V^T`, so that
`T = V^T (Psi^T X Psi) V`) with `W = Cs V^T`. With `t = (s + lam)^-1/2` on the kept eigenvalues (SPEC's filter and
`S^{+1/2}` in one bounded factor, `F S^{+1/2} = t^2` and `F = t sqrt(s)`), the closed forms are:

| objective | eigenproblem (top/bottom M) | `Cs` |
|---|---|---|
| contrastive | `R = t T t`, top `(mu, V)` clipped at 0 | `diag(sqrt mu) V^T diag(t)` |
| vicreg | `R = P - (beta/2) t T t`, top | `diag(sqrt mu) V^T diag(t)` |
| vicreg_hard | `t T t` restricted to the kept range, bottom `(w, V)` | `V^T diag(t)` |
| barlow | `sym(T)` on the kept range, top `(l, V)`, all `l > 0` | `diag(l^-1/2) V^T` |

The same closed forms (contrastive, vicreg) in a non-orthonormal feature basis, without eigendecomposing the second
moment, are `solve_pencil` (a generalized symmetric-definite eigenproblem; the Cholesky paths use it).

Everything else an objective needs in one place: the default cut-off (`default_rcond`, `solver_rcond`), the rank
and Barlow feasibility checks (`check_rank`, `check_barlow_feasible`), tie-breaking (`fix_signs`), the partial
eigensolvers (`eigh_extreme`, `eigh_pencil_extreme`) and the dense kernels the paths share (`cholesky`,
`triangular_moments`, `moment`, `eigvalsh`): each goes to LAPACK / BLAS on the host on CPU (`jax.pure_callback`) and
stays in `jax.numpy` elsewhere, chosen per lowering by `jax.lax.platform_dependent` (no host round trip on an
accelerator).

Ties. For the clique graph at `lam = 0` the top eigenvalue is degenerate and the optimum is not unique. Ties are
broken by the eigenvector order LAPACK returns (subset driver on CPU, full eigendecomposition elsewhere), which is
deterministic for a given input and backend, and each eigenvector's sign is fixed so that its largest entry is
positive. Losses, induced kernels on the span and subspaces are unique; raw coefficients of a degenerate problem are
not, so tests compare the former.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph

Array = jax.Array

DEFAULT_LAM = 0.1
# A target's top `dim` eigenpairs come from LAPACK's subset driver (on CPU) when `dim` is at most this share of its
# size; above it the subset saves little over the full eigendecomposition.
PARTIAL_EIGH_MAX_FRACTION = 0.5
# The block Krylov eigensolver (`eigh_operator_top`): Krylov blocks per pass (its basis is `width (depth + 1)`
# columns) and passes before the caller falls back to an exact solver.
KRYLOV_DEPTH = 10
KRYLOV_PASSES = 3

__all__ = [
    "DEFAULT_LAM",
    "Factor",
    "KRYLOV_DEPTH",
    "KRYLOV_MIN_N",
    "KRYLOV_PASSES",
    "check_barlow_feasible",
    "check_rank",
    "cholesky",
    "default_rcond",
    "KrylovEigh",
    "krylov_fallback_reason",
    "krylov_pays",
    "krylov_width",
    "eigh_extreme",
    "eigh_operator_top",
    "eigh_pencil_extreme",
    "eigvalsh",
    "fix_signs",
    "live",
    "moment",
    "rank",
    "solve",
    "solve_factored",
    "pencil_rows",
    "solve_pencil",
    "solve_pencil_krylov",
    "solver_rcond",
    "subset_cuts_a_cluster",
    "top",
    "triangular_moments",
]


class Factor(NamedTuple):
    """A contrastive target given by a factor: `T = B^T B` with `B` `(n, r)` (a view-clique `A = E E^T`: `n`
    sources, `B = E^T U diag(sqrt s)`, the per-source sums of the whitened coordinates)."""

    B: Array


# --------------------------------------------------------------------------------------------------------------------
# Cut-offs and checks


def default_rcond(size: int, dtype) -> float:
    """The default relative cut-off on the eigenvalues of a `(size, size)` Gram or second moment: `size * eps`."""
    return size * float(jnp.finfo(dtype).eps)


def solver_rcond(objective: str, lam: float, rcond: float) -> float:
    """The cut-off a solver applies to the DEFAULT `rcond`: 0 where the solution is bounded without one.

    Contrastive with `lam > 0` weights each direction by `t = (s + lam)^-1/2`, bounded by `lam^-1/2`, so it keeps
    every positive eigenvalue (the Cholesky and feature paths do too). Dropping those below `rcond` instead removes
    weights of up to `rcond * max(s) / lam`: rounding in float64, but 7.6e-2 of the loss in float32 (N = 2000, k-NN
    graph, lam = 0.1). The others need pseudo-inverses (the vicreg optima over the span sit on K's smallest
    eigenvalues) and keep the cut-off. An explicit `rcond` is always applied as given (not through this function).
    """
    return 0.0 if objective == "contrastive" and lam > 0 else rcond


def rank(s, rcond: float) -> int:
    """The number of eigenvalues `s` above `rcond` times the largest (on the host; every path's rank rule)."""
    s = np.asarray(s)
    return int(np.sum(s > rcond * s.max())) if s.size else 0


def check_rank(dim: int, rank: int, rcond: float, what: str = "the Gram matrix") -> None:
    """Raises the one `dim > rank` error of every path, naming the largest feasible `dim`."""
    if dim > rank:
        raise ValueError(f"dim = {dim} exceeds the rank of {what} ({rank} at rcond={rcond:.3g}); "
                         f"the largest feasible dim is {rank}")


def check_barlow_feasible(eigenvalues, dim: int, rcond: float) -> None:
    """Raises unless the top `dim` Barlow eigenvalues `l` (SPEC §3.4) are positive, naming the largest feasible dim."""
    w = np.asarray(eigenvalues)
    tol = rcond * float(np.max(np.abs(w))) if w.size else 0.0
    feasible = int(np.sum(w > tol))
    if feasible < dim:
        raise ValueError(f"barlow: only {feasible} directions have positive cross-view correlation, so "
                         f"sym(Z1 Z2^T) = I cannot hold for dim = {dim}; the largest feasible dim is {feasible}")


def subset_cuts_a_cluster(objective: str, A, dim: int) -> bool:
    """Whether the `dim` extreme eigenpairs of the target cut through an exactly degenerate eigenvalue.

    The vicreg target `P - (beta/2) F L F` has eigenvalue 1, and `F L F` (vicreg_hard) eigenvalue 0, once for each
    connected component of `A` (`F v` constant on each component). With more components than `dim` (a view-clique
    graph has one per source) the optimum is any `dim`-dimensional subspace of that eigenspace, and LAPACK's subset
    driver, asked to cut through it, is unreliable (`eigh_extreme`): the full driver is used instead.
    """
    if objective not in ("vicreg", "vicreg_hard") or A is None:
        return False
    n_components, _ = scipy.sparse.csgraph.connected_components(scipy.sparse.csr_matrix(np.asarray(A) != 0),
                                                                directed=False)
    return n_components > dim


# --------------------------------------------------------------------------------------------------------------------
# Eigensolvers


def fix_signs(V: Array) -> Array:
    """Deterministic signs: the largest-magnitude entry of each eigenvector (column) is positive."""
    idx = jnp.argmax(jnp.abs(V), axis=0)
    signs = jnp.sign(V[idx, jnp.arange(V.shape[1])])
    return V * jnp.where(signs == 0, 1.0, signs)[None, :]


def _eigh_subset_host(R, lo: int, hi: int):
    # LAPACK's ?syevr for the eigenpairs lo..hi (ascending): one tridiagonal reduction, then only hi - lo + 1
    # eigenvectors are computed and back-transformed. Inside a degenerate cluster ?syevr may return fewer pairs than
    # asked (scipy/scipy#13913; here: the vicreg target of a view-clique graph, eigenvalue 1 with multiplicity n, at
    # N = 4000: 29 of 32, and ?syevx the same), vectors that are not orthonormal, or fail: then the full
    # divide-and-conquer driver, at the price of a second tridiagonal reduction. NaN in, NaN out (as
    # jnp.linalg.eigh), never a host exception.
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


def eigh_extreme(R: Array, k: int, largest: bool, partial: bool = True) -> tuple[Array, Array]:
    """The `k` largest (descending) or smallest (ascending) eigenpairs of a symmetric `(n, n)` matrix.

    On CPU, with `partial` and for `k <= PARTIAL_EIGH_MAX_FRACTION * n`, LAPACK's subset driver (`scipy.linalg.eigh(...,
    subset_by_index, driver="evr")` through `jax.pure_callback`, sequential under `vmap`); elsewhere, and for larger
    `k`, `jnp.linalg.eigh` (a callback on an accelerator would copy the matrix to the host). The platform is chosen
    per lowering (`jax.lax.platform_dependent`), so one jitted function serves both, with no host round trip on an
    accelerator. Within a degenerate eigenvalue cut by `k` the two drivers may return different (equally optimal)
    vectors: SPEC §3.5 ties.
    """
    n = R.shape[-1]

    def full(R):
        w, V = jnp.linalg.eigh(R)
        return (w[::-1][:k], V[:, ::-1][:, :k]) if largest else (w[:k], V[:, :k])

    if not partial or k > PARTIAL_EIGH_MAX_FRACTION * n:
        return full(R)
    lo, hi = (n - k, n - 1) if largest else (0, k - 1)

    def subset(R):
        shapes = (jax.ShapeDtypeStruct((k,), R.dtype), jax.ShapeDtypeStruct((n, k), R.dtype))
        w, V = jax.pure_callback(functools.partial(_eigh_subset_host, lo=lo, hi=hi), shapes, R,
                                 vmap_method="sequential")
        return (w[::-1], V[:, ::-1]) if largest else (w, V)

    return jax.lax.platform_dependent(R, cpu=subset, default=full)


def _cholesky_host(K):
    # LAPACK ?potrf on the host; NaN when K is not numerically positive definite (as jnp.linalg.cholesky).
    K = np.asarray(K)
    try:
        return scipy.linalg.cholesky(K, lower=True, check_finite=False).astype(K.dtype)
    except (np.linalg.LinAlgError, ValueError):
        return np.full(K.shape, np.nan, K.dtype)


def cholesky(K: Array) -> Array:
    """Lower Cholesky factor `L` (`K = L L^T`) of a symmetric matrix, NaN when not numerically positive definite.

    On CPU through `jax.pure_callback` to LAPACK (several times faster than the jitted CPU factorisation here),
    elsewhere `jnp.linalg.cholesky` (no host round trip), per lowering as `eigh_extreme`.
    """
    def host(K):
        return jax.pure_callback(_cholesky_host, jax.ShapeDtypeStruct(K.shape, K.dtype), K,
                                 vmap_method="sequential")

    return jax.lax.platform_dependent(K, cpu=host, default=jnp.linalg.cholesky)


def _symmetric_from_upper(S: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle `S` holds (its strictly lower part zero), as LAPACK/BLAS write it."""
    S = S + S.T
    S[np.diag_indices_from(S)] *= 0.5
    return S


def _triangular_moments_host(R, P):
    # `R^T R` by LAPACK ?lauum (a third of a matrix product: both factors triangular) and `R^T P` by BLAS ?trmm (half
    # of one). A C-ordered array is the Fortran transpose of itself, so `R.T` and `P.T` go to Fortran without a copy:
    # ?lauum on the upper factor `R^T` gives `R^T R` in its upper triangle, ?trmm gives `(P^T R)^T = R^T P`.
    R, P = np.asarray(R), np.asarray(P)
    lauum, = scipy.linalg.get_lapack_funcs(("lauum",), (R,))
    trmm, = scipy.linalg.get_blas_funcs(("trmm",), (R,))
    G, info = lauum(R.T, lower=0)  # the strictly lower part keeps the zeros of R^T
    G = _symmetric_from_upper(G) if not info else np.full(R.shape, np.nan, R.dtype)
    T = trmm(1.0, R.T, P.T, side=1, lower=0, trans_a=1).T
    return G.astype(R.dtype, copy=False), np.ascontiguousarray(T, dtype=R.dtype)


def triangular_moments(R: Array, P: Array) -> tuple[Array, Array]:
    """`(R^T R, R^T P)` for a lower-triangular `R` (a Cholesky factor, zeros above the diagonal): the second moment
    and target of the features `Phi = R^T` (`"dense-cholesky"`, `P = A R`).

    On CPU through `jax.pure_callback` to LAPACK ?lauum and BLAS ?trmm, which use the triangle of `R` (a third and
    a half of the flops of the two matrix products, and OpenBLAS rather than XLA's CPU products), elsewhere the
    products in `jax.numpy` (no host round trip), per lowering as `eigh_extreme`.
    """
    def host(R, P):
        shape = jax.ShapeDtypeStruct(R.shape, R.dtype), jax.ShapeDtypeStruct(P.shape, R.dtype)
        return jax.pure_callback(_triangular_moments_host, shape, R, P, vmap_method="sequential")

    def default(R, P):
        return R.T @ R, R.T @ P

    return jax.lax.platform_dependent(R, P, cpu=host, default=default)


def _moment_host(P):
    # `P^T P` by BLAS ?syrk (half the flops of the product): a C-ordered `P` is the Fortran `P^T`, no copy.
    P = np.asarray(P)
    syrk, = scipy.linalg.get_blas_funcs(("syrk",), (P,))
    S = syrk(1.0, P.T, trans=0, lower=0)  # upper triangle; the strictly lower part is zero
    return _symmetric_from_upper(S).astype(P.dtype, copy=False)


def moment(P: Array) -> Array:
    """`P^T P` (symmetric, `(D, D)` for `P` `(n, D)`): the second moment of a block of feature rows.

    On CPU through `jax.pure_callback` to BLAS ?syrk (one triangle: half the flops of the product, OpenBLAS rather
    than XLA's CPU product), elsewhere `P.T @ P` (no host round trip), per lowering as `eigh_extreme`.
    """
    def host(P):
        return jax.pure_callback(_moment_host, jax.ShapeDtypeStruct(P.shape[1:] * 2, P.dtype), P,
                                 vmap_method="sequential")

    return jax.lax.platform_dependent(P, cpu=host, default=lambda P: P.T @ P)


def _eigvalsh_host(R):
    R = np.asarray(R)
    if not np.all(np.isfinite(R)):
        return np.full(R.shape[:1], np.nan, R.dtype)
    return scipy.linalg.eigh(R, eigvals_only=True, check_finite=False).astype(R.dtype)


def eigvalsh(R: Array) -> Array:
    """Eigenvalues (ascending) of a symmetric matrix: LAPACK on CPU through `jax.pure_callback` (no eigenvectors:
    a third of an eigendecomposition there), `jnp.linalg.eigvalsh` elsewhere, per lowering as `eigh_extreme`."""
    def host(R):
        return jax.pure_callback(_eigvalsh_host, jax.ShapeDtypeStruct(R.shape[:1], R.dtype), R,
                                 vmap_method="sequential")

    return jax.lax.platform_dependent(R, cpu=host, default=jnp.linalg.eigvalsh)


def _eigh_pencil_host(a, b, lo: int, hi: int):
    # LAPACK's ?sygvx for the eigenpairs lo..hi (ascending) of the pencil (a, b): Cholesky of b, reduction to a
    # standard problem, one tridiagonal reduction and only hi - lo + 1 eigenvectors. As in `_eigh_subset_host`, a
    # degenerate cluster may make the subset driver return fewer or non-b-orthonormal vectors: then ?sygvd. NaN in
    # (or b not positive definite), NaN out: the caller falls back.
    a, b = np.asarray(a), np.asarray(b)
    k = hi - lo + 1
    nan = np.full((k,), np.nan, a.dtype), np.full((a.shape[0], k), np.nan, a.dtype)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return nan
    tol = 1e3 * a.shape[0] * np.finfo(a.dtype).eps
    try:
        w, U = scipy.linalg.eigh(a, b, subset_by_index=(lo, hi), driver="gvx", check_finite=False)
        if (w.shape == (k,) and np.all(np.isfinite(w)) and np.all(np.isfinite(U))
                and np.max(np.abs(U.T @ b @ U - np.eye(k))) < tol):
            return w.astype(a.dtype), U.astype(a.dtype)
        w, U = scipy.linalg.eigh(a, b, driver="gvd", check_finite=False)
        return w[lo : hi + 1].astype(a.dtype), U[:, lo : hi + 1].astype(a.dtype)
    except (np.linalg.LinAlgError, ValueError):
        return nan


def _eigh_pencil_reduced(a, b, lo: int, hi: int):
    # The accelerator branch of `eigh_pencil_extreme`: Cholesky reduction to a standard problem, full eigh.
    L = jnp.linalg.cholesky(b)
    tri = functools.partial(jax.scipy.linalg.solve_triangular, lower=True)
    c = tri(L, tri(L, a).T)
    w, V = jnp.linalg.eigh(0.5 * (c + c.T))
    return w[lo : hi + 1], jax.scipy.linalg.solve_triangular(L.T, V[:, lo : hi + 1], lower=False)


def eigh_pencil_extreme(a: Array, b: Array, k: int, largest: bool = True) -> tuple[Array, Array]:
    """The `k` extreme eigenpairs of the symmetric-definite pencil `a u = w b u` (`b` positive definite).

    Eigenvectors are `b`-orthonormal (`U^T b U = I`). On CPU, LAPACK's generalized subset driver (`?sygvx` through
    `jax.pure_callback`); elsewhere the same reduction in `jax.numpy` (Cholesky `b = L L^T`, `eigh(L^-1 a L^-T)`,
    `U = L^-T V`), so nothing round-trips to the host on an accelerator (as `eigh_extreme`). A `b` that is not
    numerically positive definite gives NaN (the caller falls back to an eigendecomposition).
    """
    n = a.shape[-1]
    lo, hi = (n - k, n - 1) if largest else (0, k - 1)

    def subset(a, b):
        shapes = (jax.ShapeDtypeStruct((k,), a.dtype), jax.ShapeDtypeStruct((n, k), a.dtype))
        return jax.pure_callback(functools.partial(_eigh_pencil_host, lo=lo, hi=hi), shapes, a, b,
                                 vmap_method="sequential")

    w, U = jax.lax.platform_dependent(a, b, cpu=subset, default=functools.partial(_eigh_pencil_reduced, lo=lo, hi=hi))
    return (w[::-1], U[:, ::-1]) if largest else (w, U)


class KrylovEigh(NamedTuple):
    """The result of `eigh_operator_top`.

    Attributes:
      w: `(k,)` Ritz values, descending.
      X: `(n, k)` Ritz vectors, `b`-orthonormal (`X^T b X = I`).
      residual: the largest `||a b x - w x||_2 / |w_0|` over the `k` pairs (a 0-d array).
      converged: whether `residual` is at most the tolerance (a 0-d bool array).
      passes: the number of passes run (a 0-d array).
    """

    w: Array
    X: Array
    residual: Array
    converged: Array
    passes: Array


def krylov_fallback_reason(res: KrylovEigh) -> str:
    """`Solution.reason` when the block Krylov eigensolver did not converge and the exact subset solver ran."""
    return (f"the block Krylov eigensolver did not converge in {int(res.passes)} passes (relative residual "
            f"{float(res.residual):.2g}): exact subset eigensolver instead")


def krylov_pays(n: int, k: int, depth: int = KRYLOV_DEPTH) -> bool:
    """Whether `eigh_operator_top` (default width, `depth`) is worth it for the top `k` pairs of an `(n, n)` problem
    rather than a subset solver: `n >= KRYLOV_MIN_N` and its Krylov basis is at most `n / 2` columns (below that the
    exact route, one reduction of the `(n, n)` matrix, costs no more than the block products and the basis'
    orthogonalisation; below `KRYLOV_MIN_N` it takes milliseconds, less than compiling the Krylov pass)."""
    return n >= KRYLOV_MIN_N and krylov_width(k, n) * (depth + 1) <= n // 2


# Below this size the exact subset solver runs in milliseconds, while the unrolled Krylov pass takes seconds to
# compile for each new shape: `krylov_pays` keeps the exact route there.
KRYLOV_MIN_N = 1000


def krylov_width(k: int, n: int) -> int:
    """The default block width of `eigh_operator_top` for `k` pairs of an `(n, n)` operator: `k + max(k // 2, 8)`,
    at most `n` (the extra columns separate the `k`-th pair from the next ones, which speeds up convergence)."""
    return min(n, k + max(k // 2, 8))


def _b_orthonormalize(Z, BZ, Q, BQ, apply_b=None):
    # Block `Z` (with `BZ = b Z`, or computed by `apply_b`) made b-orthonormal and b-orthogonal to the b-orthonormal
    # basis `Q` (zero columns allowed): projection, then SVQB (eigendecomposition of the small Gram `Z^T b Z`), twice
    # ("twice is enough"). Directions whose b-norm falls below sqrt(eps) of the block's before the pass are
    # numerically inside span(Q) (the Krylov space is invariant there: those pairs have converged) and become zero
    # columns, which every later product keeps zero.
    eps = jnp.finfo(Z.dtype).eps
    BZ = apply_b(Z) if BZ is None else BZ
    for _ in range(2):
        scale2 = jnp.max(jnp.abs(jnp.sum(Z * BZ, axis=0)))
        if Q.shape[1]:
            c = BQ.T @ Z
            Z, BZ = Z - Q @ c, BZ - BQ @ c
        d, U = jnp.linalg.eigh(0.5 * (Z.T @ BZ + BZ.T @ Z))
        keep = d > eps * scale2
        U = U * jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, d, 1.0)), 0.0)[None, :]
        Z, BZ = Z @ U, BZ @ U
    return Z, BZ


def _krylov_pass(apply_a, apply_b, X, depth: int):
    # Rayleigh-Ritz of `S = a b` on the block Krylov space [X, S X, ..., S^depth X], with a b-orthonormal basis `Q`
    # (kept with `b Q`): `Q^T b S Q = (b Q)^T a (b Q)`. Returns the Ritz values (descending) and the matching
    # columns of Q V and a b Q V. The loop is unrolled (`depth` is small): each block is orthogonalised against the
    # blocks before it only.
    empty = jnp.zeros((X.shape[0], 0), X.dtype)
    Q, BQ = _b_orthonormalize(X, apply_b(X), empty, empty)
    Z = Q
    for _ in range(depth):
        Z, BZ = _b_orthonormalize(apply_a(BQ[:, -X.shape[1]:]), None, Q, BQ, apply_b)
        Q, BQ = jnp.concatenate([Q, Z], axis=1), jnp.concatenate([BQ, BZ], axis=1)
    ABQ = apply_a(BQ)
    theta, V = jnp.linalg.eigh(0.5 * (BQ.T @ ABQ + ABQ.T @ BQ))
    V = V[:, ::-1][:, : X.shape[1]]
    return theta[::-1], Q @ V, ABQ @ V


def eigh_operator_top(apply_a, apply_b, n: int, k: int, dtype, *, width: int | None = None,
                      depth: int = KRYLOV_DEPTH, passes: int = KRYLOV_PASSES, tol=None) -> KrylovEigh:
    """The `k` largest eigenpairs of `S = a b` (`a` symmetric, `b` symmetric positive semi-definite, `(n, n)`, given
    by their products with `(n, w)` blocks), `b`-orthonormal: the top of the pencil `(b a b, b)`, i.e. of
    `b^1/2 a b^1/2` (eigenvectors `b^1/2 x`).

    `S` is self-adjoint in the `b` inner product, so a block Krylov space `[X, S X, ..., S^depth X]` with a
    `b`-orthonormal basis and Rayleigh-Ritz (`(b Q)^T a (b Q)`) give its extreme eigenpairs from products alone: per
    pass, `depth + 1` products with `b` and with `a` on blocks of `width` columns (default `krylov_width`) and one
    symmetric eigenproblem of size `width (depth + 1)`; no `(n, n)` reduction. A pass is restarted from its top
    `width` Ritz vectors until the residuals of the top `k` pairs, `||S x - w x||_2`, are at most `tol |w_0|`
    (default `eps^1/3`: 6e-6 in float64), or `passes` passes have run. The Ritz values' error is of order the
    squared residual (`b`-norm, at most `||b||^1/2` times the 2-norm) over the gap to the rest of the spectrum.

    Deterministic (a fixed random start), jit-able, and `jax.numpy` only apart from what `apply_a` / `apply_b` call:
    no host round trip on an accelerator. The caller checks `converged` and falls back to an exact solver.
    """
    width = krylov_width(k, n) if width is None else min(n, width)
    tol = float(jnp.finfo(dtype).eps) ** (1.0 / 3.0) if tol is None else tol
    X0 = jax.random.normal(jax.random.key(0), (n, width), dtype)

    def run(X):
        w, X, AX = _krylov_pass(apply_a, apply_b, X, depth)
        res = jnp.linalg.norm(AX[:, :k] - X[:, :k] * w[None, :k], axis=0)
        return w, X, jnp.max(res) / jnp.maximum(jnp.abs(w[0]), jnp.finfo(dtype).tiny)

    def more(state):
        return (state[3] < passes) & ~(state[2] <= tol)

    def again(state):
        return (*run(state[1]), state[3] + 1)

    w0 = jnp.zeros((width * (depth + 1),), dtype)  # one compilation of the pass: the first one runs in the loop too
    w, X, res, count = jax.lax.while_loop(more, again, (w0, X0, jnp.asarray(jnp.inf, dtype), jnp.asarray(0)))
    return KrylovEigh(w[:k], X[:, :k], res, res <= tol, count)


def top(R: Array, dim: int, partial: bool = True) -> tuple[Array, Array]:
    """`[R]_M+`: the `dim` largest eigenpairs of a symmetric matrix, descending, eigenvalues clipped at 0."""
    w, V = eigh_extreme(0.5 * (R + R.T), dim, largest=True, partial=partial)
    return jnp.maximum(w, 0.0), fix_signs(V)


def _pad_rows(C: Array, w: Array, dim: int) -> tuple[Array, Array]:
    # A target of rank < dim yields zero rows: they are optimal (eigenvalue 0) and keep the output shape fixed.
    missing = dim - C.shape[0]
    if missing <= 0:
        return C, w
    return jnp.pad(C, ((0, missing), (0, 0))), jnp.pad(w, (0, missing))


def live(mu: Array, tol=None) -> Array:
    """Which target eigenvalues (descending) are numerically nonzero, above `tol * mu[0]` (default: the rounding of
    their eigenproblem, `len(mu) eps`); the others get zero rows (optimal, as beyond the target's rank)."""
    tol = mu.shape[0] * jnp.finfo(mu.dtype).eps if tol is None else tol
    return mu > mu[0] * tol


# --------------------------------------------------------------------------------------------------------------------
# The closed forms


def _t(s: Array, lam) -> Array:
    """`t = (s + lam)^-1/2` on the kept eigenvalues (`s > 0`), 0 elsewhere."""
    kept = s > 0
    return jnp.where(kept, 1.0 / jnp.sqrt(jnp.where(kept, s + lam, 1.0)), 0.0)


@functools.partial(jax.jit, static_argnames=("objective", "dim", "partial"))
def solve(objective: str, s: Array, T: Array, lam, beta, dim: int, max_degree=0.0, partial: bool = True):
    """SPEC §3.1-3.4 in whitened eigen-coordinates (module doc): `(Cs (dim, r), eigenvalues (dim,))`.

    Args:
      objective: one of `objectives.OBJECTIVES`.
      s: `(r,)` eigenvalues of the Gram in the basis, zero where dropped.
      T: `(r, r)` target in whitened coordinates (of `A`, `L` or the cross-view matrix, see the module doc).
      lam, beta: ridge and invariance weights (traced: `vmap` over them for sweeps).
      dim: output dimension M.
      max_degree: `max(A 1)`, for vicreg_hard (directions outside the kept range are lifted above `||L||`).
      partial: allow the subset eigensolver (`subset_cuts_a_cluster` says when not to).

    Returns:
      `Cs` with `f(x) = Cs y(x)`, and the eigenvalues kept (contrastive/vicreg: the diagonal of `Q`; vicreg_hard:
      the Dirichlet energies; barlow: `l`).
    """
    kept = (s > 0).astype(s.dtype)
    if objective == "barlow":
        ell, V = top(kept[:, None] * T * kept[None, :], dim, partial)
        Cs = V.T * kept[None, :] / jnp.sqrt(jnp.where(ell > 0, ell, 1.0))[:, None]
        return jnp.where((ell > 0)[:, None], Cs, 0.0), ell
    t = _t(s, lam)
    R = t[:, None] * T * t[None, :]
    if objective == "contrastive":
        mu, V = top(R, min(dim, s.shape[0]), partial)
        Cs = jnp.where(live(mu)[:, None], jnp.sqrt(mu)[:, None] * V.T * t[None, :], 0.0)
        return _pad_rows(Cs, mu, dim)
    if objective == "vicreg":
        mu, V = top(jnp.diag(kept) - 0.5 * beta * R, dim, partial)
        return jnp.sqrt(mu)[:, None] * V.T * t[None, :], mu
    # vicreg_hard: the smallest eigenvectors of F L F = t T t within the kept range. Directions outside the range are
    # lifted above the spectrum of F L F (whose norm is at most ||L|| <= 2 max degree) so they are never chosen.
    lift = 2.0 * max_degree + 1.0
    w, V = eigh_extreme(0.5 * (R + R.T) + jnp.diag(lift * (1.0 - kept)), dim, largest=False, partial=partial)
    return fix_signs(V).T * t[None, :], w


@functools.partial(jax.jit, static_argnames=("objective", "dim"))
def solve_pencil(objective: str, G: Array, T: Array, lam, beta, dim: int, tol=None):
    """The closed forms of `solve` for contrastive and vicreg (`lam > 0`) in a non-orthonormal feature basis.

    For features `Phi` (D x N, views as columns) with second moment `G = Phi Phi^T` and target `T = Phi X Phi^T`
    (`X` = `A` or `L`), the eigenbasis form above is `G = V diag(s) V^T`, `T_s = V^T T V`; its eigenproblem `t T_s t`
    (`t = (s + lam)^-1/2`) is the pencil `(T, G + lam I)` in the basis `V`, with `b`-orthonormal eigenvectors
    `U = V diag(t) V_s` (`V_s` those of the standard problem). So, without eigendecomposing `G`:

    | objective | pencil, top `(mu, U)` | `W` with `f(x) = W phi(x)` |
    |---|---|---|
    | contrastive | `(T, G + lam I)`, clipped at 0 | `diag(sqrt mu) U^T` |
    | vicreg | `(G + lam I - (beta/2) T, G + lam I)` (every direction kept: `G` full rank) | `diag(sqrt mu) U^T` |

    which is `Cs V^T` of `solve` (the dense and feature paths' `W`) exactly: the same formula, one Cholesky of
    `G + lam I` instead of one eigendecomposition of `G`. Used by the Cholesky paths (`spectral`: `Phi = chol(K)^T`
    rows; `lowrank`: `G = M2`, `T = PA` of any feature map). Returns `(W (dim, D), mu (dim,))`; NaN when
    `G + lam I` is not numerically positive definite. `tol`: contrastive directions with `mu` at or below
    `tol * mu[0]` get zero rows (`live`; default the rounding of the eigenproblem).
    """
    D = G.shape[0]
    b = G + lam * jnp.eye(D, dtype=G.dtype)
    a = 0.5 * (T + T.T)
    if objective == "vicreg":
        a = b - 0.5 * beta * a
    elif objective != "contrastive":
        raise ValueError(f"solve_pencil: contrastive or vicreg, not {objective!r}")
    k = min(dim, D)
    mu, U = eigh_pencil_extreme(a, b, k, largest=True)
    W, mu = pencil_rows(mu, U, objective == "contrastive", tol)
    return _pad_rows(W, mu, dim)


def pencil_rows(mu: Array, U: Array, contrastive: bool = True, tol=None) -> tuple[Array, Array]:
    """`(W, mu)`, `W = diag(sqrt mu) U^T` from the top pencil eigenpairs `(mu, U)` (`U^T b U = I`) of the contrastive
    and vicreg closed forms (`solve_pencil`), `mu` clipped at 0; for contrastive, rows whose `mu` is not `live` at
    `tol` are zero (beyond the target's rank)."""
    mu = jnp.maximum(mu, 0.0)
    W = jnp.sqrt(mu)[:, None] * fix_signs(U).T
    return (jnp.where(live(mu, tol)[:, None], W, 0.0) if contrastive else W), mu


@functools.partial(jax.jit, static_argnames=("dim", "depth", "passes"))
def solve_pencil_krylov(G: Array, T: Array, lam, dim: int, tol=None, depth: int = KRYLOV_DEPTH,
                        passes: int = KRYLOV_PASSES):
    """`solve_pencil("contrastive", G, T, lam, 0, dim, tol)` by the block Krylov eigensolver: `(W, mu, KrylovEigh)`.

    With `b = G + lam I = L L^T`, the pencil `(T, b)` is `S = T b^-1` in `eigh_operator_top`'s form (`a = T`, and
    `b^-1` as its positive definite `b`): for `S x = mu x`, `u = b^-1 x` solves `T u = mu b u` with `u^T b u =
    x^T b^-1 x = 1`. Products with `T` and two triangular solves per block instead of the reduction of the pencil and
    a tridiagonal reduction (`eigh_pencil_extreme`). The caller checks `converged` and falls back to `solve_pencil`.
    Needs `dim <= D`.
    """
    D = G.shape[0]
    L = cholesky(G + lam * jnp.eye(D, dtype=G.dtype))

    def inv(Q):
        return jax.scipy.linalg.cho_solve((L, True), Q)

    a = 0.5 * (T + T.T)
    res = eigh_operator_top(lambda Q: a @ Q, inv, D, dim, G.dtype, depth=depth, passes=passes)
    W, mu = pencil_rows(res.w, inv(res.X), True, tol)
    return W, mu, res


@functools.partial(jax.jit, static_argnames=("dim",))
def solve_factored(s: Array, B: Array, lam, dim: int):
    """Contrastive with a factored target `T = B^T B` (`Factor`): `(Cs, mu)` from the `(n, n)` problem.

    `R = t T t = (B t)^T (B t)` has the nonzero eigenvalues of `H = B diag(t^2) B^T`; with its top eigenvectors `W`,
    the eigenvectors of `R` are `(B t)^T W diag(mu^-1/2)` and `Cs = diag(sqrt mu) V^T diag(t) = W^T B diag(t^2)`.
    """
    t2 = _t(s, lam) ** 2
    mu, W = top_of_gram((B * t2[None, :]) @ B.T, dim)
    return W.T @ (B * t2[None, :]), mu


def top_of_gram(H: Array, dim: int, tol=None) -> tuple[Array, Array]:
    """Top `min(dim, n)` eigenpairs of an `(n, n)` target Gram, padded to `dim` with zero columns (rank < dim).

    Returns `(mu (dim,), W (n, dim))`; directions with numerically zero `mu` (`live` at `tol`) get zero columns. The
    structured paths (the factored target above, and the Cholesky path of `spectral`) map `W` back to coefficients.
    """
    mu, W = top(H, min(dim, H.shape[0]))
    W = jnp.where(live(mu, tol)[None, :], W, 0.0)
    Wt, mu = _pad_rows(W.T, mu, dim)
    return mu, Wt.T
