"""Positive-definite kernels on single examples, and blockwise Gram matrices (SPEC.md §1b).

Every kernel here depends on two examples only through `x . y`, `x . x` and `y . y`. A `Kernel` therefore carries one
function `from_dots(xy, xx, yy)` that works elementwise on arrays of any shape: on scalars it is `k(x, y)` for one
pair, and on an `(n, m)` matrix of dot products it is the whole Gram, computed with one matrix product and no
`(n, m, d)` intermediate. `Kernel.__call__(x, y)` is the single-example form (batch it with `jax.vmap`), and
`gram` falls back to `vmap(vmap(k))` for any other callable, in row blocks.

Kernels are pytrees: continuous hyper-parameters (bandwidth, variances) are leaves, so a kernel can be passed through
`jax.jit` without recompiling for new values and `jax.vmap`-ed over; discrete ones (degree, depth) are static.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import validation as _v

Array = jax.Array

__all__ = [
    "Kernel",
    "linear",
    "polynomial",
    "rbf",
    "laplacian",
    "nngp",
    "ntk",
    "by_name",
    "gram",
    "median_bandwidth",
    "KERNELS",
]


def _sq_dist(xy, xx, yy):
    # ||x - y||^2 from dot products; cancellation can make it slightly negative.
    return jnp.maximum(xx + yy - 2.0 * xy, 0.0)


def _linear(xy, xx, yy, d):
    del xx, yy, d
    return xy


def _polynomial(xy, xx, yy, d, *, degree, scale, offset):
    del xx, yy, d
    return (scale * xy + offset) ** degree


def _rbf(xy, xx, yy, d, *, bandwidth):
    del d
    # Divided by the bandwidth twice, not by its square: bandwidth**2 underflows to 0 for tiny bandwidths (0/0 on the
    # diagonal), while d2 / bw / bw goes to +inf off the diagonal and stays 0 on it.
    return jnp.exp(-0.5 * (_sq_dist(xy, xx, yy) / bandwidth) / bandwidth)


def _laplacian(xy, xx, yy, d, *, bandwidth):
    del d
    d2 = _sq_dist(xy, xx, yy)
    # sqrt has an infinite derivative at 0: differentiate through a safe branch so gradients stay finite.
    safe = jnp.where(d2 > 0, d2, 1.0)
    dist = jnp.where(d2 > 0, jnp.sqrt(safe), 0.0)
    return jnp.exp(-dist / bandwidth)


def _relu_network(xy, xx, yy, d, *, depth, w_var, b_var):
    """The ReLU recursion of SPEC.md §1b; returns (nngp, ntk) after the readout layer."""
    sxy = w_var * xy / d + b_var
    sxx = w_var * xx / d + b_var
    syy = w_var * yy / d + b_var
    theta = sxy
    for _ in range(depth):
        norm = jnp.sqrt(sxx * syy)
        safe_norm = jnp.where(norm > 0, norm, 1.0)
        c = jnp.clip(jnp.where(norm > 0, sxy / safe_norm, 1.0), -1.0, 1.0)
        t = jnp.arccos(c)
        # Both factors are written as (expression in t) / pi, which is exactly 1 at t = 0: on the diagonal the
        # update then rounds exactly like the one of sxx below, so c stays exactly 1 there at every layer. (Written
        # as w_var * ... / (2 pi), sxy drifts from sxx by an ulp, and arccos(1 - ulp) ~ 1e-8 enters the NTK.)
        sxy = w_var * norm * ((jnp.sin(t) + (jnp.pi - t) * c) / jnp.pi) / 2.0 + b_var
        theta = theta * (w_var * ((jnp.pi - t) / jnp.pi) / 2.0) + sxy
        # On the diagonal t = 0, so the recursion reduces to a halving of the variance.
        sxx = w_var * sxx / 2.0 + b_var
        syy = w_var * syy / 2.0 + b_var
    return sxy, theta


def _nngp(xy, xx, yy, d, **kw):
    return _relu_network(xy, xx, yy, d, **kw)[0]


def _ntk(xy, xx, yy, d, **kw):
    return _relu_network(xy, xx, yy, d, **kw)[1]


_FNS: dict[str, Callable[..., Array]] = {
    "linear": _linear,
    "polynomial": _polynomial,
    "rbf": _rbf,
    "laplacian": _laplacian,
    "nngp": _nngp,
    "ntk": _ntk,
}


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A dot-product kernel `k(x, y) = from_dots(x . y, x . x, y . y)`.

    Attributes:
      name: one of `KERNELS`.
      params: continuous hyper-parameters (pytree leaves), e.g. `{"bandwidth": 2.0}`.
      static: discrete hyper-parameters as `(name, value)` pairs (part of the tree structure), e.g. `(("depth", 2),)`.

    Example:
      >>> k = rbf(bandwidth=2.0)
      >>> float(k(jnp.zeros(3), jnp.zeros(3)))
      1.0
    """

    name: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    static: tuple[tuple[str, Any], ...] = ()

    def from_dots(self, xy: Array, xx: Array, yy: Array, d: int) -> Array:
        """Kernel values from dot products, elementwise (any broadcastable shapes); `d` is the input dimension."""
        return _FNS[self.name](xy, xx, yy, d, **dict(self.static), **self.params)

    def __call__(self, x: Array, y: Array) -> Array:
        """`k(x, y)` for two single examples `x, y` of shape `(d,)`; returns a scalar."""
        x = jnp.asarray(x)
        y = jnp.asarray(y)
        return self.from_dots(jnp.dot(x, y), jnp.dot(x, x), jnp.dot(y, y), x.shape[-1])

    def __repr__(self) -> str:
        items = [f"{k}={v}" for k, v in self.static]
        items += [f"{k}={_fmt(v)}" for k, v in self.params.items()]
        return f"{self.name}({', '.join(items)})"


