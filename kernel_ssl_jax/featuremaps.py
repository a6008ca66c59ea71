"""Explicit finite feature maps `psi: R^d -> R^D` with `psi(x) . psi(y) = k(x, y)` exactly or approximately.

Used by the gradient path's `"features"` parameterisation (SPEC.md §5) and by the feature-space closed forms
(`lowrank`). Three kinds:

- `"identity"`: `psi(x) = x`, the exact features of `kernels.linear()` (D = d).
- `"rff"`: random Fourier features for `rbf` / `laplacian` (unbiased, error `O(1 / sqrt(D))`).
- `"nystrom"`: `psi(x) = K_mm^{+1/2} k(Lm, x)` on `m` landmarks `Lm`, for any kernel; written as
  `diag(s^-1/2) U^T k(Lm, x)` with `K_mm = U diag(s) U^T` (eigenvalues at or below `rcond * max` dropped, so
  D = rank(K_mm) <= m). When no eigenvalue is dropped and `eps cond(K_mm) <= sqrt(eps)` (cond 1e6 for 2000
  k-means++ digits landmarks) the map is `L^-1 k(Lm, x)` with `K_mm = L L^T` instead: the same features up to an
  orthogonal rotation (`L^-1 = Q diag(s^-1/2) U^T`), so the kernel, every closed form, loss and representer are
  the same, from one Cholesky factor and a triangular inverse (a quarter of the eigendecomposition's time at
  m = 2000; the condition number is estimated by power iterations). Exact whenever `x` or `y` is a landmark:
  `psi(x) . psi(y)` is the projection of `k` onto the span of the landmark sections.

Landmarks (`select_landmarks`), our choice of two rules:

- `"uniform"`: `m` distinct points drawn uniformly (seeded), sorted by index.
- `"kmeans++"`: D^2 sampling (Arthur & Vassilvitskii, 2007) in the kernel's feature space: the first landmark is
  uniform, each next one is drawn with probability proportional to `min_j ||phi(x) - phi(l_j)||^2 =
  k(x, x) + k(l, l) - 2 k(x, l)` over the landmarks chosen so far. Seeded, O(m N d), never picks a duplicate of a
  chosen landmark while a point at positive distance remains (then it falls back to uniform over the unchosen).
  It spreads landmarks over the data, which lowers the Nystrom error `||K - Psi Psi^T||` at a given `m` on
  clustered data (tests/test_featuremaps.py measures it). Above `KMEANSPP_POOL * m` points the sampling runs on a
  uniform pool of that many distinct points (seeded; the draw is sequential, one pass over the candidates per
  landmark, so the pool bounds its cost at O(KMEANSPP_POOL m^2 d): at N = 100,000, m = 2000 a sixth of the time);
  D^2 sampling's guarantee then holds for the pool, a uniform sample of the data, which at 8 candidates per landmark
  left the downstream accuracy unchanged (docs/scaling.md).
  Greedy pivoted Cholesky (deterministic maximal residual) is not implemented: it needs an `(N, m)` factor in
  memory, while D^2 sampling needs `O(N)`.

Representer form. A `Solution` is `f(x) = coef k(train_x, x)`; `FeatureMap.representer(W)` gives
`(train_x, kernel, coef)` with `coef k(train_x, x) == W psi(x)` exactly:
Nystrom: `train_x = Lm`, the base kernel, `coef = W diag(s^-1/2) U^T` (= `W K_mm^{+1/2}` in the rotated basis).
Identity (linear kernel): `train_x = I_d`, `kernel = kernels.linear()`, `coef = W`. Random Fourier features
`psi(x) = [cos(Omega x), sin(Omega x)] / sqrt(D/2)` are not in the span of any finite set of base-kernel sections,
but they are exactly sections of the Hartley kernel `cas(t . x) = cos(t . x) + sin(t . x)` at the pseudo-points
`t = +-omega_j`: `a cos + b sin = ((a + b) cas(omega x) + (a - b) cas(-omega x)) / 2`. So `train_x = [Omega; -Omega]`,
`kernel = hartley` (a cross-kernel between inputs and frequencies, not a PSD kernel on inputs) and `features`,
`induced_kernel` and every evaluator work unchanged and exactly. The PSD kernel that the features define,
`psi(x) . psi(y)`, is `FeatureMap.kernel`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import eigenbasis as _eb
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import validation as _v

Array = jax.Array

FEATURE_MAPS = ("auto", "identity", "rff", "nystrom")
LANDMARKS = ("uniform", "kmeans++")
# k-means++ draws its `m` landmarks from a uniform pool of at most this many candidates per landmark (module doc).
KMEANSPP_POOL = 8

__all__ = ["FeatureMap", "feature_map", "hartley", "select_landmarks", "FEATURE_MAPS", "KMEANSPP_POOL", "LANDMARKS"]


def hartley(x: Array, t: Array) -> Array:
    """The Hartley kernel `cas(t . x) = cos(t . x) + sin(t . x)` between an input `x` and a frequency `t`.

    The random-Fourier-feature model `a cos(omega x) + b sin(omega x)` is exactly `((a + b) cas(omega x) +
    (a - b) cas(-omega x)) / 2`: this is the kernel of the `Solution`s built on random Fourier features, with the
    frequencies `+-omega` as `train_x`.
    """
    z = jnp.dot(x, t)
    return jnp.cos(z) + jnp.sin(z)


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureMap:
    """An explicit finite feature map `psi: R^d -> R^D` approximating (or equal to) a kernel: `psi(x) . psi(y) ~ k`.

    Built by `feature_map`. Hashable by identity, so its `kernel` method can be used as a callable kernel
    (`kssl.solve(..., kernel=fmap.kernel)` solves the closed form of the kernel the features define).

    Attributes:
      kind: `"identity"`, `"rff"` or `"nystrom"`.
      dim: D, the number of features.
      freqs: `(D/2, d)` random frequencies (`rff`), else None.
      landmarks: `(m, d)` landmark points (`nystrom`), else None.
      proj: `(D, m)` matrix `diag(s^-1/2) U^T` from `K_mm = U diag(s) U^T`, or `L^-1` from `K_mm = L L^T` (lower
        triangular, D = m) when `K_mm` is well conditioned (`nystrom`; the module doc), else None.
      base: the base kernel (`nystrom`), else None.
    """

    kind: str
    dim: int
    freqs: Array | None = None
    landmarks: Array | None = None
    proj: Array | None = None
    base: Any = None

    def __call__(self, x: Array) -> Array:
        """`psi(x)`, shape `(D,)`, for ONE example `x` of shape `(d,)` (batch it with `jax.vmap`)."""
        if self.kind == "identity":
            return x
        if self.kind == "rff":
            z = self.freqs @ x
            return jnp.concatenate([jnp.cos(z), jnp.sin(z)]) / math.sqrt(self.freqs.shape[0])
        k_lx = jax.vmap(lambda lm: self.base(lm, x))(self.landmarks)
        return self.proj @ k_lx

    def batch(self, X: Array, block_size: int | None = None) -> Array:
        """`psi` of each row of `X`: `(n, D)` (jit-compiled), in row blocks of `block_size` if given."""
        X = jnp.asarray(X)
        n = X.shape[0]
        if block_size is None or block_size >= n:
            return _psi_batch(self, X)
        return jnp.concatenate([_psi_batch(self, X[i : i + block_size]) for i in range(0, n, block_size)])

    def kernel(self, x: Array, y: Array) -> Array:
        """The PSD kernel `psi(x) . psi(y)` that these features define."""
        return jnp.dot(self(x), self(y))

    def representer(self, W: Array) -> tuple[Array, Any, Array]:
        """`(train_x, kernel, coef)` with `coef @ gram(kernel, train_x, x) == W @ psi(x)` exactly (module doc)."""
        if self.kind == "identity":
            d = W.shape[1]
            return jnp.eye(d, dtype=W.dtype), _kernels.linear(), W
        if self.kind == "rff":
            points, coef = _rff_representer(self.freqs, W)
            return points, hartley, coef
        return self.landmarks, self.base, _matmul(W, self.proj)


@jax.jit
def _rff_representer(freqs, W):
    # cos(w.x) and sin(w.x) weights -> Hartley-kernel points +-w (module doc): coef @ hartley(+-w, x) == W @ psi(x).
    half = freqs.shape[0]
    Wc, Ws = W[:, :half], W[:, half:]
    coef = jnp.concatenate([Wc + Ws, Wc - Ws], axis=1) / (2.0 * math.sqrt(half))
    return jnp.concatenate([freqs, -freqs], axis=0), coef


_matmul = jax.jit(jnp.matmul)


def _flatten_fmap(fm: FeatureMap):
    # A Kernel base is a pytree (its bandwidth a leaf); any other callable is static (hashed by identity).
    dynamic = fm.base is None or isinstance(fm.base, _kernels.Kernel)
    children = (fm.freqs, fm.landmarks, fm.proj, fm.base if dynamic else None)
    return children, (fm.kind, fm.dim, None if dynamic else fm.base)


def _unflatten_fmap(aux, children):
    kind, dim, static_base = aux
    freqs, landmarks, proj, base = children
    return FeatureMap(kind, dim, freqs, landmarks, proj, base if static_base is None else static_base)


jax.tree_util.register_pytree_node(FeatureMap, _flatten_fmap, _unflatten_fmap)


@jax.jit
def _psi_batch(fm: FeatureMap, X: Array) -> Array:
    if fm.kind == "nystrom":  # the kernel columns of all rows as one Gram (a matrix product), then the projection
        return _kernels.gram(fm.base, X, fm.landmarks) @ fm.proj.T
    return jax.vmap(fm)(X)


# --------------------------------------------------------------------------------------------------------------------
# Landmarks


def _column(kernel, X: Array, x: Array, sq: Array) -> Array:
    """`k(X, x)`, shape `(N,)`; `sq` holds the squared norms of the rows of X (for a dot-product `Kernel`)."""
    if isinstance(kernel, _kernels.Kernel) and kernel.dot_product:
        return kernel.from_dots(X @ x, sq, jnp.dot(x, x), X.shape[1])
    return jax.vmap(kernel, in_axes=(0, None))(X, x)


def _diagonal(kernel, X: Array, sq: Array) -> Array:
    if isinstance(kernel, _kernels.Kernel) and kernel.dot_product:
        return kernel.from_dots(sq, sq, sq, X.shape[1])
    return jax.vmap(kernel)(X, X)


@functools.partial(jax.jit, static_argnames=("kernel_static",))
def _kmeanspp(kernel_dynamic, points: Array, key: Array, m: Array, kernel_static=None) -> Array:
    # `m` is traced (one compilation per data shape): the first `m` of the `(N,)` output are the landmarks.
    kernel = kernel_static if kernel_static is not None else kernel_dynamic
    N = points.shape[0]
    sq = jnp.sum(points * points, axis=1)
    diag = _diagonal(kernel, points, sq)

    def dist_to(i):
        # Squared RKHS distance ||phi(x) - phi(x_i)||^2, clipped: rounding can make it slightly negative.
        return jnp.maximum(diag + diag[i] - 2.0 * _column(kernel, points, points[i], sq), 0.0)

    k0, key = jax.random.split(key)
    first = jax.random.randint(k0, (), 0, N, dtype=jnp.int32)
    chosen = jnp.zeros((N,), bool).at[first].set(True)
    d2 = jnp.where(chosen, 0.0, dist_to(first))
    idx = jnp.zeros((N,), jnp.int32).at[0].set(first)

    def step(j, carry):
        idx, chosen, d2 = carry
        total = jnp.sum(d2)
        # All remaining points coincide (in feature space) with chosen landmarks: fall back to uniform over them.
        p = jnp.where(total > 0, d2, jnp.where(chosen, 0.0, 1.0))
        # Inverse-CDF draw; the clip keeps it on a point of positive probability despite rounding in the cumsum.
        cdf = jnp.cumsum(p)
        u = jax.random.uniform(jax.random.fold_in(key, j), (), p.dtype) * cdf[-1]
        nxt = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, N - 1).astype(jnp.int32)
        nxt = jnp.where(p[nxt] > 0, nxt, jnp.argmax(p).astype(jnp.int32))
        chosen = chosen.at[nxt].set(True)
        d2 = jnp.where(chosen, 0.0, jnp.minimum(d2, dist_to(nxt)))
        return idx.at[j].set(nxt), chosen, d2

    idx, _, _ = jax.lax.fori_loop(1, m, step, (idx, chosen, d2))
    return idx


def select_landmarks(kernel, points, m: int, *, method: str = "kmeans++", key) -> Array:
    """Indices of `m` distinct landmark rows of `points` for Nystrom features (see the module doc).

    Args:
      kernel: the base kernel (`kernels.Kernel` or callable `k(x, y)`); `"kmeans++"` measures distances with it.
      points: `(N, d)` candidate points (usually the training views).
      m: number of landmarks, `1 <= m <= N`.
      method: `"uniform"` or `"kmeans++"` (D^2 sampling in the kernel's feature space).
      key: PRNG key.

    Returns:
      `(m,)` int32 indices into `points`, distinct; sorted for `"uniform"`, in the order drawn for `"kmeans++"`
      (from a uniform pool of `KMEANSPP_POOL * m` points when there are more).

    Raises:
      ValueError: unknown `method`, `m` outside `[1, N]`, or `points` not 2-D.

    Example:
      >>> X = jax.random.normal(jax.random.key(0), (100, 3))
      >>> select_landmarks(_kernels.rbf(1.0), X, 10, key=jax.random.key(1)).shape
      (10,)
    """
    if method not in LANDMARKS:
        raise ValueError(f"landmarks must be one of {list(LANDMARKS)} or an (m, d) array, got {method!r}")
    points = jnp.asarray(points)
    if points.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, d), got shape {points.shape}")
    N = points.shape[0]
    m = _v.integer("the number of landmarks m", m, maximum=N)
    if method == "uniform":
        return jnp.sort(jax.random.choice(key, N, (int(m),), replace=False)).astype(jnp.int32)
    if not jnp.issubdtype(points.dtype, jnp.floating):
        points = points.astype(jnp.result_type(float))
    pool = None
    if N > KMEANSPP_POOL * int(m):
        key_pool, key = jax.random.split(key)
        pool = jnp.sort(jax.random.choice(key_pool, N, (KMEANSPP_POOL * int(m),), replace=False)).astype(jnp.int32)
        points = points[pool]
    dynamic = isinstance(kernel, _kernels.Kernel)
    idx = _kmeanspp(kernel if dynamic else None, points, key, jnp.asarray(int(m), jnp.int32),
                    kernel_static=None if dynamic else kernel)[: int(m)]
    return idx if pool is None else pool[idx]


# --------------------------------------------------------------------------------------------------------------------
# Construction


@jax.jit
def _inverse_cholesky(Kmm):
    """`(L^-1, cond)`: `K_mm = L L^T` (lower; NaN when not numerically positive definite) and an estimate of
    `cond(K_mm)` from 10 block power iterations on `K_mm` and on `K_mm^-1 = L^-T L^-1` (O(m^2) each, against O(m^3)
    for the eigenvalues; it errs low by a small factor when the extreme eigenvalues are clustered)."""
    m = Kmm.shape[0]
    L = _eb.cholesky(0.5 * (Kmm + Kmm.T))
    P = jax.scipy.linalg.solve_triangular(L, jnp.eye(m, dtype=Kmm.dtype), lower=True)
    V0 = jax.random.normal(jax.random.key(0), (2, m, min(m, 8)), Kmm.dtype)

    def power(_, VW):
        V, W = Kmm @ VW[0], P.T @ (P @ VW[1])
        return V / jnp.linalg.norm(V, axis=0)[None, :], W / jnp.linalg.norm(W, axis=0)[None, :]

    V, W = jax.lax.fori_loop(0, 10, power, (V0[0], V0[1]))
    top, inv_bottom = jnp.max(jnp.linalg.norm(Kmm @ V, axis=0)), jnp.max(jnp.linalg.norm(P @ W, axis=0) ** 2)
    return P, top * inv_bottom


def _nystrom(kernel, landmarks: Array, rcond: float | None) -> FeatureMap:
    m = landmarks.shape[0]
    Kmm = _kernels.gram(kernel, landmarks)
    if rcond is None:
        rcond = m * float(jnp.finfo(Kmm.dtype).eps)
    # `L^-1` where it is accurate and would drop nothing (module doc; 10x margin on the estimated condition number).
    proj, cond = _inverse_cholesky(Kmm)
    eps, cond = float(jnp.finfo(Kmm.dtype).eps), float(cond)
    if np.isfinite(cond) and eps * cond <= eps**0.5 and 10.0 * rcond * cond < 1.0 and _v.all_finite(proj):
        return FeatureMap("nystrom", m, landmarks=landmarks, proj=proj, base=kernel)
    s, U = _sym_eigh(Kmm)
    s_host = np.asarray(s)
    keep = np.flatnonzero(s_host > rcond * s_host.max())
    if not keep.size:
        raise ValueError("nystrom: the Gram of the landmarks is zero (every landmark has k(x, x) = 0)")
    return FeatureMap("nystrom", int(keep.size), landmarks=landmarks, proj=_whitening(s, U, keep), base=kernel)


@jax.jit
def _sym_eigh(K):
    return jnp.linalg.eigh(0.5 * (K + K.T))


@jax.jit
def _whitening(s, U, keep):
    # `proj = S^-1/2 U^T` on the kept eigenpairs: `psi(x) = proj k_m(x)` has `psi(x_i) . psi(x_j) = K_mm` exactly.
    return (U[:, keep] / jnp.sqrt(s[keep])[None, :]).T


@functools.partial(jax.jit, static_argnames=("name", "shape", "dtype"))
def _rff_frequencies(name, key, bandwidth, shape, dtype):
    """Frequencies of random Fourier features: the spectral density of the rbf / laplacian kernel (Bochner)."""
    if name == "rbf":
        return jax.random.normal(key, shape, dtype) / bandwidth
    # Multivariate Cauchy (the Fourier transform of exp(-||r||)): a Gaussian over a chi_1 scale mixture.
    kg, kc = jax.random.split(key)
    g = jax.random.normal(kg, shape, dtype)
    scale = jnp.abs(jax.random.normal(kc, (shape[0], 1), dtype))
    return g / (scale * bandwidth)


def feature_map(kernel, kind: str = "auto", *, n_features: int | None = None, key=None, points=None,
                rcond: float | None = None, landmarks="uniform") -> FeatureMap:
    """Builds explicit features for `kernel` (SPEC.md §5).

    - `"identity"`: `psi(x) = x`, the exact features of `kernels.linear()` (D = d).
    - `"rff"`: random Fourier features `[cos(Omega x), sin(Omega x)] / sqrt(D/2)` with `D/2` frequencies, Gaussian
      `N(0, I / bandwidth^2)` for `rbf`, Cauchy with scale `1 / bandwidth` (per coordinate, i.e. a multivariate
      Cauchy, the spectral measure of `exp(-||x - y|| / bandwidth)`) for `laplacian`. `E psi(x) . psi(y) = k(x, y)`.
    - `"nystrom"`: `psi(x) = diag(s^-1/2) U^T k(Lm, x)` on `n_features` landmarks chosen from `points` by the rule
      `landmarks` (or given as an array), where `k(Lm, Lm) = U diag(s) U^T` (eigenvalues at or below `rcond * max`
      dropped, so D <= n_features). Any kernel; `psi(x) . psi(y) = k(x, y)` whenever `x` or `y` is a landmark.
    - `"auto"`: identity for a linear `Kernel`, rff for rbf / laplacian, nystrom otherwise.

    Args:
      kernel: the base kernel (a `kernels.Kernel`; `nystrom` also takes any callable `k(x, y)`).
      kind: one of `FEATURE_MAPS`.
      n_features: D for `rff` (even, default 512), the number of landmarks for `nystrom` (default: all of
        `points`, at most 512); unused by `identity`.
      key: PRNG key (frequencies, landmark choice).
      points: `(n, d)` points; `nystrom` draws its landmarks from them, the others only read `d` from them.
      rcond: relative cut-off for the eigenvalues of `K_mm` (default `m * eps`).
      landmarks: `nystrom` only: `"uniform"` (default), `"kmeans++"` (see `select_landmarks`), or an `(m, d)`
        array of landmark points (then `n_features` and `key` are not needed).

    Returns:
      A `FeatureMap`.

    Raises:
      ValueError: unknown `kind` or landmark rule, `rff` for a kernel without a known spectral measure, odd or
        missing `n_features`, `identity` for a non-linear kernel, or no `points`.

    Example:
      >>> X = jax.random.normal(jax.random.key(0), (10, 3))
      >>> fm = feature_map(_kernels.rbf(1.0), "rff", n_features=64, key=jax.random.key(1), points=X)
      >>> fm.batch(X).shape
      (10, 64)
    """
    if kind not in FEATURE_MAPS:
        raise ValueError(f"feature_map must be one of {list(FEATURE_MAPS)}, got {kind!r}")
    if points is None:
        raise ValueError("feature_map needs points=(n, d) array (the views or sources)")
    points = jnp.asarray(points)
    d = points.shape[1]
    name = kernel.name if isinstance(kernel, _kernels.Kernel) else None
    if kind == "auto":
        kind = {"linear": "identity", "rbf": "rff", "laplacian": "rff"}.get(name, "nystrom")
    if kind == "identity":
        if name != "linear":
            raise ValueError(f"feature_map='identity' gives the features of the linear kernel only, got {kernel!r}")
        return FeatureMap("identity", d)
    explicit = not isinstance(landmarks, str)
    if kind == "nystrom" and explicit:
        Lm = jnp.asarray(landmarks, dtype=points.dtype)
        if Lm.ndim != 2 or Lm.shape[1] != d or Lm.shape[0] < 1:
            raise ValueError(f"landmarks must be an (m, {d}) array of points, got shape {Lm.shape}")
        return _nystrom(kernel, Lm, rcond)
    if kind == "nystrom" and landmarks not in LANDMARKS:
        raise ValueError(f"landmarks must be one of {list(LANDMARKS)} or an (m, d) array, got {landmarks!r}")
    if key is None:
        raise ValueError(f"feature_map={kind!r} needs a PRNG key")
    if kind == "rff":
        if name not in ("rbf", "laplacian"):
            raise ValueError(f"random Fourier features need an rbf or laplacian Kernel, got {kernel!r}; "
                             "use feature_map='nystrom' for other kernels")
        n_features = 512 if n_features is None else n_features
        if _v.integer("n_features", n_features, minimum=2) % 2:
            raise ValueError(f"rff needs an even n_features >= 2 (cos and sin of n_features / 2 frequencies), "
                             f"got {n_features!r}")
        freqs = _rff_frequencies(name, key, kernel.params["bandwidth"], (n_features // 2, d), points.dtype)
        return FeatureMap("rff", n_features, freqs=freqs)
    n = points.shape[0]
    m = min(n, 512) if n_features is None else n_features
    m = _v.integer("n_features (nystrom landmarks, drawn from the points)", m, maximum=n)
    idx = select_landmarks(kernel, points, int(m), method=landmarks, key=key)
    return _nystrom(kernel, points[idx], rcond)
