"""The closed forms on the Gram of the training views (SPEC.md §3): the dense and structured paths, and `solve`.

This module owns the paths that start from the Gram `K` and the entry point `solve`, which picks a path. The
closed forms themselves live in `eigenbasis` (one core for every path); the paths here only prepare its input:

- **dense** (`"dense-eigh"`): one eigendecomposition `K = U diag(s) U^T` (`decompose`) and the target in whitened
  eigen-coordinates, `T = diag(sqrt s) U^T A U diag(sqrt s)` (or of `L`, or the Barlow cross-view matrix), r x r
  over the kept eigenvalues; the core's `Cs` maps back to `C = Cs diag(s^-1/2) U^T`. For contrastive with
  `lam > 0` (any graph, default `rcond`), `solve` needs no eigendecomposition: a Cholesky factor `K = R R^T` gives
  features `R^T` and the core in its pencil form (`eigenbasis.solve_pencil`), `C = W R^-1` (`"dense-cholesky"`).
- **structured** (contrastive with a view-clique `A = E E^T`, the default graph): the target is factored,
  `T = B^T B` with `B = E^T U diag(sqrt s)` (per-source sums, n x r), and the eigenpairs come from an `(n, n)` problem
  (`"structured-eigh"`). For `lam > 0`, `solve` needs no eigendecomposition of K at all: the same `(n, n)` problem is
  `E^T K (K + lam I)^-1 E`, from one Cholesky factorisation (`"structured-cholesky"`).
- the feature-space paths (`"nystrom"`, `"rff"`, `"linear"`) live in `lowrank`, on the same core.

The representer form. For `contrastive` (any `lam`), `barlow` and `lam = 0`, the optimum over all of `H` has the
form `W = C Phi^*` (SPEC.md §1). For `vicreg` and `vicreg_hard` with `lam > 0` it does not: the ridge sits inside
`Q`, so a map that vanishes on every training view adds variance for free (`Z = 0`, `lam W W^* = I` gives loss 0).
Their closed forms here are the optima over the span of the training views, `W = C Phi^*`, which is the meaningful
problem (`tests/test_spectral.py::test_vicreg_ridge_optimum_is_over_the_span_of_the_views` shows the collapse).

Every path raises the same error for `dim` above the rank of K (`eigenbasis.check_rank`) and for infeasible Barlow
problems (`eigenbasis.check_barlow_feasible`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import eigenbasis as _eb
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import validation as _v
from kernel_ssl_jax.eigenbasis import DEFAULT_LAM
from kernel_ssl_jax.solution import Solution, features, induced_kernel

Array = jax.Array

METHODS = ("auto", "dense", "structured", "nystrom", "rff", "linear")
FEATURE_METHODS = ("nystrom", "rff", "linear")
# Above this many views, `method="auto"` leaves the O(N^3) exact paths for Nystrom features (unless A is a view-clique
# graph for contrastive, whose structured path stays exact and needs one Cholesky factorisation).
AUTO_NYSTROM_ABOVE = 20_000
# `method="auto"` plans with at most this share of the available memory (`available_memory`), leaving the rest to
# the caller's arrays and to temporaries the estimates do not count.
AUTO_MEMORY_FRACTION = 0.5
MEMORY_ENV = "KSSL_MEMORY_BYTES"
# The block Krylov eigensolver of `"dense-krylov"` (`eigenbasis.eigh_operator_top`): Krylov blocks per pass and passes.
KRYLOV_DEPTH = _eb.KRYLOV_DEPTH
KRYLOV_PASSES = _eb.KRYLOV_PASSES
EIGENSOLVERS = ("auto", "exact")

__all__ = [
    "DEFAULT_LAM",
    "EIGENSOLVERS",
    "FEATURE_METHODS",
    "GramEigh",
    "METHODS",
    "Solution",
    "Target",
    "available_memory",
    "coefficients",
    "decompose",
    "extend",
    "features",
    "induced_kernel",
    "memory_estimate",
    "solve",
    "solve_eig",
    "solve_gram",
    "target",
    "truncate",
]


class GramEigh(NamedTuple):
    """`K = U diag(s) U^T` with eigenvalues at or below `rcond * max(s)` set to 0 (ascending order).

    Attributes:
      s: `(N,)` kept eigenvalues, zero where dropped (or `(r,)` all kept, after `truncate`).
      U: `(N, N)` eigenvectors, one per column (or `(N, r)`).
      rank: number of kept eigenvalues (a 0-d array).
    """

    s: Array
    U: Array
    rank: Array


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
    return GramEigh(*_take_pairs(eig.s, eig.U, idx), jnp.asarray(idx.size))


@jax.jit
def _take_pairs(s, U, idx):
    return s[idx], U[:, idx]


# --------------------------------------------------------------------------------------------------------------------
# The dense and structured paths: targets in the eigenbasis of K


class Target(NamedTuple):
    """An objective's target in the whitened eigen-coordinates of one `GramEigh` (see `eigenbasis`).

    Attributes:
      objective: the objective.
      T: `(r, r)` whitened target, or the factor `B` `(n, r)` with `T = B^T B` when `factored`.
      factored: whether `T` holds the factor of a view-clique contrastive target.
      max_degree: `max(A 1)` (vicreg_hard).
      partial: whether the subset eigensolver may be used (`eigenbasis.subset_cuts_a_cluster`).
      method: `"structured-eigh"` or `"dense-eigh"`.
    """

    objective: str
    T: Array
    factored: bool
    max_degree: float
    partial: bool
    method: str


def target(objective: str, eig: GramEigh, A=None, pairs=None, *, dim: int, structured: bool = True,
           cliques=None) -> Target:
    """The target of `objective` in the eigenbasis of `eig` (independent of `lam` and `beta`: share it in sweeps).

    Args:
      objective: one of `objectives.OBJECTIVES`.
      eig: the (possibly truncated) decomposition of K.
      A: `(N, N)` relationship matrix (not barlow), validated.
      pairs: `(v1, v2)` validated index arrays (barlow).
      dim: output dimension (decides whether the subset eigensolver is safe).
      structured: recognise a view-clique `A` for contrastive and factor its target.
      cliques: the source of each view when `A` is known to be their view-clique graph (skips recognising it).
    """
    s, U = eig.s, eig.U
    if objective == "barlow":
        v1, v2 = pairs
        return Target(objective, _pair_target(s, U, v1, v2), False, 0.0, True, "dense-eigh")
    if objective == "contrastive" and structured and cliques is None:
        cliques = _graphs.clique_groups(A)
    if objective == "contrastive" and structured and cliques is not None:
        B = _clique_target(s, U, jnp.asarray(cliques), int(cliques.max()) + 1)
        return Target(objective, B, True, 0.0, True, "structured-eigh")
    T, max_degree = _graph_target(objective, s, U, jnp.asarray(A, U.dtype))
    if objective == "contrastive":
        return Target(objective, T, False, 0.0, True, "dense-eigh")
    return Target(objective, T, False, float(max_degree), not _eb.subset_cuts_a_cluster(objective, A, dim),
                  "dense-eigh")


# One compilation per shape each (the targets are built once per graph and shared over lam and beta).
@jax.jit
def _pair_target(s, U, v1, v2):
    r = jnp.sqrt(s)
    return (U[v1].T @ U[v2]) * (r[:, None] * r[None, :])


@functools.partial(jax.jit, static_argnames=("n_sources",))
def _clique_target(s, U, cliques, n_sources):
    return jax.ops.segment_sum(U, cliques, num_segments=n_sources) * jnp.sqrt(s)[None, :]


@functools.partial(jax.jit, static_argnames=("objective",))
def _graph_target(objective, s, U, A):
    """`(T, max(A 1))`: `A` (contrastive) or `L = D - A` in the whitened eigen-coordinates."""
    r = jnp.sqrt(s)
    UA = U.T @ A @ U
    deg = jnp.sum(A, axis=1)
    if objective != "contrastive":
        UA = (U.T * deg[None, :]) @ U - UA
    return r[:, None] * UA * r[None, :], jnp.max(deg)


@functools.partial(jax.jit, static_argnames=("objective", "dim", "factored", "partial"))
def _coefficients(objective, s, U, T, lam, beta, dim, max_degree, factored, partial):
    if factored:
        Cs, w = _eb.solve_factored(s, T, lam, dim)
    else:
        Cs, w = _eb.solve(objective, s, T, lam, beta, dim, max_degree, partial)
    sinv = jnp.where(s > 0, 1.0 / jnp.sqrt(jnp.where(s > 0, s, 1.0)), 0.0)
    return (Cs * sinv[None, :]) @ U.T, w


def coefficients(tgt: Target, eig: GramEigh, *, lam, beta, dim: int) -> tuple[Array, Array]:
    """`(C (dim, N), eigenvalues (dim,))` for one target; pure in `lam` and `beta` (`jax.vmap` over them)."""
    return _coefficients(tgt.objective, eig.s, eig.U, tgt.T, lam, beta, dim, tgt.max_degree, tgt.factored,
                         tgt.partial)


def extend(C, eig: GramEigh, ridge) -> Array:
    """Coefficients of the kernel-ridge out-of-sample extension of the map `f(x) = C k_X(x)`.

    The training views' representation `Z = K C^T` is kept as the target and a new point gets
    `k_X(x)^T (K + ridge I)^+ Z`, i.e. the coefficients `C U diag(s / (s + ridge)) U^T` (`eig = U diag(s) U^T` of
    `K`, dropped eigenpairs contribute 0). With a tiny `lam` the solution interpolates a graph embedding of the views
    through the Gram's smallest eigen-directions; `ridge` (units of K's eigenvalues, like `lam`) damps those
    directions for new points without changing which embedding was learned. `ridge = 0`: `C` on the kept range.

    Args:
      C: `(..., N)` coefficients (e.g. `(dim, N)` from `coefficients`).
      eig: the decomposition of `K` that `C` was solved with.
      ridge: non-negative ridge strength.

    Returns:
      `(..., N)` coefficients of the extension.
    """
    return _extend(jnp.asarray(C), eig.s, eig.U, _v.real("ridge", ridge, minimum=0.0))


@jax.jit
def _extend(C, s, U, ridge):
    W = C @ U
    shrink = jnp.where(s > 0, s / jnp.where(s > 0, s + ridge, 1.0), 0.0)
    return (W * jnp.broadcast_to(shrink, W.shape)) @ U.T


@functools.partial(jax.jit, static_argnames=("dim", "n_sources"))
def _clique_cholesky(K, groups, lam, dim, n_sources):
    """Contrastive with a view-clique `A = E E^T` and `lam > 0`, without an eigendecomposition of K.

    The target's nonzero eigenpairs come from `H = E^T F^2 E = E^T K (K + lam I)^-1 E = E^T E - lam E^T Y` with
    `Y = (K + lam I)^-1 E` (one Cholesky factorisation), and `C = W^T Y^T` since `F S^{+1/2} = (K + lam I)^-1`
    on range(K). Directions of K below `rcond` are not dropped but enter with weight `s / (s + lam)`, a difference
    of order `rcond * max(s) / lam` from the dense path.
    """
    N = K.shape[0]
    E = jax.nn.one_hot(groups, n_sources, dtype=K.dtype)
    factor = jax.scipy.linalg.cho_factor(K + lam * jnp.eye(N, dtype=K.dtype), lower=True)
    Y = jax.scipy.linalg.cho_solve(factor, E)
    mu, W = _eb.top_of_gram(E.T @ E - lam * (E.T @ Y), dim, _cholesky_tol(K, lam))
    return W.T @ Y.T, mu


def cholesky_is_accurate(K, lam: float) -> bool:
    """Whether `lam` is large enough for the Cholesky form of the closed form (`K + lam I`) to be accurate.

    Its rounding relative to the target is `eps cond(K + lam I) <= eps (1 + tr(K) / lam)`; at `lam >= sqrt(eps) tr(K)`
    that is at most `sqrt(eps)` (1.5e-8 in float64). Smaller `lam` (e.g. 1e-275, which a property test found: every
    direction then looked like rounding and the solution was 0) takes the eigendecomposition, continuous in `lam`.
    """
    return lam > 0 and lam >= float(np.sqrt(np.finfo(K.dtype).eps)) * float(_trace(K))


_trace = jax.jit(jnp.trace)


def _cholesky_tol(K, lam):
    # The rounding of H = E^T K (K + lam I)^-1 E relative to its largest eigenvalue: N eps cond(K + lam I), with
    # tr(K) >= max(s) bounding the condition number without decomposing K. A direction below it has
    # s / (s + lam) at the level of K's own default cut-off (`N eps max(s)`): treated as beyond the rank.
    return K.shape[0] * jnp.finfo(K.dtype).eps * (1.0 + jnp.trace(K) / lam)


@jax.jit
def _n_live(w, K, lam):
    return jnp.sum(_eb.live(w, _cholesky_tol(K, lam)))


def _rows(A):
    """`A` as padded neighbour lists `(idx, vals)`, `(N, d_max)` each, when its rows have at most `N / 8` nonzeros
    (a k-NN graph), else `A` itself: `_dense_cholesky` then forms `A R` in `O(N^2 d_max)` instead of `O(N^3)`."""
    A = np.asarray(A)
    N = A.shape[0]
    deg = np.count_nonzero(A, axis=1)
    width = int(deg.max()) if N else 0
    if width > N // 8:
        return A
    rows, cols = np.nonzero(A)  # row by row
    pos = np.arange(rows.size) - np.repeat(np.cumsum(deg) - deg, deg)  # place of each nonzero within its row
    idx = np.zeros((N, max(width, 1)), np.int32)
    vals = np.zeros((N, max(width, 1)), A.dtype)
    idx[rows, pos], vals[rows, pos] = cols, A[rows, cols]
    return idx, vals


def _times(A, R):
    """`A R` for `A` dense or given as `_rows`."""
    if not isinstance(A, tuple):
        return A @ R
    idx, vals = jnp.asarray(A[0]), jnp.asarray(A[1])
    R = jnp.asarray(R)

    def body(j, acc):
        return acc + vals[:, j][:, None] * R[idx[:, j]]

    return jax.lax.fori_loop(0, idx.shape[1], body, jnp.zeros_like(R))


@functools.partial(jax.jit, static_argnames=("dim",))
def _dense_cholesky(K, A, lam, dim):
    """Contrastive with any `A` and `lam > 0`, without an eigendecomposition of K (`"dense-cholesky"`).

    With `K = R R^T` (Cholesky; `Phi = R^T` are features of the views, `K = Phi^T Phi`) the closed form is the
    feature-space one on `G = R^T R`, `T = R^T A R` (`eigenbasis.triangular_moments`: on CPU LAPACK ?lauum and
    BLAS ?trmm, which use the triangle of R; `eigenbasis.solve_pencil`, one generalized subset eigenproblem), and
    `C = W R^-1` since `C K = W Phi`. Like `"structured-cholesky"` it keeps every direction of K
    (weight `s / (s + lam)`, as the dense path does for contrastive with `lam > 0`). `A` is dense or `_rows(A)`.
    NaN when K is not numerically positive definite: `solve` then takes the dense path.
    """
    R = _eb.cholesky(0.5 * (K + K.T))
    G, T = _eb.triangular_moments(R, _times(A, R))
    W, mu = _eb.solve_pencil("contrastive", G, T, lam, 0.0, dim, _cholesky_tol(K, lam))
    C = jax.scipy.linalg.solve_triangular(R.T, W.T, lower=False).T
    return C, mu


@functools.partial(jax.jit, static_argnames=("dim", "depth", "passes", "width"))
def _dense_krylov(K, A, lam, dim, depth=KRYLOV_DEPTH, passes=KRYLOV_PASSES, width=None):
    """Contrastive with any `A` and `lam > 0` by a block Krylov eigensolver (`"dense-krylov"`): `(C, mu, res)`.

    In the eigenbasis of K the contrastive core is the top of `M^1/2 A M^1/2` with `M = K (K + lam I)^-1` (the
    filter `s / (s + lam)` on every direction of K), i.e. of `S = A M`, self-adjoint in the `M` inner product
    (`eigenbasis.eigh_operator_top`): products with `A` (neighbour lists, `_rows`) and with
    `M = I - lam (K + lam I)^-1` (one Cholesky factor `K + lam I = L L^T`, two triangular solves per block), no
    N x N target and no tridiagonal reduction. For an `M`-orthonormal eigenvector `x` (`x^T M x = 1`) with eigenvalue
    `mu`, `v = M^1/2 x` is the unit eigenvector of the core and its row of coefficients is
    `sqrt(mu) v^T (K (K + lam I))^-1/2 = sqrt(mu) x^T (K + lam I)^-1`: `C = diag(sqrt mu) X^T (K + lam I)^-1`.
    `res` is the solver's `KrylovEigh` (the caller falls back to `_dense_cholesky` unless `res.converged`).
    """
    N = K.shape[0]
    L = _eb.cholesky(0.5 * (K + K.T) + lam * jnp.eye(N, dtype=K.dtype))

    def inv(Q):  # (K + lam I)^-1 Q
        return jax.scipy.linalg.cho_solve((L, True), Q)

    res = _eb.eigh_operator_top(functools.partial(_times, A), lambda Q: Q - lam * inv(Q), N, dim, K.dtype,
                                width=width, depth=depth, passes=passes)
    C, mu = _eb.pencil_rows(res.w, inv(res.X), True, _cholesky_tol(K, lam))
    return C, mu, res


def _closed_form(objective, K, eig, A, pairs, dim, lam, beta, rcond, structured, cliques):
    """`(coef, eigenvalues, gram_eigenvalues, method)`: checks, cut-off, target, core (validated input)."""
    N = K.shape[0]
    explicit = rcond is not None
    rcond = rcond if explicit else _eb.default_rcond(N, K.dtype)
    _eb.check_rank(dim, _eb.rank(eig.s, rcond), rcond)
    eig = truncate(eig, rcond if explicit else _eb.solver_rcond(objective, lam, rcond))
    tgt = target(objective, eig, A, pairs, dim=dim, structured=structured, cliques=cliques)
    coef, w = coefficients(tgt, eig, lam=lam, beta=beta, dim=dim)
    if objective == "barlow":
        _eb.check_barlow_feasible(w, dim, rcond)
    s_kept = np.asarray(eig.s)
    s_full = np.zeros(N, s_kept.dtype)
    s_full[N - s_kept.size:] = np.where(s_kept > rcond * s_kept.max(), s_kept, 0.0)
    return coef, w, jnp.asarray(s_full), tgt.method


def solve_eig(objective: str, K, eig: GramEigh, X, kernel, *, A=None, pairs=None, dim: int, lam: float, beta: float,
              rcond: float | None = None, structured: bool = True, cliques=None) -> Solution:
    """The closed form from a Gram `K` of the views `X` and its decomposition `eig`, as a `Solution` (validated input).

    The shared tail of `solve` and of studies that decompose once and solve many times: the rank check, the cut-off
    (default `N eps`, lifted for contrastive with `lam > 0`; an explicit `rcond` is applied as given), the target,
    the core, the Barlow check and the loss (`objectives.loss_from_coef`).
    """
    coef, w, gram_eigenvalues, method = _closed_form(objective, K, eig, A, pairs, dim, lam, beta, rcond, structured,
                                                     cliques)
    return _solution(objective, coef, w, K, X, kernel, A=A, pairs=pairs, dim=dim, lam=lam, beta=beta,
                     gram_eigenvalues=gram_eigenvalues, method=method)


def solve_gram(objective: str, K, A=None, *, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0, pairs=None,
               rcond: float | None = None, method: str = "auto", eig: GramEigh | None = None):
    """The closed form from a precomputed Gram `K` (no points, no kernel): `(coef, eigenvalues, eig, method)`.

    For users who hold a Gram (e.g. a centred one, as in the kernel PCA equivalence of SPEC §4, where the contrastive
    target `A` is that signed Gram: contrastive takes any symmetric `A` here). `eig` lets several
    objectives share one decomposition (`decompose`, optionally `truncate`d). `method` is `"auto"` (structured when
    `A` is a view-clique graph and the objective is contrastive), `"dense"` or `"structured"`.

    Example:
      >>> K = jnp.eye(4) + 0.5
      >>> coef, w, _, used = solve_gram("contrastive", K, jnp.eye(4), dim=2, lam=0.0)
      >>> coef.shape, used
      ((2, 4), 'structured-eigh')
    """
    _objectives.check_objective(objective)
    _v.choice("method", method, ("auto", "dense", "structured"))
    K = _v.array("K", K)
    N = K.shape[0]
    if K.shape != (N, N):
        raise ValueError(f"K must be a square (N, N) Gram matrix, got shape {K.shape}")
    dim = _v.integer("dim", dim)
    lam, beta = float(_v.real("lam", lam)), float(_v.real("beta", beta))
    rcond = _v.real("rcond", rcond, allow_none=True)
    if objective == "barlow":
        pairs, A = _v.pairs(pairs, N), None
    else:  # contrastive: any symmetric target (the kernel PCA equivalence uses the centred Gram, SPEC §4)
        A = _graphs.check_adjacency(A, N, nonnegative=objective != "contrastive").astype(K.dtype)
    if method == "structured" and (objective != "contrastive" or _graphs.clique_groups(A) is None):
        raise ValueError("method='structured' needs the contrastive objective and a view-clique A (graphs.from_groups)")
    eig = decompose(K, 0.0) if eig is None else eig
    coef, w, _, used = _closed_form(objective, K, eig, A, pairs, dim, lam, beta, rcond, method != "dense", None)
    return coef, w, eig, used


def _solution(objective, coef, w, K, X, kernel, *, A, pairs, dim, lam, beta, gram_eigenvalues, method) -> Solution:
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A, beta=beta)
    loss_value = _objectives.loss_from_coef(objective, coef, K, lam=lam, **kw)
    return Solution(coef=coef, train_x=X, kernel=kernel, eigenvalues=w, loss=loss_value,
                    gram_eigenvalues=gram_eigenvalues, loss_history=jnp.zeros((0,), X.dtype), objective=objective,
                    dim=dim, lam=float(lam), beta=float(beta), method=method)


def available_memory() -> int:
    """Bytes `method="auto"` may plan with: `$KSSL_MEMORY_BYTES` if set, else the default device's memory limit on
    an accelerator, else the physical memory of the host."""
    env = os.environ.get(MEMORY_ENV)
    if env:
        return _v.integer(MEMORY_ENV, int(env) if env.strip().isdigit() else env)
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def memory_estimate(method: str, N: int, d: int, *, itemsize: int = 8, dense_graph: bool = False,
                    n_landmarks: int | None = None, block_size: int | None = None) -> int:
    """Peak bytes of a path of `solve` on `N` views of dimension `d`, the caller's arrays excluded.

    - `"dense"`: the Gram, its eigenvectors (or, on the Cholesky route, its factor), the target and the LAPACK
      workspace of the eigensolver: 4 N x N arrays (+1 when `solve` builds a dense graph from `groups`);
    - `"structured"`: the Gram, the factor of `K + lam I` (or the eigenvectors): 2 N x N arrays (+1 graph);
    - `"nystrom"` (`m` landmarks, `b` rows per block): `K_mm` and its factors (4 m^2), one block of features and of
      kernel values (2 b m), the projected views (N m for the graph statistics) and the input (N d);
    - `"linear"`: `N d` inputs and a few `d x d` moments.
    """
    from kernel_ssl_jax.lowrank import DEFAULT_BLOCK, DEFAULT_LANDMARKS

    if method in ("dense", "structured"):
        return ((4 if method == "dense" else 2) + dense_graph) * N * N * itemsize
    if method == "nystrom":
        m = min(N, DEFAULT_LANDMARKS) if n_landmarks is None else n_landmarks
        b = min(N, block_size or DEFAULT_BLOCK)
        return (4 * m * m + 2 * b * m + N * m + N * d) * itemsize
    if method in ("linear", "rff"):
        return (N * d + 4 * d * d) * itemsize
    raise ValueError(f"memory_estimate: unknown method {method!r}")


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


def _auto_method(objective, kernel, N, d, lam, groups, A, feature_options, itemsize=8,
                 block_size=None) -> tuple[str, str]:
    """`method="auto"`, with the reason: linear features for the linear kernel with d < N; else the exact path
    (structured when `A` is a view-clique graph for contrastive, else dense) when its memory (`memory_estimate`) fits
    in `AUTO_MEMORY_FRACTION` of `available_memory()` and, apart from the structured Cholesky path for `lam > 0`
    (one factorisation), N is at most `AUTO_NYSTROM_ABOVE`; else Nystrom features."""
    if _is_linear(kernel) and d < N and not feature_options:
        return "linear", f"linear kernel with d = {d} < N = {N}: exact in the d-dimensional feature space"
    cliques = objective == "contrastive" and (groups is not None or (A is not None and
                                                                     _graphs.clique_groups(A) is not None))
    exact = "structured" if cliques else "dense"
    budget = int(AUTO_MEMORY_FRACTION * available_memory())
    need = memory_estimate(exact, N, d, itemsize=itemsize, dense_graph=groups is not None and objective != "barlow",
                           block_size=block_size)
    fits = f"{exact} needs ~{_gib(need)} of a {_gib(budget)} budget ({AUTO_MEMORY_FRACTION:g} of the available memory)"
    if need > budget:
        nys = memory_estimate("nystrom", N, d, itemsize=itemsize, n_landmarks=feature_options.get("n_landmarks"),
                              block_size=block_size)
        return "nystrom", f"{fits}: too much; nystrom needs ~{_gib(nys)}"
    if N > AUTO_NYSTROM_ABOVE and not (cliques and lam > 0):
        return "nystrom", f"N = {N} > {AUTO_NYSTROM_ABOVE} views: the O(N^3) {exact} path is too slow ({fits})"
    return exact, fits


def _is_linear(kernel) -> bool:
    return isinstance(kernel, _kernels.Kernel) and kernel.name == "linear"



def solve(objective: str, X, A=None, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
          pairs=None, groups=None, rcond: float | None = None, method: str = "auto", dtype=None,
          block_size: int | None = None, eigensolver: str = "auto", **feature_options) -> Solution:
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
        dense path's `rcond`), else the exact path (structured when it applies, else dense) when the memory it
        needs (`memory_estimate`) fits in `AUTO_MEMORY_FRACTION` of `available_memory()` (`$KSSL_MEMORY_BYTES`
        overrides it) and N is at most `AUTO_NYSTROM_ABOVE` (the structured Cholesky path for `lam > 0` is exempt
        from the N limit), else Nystrom features. `Solution.method` names the algorithm that ran
        (`"structured-cholesky"`, `"dense-cholesky"`, `"dense-eigh"`, ...) and `Solution.reason` why auto chose it.
        The dense path solves contrastive with `lam > 0` (default `rcond`, `dim <= N / 2`) without an
        eigendecomposition of K: by a block Krylov eigensolver on products with `A` and `(K + lam I)^-1`
        (`"dense-krylov"`, when its basis is at most `N / 2` columns) or from a Cholesky factor of K and one
        generalized subset eigenproblem (`"dense-cholesky"`: smaller N, `eigensolver="exact"`, or when the Krylov
        solver does not converge, which `Solution.reason` then says), falling back to `"dense-eigh"` when K is not
        numerically positive definite.
      dtype: float dtype of the computation; default float64 when x64 is enabled, else float32.
      block_size: rows per block when computing the Gram (or the features).
      eigensolver: `"auto"` or `"exact"`: the latter keeps the dense path for contrastive with `lam > 0` on the
        exact subset eigensolver (`"dense-cholesky"`) instead of the iterative one (`"dense-krylov"`).
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
    _v.choice("method", method, METHODS)
    _v.choice("eigensolver", eigensolver, EIGENSOLVERS)
    if not callable(kernel):
        raise TypeError(f"kernel must be a kernels.Kernel or a callable k(x, y), got {kernel!r}")
    dim = _v.integer("dim", dim)
    lam = float(_v.real("lam", lam))
    beta = float(_v.real("beta", beta))
    rcond = _v.real("rcond", rcond, allow_none=True)
    X = _v.array("X", X, dtype=_v.float_dtype("dtype", dtype) if dtype is not None else None)
    N = X.shape[0]
    if groups is not None:
        if A is not None:
            raise ValueError("give either A or groups, not both")
        groups = _graphs.check_groups(groups, N)
    reason = ""
    if method == "auto":
        method, reason = _auto_method(objective, kernel, N, X.shape[1], lam, groups, A, feature_options,
                                      X.dtype.itemsize, block_size)
    sol = _solve_method(objective, X, A, kernel, dim, lam, beta, pairs, groups, rcond, method, block_size,
                        feature_options, eigensolver == "auto")
    if reason:
        reason = f"{reason}; {sol.reason}" if sol.reason else reason
        sol = dataclasses.replace(sol, reason=reason)
    return sol


def _solve_method(objective, X, A, kernel, dim, lam, beta, pairs, groups, rcond, method, block_size,
                  feature_options, krylov=True) -> Solution:
    """`solve` once the method is known (validated input)."""
    N = X.shape[0]
    if method in FEATURE_METHODS:
        from kernel_ssl_jax import lowrank  # the feature-space paths build on this module's entry point

        if rcond is None and method == "linear":  # the dense path's default cut-off: "auto" keeps its meaning
            rcond = _eb.default_rcond(N, X.dtype)
        return lowrank.solve_features(objective, X, A, kernel=kernel, dim=dim, lam=lam, beta=beta, pairs=pairs,
                                      groups=groups, method=method, rcond=rcond, block_size=block_size,
                                      **feature_options)
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
        pairs = _v.pairs(pairs, N)
    else:
        if A is None:
            raise ValueError(f"{objective} needs the relationship matrix A, e.g. graphs.from_groups(groups)")
        A = _graphs.check_adjacency(A, N).astype(X.dtype)
    cliques = None
    if method == "structured":
        if objective != "contrastive":
            raise ValueError(f"method='structured' is available for 'contrastive' only, not {objective!r}")
        cliques = groups if groups is not None else _graphs.clique_groups(A)
        if cliques is None:
            raise ValueError("method='structured' needs A to be a view-clique graph (graphs.from_groups)")
    K = _kernels.gram(kernel, X, block_size=block_size)  # raises if K has NaN or Inf
    if cliques is not None and cholesky_is_accurate(K, lam):
        return _solve_cholesky(K, X, kernel, A, cliques, dim=dim, lam=lam, beta=beta, rcond=rcond)
    if _dense_cholesky_applies(objective, lam, rcond, dim, N) and cholesky_is_accurate(K, lam):
        sol = _solve_cholesky(K, X, kernel, A, None, dim=dim, lam=lam, beta=beta, rcond=rcond, krylov=krylov)
        if sol is not None:
            return sol
        return dataclasses.replace(
            solve_eig(objective, K, decompose(K, 0.0), X, kernel, A=A, pairs=pairs, dim=dim, lam=lam, beta=beta,
                      rcond=rcond, structured=False),
            reason="K is not numerically positive definite: eigendecomposition instead of its Cholesky factor")
    return solve_eig(objective, K, decompose(K, 0.0), X, kernel, A=A, pairs=pairs, dim=dim, lam=lam, beta=beta,
                     rcond=rcond, structured=method == "structured", cliques=cliques)


def _dense_cholesky_applies(objective, lam, rcond, dim, N) -> bool:
    """Whether the dense path takes `"dense-cholesky"`: contrastive, `lam > 0`, the default `rcond` (which keeps
    every direction of K, as the Cholesky factor does) and `dim` at most `PARTIAL_EIGH_MAX_FRACTION * N` (above it
    the subset eigensolver saves nothing). Otherwise, and when K is not numerically positive definite, `"dense-eigh"`.
    """
    return (objective == "contrastive" and lam > 0 and rcond is None
            and dim <= _eb.PARTIAL_EIGH_MAX_FRACTION * N)


def _krylov_applies(N: int, dim: int) -> bool:
    """Whether `"dense-krylov"` replaces the exact subset eigensolver (`eigenbasis.krylov_pays`)."""
    return _eb.krylov_pays(N, dim, KRYLOV_DEPTH)


def _solve_cholesky(K, X, kernel, A, cliques, *, dim, lam, beta, rcond, krylov=True) -> Solution | None:
    """The Cholesky paths for contrastive, `lam > 0`: no eigendecomposition of K.

    With `cliques`, the structured path (`_clique_cholesky`, factor of `K + lam I`); without, the dense one for any
    `A`: `_dense_krylov` (factor of `K + lam I`, block Krylov eigensolver) when `krylov` and `_krylov_applies`, and
    `_dense_cholesky` (factor of K, exact subset eigensolver) otherwise or when the Krylov solver did not converge
    (`Solution.reason` says so); None when K is not numerically positive definite (the caller then takes
    `"dense-eigh"`). The rank of K is needed only when `dim` exceeds the number of nonzero target eigenvalues: then
    `eigvalsh(K)` decides between zero rows (feasible) and the rank error of every path.
    """
    N = K.shape[0]
    reason = ""
    if cliques is not None:
        coef, w = _clique_cholesky(K, jnp.asarray(cliques), lam, dim, int(np.max(cliques)) + 1)
        method = "structured-cholesky"
    else:
        rows, method = _rows(A), ""
        if krylov and _krylov_applies(N, dim):
            coef, w, res = _dense_krylov(K, rows, lam, dim, KRYLOV_DEPTH, KRYLOV_PASSES)
            if bool(res.converged) and _v.all_finite(coef):
                method = "dense-krylov"
            else:
                reason = _eb.krylov_fallback_reason(res)
        if not method:
            coef, w = _dense_cholesky(K, rows, lam, dim)
            if not _v.all_finite(coef):
                return None
            method = "dense-cholesky"
    rcond = rcond if rcond is not None else _eb.default_rcond(N, K.dtype)
    if int(_n_live(w, K, lam)) < dim:
        _eb.check_rank(dim, _eb.rank(jax.jit(_eb.eigvalsh)(K), rcond), rcond)
    sol = _solution("contrastive", coef, w, K, X, kernel, A=A, pairs=None, dim=dim, lam=lam, beta=beta,
                    gram_eigenvalues=jnp.zeros((0,), K.dtype), method=method)
    return dataclasses.replace(sol, reason=reason) if reason else sol