def _fmt(v):
    try:
        return f"{float(v):g}"
    except (TypeError, ValueError):
        return "<traced>"


jax.tree_util.register_pytree_node(
    Kernel,
    lambda k: ((dict(k.params),), (k.name, k.static)),
    lambda aux, children: Kernel(aux[0], children[0], aux[1]),
)


def _check_nonneg(name: str, value, *, strict: bool = False):
    # Stored as a Python float (a numeric string such as "2" is refused here, not later inside JAX).
    value = _v.real(name, value, strict=strict)
    return value if _v.is_traced(value) else float(value)


def linear() -> Kernel:
    """`k(x, y) = x . y`."""
    return Kernel("linear")


def polynomial(degree: int = 2, scale: float = 1.0, offset: float = 1.0) -> Kernel:
    """`k(x, y) = (scale * x . y + offset) ** degree`.

    Raises:
      ValueError: if `degree` is not a positive integer or `scale`/`offset` is negative.
    """
    degree = _v.integer("degree", degree)
    scale = _check_nonneg("scale", scale)
    offset = _check_nonneg("offset", offset)
    return Kernel("polynomial", {"scale": scale, "offset": offset}, (("degree", degree),))


def rbf(bandwidth: float = 1.0) -> Kernel:
    """Gaussian kernel `k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2))`.

    Raises:
      ValueError: if `bandwidth` is not a finite positive number.

    Example:
      >>> K = gram(rbf(bandwidth=2.0), jnp.ones((4, 3)))
    """
    return Kernel("rbf", {"bandwidth": _check_nonneg("bandwidth", bandwidth, strict=True)})


def laplacian(bandwidth: float = 1.0) -> Kernel:
    """Laplacian kernel `k(x, y) = exp(-||x - y|| / bandwidth)`.

    Raises:
      ValueError: if `bandwidth` is not a finite positive number.
    """
    return Kernel("laplacian", {"bandwidth": _check_nonneg("bandwidth", bandwidth, strict=True)})


def _relu_kernel(name: str, depth: int, w_var: float, b_var: float) -> Kernel:
    depth = _v.integer("depth", depth, minimum=0)
    w_var = _check_nonneg("w_var", w_var, strict=True)
    b_var = _check_nonneg("b_var", b_var)
    return Kernel(name, {"w_var": w_var, "b_var": b_var}, (("depth", depth),))


