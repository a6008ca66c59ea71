"""Batched closed forms on one shared eigendecomposition: many `(lam, beta)` in one `jax.vmap`, every `dim` from one
solve at the largest (the top-M eigenpairs are nested). Shared by `kssl sweep` (`sweep`) and model selection
(`select`), so both compute exactly the closed forms of `spectral`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from kernel_ssl_jax import spectral as _spectral

__all__ = ["solve_batch", "nested_dims"]


def solve_batch(objective: str, K, eig, A, pairs, lams: Sequence[float], betas: Sequence[float], dim: int):
    """Closed forms of one objective for many `(lam, beta)` on one shared eigendecomposition, by `jax.vmap`.

    The target is prepared once (`spectral.target`: structured for a view-clique `A` in contrastive, dense
    otherwise) and `spectral.coefficients` is vmapped over the traced `lam` and `beta`: the same numerics as
    `kssl.solve`.

    Returns:
      `(coefs (B, dim, N), eigenvalues (B, dim), method)`.
    """
    K = jnp.asarray(K)
    if objective == "barlow":
        pairs, A = tuple(jnp.asarray(p, jnp.int32) for p in pairs), None
    else:
        A = jnp.asarray(A, K.dtype)
    tgt = _spectral.target(objective, eig, A, pairs, dim=dim)
    coefs, ws = jax.vmap(lambda lam, beta: _spectral.coefficients(tgt, eig, lam=lam, beta=beta, dim=dim))(
        jnp.asarray(lams, K.dtype), jnp.asarray(betas, K.dtype))
    return coefs, ws, tgt.method


def nested_dims(coef, eigenvalues, dims: Sequence[int]) -> dict[int, tuple]:
    """The solutions for every `dim` in `dims` from one solve at `max(dims)`: its leading rows (nested top-M)."""
    return {d: (coef[..., :d, :], eigenvalues[..., :d]) for d in dims}
