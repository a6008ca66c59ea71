"""Finite ReLU networks of SPEC.md §7 in pure JAX, and their empirical NNGP and NTK.

Two architectures, NTK parameterisation (every weight and bias i.i.d. N(0, 1), scaled in the forward pass):

- `mlp`: `z_1 = sqrt(w_var / d) W_1 x + sqrt(b_var) b_1`, `z_{l+1} = sqrt(w_var / n_l) W_{l+1} relu(z_l) +
  sqrt(b_var) b_{l+1}`, output `f(x) = z_{L+1}`; its infinite-width limits are `kernels.nngp` / `kernels.ntk`.
- `cnn`: 3x3 convolutions, stride 1, SAME zero padding, `z_{l+1}[p] = sqrt(w_var / (9 n_l)) sum_q W[q - p]
  relu(z_l)[q] + sqrt(b_var) b`, then a dense readout of `vec(relu(z_L))` (`"flatten"`, scale
  `sqrt(w_var / (P n_L))`) or of `mean_p relu(z_L)[p]` (`"gap"`, scale `sqrt(w_var / n_L)`); limits
  `kernels.cnngp` / `kernels.cntk`.

A `Network` is a pair of pure functions in the manner of `optax.GradientTransformation`: `init(key, input_shape)`
returns the parameters (a pytree `{"hidden": [{"W", "b"}, ...], "readout": {"W", "b"}}`), `apply(params, x)` maps
ONE example to `(out_dim,)` (batch it with `jax.vmap`). `features(params, x)` is the last hidden layer as the readout
sees it: `f(x) = [W_out, b_out] @ features(params, x)` exactly (`readout_matrix`), with the constant feature
`sqrt(b_var)` appended when `b_var > 0`. Its Gram `features . features` is the empirical NNGP (the NNGP given the
hidden layers: the expectation of `f_m(x) f_m(y)` over the readout weights), and readout-only training is linear
regression on it.

The empirical NTK `sum_theta df_m(x)/dtheta df_m'(y)/dtheta` is computed in blocks of examples from Jacobians
(`jax.jacrev`: one `vjp` per output, vmapped): memory `O(block_size * out_dim * n_params)`, never the Jacobian of
all examples at once.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import validation as _v

Array = jax.Array

__all__ = ["Network", "mlp", "cnn", "empirical_nngp", "empirical_ntk", "readout_matrix", "with_readout"]


@dataclasses.dataclass(frozen=True, eq=False)
class Network:
    """A network as pure functions, with its infinite-width kernels (hashed by identity: a valid static argument).

    Attributes:
      init: `init(key, input_shape) -> params` (all entries N(0, 1)).
      apply: `apply(params, x) -> (out_dim,)` on one example.
      features: `features(params, x) -> (D,)`, the readout's input: `apply == W_out @ features + sqrt(b_var) b_out`.
      nngp: the analytic NNGP kernel of the infinite-width limit (`kernels.nngp` or `kernels.cnngp`).
      ntk: the analytic NTK (`kernels.ntk` or `kernels.cntk`).
      out_dim: number of outputs M.
    """

    init: Callable[..., Any]
    apply: Callable[..., Array]
    features: Callable[..., Array]
    nngp: _kernels.Kernel
    ntk: _kernels.Kernel
    out_dim: int


def _widths(name: str, value, depth: int) -> tuple[int, ...]:
    values = (value,) * depth if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise TypeError(f"{name} must be a positive integer or a sequence of {depth} of them, got {value!r}")
    if len(values) != depth or min(values, default=1) < 1:
        raise ValueError(f"{name} must be a positive integer or a sequence of {depth} of them, got {value!r}")
    return tuple(int(v) for v in values)


def _check_hyper(depth, out_dim, w_var, b_var, min_depth: int):
    depth = _v.integer("depth", depth, minimum=min_depth)
    out_dim = _v.integer("out_dim", out_dim, minimum=1)
    w_var = float(_v.real("w_var", w_var, strict=True))
    b_var = float(_v.real("b_var", b_var))
    return depth, out_dim, w_var, b_var


def _normal_layers(key, shapes) -> list[dict]:
    # One draw for every entry, cut into the leaves: a single PRNG computation compiles much faster than one per leaf,
    # and the draw and the cuts are one compiled program.
    return _normal_layers_jit(key, tuple((tuple(w), tuple(b)) for w, b in shapes))


@functools.partial(jax.jit, static_argnums=1)
def _normal_layers_jit(key, shapes) -> list[dict]:
    sizes = [math.prod(s) for pair in shapes for s in pair]
    flat = jax.random.normal(key, (sum(sizes),))
    leaves, start = [], 0
    for pair in shapes:
        layer = {}
        for name, shape in zip(("W", "b"), pair, strict=True):
            layer[name] = flat[start : start + math.prod(shape)].reshape(shape)
            start += math.prod(shape)
        leaves.append(layer)
    return leaves


def _with_bias_feature(psi: Array, b_var: float) -> Array:
    if b_var == 0:
        return psi
    return jnp.concatenate([psi, jnp.full((1,), math.sqrt(b_var), psi.dtype)])


def _apply_readout(params, psi: Array, b_var: float) -> Array:
    V = params["readout"]["W"]
    return V @ psi[: V.shape[1]] + math.sqrt(b_var) * params["readout"]["b"]


def _has_bias_feature(net: Network) -> bool:
    return float(net.nngp.params["b_var"]) > 0


def readout_matrix(net: Network, params) -> Array:
    """`V = [W_out, b_out]` (`W_out` when `b_var = 0`), `(M, D)`: `net.apply(params, x) == V @ net.features(params, x)`.

    Example:
      >>> net = mlp(1, 8, out_dim=2, b_var=0.1)
      >>> readout_matrix(net, net.init(jax.random.key(0), (3,))).shape
      (2, 9)
    """
    W, b = params["readout"]["W"], params["readout"]["b"]
    return jnp.concatenate([W, b[:, None]], axis=1) if _has_bias_feature(net) else W


def with_readout(net: Network, params, V: Array):
    """`params` with the readout replaced by `V` (the layout of `readout_matrix`)."""
    n = params["readout"]["W"].shape[1]
    b = V[:, n] if _has_bias_feature(net) else params["readout"]["b"]
    return {**params, "readout": {"W": V[:, :n], "b": b}}


def mlp(depth: int, width, out_dim: int = 1, w_var: float = 2.0, b_var: float = 0.0) -> Network:
    """The fully-connected ReLU network of SPEC.md §7 (NTK parameterisation).

    Args:
      depth: hidden layers L (>= 0).
      width: `n_1 = ... = n_L` (an int) or the L widths.
      out_dim: outputs M.
      w_var, b_var: weight and bias variances (`w_var > 0`, `b_var >= 0`).

    Returns:
      A `Network` whose `nngp`/`ntk` are `kernels.nngp(depth, w_var, b_var)` / `kernels.ntk(...)`.

    Raises:
      TypeError: a non-integer `depth`, `width` or `out_dim`, non-numeric variances.
      ValueError: `depth < 0`, widths or `out_dim` < 1, `w_var <= 0`, `b_var < 0`.

    Example:
      >>> net = mlp(2, 64, out_dim=3)
      >>> params = net.init(jax.random.key(0), (5,))
      >>> net.apply(params, jnp.ones(5)).shape
      (3,)
    """
    depth, out_dim, w_var, b_var = _check_hyper(depth, out_dim, w_var, b_var, 0)
    widths = _widths("width", width, depth)

    def init(key, input_shape):
        if len(tuple(input_shape)) != 1:
            raise ValueError(f"mlp takes flat inputs: input_shape must be (d,), got {tuple(input_shape)}")
        sizes = (int(input_shape[0]),) + widths
        layers = _normal_layers(key, [((sizes[i + 1], sizes[i]), (sizes[i + 1],)) for i in range(depth)]
                                + [((out_dim, sizes[-1]), (out_dim,))])
        return {"hidden": layers[:-1], "readout": layers[-1]}

    def hidden(params, x):
        h = x
        for layer in params["hidden"]:
            h = jax.nn.relu(math.sqrt(w_var / h.shape[0]) * (layer["W"] @ h) + math.sqrt(b_var) * layer["b"])
        return h

    def features(params, x):
        h = hidden(params, jnp.asarray(x))
        return _with_bias_feature(math.sqrt(w_var / h.shape[0]) * h, b_var)

    def apply(params, x):
        return _apply_readout(params, features(params, x), b_var)

    return Network(init, apply, features, _kernels.nngp(depth, w_var, b_var), _kernels.ntk(depth, w_var, b_var),
                   out_dim)


def cnn(depth: int, channels, image_shape: Sequence[int], out_dim: int = 1, w_var: float = 2.0, b_var: float = 0.0,
        readout: str = "flatten") -> Network:
    """The ReLU CNN of SPEC.md §7: 3x3 convolutions, stride 1, SAME zero padding, then a dense readout.

    Args:
      depth: convolutional layers L (>= 1), each followed by a ReLU.
      channels: `n_1 = ... = n_L` (an int) or the L channel counts.
      image_shape: `(H, W, C)`; `apply` takes an image of this shape or its flat row-major `(H * W * C,)` form.
      out_dim: outputs M.
      w_var, b_var: weight and bias variances.
      readout: `"flatten"` (dense layer on `vec(relu(z_L))`) or `"gap"` (on the mean over pixels).

    Returns:
      A `Network` whose `nngp`/`ntk` are `kernels.cnngp` / `kernels.cntk` with the same arguments.

    Raises:
      TypeError, ValueError: as `kernels.cnngp`, and for `channels` / `out_dim` as `mlp`.

    Example:
      >>> net = cnn(2, 8, (4, 4, 1), readout="gap")
      >>> params = net.init(jax.random.key(0), (4, 4, 1))
      >>> net.apply(params, jnp.ones(16)).shape
      (1,)
    """
    depth, out_dim, w_var, b_var = _check_hyper(depth, out_dim, w_var, b_var, 1)
    nngp = _kernels.cnngp(image_shape, depth, w_var, b_var, readout)  # validates image_shape and readout
    ntk = _kernels.cntk(image_shape, depth, w_var, b_var, readout)
    image_shape = dict(nngp.static)["image_shape"]
    chans = _widths("channels", channels, depth)
    H, W, C = image_shape
    n_feat = chans[-1] * (H * W if readout == "flatten" else 1)

    def init(key, input_shape):
        if tuple(input_shape) not in (image_shape, (H * W * C,)):
            raise ValueError(f"input_shape must be {image_shape} or ({H * W * C},), got {tuple(input_shape)}")
        sizes = (C,) + chans
        layers = _normal_layers(key, [((3, 3, sizes[i], sizes[i + 1]), (sizes[i + 1],)) for i in range(depth)]
                                + [((out_dim, n_feat), (out_dim,))])
        return {"hidden": layers[:-1], "readout": layers[-1]}

    def features(params, x):
        h = jnp.asarray(x).reshape(image_shape)[None]
        for layer in params["hidden"]:
            z = jax.lax.conv_general_dilated(h, layer["W"], (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            bias = math.sqrt(b_var) * layer["b"][None, None, None, :]
            h = jax.nn.relu(math.sqrt(w_var / (9 * h.shape[-1])) * z + bias)
        h = h[0]
        n_l = h.shape[-1]
        psi = (math.sqrt(w_var / (H * W * n_l)) * h.reshape(-1) if readout == "flatten"
               else math.sqrt(w_var / n_l) * jnp.mean(h, axis=(0, 1)))
        return _with_bias_feature(psi, b_var)

    def apply(params, x):
        return _apply_readout(params, features(params, x), b_var)

    return Network(init, apply, features, nngp, ntk, out_dim)


# --------------------------------------------------------------------------------------------------------------------
# Empirical kernels


def _as_rows(name: str, X) -> Array:
    X = jnp.asarray(X)
    if X.ndim < 2:
        raise ValueError(f"{name} must be a batch of examples (n, ...), got shape {X.shape}")
    return X


@functools.partial(jax.jit, static_argnums=0)
def _features_batch(features, params, X):
    return jax.vmap(features, (None, 0))(params, X)


def empirical_nngp(features: Callable, params, X1, X2=None) -> Array:
    """The empirical NNGP `psi(x) . psi(y)` of one network, `psi = features(params, .)` (`Network.features`).

    This is `E[f_m(x) f_m(y)]` over the readout weights given the hidden layers; it tends to `Network.nngp` as the
    widths grow (error O(width^-1/2)).

    Args:
      features: `features(params, x) -> (D,)` on one example.
      params: the network's parameters.
      X1: `(n1, ...)` examples; X2: `(n2, ...)` or None for `X1`.

    Returns:
      `(n1, n2)` array.

    Example:
      >>> net = mlp(1, 32)
      >>> p = net.init(jax.random.key(0), (3,))
      >>> empirical_nngp(net.features, p, jnp.ones((4, 3))).shape
      (4, 4)
    """
    P1 = _features_batch(features, params, _as_rows("X1", X1))
    P2 = P1 if X2 is None else _features_batch(features, params, _as_rows("X2", X2))
    return P1 @ P2.T


def _jacobian(apply, params, X):
    # (n, M, n_params) per leaf, flattened: jacrev is one vjp per output, vmapped over outputs and examples.
    J = jax.vmap(jax.jacrev(apply), (None, 0))(params, X)
    return [j.reshape(j.shape[0], j.shape[1], -1) for j in jax.tree_util.tree_leaves(J)]


@functools.partial(jax.jit, static_argnames=("apply", "block", "cross_outputs", "same"))
def _ntk_blocks(apply, params, X1, X2, block, cross_outputs, same):
    n1, n2 = X1.shape[0], X2.shape[0]
    M = jax.eval_shape(apply, params, X1[0]).shape[0]
    out = jnp.zeros((n1, n2, M, M) if cross_outputs else (n1, n2), X1.dtype)
    for i in range(0, n1, block):
        J1 = _jacobian(apply, params, X1[i : i + block])
        for j in range(0, n2, block):
            J2 = J1 if same and i == j else _jacobian(apply, params, X2[j : j + block])
            if cross_outputs:
                t = sum(jnp.einsum("amk,bnk->abmn", a, b) for a, b in zip(J1, J2, strict=True))
            else:
                t = sum(jnp.einsum("amk,bmk->ab", a, b) for a, b in zip(J1, J2, strict=True)) / M
            out = out.at[i : i + block, j : j + block].set(t.astype(out.dtype))
    return out


def empirical_ntk(apply: Callable, params, X1, X2=None, *, block_size: int | None = None,
                  cross_outputs: bool = False) -> Array:
    """The empirical NTK `Theta_mm'(x, y) = sum_theta df_m(x)/dtheta . df_m'(y)/dtheta` of `apply(params, x)`.

    Computed from Jacobians of `block_size` examples at a time (memory `O(block_size * M * n_params)`); the
    Jacobians of `X2` are recomputed for every row block of `X1` (cost `O(n1 n2 M n_params / block_size)`).

    Args:
      apply: `apply(params, x) -> (M,)` on one example (hashable: it is a static argument of the jitted core).
      params: the parameters (any pytree); every leaf counts, including fixed ones with zero derivative.
      X1: `(n1, ...)` examples; X2: `(n2, ...)` or None for `X1`.
      block_size: examples per Jacobian block (default: all at once).
      cross_outputs: return the full `(n1, n2, M, M)` array instead of the average over outputs of the diagonal
        terms, `(1/M) sum_m Theta_mm` `(n1, n2)`, which tends to `Network.ntk`.

    Returns:
      `(n1, n2)` or `(n1, n2, M, M)` array.

    Raises:
      ValueError: `X1`/`X2` not batches, `block_size < 1`.

    Example:
      >>> net = mlp(1, 32, out_dim=2)
      >>> p = net.init(jax.random.key(0), (3,))
      >>> empirical_ntk(net.apply, p, jnp.ones((4, 3)), cross_outputs=True).shape
      (4, 4, 2, 2)
    """
    X1 = _as_rows("X1", X1)
    same = X2 is None
    X2 = X1 if same else _as_rows("X2", X2)
    if block_size is None:
        block = max(X1.shape[0], X2.shape[0])
    else:
        block = _v.integer("block_size", block_size, minimum=1)
    return _ntk_blocks(apply, params, X1, X2, block, bool(cross_outputs), same)
