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
    "cnngp",
    "cntk",
    "READOUTS",
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


def _relu_step(sxy, sxx, syy, w_var):
    """One ReLU layer of SPEC.md §1b, without the bias: `(w_var E[relu(u) relu(v)], w_var E[relu'(u) relu'(v)])`.

    `(u, v)` is centred Gaussian with covariance `[[sxx, sxy], [sxy, syy]]`. Elementwise on broadcastable arrays:
    the MLP kernels apply it to one pair of examples, the convolutional ones to every pair of pixels.
    """
    norm = jnp.sqrt(sxx * syy)
    safe_norm = jnp.where(norm > 0, norm, 1.0)
    c = jnp.clip(jnp.where(norm > 0, sxy / safe_norm, 1.0), -1.0, 1.0)
    t = jnp.arccos(c)
    # Both factors are written as (expression in t) / pi, which is exactly 1 at t = 0: on the diagonal the
    # update then rounds exactly like a halving of the variance, so c stays exactly 1 there at every layer. (Written
    # as w_var * ... / (2 pi), sxy drifts from sxx by an ulp, and arccos(1 - ulp) ~ 1e-8 enters the NTK.)
    relu = w_var * norm * ((jnp.sin(t) + (jnp.pi - t) * c) / jnp.pi) / 2.0
    drelu = w_var * ((jnp.pi - t) / jnp.pi) / 2.0
    return relu, drelu


def _relu_network(xy, xx, yy, d, *, depth, w_var, b_var):
    """The ReLU recursion of SPEC.md §1b; returns (nngp, ntk) after the readout layer."""
    sxy = w_var * xy / d + b_var
    sxx = w_var * xx / d + b_var
    syy = w_var * yy / d + b_var
    theta = sxy
    for _ in range(depth):
        relu, drelu = _relu_step(sxy, sxx, syy, w_var)
        sxy = relu + b_var
        theta = theta * drelu + sxy
        # On the diagonal t = 0, so the recursion reduces to a halving of the variance.
        sxx = w_var * sxx / 2.0 + b_var
        syy = w_var * syy / 2.0 + b_var
    return sxy, theta


def _nngp(xy, xx, yy, d, **kw):
    return _relu_network(xy, xx, yy, d, **kw)[0]


def _ntk(xy, xx, yy, d, **kw):
    return _relu_network(xy, xx, yy, d, **kw)[1]


# --------------------------------------------------------------------------------------------------------------------
# Convolutional kernels: the limits of the CNN of SPEC.md §7, one pair of images at a time


def _patch_sum(S: Array) -> Array:
    """`(1/9) sum_o S[p + o, p' + o]` over the 3x3 offsets `o`, zero outside the image (SAME zero padding).

    `S` is `(H, W)` (same-pixel terms) or `(H, W, H, W)` (all pixel pairs); the offset moves both pixels together,
    which is why the same-pixel terms never need the others.
    """
    H, W = S.shape[:2]
    pad = jnp.pad(S, [(1, 1)] * S.ndim)
    out = jnp.zeros_like(S)
    for di in range(3):
        for dj in range(3):
            if S.ndim == 2:
                out = out + pad[di : di + H, dj : dj + W]
            else:
                out = out + pad[di : di + H, dj : dj + W, di : di + H, dj : dj + W]
    return out / 9.0


def _conv_variances(x: Array, *, depth, w_var, b_var) -> Array:
    """`(depth, H, W)`: the pre-activation variance `Sigma_l(x, x)[p, p]` of each pixel at layers 1..depth."""
    s = w_var * _patch_sum(jnp.sum(x * x, axis=-1)) / x.shape[-1] + b_var
    out = [s]
    for _ in range(depth - 1):
        # The same operations as the pair recursion on its diagonal, so that c = 1 exactly there.
        s = _patch_sum(_relu_step(s, s, s, w_var)[0]) + b_var
        out.append(s)
    return jnp.stack(out)