def nngp(depth: int = 1, w_var: float = 2.0, b_var: float = 0.0) -> Kernel:
    """NNGP kernel of an infinitely wide fully-connected ReLU network with `depth` hidden layers (SPEC.md §1b).

    Matches neural-tangents' `stax.serial(Dense, Relu, ..., Dense)` with `W_std**2 = w_var`, `b_std**2 = b_var`:
    the input layer sees `w_var * x . y / d + b_var`.
    """
    return _relu_kernel("nngp", depth, w_var, b_var)


def ntk(depth: int = 1, w_var: float = 2.0, b_var: float = 0.0) -> Kernel:
    """Neural tangent kernel (NTK parameterisation) of the same network as `nngp`."""
    return _relu_kernel("ntk", depth, w_var, b_var)


KERNELS: dict[str, Callable[..., Kernel]] = {
    "linear": linear,
    "polynomial": polynomial,
    "rbf": rbf,
    "laplacian": laplacian,
    "nngp": nngp,
    "ntk": ntk,
}


def by_name(name: str, **params) -> Kernel:
    """Builds a kernel from its name and keyword hyper-parameters, e.g. `by_name("rbf", bandwidth=2.0)`.

    Raises:
      ValueError: for an unknown kernel name (the message lists the known ones) or bad parameters.
    """
    if name not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {name!r}")
    try:
        return KERNELS[name](**params)
    except TypeError as e:
        raise ValueError(f"bad parameters for kernel {name!r}: {e}") from None


@jax.jit
def _dot_gram(kernel: Kernel, X: Array, Y: Array) -> Array:
    xy = X @ Y.T
    xx = jnp.sum(X * X, axis=1)[:, None]
    yy = jnp.sum(Y * Y, axis=1)[None, :]
    return kernel.from_dots(xy, xx, yy, X.shape[1])


# Rows per panel of a symmetric Gram: large enough for efficient products, small enough that the mirrored
# panels stay cheap.
_SYM_PANEL = 2048


@functools.partial(jax.jit, static_argnums=2)
def _dot_gram_sym(kernel: Kernel, X: Array, block: int) -> Array:
    # Row panels of the upper triangle only, each mirrored below the diagonal: half the products and kernel
    # evaluations of the full Gram, exact symmetry for free, and no N x N transpose pass. Rounding in
    # x.x + y.y - 2 x.y breaks symmetry and k(x, x) inside the diagonal blocks: restore both there.
    n, d = X.shape
    sq = jnp.sum(X * X, axis=1)
    K = jnp.empty((n, n), X.dtype)
    for i in range(0, n, block):
        b = min(block, n - i)
        panel = kernel.from_dots(X[i : i + b] @ X[i:].T, sq[i : i + b, None], sq[None, i:], d)
        diag = 0.5 * (panel[:, :b] + panel[:, :b].T)
        diag = diag.at[jnp.diag_indices(b)].set(kernel.from_dots(sq[i : i + b], sq[i : i + b], sq[i : i + b], d))
        K = K.at[i : i + b, i : i + b].set(diag)
        if i + b < n:
            K = K.at[i : i + b, i + b :].set(panel[:, b:])
            K = K.at[i + b :, i : i + b].set(panel[:, b:].T)
    return K


@functools.partial(jax.jit, static_argnums=3)
def _dot_gram_blocks(kernel: Kernel, X: Array, Y: Array, block: int) -> Array:
    # Row blocks written into one buffer (in place under jit; a concatenate would copy the whole Gram again).
    K = jnp.empty((X.shape[0], Y.shape[0]), X.dtype)
    for i in range(0, X.shape[0], block):
        K = K.at[i : i + block].set(_dot_gram(kernel, X[i : i + block], Y))
    return K


def _generic_gram(kernel: Callable, X: Array, Y: Array) -> Array:
    return jax.vmap(lambda x: jax.vmap(lambda y: kernel(x, y))(Y))(X)


_generic_gram_jit = jax.jit(_generic_gram, static_argnums=0)


