"""`Solution`, the result type of every path (closed form and gradient), and the induced kernel (SPEC.md §1, §3).

A learned representation is stored in the representer form `f(x) = C k(X_train, x)`: the coefficients, the points
they sit on and the kernel. `features` and `induced_kernel` are pure functions of arrays, usable inside `jax.jit` and
`jax.vmap` (argument checks run on concrete input only).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import validation as _v
from kernel_ssl_jax.eigenbasis import DEFAULT_LAM

Array = jax.Array

__all__ = ["Solution", "features", "induced_kernel"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Solution:
    """An optimal (or trained) linear representation in the representer form `f(x) = C k(X_train, x)`.

    Attributes:
      coef: `(dim, N)` coefficients `C`.
      train_x: `(N, d)` training views `X` (or the points of a feature map: landmarks, pseudo-points).
      kernel: the base kernel `k`.
      eigenvalues: `(dim,)` eigenvalues of the target kept by the solver (for `contrastive`/`vicreg` the diagonal of
        `Q = C S C^T`; for `vicreg_hard` the Dirichlet energies; for `barlow` the eigenvalues `l` of SPEC §3.4).
      loss: the objective (SPEC.md §2) at the solution.
      gram_eigenvalues: kept eigenvalues of `K` (ascending, zero where dropped), or empty.
      loss_history: losses along training for gradient solutions, else empty.
      objective, dim, lam, beta: the problem (static metadata).
      method: the algorithm that ran: `"dense-eigh"`, `"structured-eigh"`, `"structured-cholesky"`,
        `"features-nystrom"`, `"features-rff"`, `"features-linear"`, `"gradient-representer"`, `"gradient-features"`.
      reason: why that algorithm ran, when a choice was made for the caller (`method="auto"`: the memory each
        candidate needs against the budget; a dense Cholesky path that fell back), else empty.

    Example:
      >>> import kernel_ssl_jax as kssl
      >>> X = jax.random.normal(jax.random.key(0), (20, 3))
      >>> sol = kssl.solve("contrastive", X, groups=jnp.repeat(jnp.arange(10), 2), kernel=kssl.kernels.rbf(1.0), dim=4)
      >>> jax.jit(sol.features)(X).shape
      (20, 4)
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
    method: str = dataclasses.field(metadata=dict(static=True), default="dense-eigh")
    reason: str = dataclasses.field(metadata=dict(static=True), default="")

    def features(self, X, block_size: int | None = None) -> Array:
        """`f(x) = C k_X(x)` for each row of `X` `(n, d)` -> `(n, dim)`, or for one example `(d,)` -> `(dim,)`."""
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

    Sample-wise: row `i` depends on `X[i]` only, so `jax.vmap(sol.features)(X) == sol.features(X)` for single
    examples `(d,)`. With `block_size`, rows are processed in blocks so memory stays O(block_size * N).

    Args:
      sol: a `Solution`.
      X: `(n, d)` points, or one point `(d,)`.
      block_size: rows per block, or None for one block.

    Returns:
      `(n, dim)` array (`(dim,)` for one point).

    Raises:
      ValueError: if `X` does not have the training feature dimension, or (concrete input) holds NaN/Inf.
    """
    X = _v.array("X", X, ndim=(1, 2), d=sol.train_x.shape[1], dtype=sol.train_x.dtype)
    if X.ndim == 1:
        return features(sol, X[None, :], block_size)[0]
    block_size = _v.integer("block_size", block_size, allow_none=True)
    n = X.shape[0]
    if block_size is None or block_size >= n:
        return _times_coef(_kernels.gram(sol.kernel, X, sol.train_x), sol.coef)
    return jnp.concatenate(
        [_times_coef(_kernels.gram(sol.kernel, X[i : i + block_size], sol.train_x), sol.coef)
         for i in range(0, n, block_size)]
    )


@jax.jit
def _times_coef(K, coef):
    # One compiled program per shape (op by op, the product and the transpose compile separately).
    return K @ coef.T


def induced_kernel(sol: Solution, Xa, Xb=None, block_size: int | None = None) -> Array:
    """Induced kernel `K*_ab = k(Xa, X) C^T C k(X, Xb)` between two sets of points (`Xb=None`: `Xb = Xa`).

    Returns:
      `(na, nb)` array.
    """
    Fa = features(sol, Xa, block_size)
    Fb = Fa if Xb is None else features(sol, Xb, block_size)
    return _times_coef(Fa, Fb)