def _conv_network(x: Array, y: Array, vx: Array, vy: Array, *, depth, w_var, b_var, readout):
    """`(cnngp, cntk)` of two images `(H, W, C)` given their pixel variances `vx, vy` (`_conv_variances`).

    `flatten` carries the `(H, W)` same-pixel terms only; `gap` the `(H, W, H, W)` terms of all pixel pairs.
    """
    if readout == "flatten":
        xy = jnp.sum(x * y, axis=-1)
        var_x, var_y = vx, vy
    else:
        xy = jnp.einsum("ijc,klc->ijkl", x, y)
        var_x, var_y = vx[:, :, :, None, None], vy[:, None, None, :, :]
    sig = w_var * _patch_sum(xy) / x.shape[-1] + b_var
    theta = sig
    for layer in range(depth):
        relu, drelu = _relu_step(sig, var_x[layer], var_y[layer], w_var)
        t = theta * drelu + relu
        if layer < depth - 1:
            sig = _patch_sum(relu) + b_var
            theta = _patch_sum(t) + b_var
    # Readout: flatten averages the same-pixel terms (weights sqrt(w_var / (P n_L))), gap all pixel pairs.
    return jnp.mean(relu) + b_var, jnp.mean(t) + b_var


def _conv_pair(kernel: Kernel, x: Array, y: Array, vx: Array, vy: Array) -> Array:
    kw = dict(kernel.static)
    image_shape = kw.pop("image_shape")
    out = _conv_network(x.reshape(image_shape), y.reshape(image_shape), vx, vy, **kw, **kernel.params)
    return out[0] if kernel.name == "cnngp" else out[1]


def _conv_vars(kernel: Kernel, x: Array) -> Array:
    kw = dict(kernel.static)
    return _conv_variances(x.reshape(kw["image_shape"]), depth=kw["depth"], **kernel.params)


_FNS: dict[str, Callable[..., Array]] = {
    "linear": _linear,
    "polynomial": _polynomial,
    "rbf": _rbf,
    "laplacian": _laplacian,
    "nngp": _nngp,
    "ntk": _ntk,
}
# Kernels of images that do not reduce to dot products (`Kernel.dot_product` is False): `gram` evaluates them per
# pair of images, in blocks.
_IMAGE_KERNELS = ("cnngp", "cntk")


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A kernel: a dot-product kernel `k(x, y) = from_dots(x . y, x . x, y . y)`, or an image kernel.

    Image kernels (`cnngp`, `cntk`: `dot_product` is False) read flat examples `(H * W * C,)` as images of their
    static `image_shape` and have no `from_dots`; `gram` evaluates them per pair of images.

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

    @property
    def dot_product(self) -> bool:
        """Whether `k(x, y)` depends on `x . y`, `x . x`, `y . y` only (then `from_dots` applies)."""
        return self.name not in _IMAGE_KERNELS

    def from_dots(self, xy: Array, xx: Array, yy: Array, d: int) -> Array:
        """Kernel values from dot products, elementwise (any broadcastable shapes); `d` is the input dimension.

        Raises:
          TypeError: for an image kernel (`dot_product` is False).
        """
        if not self.dot_product:
            raise TypeError(f"{self.name} is not a dot-product kernel: call it on examples or use gram")
        return _FNS[self.name](xy, xx, yy, d, **dict(self.static), **self.params)

    def __call__(self, x: Array, y: Array) -> Array:
        """`k(x, y)` for two single examples `x, y` of shape `(d,)`; returns a scalar."""
        return _pair(self, jnp.asarray(x), jnp.asarray(y))

    def __repr__(self) -> str:
        items = [f"{k}={v}" for k, v in self.static]
        items += [f"{k}={_fmt(v)}" for k, v in self.params.items()]
        return f"{self.name}({', '.join(items)})"


@jax.jit
def _pair(k: Kernel, x: Array, y: Array) -> Array:
    # One compiled program per kernel, shape and dtype (hyper-parameters are traced leaves); inlined under a trace.
    if not k.dot_product:
        return _conv_pair(k, x, y, _conv_vars(k, x), _conv_vars(k, y))
    return k.from_dots(jnp.dot(x, y), jnp.dot(x, x), jnp.dot(y, y), x.shape[-1])


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


