"""The SSL objectives of SPEC.md §2 as functions of the representations, shared by the closed-form and gradient paths.

Representations follow the SPEC's layout: `Z` is `(M, N)`, one column per view (`Z = C K` in the representer form).
The ridge term of the regularised second moment `Q = Z Z^T + lam W W^*` enters as the `(M, M)` matrix
`reg = lam W W^*` (`lam C K C^T` in the representer form, see `ridge_term`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import validation as _v

Array = jax.Array

OBJECTIVES = ("contrastive", "vicreg", "vicreg_hard", "barlow")

__all__ = ["OBJECTIVES", "loss", "loss_from_coef", "loss_from_moments", "ridge_term", "check_objective", "dirichlet"]


def check_objective(name: str) -> str:
    """Raises a ValueError naming the valid objectives if `name` is not one of them."""
    if name not in OBJECTIVES:
        raise ValueError(f"objective must be one of {list(OBJECTIVES)}, got {name!r}")
    return name


@jax.jit
def ridge_term(coef: Array, K: Array, lam) -> Array:
    """`lam * W W^* = lam * C K C^T`, shape `(M, M)`, for `W = C Phi^*`."""
    return lam * (coef @ K @ coef.T)


def dirichlet(Z: Array, A: Array) -> Array:
    """`tr(Z L Z^T)` with `L = D - A`, without forming `L`."""
    return _loss("vicreg_hard", Z, A, 0.0, jnp.zeros((0,), jnp.int32), jnp.zeros((0,), jnp.int32),
                 jnp.zeros((Z.shape[0],) * 2, Z.dtype), 1.0)


def _sym(S: Array) -> Array:
    return 0.5 * (S + S.T)


def _from_moments(name, Q, zaz, energy, C12, beta, gamma):
    """SPEC §2 from the `(M, M)` moments: `Q`, `tr(Z A Z^T)`, `tr(Z L Z^T)` and `Z1 Z2^T` (the one formula)."""
    if name == "barlow":
        D = _sym(C12) - jnp.eye(C12.shape[0], dtype=C12.dtype)
        diag = jnp.sum(jnp.diagonal(D) ** 2)
        return diag + gamma * (jnp.sum(D * D) - diag)
    if name == "vicreg_hard":
        return energy
    if name == "contrastive":
        return jnp.sum(Q * Q) - 2.0 * zaz
    R = Q - jnp.eye(Q.shape[0], dtype=Q.dtype)
    return jnp.sum(R * R) + beta * energy


@functools.partial(jax.jit, static_argnames=("name",))
def _loss(name, Z, A, beta, v1, v2, reg, gamma):
    if name == "barlow":
        return _from_moments(name, None, None, None, Z[:, v1] @ Z[:, v2].T, beta, gamma)
    zaz = jnp.sum(Z * (Z @ A))
    energy = jnp.sum(Z * Z * jnp.sum(A, axis=1)[None, :]) - zaz  # tr(Z L Z^T), L = D - A, without forming L
    return _from_moments(name, Z @ Z.T + reg, zaz, energy, None, beta, gamma)


@functools.partial(jax.jit, static_argnames=("name",))
def _loss_moments(name, W, M2, PA, PD, S12, lam, beta):
    if name == "barlow":
        return _from_moments(name, None, None, None, W @ S12 @ W.T, beta, 1.0)
    zaz = jnp.trace(W @ PA @ W.T)
    return _from_moments(name, W @ M2 @ W.T + lam * (W @ W.T), zaz, jnp.trace(W @ PD @ W.T) - zaz, None, beta, 1.0)


def loss_from_moments(name: str, W, M2, PA, PD, S12, *, lam: float = 0.0, beta: float = 1.0) -> Array:
    """The objective of the map `f(x) = W psi(x)` from the `(D, D)` feature statistics of the training views.

    `Q = W (M2 + lam I) W^T`, `tr(Z A Z^T) = tr(W PA W^T)`, `tr(Z L Z^T) = tr(W (PD - PA) W^T)`,
    `Z1 Z2^T = W S12 W^T` with `M2 = Psi^T Psi`, `PA = Psi^T A Psi`, `PD = Psi^T diag(A 1) Psi`,
    `S12 = Psi[v1]^T Psi[v2]` (`lowrank.FeatureStats`). The same formula as `loss`, never forming N x N.
    """
    check_objective(name)
    return _loss_moments(name, jnp.asarray(W), M2, PA, PD, S12, lam, beta)


def loss(name: str, Z, *, A=None, beta: float = 1.0, pairs=None, reg=None, gamma: float = 1.0) -> Array:
    """Value of objective `name` (SPEC.md §2) at representations `Z`.

    | name | loss |
    |---|---|
    | `contrastive` | `||Q||^2 - 2 tr(Z A Z^T)` |
    | `vicreg` | `||Q - I||^2 + beta tr(Z L Z^T)` |
    | `vicreg_hard` | `tr(Z L Z^T)` (the constraint `Q = I` is the solver's business) |
    | `barlow` | `sum_i (S_ii - 1)^2 + gamma sum_{i != j} S_ij^2`, `S = sym(Z[:, v1] Z[:, v2]^T)` |

    with `Q = Z Z^T + reg` and `L = D - A`.

    Args:
      name: one of `OBJECTIVES`.
      Z: `(M, N)` representations, one column per view.
      A: `(N, N)` relationship matrix (all objectives but `barlow`).
      beta: invariance weight of `vicreg`.
      pairs: `(v1, v2)` index arrays of paired views (`barlow`).
      reg: `(M, M)` ridge term `lam W W^*` (default 0).
      gamma: off-diagonal weight of `barlow`; only `gamma = 1` has a closed form.

    Returns:
      Scalar loss.

    Raises:
      ValueError: unknown `name`, missing `A` or `pairs`, or shapes that do not match `Z`.

    Example:
      >>> Z = jnp.eye(2, 4)
      >>> float(loss("contrastive", Z, A=jnp.eye(4)))
      -2.0
    """
    check_objective(name)
    Z = _v.array("Z", Z)
    beta = _v.real("beta", beta)
    gamma = _v.real("gamma", gamma)
    M, N = Z.shape
    dummy = jnp.zeros((0,), dtype=jnp.int32)
    if name == "barlow":
        if pairs is None:
            raise ValueError("barlow needs pairs=(v1, v2), the index arrays of paired views")
        if any(_v.is_traced(p) for p in pairs):
            v1, v2 = (jnp.asarray(p, dtype=jnp.int32) for p in pairs)
        else:
            v1, v2 = _v.pairs(pairs, N)
        A = jnp.zeros((0, 0), dtype=Z.dtype)
    else:
        if A is None:
            raise ValueError(f"{name} needs the relationship matrix A")
        if _v.is_traced(A):
            A = jnp.asarray(A, dtype=Z.dtype)
            if A.shape != (N, N):
                raise ValueError(f"A must be ({N}, {N}) to match Z of shape {Z.shape}, got {A.shape}")
        else:
            # contrastive takes any symmetric target (SPEC §2: vicreg is contrastive with T = I - (beta/2) L); the
            # Laplacian objectives need a graph, non-negative.
            A = _graphs.check_adjacency(A, N, nonnegative=name != "contrastive").astype(Z.dtype)
        v1 = v2 = dummy
    if reg is None:
        reg = jnp.zeros((M, M), dtype=Z.dtype)
    else:
        reg = jnp.asarray(reg, dtype=Z.dtype)
        if reg.shape != (M, M):
            raise ValueError(f"reg must be ({M}, {M}), got {reg.shape}")
    return _loss(name, Z, A, beta, v1, v2, reg, gamma)


def loss_from_coef(name: str, coef, K, *, lam: float = 0.0, **kwargs) -> Array:
    """The objective in the representer form: `Z = C K`, `reg = lam C K C^T`.

    Args:
      name: one of `OBJECTIVES`.
      coef: `(M, N)` coefficients `C`.
      K: `(N, N)` Gram of the training views.
      lam: ridge strength (ignored by `barlow`, whose closed form is minimum-norm instead).
      **kwargs: `A`, `beta`, `pairs`, `gamma` as in `loss`.
    """
    coef = jnp.asarray(coef)
    K = jnp.asarray(K)
    reg = None if name == "barlow" else ridge_term(coef, K, lam)
    return loss(name, coef @ K, reg=reg, **kwargs)