def gram(kernel: Kernel | Callable, X, Y=None, block_size: int | None = None) -> Array:
    """Gram matrix `K[i, j] = k(X[i], Y[j])`, computed in row blocks.

    For a `Kernel` the Gram is one matrix product plus elementwise work, so memory beyond the `(n, m)` output is
    O(n + m). Any other callable `k(x, y)` on single examples is batched with `vmap(vmap(k))`; then a block of
    `block_size` rows bounds the intermediate memory to O(block_size * m * d). With `Y=None` and a `Kernel` only the
    upper triangle is computed, in row panels of at most `min(block_size, 2048)` rows each mirrored below the
    diagonal: half the work, and the result is exactly symmetric with an exact diagonal.

    Args:
      kernel: a `Kernel` or a callable `k(x, y) -> scalar` on single examples.
      X: `(n, d)` array.
      Y: `(m, d)` array, or None for `Y = X`.
      block_size: rows per block; None computes in one block.

    Returns:
      `(n, m)` array.

    Raises:
      TypeError: `X`/`Y` not real arrays, `block_size` not an integer, `kernel` not callable.
      ValueError: if `X` or `Y` is not 2-D, empty or not finite, their feature dimensions differ, `block_size < 1`,
        or the Gram of finite input is not finite (the kernel overflows on this data).

    Example:
      >>> X = jnp.arange(6.0).reshape(3, 2)
      >>> gram(linear(), X).shape
      (3, 3)
    """
    X = _v.array("X", X)
    sym = Y is None
    Y = X if sym else _v.array("Y", Y, d=X.shape[1])
    block_size = _v.integer("block_size", block_size, allow_none=True)
    K = _gram(kernel, X, Y, sym, block_size)
    if not (_v.is_traced(X) or _v.is_traced(Y) or _v.is_traced(K)) and not bool(jnp.all(jnp.isfinite(K))):
        raise ValueError(f"the Gram matrix under {kernel!r} has NaN or Inf although X is finite: the kernel's "
                         "hyper-parameters overflow on this data (e.g. a high polynomial degree); rescale X or "
                         "change them")
    return K


def _gram(kernel, X: Array, Y: Array, sym: bool, block_size: int | None) -> Array:
    dtype = jnp.result_type(X.dtype, Y.dtype)
    if not jnp.issubdtype(dtype, jnp.inexact):
        # Integer data (e.g. uint8 pixels) would overflow in x . y: compute in the default float dtype instead.
        dtype = jnp.result_type(float)
    if X.dtype != dtype or Y.dtype != dtype:
        X, Y = X.astype(dtype), Y.astype(dtype)
    block = X.shape[0] if block_size is None else min(int(block_size), X.shape[0])
    if isinstance(kernel, Kernel):
        if sym:
            return _dot_gram_sym(kernel, X, min(block, _SYM_PANEL))
        return _dot_gram_blocks(kernel, X, Y, block)
    if not callable(kernel):
        raise TypeError(f"kernel must be a Kernel or a callable k(x, y), got {type(kernel).__name__}")
    if block >= X.shape[0]:
        return _generic_gram_jit(kernel, X, Y)
    return jnp.concatenate([_generic_gram_jit(kernel, X[i : i + block], Y) for i in range(0, X.shape[0], block)],
                           axis=0)


def median_bandwidth(X, *, max_points: int = 1000, seed: int = 0) -> float:
    """The median heuristic: the median Euclidean distance between distinct points of `X`.

    With `rbf(median_bandwidth(X))` a typical pair has `k = exp(-1/2)`. Beyond `max_points` rows a seeded random
    subset is used, so the cost stays O(max_points^2 d).

    Raises:
      ValueError: if `X` is not 2-D, has fewer than two rows, non-finite values, or all points coincide.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must be a 2-D array with at least 2 rows, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or Inf")
    if X.shape[0] > max_points:
        X = X[np.random.default_rng(seed).choice(X.shape[0], max_points, replace=False)]
    sq = np.sum(X * X, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0)
    iu = np.triu_indices(X.shape[0], k=1)
    # The median of the distances, not the square root of the median squared distance: they differ when the number
    # of pairs is even (the median then averages the two middle values).
    med = float(np.median(np.sqrt(d2[iu])))
    if med <= 0:
        raise ValueError("X: the median distance between points is 0; cannot set a bandwidth")
    return med