READOUTS = ("flatten", "gap")


def _check_image_shape(image_shape) -> tuple[int, int, int]:
    if not isinstance(image_shape, (tuple, list)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in image_shape):
        raise TypeError(f"image_shape must be a tuple (H, W, C) of positive integers, got {image_shape!r}")
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be a tuple (H, W, C) of positive integers, got {tuple(image_shape)!r}")
    return tuple(int(v) for v in image_shape)


def _conv_kernel(name, image_shape, depth, w_var, b_var, readout) -> Kernel:
    image_shape = _check_image_shape(image_shape)
    depth = _v.integer("depth", depth, minimum=1)
    w_var = _check_nonneg("w_var", w_var, strict=True)
    b_var = _check_nonneg("b_var", b_var)
    _v.choice("readout", readout, READOUTS)
    return Kernel(name, {"w_var": w_var, "b_var": b_var},
                  (("depth", depth), ("image_shape", image_shape), ("readout", readout)))


def cnngp(image_shape, depth: int = 1, w_var: float = 2.0, b_var: float = 0.0, readout: str = "flatten") -> Kernel:
    """NNGP kernel of an infinitely wide ReLU CNN (3x3 convolutions, stride 1, SAME zero padding; SPEC.md §7).

    `depth` convolutional layers, each followed by a ReLU, then a dense readout of the flattened last layer
    (`readout="flatten"`) or of its global average over pixels (`"gap"`). Every pair of pixels follows the ReLU
    recursion of SPEC.md §1b (the same `_relu_step` as `nngp`), averaged over the 3x3 patches around them. Examples
    are flat `(H * W * C,)` rows in row-major `(H, W, C)` order. Not a dot-product kernel: `gram` evaluates it per
    pair of images, in row blocks.

    Cost per pair of images, with P = H W pixels: flatten needs only the P same-pixel terms, O(9 P (C + depth));
    gap needs all P^2 pixel pairs, O(P^2 (C + 9 depth)) time and O(P^2) memory (P = 64 for 8x8 digits: 4096
    terms per pair against 64).

    On a 1x1 image only the centre tap of each 3x3 filter sees a pixel, so every convolution is a dense layer with
    `w_var / 9` and, for `b_var = 0`, `cnngp = nngp / 9**depth` exactly (tests/test_conv_kernels.py).

    Args:
      image_shape: `(H, W, C)`.
      depth: number of convolutional (hidden) layers, >= 1.
      w_var: weight variance `W_std**2` (> 0).
      b_var: bias variance `b_std**2` (>= 0).
      readout: `"flatten"` or `"gap"`.

    Returns:
      A `Kernel` (static: depth, image_shape, readout; leaves: w_var, b_var).

    Raises:
      TypeError: `image_shape` not a tuple of integers, `depth` not an integer, `w_var`/`b_var` not numbers,
        `readout` not a string.
      ValueError: `image_shape` not three positive integers, `depth < 1`, `w_var <= 0`, `b_var < 0`, unknown
        `readout`.

    Example:
      >>> k = cnngp((4, 4, 1), depth=2, readout="gap")
      >>> gram(k, jnp.ones((3, 16))).shape
      (3, 3)
    """
    return _conv_kernel("cnngp", image_shape, depth, w_var, b_var, readout)


def cntk(image_shape, depth: int = 1, w_var: float = 2.0, b_var: float = 0.0, readout: str = "flatten") -> Kernel:
    """Neural tangent kernel (NTK parameterisation) of the CNN of `cnngp`; same arguments, costs and errors.

    Example:
      >>> k = cntk((8, 8, 1), depth=2)
      >>> float(k(jnp.ones(64), jnp.ones(64))) > 0
      True
    """
    return _conv_kernel("cntk", image_shape, depth, w_var, b_var, readout)


