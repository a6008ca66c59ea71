"""Feature-space closed forms (SPEC.md §3 with explicit features): every objective as a D x D problem.

With explicit features `psi(x)` in `R^D` (`featuremaps`: identity for the linear kernel, Nystrom on landmarks for any
kernel, random Fourier features for rbf / laplacian), the kernel is `psi(x) . psi(y)` and the Gram of the views is
`K = Psi Psi^T` (`Psi` is N x D). The one closed-form core (`eigenbasis`) only needs `K`'s eigenvalues and the
targets written in its whitened eigen-coordinates, and all of these follow from D x D matrices:

- the second moment `M2 = Psi^T Psi = V diag(s) V^T`: the nonzero eigenvalues of K are `s`, and its eigenvectors
  are `U = Psi V diag(s^-1/2)` (over the kept `s > rcond * max(s)`);
- the whitened target `diag(sqrt s) U^T A U diag(sqrt s) = V^T (Psi^T A Psi) V`, with `Psi^T A Psi` (`PA`):
  for a view-clique graph `A = E E^T`, `PA = G^T G` with `G = E^T Psi` the per-source sums of features (a segment
  sum, O(N D)); for a dense `A`, `Psi^T (A Psi)` in row blocks (O(N^2 D), allowed because A itself is N x N);
- the Laplacian part `Psi^T L Psi = Psi^T diag(deg) Psi - PA` (`PD - PA`);
- Barlow: `U[v1]^T U[v2]` scaled by `sqrt(s) sqrt(s)^T` is `V^T (Psi[v1]^T Psi[v2]) V` (`S12`).

`eigenbasis.solve` then returns `Cs` with `f(x) = Cs V^T psi(x)`: the feature-space map is `W = Cs V^T` (M x D). The
loss of SPEC §2 is evaluated from the same statistics by `objectives.loss_from_moments`, never forming N x N: with
`Q = W (M2 + lam I) W^T`, `tr(Z A Z^T) = tr(W PA W^T)`, `tr(Z L Z^T) = tr(W (PD - PA) W^T)`, `Z1 Z2^T = W S12 W^T`
(the ridge term is `lam W W^T` because the RKHS norm of the feature kernel on the span of the views is the
Euclidean norm of `W`).
Cost O(N D^2 + D^3) time, O(n D + D^2) memory beyond the data (n sources) for clique graphs and pairs: `Psi` is
computed in row blocks and reduced on the fly, never stored (the dense-A path stores it, O(N D)). The moment of each
block goes to BLAS ?syrk on CPU (`eigenbasis.moment`). A Nystrom map `psi = proj k(Lm, x)` is linear in the kernel
columns, so for N >= 4 m views and a well-conditioned `K_mm` (`_columns_are_accurate`) the row statistics are reduced
in kernel columns and projected once, `M2 = proj (K_nm^T K_nm) proj^T`: one product per row block instead of two.

Cut-offs. Eigenvalues of `M2` at or below `rcond * max(s)` (default `D * eps`) are dropped where a pseudo-inverse is
needed (`lam = 0`, vicreg's projector onto range(K), vicreg_hard, barlow). Contrastive with `lam > 0` drops nothing:
its factors `f s^-1/2 = g s^1/2 = (s + lam)^-1/2` are bounded, as in the Cholesky path of `spectral`; this keeps the
float32 error at the rounding level instead of the truncation level (docs/scaling.md). Its D x D pencil
`(PA, M2 + lam I)` goes to the block Krylov eigensolver (`eigenbasis.solve_pencil_krylov`) where that pays
(`eigenbasis.krylov_pays`: D >= 1056 at dim 32), with LAPACK's subset driver when it does not converge (then
`Solution.reason` of `solve_features` says so).

Multi-device. The rows are split over a 1-D mesh `("data",)` of `devices`: each device computes the features of its
rows (`Psi` sharded as `P("data", None)`, blockwise inside `jax.shard_map`) and reduces them to its partial `M2`,
`PD`, `S12`, which `psum` adds. The per-source sums `G` (n x D) are reduce-scattered over sources
(`psum_scatter`), so each device holds n / n_devices rows of G and `PA = psum(G_s^T G_s)`. N is padded with zero
rows to a multiple of (devices x block), and a mask zeroes their features (a zero row of Psi adds nothing to any
statistic, including the source sums). Inputs are created with `jax.make_array_from_callback` and the replicated D x D
results are read from the local shard, so the same code runs multi-host after `jax.distributed.initialize()` (every
process passes the same `X`; docs/scaling.md).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from kernel_ssl_jax import featuremaps as _fm
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import eigenbasis as _eb
from kernel_ssl_jax import validation as _v
from kernel_ssl_jax.eigenbasis import DEFAULT_LAM
from kernel_ssl_jax.solution import Solution

Array = jax.Array

METHODS = ("nystrom", "rff", "linear")
DEFAULT_LANDMARKS = 1024
DEFAULT_RFF = 2048
DEFAULT_BLOCK = 2048

__all__ = [
    "FeatureStats",
    "feature_stats",
    "feature_matrix",
    "solve_stats",
    "loss_from_stats",
    "solve_psi",
    "solve_features",
    "METHODS",
]


class FeatureStats(NamedTuple):
    """The D x D statistics of the features of the training views that every closed form needs.

    Attributes:
      M2: `Psi^T Psi`.
      PA: `Psi^T A Psi` (zeros for barlow).
      PD: `Psi^T diag(deg) Psi`, `deg = A 1` (vicreg and vicreg_hard; zeros otherwise).
      S12: `Psi[v1]^T Psi[v2]` (barlow; zeros otherwise).
      max_degree: `max(A 1)` (0-d; vicreg_hard uses it to lift directions outside range(K)).
      n_views: N (0-d int), for the default `rcond`.
    """

    M2: Array
    PA: Array
    PD: Array
    S12: Array
    max_degree: Array
    n_views: Array


# --------------------------------------------------------------------------------------------------------------------
# Layout: a 1-D mesh over devices, rows padded to a multiple of devices x block


def _resolve_devices(devices, shard: bool) -> list:
    if devices is None:
        # Unsharded: this process's first device (with several hosts, jax.devices()[0] may belong to another).
        return list(jax.devices()) if shard else [jax.local_devices()[0]]
    devices = list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty sequence of jax devices")
    return devices


def _mesh(devices) -> Mesh:
    return Mesh(np.asarray(devices, dtype=object), ("data",))


def _layout(n: int, n_dev: int, block: int) -> tuple[int, int]:
    """`(block, n_pad)`: rows per block (at most the rows of one device) and padded rows, a multiple of both."""
    per = max(1, -(-n // n_dev))
    block = max(1, min(block, per))
    per = -(-per // block) * block
    return block, per * n_dev


def _put(mesh: Mesh, x, spec) -> Array:
    # From host data every process holds: works on one device, many, and multi-host (global arrays).
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, NamedSharding(mesh, spec), lambda idx: x[idx])


def _pad(x: np.ndarray, n_pad: int) -> np.ndarray:
    out = np.zeros((n_pad,) + x.shape[1:], dtype=x.dtype)
    out[: x.shape[0]] = x
    return out


def _fetch(x: Array) -> np.ndarray:
    # A replicated result: read this process's copy (np.asarray(x) needs every shard addressable, not multi-host).
    return np.asarray(x.addressable_shards[0].data)


def _replicate(mesh: Mesh, fmap: _fm.FeatureMap, dtype) -> _fm.FeatureMap:
    # Every leaf (landmarks, projections, frequencies, kernel hyper-parameters) replicated on the mesh, floats in
    # the data dtype.
    def put(a):
        a = np.asarray(a)
        return _put(mesh, a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a, P())

    return jax.tree_util.tree_map(put, fmap)


def _kernel_columns(fmap, xb: Array, mb: Array) -> Array:
    """`k(x, Lm)` for each row of one block (a Nystrom map before its projection), padding rows zeroed: one matrix
    product for a dot-product kernel (`kernels.gram`)."""
    return _kernels.gram(fmap.base, xb, fmap.landmarks) * mb[:, None]


def _psi(fmap, xb: Array, mb: Array) -> Array:
    """Features of one block of rows, padding rows zeroed."""
    return fmap.batch(xb) * mb[:, None]


def _blocks(block: int, *arrays):
    return tuple(a.reshape((a.shape[0] // block, block) + a.shape[1:]) for a in arrays)


# --------------------------------------------------------------------------------------------------------------------
# The reductions, per device inside shard_map


def _columns_are_accurate(fmap) -> bool:
    """Whether the statistics of a Nystrom map may be reduced in kernel columns and projected after (`_row_stats`).

    `M2 = proj (K_nm^T K_nm) proj^T` with `proj = diag(s^-1/2) U^T` costs one product per row block instead of two
    (the features `K_nm proj^T` and their moment), but forms `K_nm^T K_nm`, whose rounding the projection amplifies
    by up to `cond(K_mm) = max(s) / min(s)` (kept `s`) relative to `M2`: taken when `eps cond(K_mm) <= sqrt(eps)`
    (1.5e-8 in float64; e.g. RBF on 2000 k-means++ digits landmarks: cond 1e6), as `spectral.cholesky_is_accurate`.
    """
    if fmap.kind != "nystrom":
        return False
    proj = np.asarray(fmap.proj)
    if proj.shape[0] > 1 and proj.shape[0] == proj.shape[1] and not np.any(np.triu(proj, 1)):
        return True  # `L^-1`: built only when eps cond(K_mm) <= sqrt(eps) (`featuremaps`, module doc)
    inv_s = np.sum(np.asarray(fmap.proj, np.float64) ** 2, axis=1)  # the rows of proj have norm s^-1/2
    eps = float(np.finfo(np.asarray(fmap.proj).dtype).eps)
    return bool(inv_s.size) and eps * float(inv_s.max() / inv_s.min()) <= np.sqrt(eps)


def _columns_pay(fmap, n_rows: int) -> bool:
    """Whether `_row_stats` reduces kernel columns (`_columns_are_accurate`) for `n_rows` views: the projection of
    every block costs `2 n_rows m D` flops, the projections of the reduced `M2` (and `PD`) `8 m^2 D`: from 4 m rows."""
    return fmap.kind == "nystrom" and n_rows >= 4 * fmap.landmarks.shape[0] and _columns_are_accurate(fmap)


@functools.partial(jax.jit, static_argnames=("mesh", "block", "n_src_pad", "need_pd", "columns"))
def _row_stats(fmap, X, mask, grp, deg, *, mesh, block, n_src_pad, need_pd, columns=False):
    """`(M2, PD, PA)` streaming over row blocks; `PA` from per-source sums when `n_src_pad > 0`.

    `columns` (a Nystrom map, `_columns_are_accurate`): the blocks are kernel columns `k(x, Lm)` (m of them), the
    statistics are reduced in those coordinates and projected once at the end (`proj S proj^T`): the projection of
    every row block is saved."""
    D = fmap.landmarks.shape[0] if columns else fmap.dim

    def local(fmap, X, mask, grp, deg):
        dt = X.dtype
        zero = jnp.zeros((D, D), dt)

        def body(carry, blk):
            M2, PD, G = carry
            xb, mb, gb, db = blk
            Pb = (_kernel_columns(fmap, xb, mb) if columns else _psi(fmap, xb, mb)).astype(dt)
            M2 = M2 + _eb.moment(Pb)
            if need_pd:
                PD = PD + (Pb * db[:, None]).T @ Pb
            if n_src_pad:
                G = G.at[gb].add(Pb)
            return (M2, PD, G), None

        G0 = jnp.zeros((n_src_pad, D), dt)
        (M2, PD, G), _ = jax.lax.scan(body, (zero, zero, G0), _blocks(block, X, mask, grp, deg))
        proj = fmap.proj.astype(dt) if columns else None
        out = jnp.zeros((fmap.dim,) * 2, dt)
        M2 = jax.lax.psum(M2, "data")
        M2 = proj @ M2 @ proj.T if columns else M2  # back to the features (D x D)
        if need_pd:
            PD = jax.lax.psum(PD, "data")
            PD = proj @ PD @ proj.T if columns else PD
        else:
            PD = out
        if n_src_pad:
            # Sources are split across devices: reduce-scatter the per-source sums, then G^T G from the local part.
            Gs = jax.lax.psum_scatter(G, "data", scatter_dimension=0, tiled=True)
            PA = jax.lax.psum(_eb.moment(Gs @ proj.T if columns else Gs), "data")
        else:
            PA = out
        return M2, PD, PA

    specs = (P(), P("data", None), P("data"), P("data"), P("data"))
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=(P(), P(), P()), check_vma=False)(
        fmap, X, mask, grp, deg)


@functools.partial(jax.jit, static_argnames=("mesh", "block"))
def _pair_stats(fmap, X1, X2, mask, *, mesh, block):
    """`S12 = Psi[v1]^T Psi[v2]` streaming over blocks of pairs."""
    D = fmap.dim

    def local(fmap, X1, X2, mask):
        def body(S, blk):
            x1, x2, mb = blk
            return S + _psi(fmap, x1, mb).T @ _psi(fmap, x2, mb), None

        S, _ = jax.lax.scan(body, jnp.zeros((D, D), X1.dtype), _blocks(block, X1, X2, mask))
        return jax.lax.psum(S, "data")

    specs = (P(), P("data", None), P("data", None), P("data"))
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(), check_vma=False)(fmap, X1, X2, mask)


def _local_psi(fmap, X, mask, block):
    def body(_, blk):
        xb, mb = blk
        return None, _psi(fmap, xb, mb).astype(X.dtype)

    _, Pb = jax.lax.scan(body, None, _blocks(block, X, mask))
    return Pb.reshape(X.shape[0], fmap.dim)


@functools.partial(jax.jit, static_argnames=("mesh", "block"))
def _psi_sharded(fmap, X, mask, *, mesh, block):
    local = lambda fmap, X, mask: _local_psi(fmap, X, mask, block)  # noqa: E731
    specs = (P(), P("data", None), P("data"))
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P("data", None), check_vma=False)(
        fmap, X, mask)


@functools.partial(jax.jit, static_argnames=("mesh", "block", "need_pd"))
def _dense_stats(fmap, X, mask, deg, A, *, mesh, block, need_pd):
    """`(M2, PD, PA)` for a dense `A` (rows sharded like `X`); `Psi` is stored, all-gathered for `A Psi`."""

    def local(fmap, X, mask, deg, A):
        Psi = _local_psi(fmap, X, mask, block)
        M2 = Psi.T @ Psi
        PD = (Psi * deg[:, None]).T @ Psi if need_pd else jnp.zeros_like(M2)
        full = jax.lax.all_gather(Psi, "data", tiled=True)

        def body(PA, blk):
            a_rows, p_rows = blk
            return PA + p_rows.T @ (a_rows @ full), None

        PA, _ = jax.lax.scan(body, jnp.zeros_like(M2), _blocks(block, A, Psi))
        return tuple(jax.lax.psum(v, "data") for v in (M2, PD, PA))

    specs = (P(), P("data", None), P("data"), P("data"), P("data", None))
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=(P(), P(), P()), check_vma=False)(
        fmap, X, mask, deg, A)


# --------------------------------------------------------------------------------------------------------------------
# Statistics from data


def _as_fmap(fmap, X) -> _fm.FeatureMap:
    if not isinstance(fmap, _fm.FeatureMap):
        raise TypeError(f"fmap must be a featuremaps.FeatureMap, got {type(fmap).__name__}")
    try:
        out = jax.eval_shape(fmap, jax.ShapeDtypeStruct(X.shape[1:], X.dtype))
    except (TypeError, ValueError) as e:
        raise ValueError(f"the feature map does not apply to inputs of {X.shape[1]} features: {e}") from None
    if out.shape != (fmap.dim,):
        raise ValueError(f"the feature map gives {out.shape} features per example, expected ({fmap.dim},)")
    # Leaves in the data dtype (float32 data must not be promoted by float64 landmarks, and vice versa).
    return jax.tree_util.tree_map(
        lambda a: a.astype(X.dtype) if isinstance(a, jax.Array) and jnp.issubdtype(a.dtype, jnp.floating) else a,
        fmap)


def feature_matrix(fmap: _fm.FeatureMap, X, *, block_size: int | None = None, devices: Sequence | None = None,
                   shard: bool = False) -> Array:
    """`Psi = psi(X)`, `(N, D)`, computed in row blocks, with rows sharded over `devices` (`P("data", None)`).

    Args:
      fmap: a `featuremaps.FeatureMap`.
      X: `(N, d)` points.
      block_size: rows per block on each device (default 2048).
      devices: devices of the 1-D mesh; default: the first device, or all of them with `shard=True`.
      shard: use every device (`jax.devices()`).

    Returns:
      `(N, D)` array sharded by rows over the mesh (rows beyond N are dropped, which may re-shard when N is not a
      multiple of the device count).

    Example:
      >>> X = jnp.ones((10, 3))
      >>> fm = _fm.feature_map(_kernels.linear(), "identity", points=X)
      >>> feature_matrix(fm, X).shape
      (10, 3)
    """
    X = _v.array("X", X)
    fmap = _as_fmap(fmap, X)
    mesh = _mesh(_resolve_devices(devices, shard))
    N = X.shape[0]
    block, n_pad = _layout(N, mesh.size, block_size or DEFAULT_BLOCK)
    Xn = np.asarray(X)
    mask = (np.arange(n_pad) < N).astype(Xn.dtype)
    Psi = _psi_sharded(_replicate(mesh, fmap, Xn.dtype), _put(mesh, _pad(Xn, n_pad), P("data", None)),
                       _put(mesh, mask, P("data")), mesh=mesh, block=block)
    return Psi if n_pad == N else Psi[:N]


def feature_stats(objective: str, fmap: _fm.FeatureMap, X, *, groups=None, A=None, pairs=None,
                  block_size: int | None = None, devices: Sequence | None = None,
                  shard: bool = False) -> FeatureStats:
    """The D x D statistics (`FeatureStats`) of `psi(X)` that the closed form of `objective` needs.

    Never forms an N x N array (a dense `A` is the caller's) nor an N x N x d one; with `groups` or `pairs` it
    never stores `Psi` either (row blocks are reduced as they are computed).

    Args:
      objective: one of `objectives.OBJECTIVES`.
      fmap: the feature map.
      X: `(N, d)` training views.
      groups: `(N,)` source of each view: the graph is the view cliques `A = from_groups(groups)` (cheap).
      A: `(N, N)` dense relationship matrix instead of `groups` (a clique `A` is recognised as `groups`).
      pairs: `(v1, v2)` paired views (barlow; default with `groups`: all within-source pairs).
      block_size: rows (or pairs) per block on each device (default 2048).
      devices: devices of the 1-D data mesh (default: the first device; all with `shard=True`).
      shard: shard over every device.

    Returns:
      A `FeatureStats` on the default device.

    Raises:
      ValueError: bad shapes or NaN, both or neither of `A` and `groups`, missing `pairs` for barlow.
    """
    _objectives.check_objective(objective)
    X = _v.array("X", X)
    groups, A, pairs = _graph(objective, X.shape[0], A, groups, pairs, X.dtype)
    return _feature_stats(objective, fmap, X, groups=groups, A=A, pairs=pairs, block_size=block_size,
                          devices=devices, shard=shard)


def _feature_stats(objective, fmap, X, *, groups, A, pairs, block_size, devices, shard) -> FeatureStats:
    """`feature_stats` on validated input (`_graph`)."""
    fmap = _as_fmap(fmap, X)
    mesh = _mesh(_resolve_devices(devices, shard))
    N = X.shape[0]
    bs = block_size or DEFAULT_BLOCK
    block, n_pad = _layout(N, mesh.size, bs)
    Xn = np.asarray(X)
    dt = Xn.dtype
    mask = (np.arange(n_pad) < N).astype(dt)
    X_s = _put(mesh, _pad(Xn, n_pad), P("data", None))
    mask_s = _put(mesh, mask, P("data"))
    fm_s = _replicate(mesh, fmap, dt)
    need_pd = objective in ("vicreg", "vicreg_hard")
    D = fmap.dim
    zero = np.zeros((D, D), dt)
    max_degree = 0.0
    S12 = zero
    if objective == "barlow":
        v1, v2 = (np.asarray(p) for p in pairs)
        pblock, p_pad = _layout(v1.shape[0], mesh.size, bs)
        pmask = (np.arange(p_pad) < v1.shape[0]).astype(dt)
        S12 = _fetch(_pair_stats(fm_s, _put(mesh, _pad(Xn[v1], p_pad), P("data", None)),
                                 _put(mesh, _pad(Xn[v2], p_pad), P("data", None)), _put(mesh, pmask, P("data")),
                                 mesh=mesh, block=pblock))
        M2, _, _ = _row_stats(fm_s, X_s, mask_s, _put(mesh, np.zeros(n_pad, np.int32), P("data")),
                              _put(mesh, np.zeros(n_pad, dt), P("data")), mesh=mesh, block=block, n_src_pad=0,
                              need_pd=False, columns=_columns_pay(fmap, N))
        M2, PD, PA = _fetch(M2), zero, zero
    elif groups is not None:
        g = _graphs.check_groups(groups, N)
        counts = np.bincount(g)
        n_src = counts.shape[0]
        n_src_pad = -(-n_src // mesh.size) * mesh.size
        deg = counts[g].astype(dt)
        max_degree = float(counts.max())
        out = _row_stats(fm_s, X_s, mask_s, _put(mesh, _pad(g.astype(np.int32), n_pad), P("data")),
                         _put(mesh, _pad(deg, n_pad), P("data")), mesh=mesh, block=block, n_src_pad=n_src_pad,
                         need_pd=need_pd, columns=_columns_pay(fmap, N))
        M2, PD, PA = (_fetch(v) for v in out)
    else:
        An = np.asarray(A, dtype=dt)
        deg = An.sum(axis=1)
        max_degree = float(deg.max()) if N else 0.0
        A_pad = np.zeros((n_pad, n_pad), dt)
        A_pad[:N, :N] = An
        out = _dense_stats(fm_s, X_s, mask_s, _put(mesh, _pad(deg, n_pad), P("data")),
                           _put(mesh, A_pad, P("data", None)), mesh=mesh, block=block, need_pd=need_pd)
        M2, PD, PA = (_fetch(v) for v in out)
    return FeatureStats(M2=jnp.asarray(M2), PA=jnp.asarray(PA), PD=jnp.asarray(PD), S12=jnp.asarray(S12),
                        max_degree=jnp.asarray(max_degree, dt), n_views=jnp.asarray(N))


# --------------------------------------------------------------------------------------------------------------------
# The closed forms in feature coordinates


@functools.partial(jax.jit, static_argnames=("objective", "dim"))
def _solve_stats(objective, st: FeatureStats, lam, beta, cut, dim):
    """`(W, eigenvalues, eigenvalues of M2)`: the core (`eigenbasis.solve`) in the eigenbasis `V` of `M2`,
    `W = Cs V^T`."""
    s_all, V = jnp.linalg.eigh(0.5 * (st.M2 + st.M2.T))
    s = jnp.where(s_all > cut * jnp.max(s_all), s_all, 0.0)
    X = st.S12 if objective == "barlow" else st.PA if objective == "contrastive" else st.PD - st.PA
    # The vicreg targets of a view-clique graph have exactly degenerate extreme eigenvalues (one per source): the
    # full eigensolver there (`eigenbasis.subset_cuts_a_cluster`; D x D is small).
    partial = objective not in ("vicreg", "vicreg_hard")
    Cs, w = _eb.solve(objective, s, V.T @ X @ V, lam, beta, dim, st.max_degree, partial)
    return Cs @ V.T, w, s_all


@functools.partial(jax.jit, static_argnames=("dim",))
def _solve_stats_pencil(st: FeatureStats, lam, dim):
    """Contrastive with `lam > 0` and no cut-off: `_solve_stats` without an eigendecomposition of `M2`
    (`eigenbasis.solve_pencil`: one Cholesky factor of `M2 + lam I` and a generalized subset eigenproblem; the
    eigenvalues of `M2` alone, for the rank check, cost a third of its eigendecomposition)."""
    W, w = _eb.solve_pencil("contrastive", st.M2, st.PA, lam, 0.0, dim)
    return W, w, _eigvalsh(st.M2)


@jax.jit
def _eigvalsh(M2):
    return _eb.eigvalsh(0.5 * (M2 + M2.T))


def loss_from_stats(objective: str, W, stats: FeatureStats, *, lam: float = DEFAULT_LAM, beta: float = 1.0) -> Array:
    """The SPEC §2 loss of the map `f(x) = W psi(x)` on the training views, from the D x D statistics.

    `Q = W (M2 + lam I) W^T`, `tr(Z A Z^T) = tr(W PA W^T)`, `tr(Z L Z^T) = tr(W (PD - PA) W^T)`,
    `Z1 Z2^T = W S12 W^T` (the module doc). Exact (no N x N array) for any `W` in the row space of `Psi`.
    """
    _objectives.check_objective(objective)
    return _objectives.loss_from_moments(objective, jnp.asarray(W), stats.M2, stats.PA, stats.PD, stats.S12,
                                         lam=lam, beta=beta)


def solve_stats(objective: str, stats: FeatureStats, *, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
                rcond: float | None = None) -> tuple[Array, Array, Array]:
    """The closed form of SPEC §3 from the D x D statistics: `(W, eigenvalues, gram_eigenvalues)`.

    Args:
      objective: one of `objectives.OBJECTIVES`.
      stats: `FeatureStats` of the training views.
      dim: output dimension M; at most the rank of `M2` (the rank of K), as on every path.
      lam, beta: as in `spectral.solve`.
      rcond: eigenvalues of `M2` at or below `rcond * max` are dropped; default `D * eps` (the rounding of a D x D
        eigenproblem; `spectral.solve`'s default is `N * eps`, pass it to reproduce the dense path's cut-off).

    Returns:
      `W` `(dim, D)` (`f(x) = W psi(x)`), the eigenvalues kept by the solver (as `Solution.eigenvalues`), and the
      eigenvalues of `M2` (= the nonzero eigenvalues of `K = Psi Psi^T`), ascending, zero where dropped.

    Raises:
      ValueError: `dim` above the rank, or a barlow problem without `dim` positive directions.
    """
    return _solve_stats_routed(objective, stats, dim=dim, lam=lam, beta=beta, rcond=rcond)[:3]


def _solve_stats_routed(objective, stats, *, dim, lam, beta, rcond):
    """`solve_stats` and the reason when the block Krylov eigensolver did not converge (else "")."""
    _objectives.check_objective(objective)
    dim = _v.integer("dim", dim)
    lam = float(_v.real("lam", lam))
    beta = float(_v.real("beta", beta))
    D = stats.M2.shape[0]
    explicit = rcond is not None
    rcond = float(_v.real("rcond", rcond)) if explicit else _eb.default_rcond(D, stats.M2.dtype)
    cut = rcond if explicit else _eb.solver_rcond(objective, lam, rcond)
    what = "the feature second moment Psi^T Psi (= the rank of K)"
    _eb.check_rank(dim, D, rcond, what)
    W, reason = None, ""
    if objective == "contrastive" and lam > 0 and cut == 0 and _eb.krylov_pays(D, dim):
        # The pencil by the block Krylov eigensolver; the exact subset solver below unless it converged.
        W, w, res = _eb.solve_pencil_krylov(stats.M2, stats.PA, lam, dim)
        W = W if bool(res.converged) and _v.all_finite(W) else None
        s = _eigvalsh(stats.M2) if W is not None else None
        if W is None:
            reason = _eb.krylov_fallback_reason(res)
    if W is None and objective == "contrastive" and lam > 0 and cut == 0:
        W, w, s = _solve_stats_pencil(stats, lam, dim)
        W = W if _v.all_finite(W) else None  # M2 + lam I not numerically definite (lam ~ rounding)
    if W is None:
        W, w, s = _solve_stats(objective, stats, lam, beta, cut, dim)
    s = np.asarray(s)
    kept = s > rcond * s.max()
    _eb.check_rank(dim, _eb.rank(s, rcond), rcond, what)
    s = jnp.asarray(np.where(kept, s, 0.0))
    if objective == "barlow":
        _eb.check_barlow_feasible(w, dim, rcond)
    return W, w, s, reason


# --------------------------------------------------------------------------------------------------------------------
# Entry points


def _graph(objective: str, N: int, A, groups, pairs, dtype):
    """Validated `(groups, A, pairs)`: exactly one graph; a dense clique `A` becomes `groups`."""
    if objective == "barlow":
        if A is not None:
            raise ValueError("barlow takes pairs=(v1, v2) (or groups, for all within-source pairs), not A")
        if pairs is None:
            if groups is None:
                raise ValueError("barlow needs pairs=(v1, v2), the index arrays of paired views "
                                 "(see graphs.pairs_from_groups), or groups")
            pairs = _graphs.pairs_from_groups(_graphs.check_groups(groups, N))
        v1, v2 = _v.pairs(pairs, N)
        return None, None, (np.asarray(v1), np.asarray(v2))
    if pairs is not None:
        raise ValueError(f"pairs are for barlow only, not {objective!r}")
    if (A is None) == (groups is None):
        raise ValueError(f"{objective} needs exactly one of A (an (N, N) relationship matrix) or groups (the source of "
                         "each view: the view-clique graph, without forming N x N)")
    if groups is not None:
        return _graphs.check_groups(groups, N), None, None
    A = _graphs.check_adjacency(A, N).astype(dtype)
    found = _graphs.clique_groups(A)
    if found is not None:
        return found, None, None
    return None, A, None


def solve_psi(objective: str, Psi, A=None, *, groups=None, pairs=None, dim: int, lam: float = DEFAULT_LAM,
              beta: float = 1.0, rcond: float | None = None, block_size: int | None = None,
              devices: Sequence | None = None, shard: bool = False) -> tuple[Array, Array, Array]:
    """The closed form for explicit features `Psi` (N x D, the kernel `Psi Psi^T`): `(W, eigenvalues, loss)`.

    `f(x) = W psi(x)` with `W` `(dim, D)`; see `solve_features` for the arguments.

    Example:
      >>> Psi = jax.random.normal(jax.random.key(0), (40, 5))
      >>> W, eig, loss = solve_psi("contrastive", Psi, groups=jnp.repeat(jnp.arange(20), 2), dim=3, lam=0.1)
      >>> W.shape
      (3, 5)
    """
    _objectives.check_objective(objective)
    Psi = _v.array("Psi", Psi)
    N = Psi.shape[0]
    groups, A, pairs = _graph(objective, N, A, groups, pairs, Psi.dtype)
    fmap = _fm.FeatureMap("identity", int(Psi.shape[1]))
    stats = _feature_stats(objective, fmap, Psi, groups=groups, A=A, pairs=pairs, block_size=block_size,
                           devices=devices, shard=shard)
    W, w, _ = solve_stats(objective, stats, dim=dim, lam=lam, beta=beta, rcond=rcond)
    return W, w, loss_from_stats(objective, W, stats, lam=lam, beta=beta)


def solve_features(objective: str, X, A=None, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
                   pairs=None, groups=None, method: str = "nystrom", n_landmarks: int | None = None,
                   n_features: int | None = None, landmarks: Any = "kmeans++",
                   feature_map: _fm.FeatureMap | None = None, key=None, rcond: float | None = None,
                   landmark_rcond: float | None = None, block_size: int | None = None, dtype=None,
                   devices: Sequence | None = None, shard: bool = False) -> Solution:
    """Closed form of SPEC §3 for the kernel of explicit features `psi` (module doc): cost O(N D^2 + D^3).

    Args:
      objective: `"contrastive"`, `"vicreg"`, `"vicreg_hard"` or `"barlow"`.
      X: `(N, d)` training views.
      A: `(N, N)` relationship matrix; a view-clique `A` is recognised and handled as `groups`.
      kernel: the base kernel (`kernels.Kernel`; `nystrom` also takes a callable `k(x, y)`).
      dim: output dimension M (at most the rank of `Psi^T Psi`, except contrastive: zero rows beyond it).
      lam: ridge strength (`lam ||W||^2`), default 0.1; unused by barlow (minimum norm).
      beta: invariance weight of vicreg.
      pairs: `(v1, v2)` paired views (barlow); default with `groups`: all within-source pairs.
      groups: `(N,)` source of each view: the view-clique graph without any N x N array (use it at large N).
      method: `"nystrom"` (any kernel), `"rff"` (rbf / laplacian) or `"linear"` (`psi(x) = x`, linear kernel, exact).
      n_landmarks: Nystrom landmarks m (default min(N, 1024)); D = rank of `K_mm` <= m.
      n_features: random Fourier features D (even, default 2048).
      landmarks: `"kmeans++"` (default), `"uniform"` (see `featuremaps.select_landmarks`) or an `(m, d)` array.
      feature_map: a prebuilt `featuremaps.FeatureMap` (then `method`, `n_landmarks`, `n_features`, `landmarks`
        and `key` are ignored).
      key: PRNG key for landmarks / frequencies; default `jax.random.key(0)` (deterministic).
      rcond: relative cut-off on the eigenvalues of `Psi^T Psi` (default `D * eps`, see `solve_stats`; unused by
        contrastive with `lam > 0`, whose filter `(s + lam)^-1/2` is bounded).
      landmark_rcond: relative cut-off on the eigenvalues of `K_mm` for Nystrom features; default `sqrt(m) * eps`,
        the rounding level of an m x m eigendecomposition. (`featuremaps.feature_map`'s own default `m * eps` drops
        real directions in float32: at m = 500 it changed the loss by 1.4e-2, against 1.5e-6 with this one.)
      block_size: rows per block when computing features (default 2048 per device).
      dtype: float dtype of the computation; default that of `X` (float64 when x64 is enabled).
      devices: devices of the 1-D data mesh that shards the rows; default: the first device.
      shard: shard the rows over all devices (`jax.devices()`, every host after `jax.distributed.initialize()`).

    Returns:
      A `spectral.Solution` in representer form over the feature map (`sol.features(x) == W psi(x)` exactly):
      Nystrom: `train_x` = the landmarks, `kernel` = the base kernel, `coef = W K_mm^{+1/2}`; rff: the Hartley
      pseudo-points; linear: `train_x = I_d`. `loss` is SPEC §2 for the feature kernel on the training views,
      `gram_eigenvalues` the eigenvalues of `Psi^T Psi` (D,), `method` is `method` (or the prebuilt map's kind).

    Raises:
      ValueError: bad shapes, NaN/Inf, unknown objective / method / landmark rule, a kernel the method cannot
        handle, both or neither of `A` and `groups`, `dim` above the rank, infeasible barlow.
      TypeError: `dim` not an integer, `kernel` not callable.

    Example:
      >>> X = jax.random.normal(jax.random.key(0), (40, 3))
      >>> sol = solve_features("contrastive", X, groups=jnp.repeat(jnp.arange(20), 2), kernel=_kernels.rbf(1.0),
      ...                      dim=4, n_landmarks=16)
      >>> sol.features(X).shape
      (40, 4)
    """
    _objectives.check_objective(objective)
    if not callable(kernel):
        raise TypeError(f"kernel must be a kernels.Kernel or a callable k(x, y), got {kernel!r}")
    dim = _v.integer("dim", dim)
    lam = float(_v.real("lam", lam))
    beta = float(_v.real("beta", beta))
    X = _v.array("X", X, dtype=None if dtype is None else _v.float_dtype("dtype", dtype))
    N = X.shape[0]
    groups, A, pairs = _graph(objective, N, A, groups, pairs, X.dtype)
    key = jax.random.key(0) if key is None else key
    if feature_map is not None:
        fmap = feature_map
        used = fmap.kind if fmap.kind != "identity" else "linear"
    else:
        if method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
        used = method
        if method == "linear":
            if not (isinstance(kernel, _kernels.Kernel) and kernel.name == "linear"):
                raise ValueError(f"method='linear' (psi(x) = x) is exact for the linear kernel only, got {kernel!r}; "
                                 "use method='nystrom'")
            fmap = _fm.feature_map(kernel, "identity", points=X)
        elif method == "rff":
            D = DEFAULT_RFF if n_features is None else n_features
            fmap = _fm.feature_map(kernel, "rff", n_features=D, key=key, points=X)
        else:
            m = min(N, DEFAULT_LANDMARKS) if n_landmarks is None else _v.integer("n_landmarks", n_landmarks)
            if not isinstance(landmarks, str):
                m = int(np.shape(landmarks)[0])
            if isinstance(landmarks, str) and m > N:
                raise ValueError(f"n_landmarks = {m} exceeds the number of views N = {N} (landmarks are views)")
            if landmark_rcond is None:
                landmark_rcond = math.sqrt(m) * float(jnp.finfo(X.dtype).eps)
            fmap = _fm.feature_map(kernel, "nystrom", n_features=m, key=key, points=X, landmarks=landmarks,
                                   rcond=landmark_rcond)
    stats = _feature_stats(objective, fmap, X, groups=groups, A=A, pairs=pairs, block_size=block_size,
                           devices=devices, shard=shard)
    W, w, s, reason = _solve_stats_routed(objective, stats, dim=dim, lam=lam, beta=beta, rcond=rcond)
    loss_value = loss_from_stats(objective, W, stats, lam=lam, beta=beta)
    train_x, sol_kernel, coef = fmap.representer(W)  # the caller's map: the Solution keeps its kernel object
    train_x, coef = jnp.asarray(train_x, X.dtype), jnp.asarray(coef, X.dtype)
    return Solution(coef=coef, train_x=train_x, kernel=sol_kernel, eigenvalues=w, loss=loss_value,
                    gram_eigenvalues=s, loss_history=jnp.zeros((0,), X.dtype), objective=objective, dim=dim,
                    lam=lam, beta=beta, method=f"features-{used}", reason=reason)