KERNELS: dict[str, Callable[..., Kernel]] = {
    "linear": linear,
    "polynomial": polynomial,
    "rbf": rbf,
    "laplacian": laplacian,
    "nngp": nngp,
    "ntk": ntk,
    "cnngp": cnngp,
    "cntk": cntk,
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


# Pixel-pair terms held at once by the blockwise Gram of an image kernel (rows x columns x terms per pair).
_IMAGE_GRAM_TERMS = 2**24


@jax.jit
def _image_variances(kernel: Kernel, X: Array) -> Array:
    return jax.vmap(lambda x: _conv_vars(kernel, x))(X)


@functools.partial(jax.jit, static_argnums=3)
def _image_gram(kernel: Kernel, X: Array, Y: Array, block: int) -> Array:
    # The pixel variances of every image once (O(n + m)), then each pair of images: `lax.map` over row blocks of a
    # fixed size (rows padded with zeros and dropped), so the compiled program does not grow with n.
    vX, vY = _image_variances(kernel, X), _image_variances(kernel, Y)
    pair = jax.vmap(jax.vmap(functools.partial(_conv_pair, kernel), (None, 0, None, 0)), (0, None, 0, None))
    n = X.shape[0]
    n_blocks = -(-n // block)
    pad = n_blocks * block - n
    Xb = jnp.pad(X, ((0, pad), (0, 0))).reshape(n_blocks, block, X.shape[1])
    vXb = jnp.pad(vX, ((0, pad), (0, 0), (0, 0), (0, 0))).reshape(n_blocks, block, *vX.shape[1:])
    rows = jax.lax.map(lambda xv: pair(xv[0], Y, xv[1], vY), (Xb, vXb))
    return rows.reshape(n_blocks * block, Y.shape[0])[:n]


def _image_block(kernel: Kernel, n: int, m: int, block: int) -> int:
    """Rows per block so that a block holds at most `_IMAGE_GRAM_TERMS` pixel-pair terms."""
    H, W, _ = dict(kernel.static)["image_shape"]
    terms = H * W if dict(kernel.static)["readout"] == "flatten" else (H * W) ** 2
    return max(1, min(block, _IMAGE_GRAM_TERMS // max(1, m * terms), n))


def _generic_gram(kernel: Callable, X: Array, Y: Array) -> Array:
    return jax.vmap(lambda x: jax.vmap(lambda y: kernel(x, y))(Y))(X)


_generic_gram_jit = jax.jit(_generic_gram, static_argnums=0)


def gram(kernel: Kernel | Callable, X, Y=None, block_size: int | None = None) -> Array:
    """Gram matrix `K[i, j] = k(X[i], Y[j])`, computed in row blocks.

    For a dot-product `Kernel` the Gram is one matrix product plus elementwise work, so memory beyond the `(n, m)`
    output is O(n + m); with `Y=None` only the upper triangle is computed, in row panels of at most
    `min(block_size, 2048)` rows each mirrored below the diagonal: half the work, and the result is exactly symmetric
    with an exact diagonal. An image kernel (`cnngp`, `cntk`) is evaluated per pair of images, `vmap` over a row block
    and all of `Y` (`lax.map` over the blocks) inside one `jax.jit`, with the pixel variances of each image computed
    once; the block is cut so that it holds at most 2^24 pixel-pair terms (P per pair for `flatten`, P^2 for `gap`);
    with `Y=None` every pair is computed and the result symmetrised. Any other callable `k(x, y)` on single examples
    is batched with `vmap(vmap(k))`; then a block of `block_size` rows bounds the intermediate memory to
    O(block_size * m * d).

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
    if not (_v.is_traced(X) or _v.is_traced(Y) or _v.all_finite(K)):
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
    if isinstance(kernel, Kernel) and not kernel.dot_product:
        H, W, C = dict(kernel.static)["image_shape"]
        if X.shape[1] != H * W * C:
            raise ValueError(f"{kernel.name} reads rows as images of shape {(H, W, C)}: X must have {H * W * C} "
                             f"features, got {X.shape[1]}")
        K = _image_gram(kernel, X, Y, _image_block(kernel, X.shape[0], Y.shape[0], block))
        # gap sums the pixel pairs of k(x, y) and k(y, x) in different orders: restore exact symmetry.
        return 0.5 * (K + K.T) if sym else K
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
