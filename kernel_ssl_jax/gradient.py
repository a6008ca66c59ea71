"""The gradient path (SPEC.md §5): the objectives of §2 trained with any optax optimiser.

Two parameterisations of the linear map `W`:

- `"representer"`: coefficients `C` (dim x N) over fixed training views, `Z = C K`, `W W^* = C K C^T`. This is the
  exact counterpart of the closed form (`spectral.solve`) and reaches it (tests: relative loss gap 1e-4). Plain
  gradients in `C` converge at a rate set by the conditioning of `S = K^2 + lam K`; `precondition="rkhs"` (gradient
  descent on `W` itself, `C = B K^{+1/2}`) or `"whiten"` (`C = B S^{+1/2}`, the closed form's own change of
  variables) are linear reparameterisations of the same loss that remove most or all of that dependence.
- `"features"`: `W` (dim x D) on explicit features `psi(x)` in `R^D` (`FeatureMap`): the identity for the linear
  kernel, random Fourier features for `rbf` / `laplacian`, Nystrom features on landmarks for any kernel. With an
  augmentation `aug(key, x)` every step draws fresh views of a mini-batch of sources with `jax.vmap` over PRNG keys.

Both share one loss (`objectives.loss` on `Z` with the ridge term `lam W W^*`, so the values are exactly those of
the closed form) and one training loop: `jax.lax.scan` over `log_every` steps inside one `jax.jit`, with a host
check between chunks (non-finite loss, `tol`).

Design choices (ours, not forced by the math):

- **vicreg_hard** (constraint `Q = Z Z^T + lam W W^* = I`) is trained by a *whitening* parameterisation instead of
  a penalty or a retraction: free parameters `B`, and `C = L^-1 B` with `L = cholesky(B S B^T)` (`S = K^2 + lam K`),
  so `Q = I` holds exactly at every step (as in W-MSE's batch whitening) and any optax optimiser applies unchanged.
  `Cholesky` rather than an inverse square root: its derivative stays finite when eigenvalues of `B S B^T` coincide.
  The stored coefficients are the whitened ones, so the constraint holds for the returned `Solution`. Caveat of the
  objective itself (not of the solver): with `lam > 0`, directions with tiny Gram eigenvalues `s` satisfy the
  constraint through the ridge term at a Dirichlet energy of order `s / (s + lam)`, so the optimum lives on the
  smallest eigen-directions of `K` unless `K` is well conditioned.
- **barlow** has zero loss on a whole manifold of maps; the closed form picks the minimum-norm one. Gradient descent
  stops wherever it meets the manifold, so `norm_penalty` (default 0) adds `norm_penalty * ||W||_HS^2` to the
  trained objective: a small value (1e-5) selects the minimum-norm solution up to `O(norm_penalty)` (slowly: the
  penalty is the only force along the zero-loss manifold, so a quasi-Newton optimiser such as `optax.lbfgs()` helps).
  The off-diagonal weight `gamma != 1` exists here only (no closed form).
- **The span of the training views.** SPEC §1 stores every solution in the representer form `W = C Phi^*`. That
  holds for `contrastive` (any `W` orthogonal to the views adds a PSD term to `Q` and raises `||Q||^2`) and the
  minimum-norm `barlow`, but NOT for `vicreg` / `vicreg_hard` with `lam > 0`: there `lam W W^*` sits inside
  `||Q - I||^2` (or the constraint `Q = I`), and directions of `W` that vanish on every training view supply
  variance at no Dirichlet cost. The representer path (and the closed form) minimise over the span; the features
  path with `D > N` (or fresh views) is not restricted to it and reaches lower losses
  (`test_features_path_escapes_the_span_for_vicreg_with_ridge`).
- **Mini-batches** of `b` out of `n` sources scale `Z` by `sqrt(n / b)`, so the batch sums in `Z Z^T`,
  `tr(Z A Z^T)` and `Z1 Z2^T` estimate the full-batch ones (exactly for `A` supported within sources) and `lam`
  keeps its meaning; with `b = n` the loss is exactly the full objective.
- **Feature-map solutions in representer form** (`featuremaps`, where `FeatureMap` lives). A `Solution` is
  `f(x) = coef k(train_x, x)`:
  Nystrom: `psi(x) = diag(s^-1/2) U^T k(Lm, x)` (eigenpairs of `K_mm` above `rcond`), so `train_x = Lm`, the base
  kernel, `coef = W diag(s^-1/2) U^T`, exact. Identity (linear kernel): `train_x = I_d`, `kernel = kernels.linear()`,
  `coef = W`, exact. Random Fourier features `psi(x) = [cos(Omega x), sin(Omega x)] / sqrt(D/2)` are not in the
  span of any finite set of base-kernel sections, but they are exactly sections of the Hartley kernel
  `cas(t . x) = cos(t . x) + sin(t . x)` at the pseudo-points `t = +-omega_j`:
  `a cos + b sin = ((a + b) cas(omega x) + (a - b) cas(-omega x)) / 2`. So `train_x = [Omega; -Omega]`,
  `kernel = hartley` (a cross-kernel between inputs and frequencies, not a PSD kernel on inputs) and
  `features`, `induced_kernel` and every evaluator work unchanged and exactly. The PSD kernel that random-feature
  training actually fits, `psi(x) . psi(y)`, is `FeatureMap.kernel`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax.featuremaps import FEATURE_MAPS, FeatureMap, feature_map, hartley
from kernel_ssl_jax import validation as _v
from kernel_ssl_jax.eigenbasis import DEFAULT_LAM, check_rank, default_rcond, rank
from kernel_ssl_jax.solution import Solution

Array = jax.Array

DEFAULT_LEARNING_RATE = 1e-2
PARAMETERISATIONS = ("representer", "features")
PRECONDITIONERS = (None, "rkhs", "whiten")

__all__ = [
    "train",
    "preconditioner",
    "FeatureMap",
    "feature_map",
    "hartley",
    "fresh_views",
    "DEFAULT_LEARNING_RATE",
    "PARAMETERISATIONS",
    "PRECONDITIONERS",
    "FEATURE_MAPS",
]


# --------------------------------------------------------------------------------------------------------------------
# Explicit feature maps (moved to `featuremaps`; re-exported here for compatibility)

_build_feature_map = feature_map  # `train` has an argument of the same name


def fresh_views(key: Array, X: Array, aug: Callable, n_views: int) -> Array:
    """`n_views` augmentations of every row of `X`, one PRNG key per (source, view): `(n * n_views, d)`.

    Source-major order (rows `i * n_views ...` are the views of source `i`). Deterministic for a key; the
    augmentation `aug(key, x)` acts on ONE example and is batched with `jax.vmap` over keys and sources.
    """
    keys = jax.random.split(key, (X.shape[0], n_views))
    per_source = jax.vmap(aug, in_axes=(0, None))
    views = jax.vmap(per_source, in_axes=(0, 0))(keys, X)
    return views.reshape(X.shape[0] * n_views, X.shape[1]).astype(X.dtype)


# --------------------------------------------------------------------------------------------------------------------
# The loss of one step


class _Data(NamedTuple):
    """Arrays the loss reads (jit arguments, not constants)."""

    design: Array  # (P, N): Z = params @ design. R K (representer) or psi(views)^T (features, fixed views)
    gnorm: Array  # (P, P): W W^* = params @ gnorm @ params.T. R K R (representer), R R (whitened features); else
    #               (0, 0) for features (identity)
    R: Array  # (D, D) whitening of the features (W = params @ R) with aug; else (0, 0)
    X: Array  # sources (features with aug), else (0, d)
    A: Array  # (N, N) graph for fixed views, else (0, 0)
    fmap: FeatureMap | None  # features computed per step (aug), else None
    members: Array  # (n, a) view indices of each source (mini-batches of fixed views), else (0, 0)
    v1: Array  # paired views (barlow), local to the batch
    v2: Array
    lam: Array  # 0-d: hyper-parameters are arguments, so that changing them does not recompile
    beta: Array
    gamma: Array
    norm_penalty: Array


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Static description of the problem (closed over by the jitted step)."""

    objective: str
    param: str
    n_sources: int  # sources in the data
    batch: int | None  # sources per step (None: all, no sampling)
    n_views: int  # views per source drawn per step (aug) / per source (fixed views, mini-batch)
    aug: Callable | None
    whitened: bool = False  # features path with W = params @ R (precondition="whiten")


def _batch_pairs(b: int, a: int) -> tuple[Array, Array]:
    v1, v2 = _graphs.pairs_from_groups(np.repeat(np.arange(b), a))
    return jnp.asarray(v1), jnp.asarray(v2)


def _clique(b: int, a: int, dtype) -> Array:
    return jnp.kron(jnp.eye(b, dtype=dtype), jnp.ones((a, a), dtype=dtype))


def _embed(spec: _Spec, params: Array, data: _Data, key: Array):
    """`(Z, norm, A_batch)`: representations of this step's views (scaled for mini-batches) and `W W^*`."""
    if spec.param == "representer" or spec.whitened:
        norm = params @ data.gnorm @ params.T
    else:
        norm = params @ params.T
    if spec.batch is None:
        src = None
    else:
        src = jax.random.choice(jax.random.fold_in(key, 0), spec.n_sources, (spec.batch,), replace=False)
    if spec.aug is not None:
        xs = data.X if src is None else data.X[src]
        views = fresh_views(jax.random.fold_in(key, 1), xs, spec.aug, spec.n_views)
        psi_t = jax.vmap(data.fmap)(views).T
        Z = params @ (data.R @ psi_t if spec.whitened else psi_t)
        b = xs.shape[0]
        A = _clique(b, spec.n_views, Z.dtype)
    elif src is None:
        Z = params @ data.design
        A = data.A
    else:
        idx = data.members[src].reshape(-1)
        Z = params @ data.design[:, idx]
        A = data.A[idx][:, idx]
    if src is not None:
        Z = Z * math.sqrt(spec.n_sources / spec.batch)
    return Z, norm, A


def _whiten(Z: Array, norm: Array, lam: Array) -> Array:
    """`L^-1` with `L = cholesky(Z Z^T + lam W W^*)`: `C = L^-1 B` satisfies `Q = I` (vicreg_hard)."""
    Lc = jnp.linalg.cholesky(Z @ Z.T + lam * norm)
    return jax.scipy.linalg.solve_triangular(Lc, jnp.eye(Z.shape[0], dtype=Z.dtype), lower=True)


def _objective(spec: _Spec, params: Array, data: _Data, key: Array) -> Array:
    """The trained objective at `params` on this step's views: SPEC §2 loss (+ `norm_penalty ||W||^2`)."""
    Z, norm, A = _embed(spec, params, data, key)
    if spec.objective == "vicreg_hard":
        Linv = _whiten(Z, norm, data.lam)
        Z = Linv @ Z
        norm = Linv @ norm @ Linv.T
    if spec.objective == "barlow":
        value = _objectives.loss("barlow", Z, pairs=(data.v1, data.v2), gamma=data.gamma)
    else:
        value = _objectives.loss(spec.objective, Z, A=A, beta=data.beta, reg=data.lam * norm)
    return value + data.norm_penalty * jnp.trace(norm)


def _final(spec: _Spec, params: Array, data: _Data, key: Array):
    """`(coef_or_W, loss without penalty, eigenvalues)` at the end of training, on the evaluation views."""
    Z, norm, A = _embed(spec, params, data, key)
    if spec.objective == "vicreg_hard":
        Linv = _whiten(Z, norm, data.lam)
        params, Z, norm = Linv @ params, Linv @ Z, Linv @ norm @ Linv.T
    if spec.objective == "barlow":
        value = _objectives.loss("barlow", Z, pairs=(data.v1, data.v2), gamma=data.gamma)
        S = Z[:, data.v1] @ Z[:, data.v2].T
        eig = jnp.linalg.eigvalsh(0.5 * (S + S.T))[::-1]
    else:
        value = _objectives.loss(spec.objective, Z, A=A, beta=data.beta, reg=data.lam * norm)
        if spec.objective == "vicreg_hard":
            # Dirichlet energies of the whitened directions (the closed form's eigenvalues of F L F), ascending.
            L = jnp.diag(jnp.sum(A, axis=1)) - A
            eig = jnp.linalg.eigvalsh(Z @ L @ Z.T)
        else:
            eig = jnp.linalg.eigvalsh(Z @ Z.T + data.lam * norm)[::-1]
    return params, value, eig


def preconditioner(kind: str | None, K: Array, lam: float, barlow: bool) -> tuple[Array, Array, Array]:
    """`(R, R K, R K R)` for `C = B R` (see `train`'s `precondition`); eigenvalues at or below `N eps max` dropped.

    `"whiten"` is the change of variables of the closed form (SPEC §3): `S^{+1/2}`, or `K^{+1/2}` for barlow (whose
    closed form whitens the norm `tr(C K C^T)`, so that it is `rkhs`).
    """
    if barlow and kind == "whiten":
        kind = "rkhs"
    if kind is None:
        return jnp.eye(K.shape[0], dtype=K.dtype), K, K
    s, U = jnp.linalg.eigh(0.5 * (K + K.T))
    kept = s > default_rcond(K.shape[0], K.dtype) * jnp.max(s)
    safe = jnp.where(kept, s, 1.0)
    h = 1.0 / jnp.sqrt(safe) if kind == "rkhs" else 1.0 / jnp.sqrt(safe * safe + lam * safe)
    h = jnp.where(kept, h, 0.0)
    R = (U * h[None, :]) @ U.T
    return R, (U * (h * s)[None, :]) @ U.T, (U * (h * h * s)[None, :]) @ U.T


def _features_whitening(Psi: Array, lam: float) -> Array:
    """`(Psi^T Psi + lam I)^{+1/2}` (D x D): `W = B R` makes the features path's `Q = B B^T` (its `"whiten"`)."""
    S = Psi.T @ Psi + lam * jnp.eye(Psi.shape[1], dtype=Psi.dtype)
    s, U = jnp.linalg.eigh(0.5 * (S + S.T))
    kept = s > default_rcond(S.shape[0], S.dtype) * jnp.max(s)
    h = jnp.where(kept, 1.0 / jnp.sqrt(jnp.where(kept, s, 1.0)), 0.0)
    return (U * h[None, :]) @ U.T


@functools.lru_cache(maxsize=64)
def _final_fn(spec: _Spec):
    return jax.jit(functools.partial(_final, spec))


# --------------------------------------------------------------------------------------------------------------------
# The training loop


def _find_learning_rate(state) -> float | None:
    """The learning rate stored by `optax.inject_hyperparams`, if any."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        if any(getattr(p, "key", None) == "learning_rate" for p in path):
            try:
                return float(leaf)
            except (TypeError, ValueError):
                return None
    return None


@functools.lru_cache(maxsize=64)
def _make_chunk(spec: _Spec, optimizer, length: int):
    # Cached: a second `train` with the same static problem and the same optimiser object reuses the compilation.
    extra = isinstance(optimizer, optax.GradientTransformationExtraArgs)

    @jax.jit
    def chunk(params, opt_state, start, steps, key, data):
        def one(carry, t):
            params, opt_state = carry
            step_key = jax.random.fold_in(key, t)
            fn = functools.partial(_objective, spec, data=data, key=step_key)
            value, grad = jax.value_and_grad(fn)(params)
            if extra:
                updates, new_state = optimizer.update(grad, opt_state, params, value=value, grad=grad, value_fn=fn)
            else:
                updates, new_state = optimizer.update(grad, opt_state, params)
            new_params = optax.apply_updates(params, updates)
            # Past the last step (the chunk is padded to a fixed length) parameters stay as they are.
            active = t < steps
            keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
            return (keep(new_params, params), jax.tree_util.tree_map(keep, new_state, opt_state)), value

        (params, opt_state), values = jax.lax.scan(one, (params, opt_state), start + jnp.arange(length))
        return params, opt_state, values

    return chunk


def _run(spec: _Spec, params, data: _Data, optimizer, *, steps: int, key, log_every: int, tol, learning_rate,
         callback):
    # Strong types from the start: some optimisers (optax.lbfgs) init weakly typed scalars that their first update
    # makes strong, which would compile the chunk a second time.
    opt_state = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=jnp.result_type(x)),
                                       optimizer.init(params))
    chunk = _make_chunk(spec, optimizer, min(log_every, steps))
    length = min(log_every, steps)
    history = []
    done = 0
    previous = None
    while done < steps:
        params, opt_state, values = chunk(params, opt_state, done, steps, key, data)
        values = np.asarray(values)[: min(length, steps - done)]
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            step = done + int(bad[0])
            lr = learning_rate if learning_rate is not None else _find_learning_rate(opt_state)
            lr_text = f"learning rate {lr:g}" if lr is not None else (
                "learning rate unknown (wrap the optimiser in optax.inject_hyperparams to have it reported)")
            raise FloatingPointError(
                f"training diverged: the loss is {values[bad[0]]} at step {step} ({spec.objective}, "
                f"{spec.param}, {lr_text}); lower the learning rate")
        history.append(values)
        done += values.shape[0]
        current = float(values[-1])
        if callback is not None:
            callback(done, current, params)
        if tol is not None and previous is not None and abs(previous - current) <= tol * max(abs(current), 1e-300):
            break
        previous = current
    return params, np.concatenate(history)


# --------------------------------------------------------------------------------------------------------------------
# Public entry point


def _members(groups: np.ndarray) -> np.ndarray:
    """`(n, a)` view indices of each source; all sources must have the same number of views."""
    counts = np.bincount(groups)
    if np.any(counts != counts[0]):
        raise ValueError("mini-batches of sources need every source to have the same number of views, got counts "
                         f"from {counts.min()} to {counts.max()}")
    return np.argsort(groups, kind="stable").reshape(counts.shape[0], counts[0]).astype(np.int32)


def train(objective: str, X, A=None, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
          pairs=None, gamma: float = 1.0, param: str = "representer", precondition: str | None = None,
          optimizer=None, learning_rate: float | None = None, steps: int = 5000, key, init_scale: float = 0.1,
          batch_sources: int | None = None, groups=None, aug: Callable | None = None, n_views: int = 2,
          feature_map: str | FeatureMap = "auto", n_features: int | None = None, norm_penalty: float = 0.0,
          log_every: int = 1000, tol: float | None = None, callback: Callable | None = None) -> Solution:
    """Trains the objective of SPEC.md §2 by gradient descent with an optax optimiser (SPEC.md §5).

    Data, by mode:

    - fixed views (`aug=None`, both parameterisations): `X` holds the `N` training views; `A` (or `pairs` for
      `barlow`) as for `spectral.solve`. Full batch by default (then the loss is exactly the closed form's);
      `batch_sources=b` samples `b` sources per step by `groups` (equal views per source needed).
    - fresh augmentations (`aug` given, `param="features"` only): `X` holds the `n` source samples; every step
      draws `n_views` views of `batch_sources` sources (default all) with `aug(key, x)` vmapped over keys; the graph
      is the view cliques (`A` unused) and `barlow` pairs the views of each source.

    Args:
      objective: `"contrastive"`, `"vicreg"`, `"vicreg_hard"` (whitening parameterisation, see the module doc) or
        `"barlow"`.
      X: `(N, d)` views, or `(n, d)` sources with `aug`.
      A: `(N, N)` relationship matrix (fixed views, all objectives but `barlow`).
      kernel: base kernel (`kernels.Kernel` or callable `k(x, y)`).
      dim: output dimension M.
      lam: ridge strength, `lam ||W||^2` inside `Q` (unused by `barlow`, as in the closed form).
      beta: invariance weight of `vicreg`.
      pairs: `(v1, v2)` paired views for `barlow` (fixed views); with mini-batches they must be the within-source
        pairs (`graphs.pairs_from_groups(groups)`, also the default there).
      gamma: off-diagonal weight of `barlow`; `gamma != 1` has no closed form and lives on this path only.
      param: `"representer"` (`C`, dim x N, `Z = C K`) or `"features"` (`W`, dim x D, `Z = W psi(X)^T`).
      precondition: a linear change of variables with the optimiser acting on `B` (the loss is unchanged).
        Representer path, `C = B R`: None (`R = I`, plain gradients in `C`), `"rkhs"` (`R = K^{+1/2}`: `B` are the
        coordinates of `W` in an orthonormal basis of span(Phi), i.e. gradient descent on `W` in the RKHS,
        `||W||_HS = ||B||`) or `"whiten"` (`R = S^{+1/2}`, `S = K^2 + lam K`: the quadratic part `Q = B B^T` is
        isotropic, so convergence no longer depends on the conditioning of K; for `barlow`, whose closed form
        whitens the norm, it is `"rkhs"`). Both cost one eigendecomposition of K. Features path, `W = B R`:
        None or `"rkhs"` (`R = I`: `W` already acts on the RKHS coordinates `psi`) or `"whiten"`
        (`R = (Psi^T Psi + lam I)^{+1/2}`, with `Psi` the features of the training views, or with `aug` of one
        draw of `n_views` views of every source, the full batch that mini-batches estimate; one D x D
        eigendecomposition; `"rkhs"` for barlow, as above).
      optimizer: an `optax.GradientTransformation`; default `optax.adam(learning_rate)`. Optimisers that take
        extra arguments (`optax.lbfgs`) get `value`, `grad` and `value_fn`.
      learning_rate: learning rate of the default optimiser (default `DEFAULT_LEARNING_RATE`); with an explicit
        `optimizer` it only labels error messages.
      steps: number of optimiser steps.
      key: PRNG key (initialisation, mini-batches, augmentations, features).
      init_scale: standard deviation of the initial parameters, per unit of `1 / sqrt(N)` (representer) or
        `1 / sqrt(D)` (features); small values show the stepwise learning of eigen-directions.
      batch_sources: sources per step; None for all of them.
      groups: `(N,)` source of each view (fixed views with `batch_sources`).
      aug: augmentation `aug(key, x) -> x'` on one example (features path): fresh views every step.
      n_views: views per source drawn per step with `aug`.
      feature_map: `"auto"`, `"identity"`, `"rff"`, `"nystrom"` (see `feature_map`) or a prebuilt `FeatureMap`.
      n_features: D for `rff`, landmarks for `nystrom` (default `min(points, 512)`; `rff` default 512).
      norm_penalty: adds `norm_penalty * ||W||_HS^2` to the trained objective (for `barlow`: selects the
        minimum-norm solution, as the closed form does). Not included in `Solution.loss`.
      log_every: steps per jit-compiled `lax.scan` chunk; between chunks the host checks for a non-finite loss,
        tests `tol` and calls `callback`.
      tol: stop when the loss changes by at most `tol * |loss|` between two chunks.
      callback: `callback(step, loss, params)` after every chunk (`params` are the optimiser's: `B` when
        preconditioned, before the whitening of `vicreg_hard`).

    Returns:
      A `Solution` (same type as the closed form: `features`, `induced_kernel` and the evaluators work on it) with
      `loss_history` (the trained objective before each step), `loss` (the SPEC §2 objective at the final
      parameters: on all training views, or on one fresh draw of views with `aug`) and
      `method = "gradient/<param>"` (`"gradient/features/<kind>"` for features).

    Raises:
      ValueError: unknown objective / param / feature map, bad shapes, NaN in `X`, negative `lam`, `gamma != 1`
        for an objective other than `barlow`, `aug` with `param="representer"`, mini-batches without `groups`.
      TypeError: `optimizer` that is not an `optax.GradientTransformation`, `key` that is not a PRNG key, `aug` that
        is not callable.
      FloatingPointError: the loss became NaN or Inf; the message names the step and the learning rate.

    Example:
      >>> X = jax.random.normal(jax.random.key(0), (20, 3))
      >>> A = _graphs.from_groups(jnp.repeat(jnp.arange(10), 2))
      >>> sol = train("contrastive", X, A, kernel=_kernels.rbf(1.0), dim=4, steps=200, key=jax.random.key(1))
      >>> sol.loss_history.shape, sol.features(X).shape
      ((200,), (20, 4))
    """
    _objectives.check_objective(objective)
    if precondition not in PRECONDITIONERS:
        raise ValueError(f"precondition must be one of {list(PRECONDITIONERS)}, got {precondition!r}")
    if param not in PARAMETERISATIONS:
        raise ValueError(f"param must be one of {list(PARAMETERISATIONS)}, got {param!r}")
    if not callable(kernel):
        raise TypeError(f"kernel must be a kernels.Kernel or a callable k(x, y), got {kernel!r}")
    if learning_rate is not None:
        learning_rate = float(_v.real("learning_rate", learning_rate, strict=True))
    if optimizer is None:
        learning_rate = DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
        optimizer = optax.adam(learning_rate)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation such as optax.adam(1e-2), got "
                        f"{type(optimizer).__name__}: {optimizer!r}")
    if not (isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                            or (key.dtype == jnp.uint32 and key.shape == (2,)))):
        raise TypeError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r}")
    dim = _v.integer("dim", dim)
    lam = float(_v.real("lam", lam))
    beta = float(_v.real("beta", beta))
    gamma = float(_v.real("gamma", gamma))
    norm_penalty = float(_v.real("norm_penalty", norm_penalty))
    init_scale = float(_v.real("init_scale", init_scale, strict=True))
    if gamma != 1.0 and objective != "barlow":
        raise ValueError(f"gamma is the off-diagonal weight of barlow; got gamma={gamma} for {objective!r}")
    steps = _v.integer("steps", steps)
    log_every = _v.integer("log_every", log_every)
    if tol is not None:
        tol = float(_v.real("tol", tol))
    if aug is not None:
        if not callable(aug):
            raise TypeError(f"aug must be a callable aug(key, x) on one example, got {aug!r}")
        if param != "features":
            raise ValueError("fresh augmentations (aug) need param='features': the representer path has fixed views")
        if A is not None or pairs is not None:
            raise ValueError("with aug the graph is the view cliques of each source (barlow: pairs of its views); "
                             "A and pairs must be None")
        n_views = _v.integer("n_views", n_views, minimum=2 if objective == "barlow" else 1)
    X = _v.array("X", X)
    dtype = X.dtype
    N = X.shape[0]

    k_init, k_feat, k_train, k_eval = jax.random.split(key, 4)
    empty = jnp.zeros((0, 0), dtype)
    empty_i = jnp.zeros((0,), jnp.int32)
    members = jnp.zeros((0, 0), jnp.int32)
    A_checked = empty
    v1 = v2 = fv1 = fv2 = empty_i  # pairs of one step's views / of the final (full) evaluation

    # --- which views, which graph
    if aug is not None:
        n_sources = N
        batch = None if batch_sources is None else _v.integer("batch_sources", batch_sources)
        if batch is not None and batch > n_sources:
            raise ValueError(f"batch_sources must be at most the number of sources {n_sources}, got {batch}")
        if batch == n_sources:
            batch = None
        if objective == "barlow":
            v1, v2 = _batch_pairs(batch or n_sources, n_views)
            fv1, fv2 = _batch_pairs(n_sources, n_views)
    else:
        g = None if groups is None else _graphs.check_groups(groups, N)
        if objective == "barlow":
            if pairs is not None:
                fv1, fv2 = _v.pairs(pairs, N)
            elif g is not None:
                fv1, fv2 = (jnp.asarray(p) for p in _graphs.pairs_from_groups(g))
            else:
                raise ValueError("barlow needs pairs=(v1, v2), the index arrays of paired views "
                                 "(see graphs.pairs_from_groups)")
            v1, v2 = fv1, fv2
        else:
            if A is None:
                raise ValueError(f"{objective} needs the relationship matrix A, e.g. graphs.from_groups(groups)")
            A_checked = _graphs.check_adjacency(A, N).astype(dtype)
        batch = None
        n_sources = N
        if batch_sources is not None:
            if g is None:
                raise ValueError("batch_sources needs groups, the source of each view, to sample whole sources")
            mem = _members(g)
            n_sources, n_views = mem.shape
            batch = _v.integer("batch_sources", batch_sources)
            if batch > n_sources:
                raise ValueError(f"batch_sources must be at most the number of sources {n_sources}, got {batch}")
            if batch == n_sources:
                batch = None
            else:
                members = jnp.asarray(mem)
                if objective == "barlow":
                    w1, w2 = _graphs.pairs_from_groups(g)
                    same = np.array_equal(np.sort(np.asarray(fv1, np.int64) * N + np.asarray(fv2)),
                                          np.sort(w1.astype(np.int64) * N + w2))
                    if not same:
                        raise ValueError("barlow with mini-batches pairs the views of each source: pairs must be "
                                         "graphs.pairs_from_groups(groups) (or None)")
                    v1, v2 = _batch_pairs(batch, n_views)

    # --- parameterisation
    fmap = None
    whitened = False
    if param == "representer":
        if dim > N:
            raise ValueError(f"dim must be at most the number of views N = {N}, got {dim}")
        K = _kernels.gram(kernel, X)
        if objective == "vicreg_hard":  # the constraint Q = I is singular beyond the rank: say so before any step
            s = np.linalg.eigvalsh(np.asarray(K))
            rcond = default_rcond(N, K.dtype)
            check_rank(dim, rank(s, rcond), rcond)
        R, design, gnorm = preconditioner(precondition, K, lam, barlow=objective == "barlow")
        P = N
        method = "gradient/representer" + ("" if precondition is None else f"/{precondition}")
    else:
        if isinstance(feature_map, FeatureMap):
            fmap = feature_map
            try:
                out = jax.eval_shape(fmap, jax.ShapeDtypeStruct(X.shape[1:], dtype))
            except (TypeError, ValueError) as e:
                raise ValueError(f"feature_map does not apply to inputs of {X.shape[1]} features: {e}") from None
            if out.shape != (fmap.dim,):
                raise ValueError(f"feature_map gives {out.shape} features per example, expected ({fmap.dim},)")
        else:
            fmap = _build_feature_map(kernel, feature_map, n_features=n_features, key=k_feat, points=X)
        P = fmap.dim
        design = empty if aug is not None else fmap.batch(X).T.astype(dtype)
        gnorm = R = empty
        method = f"gradient/features/{fmap.kind}"
        whitened = precondition == "whiten" and objective != "barlow"
        if whitened:
            if aug is None:
                Psi = design.T
            else:  # one draw of every source's views, with a key the training never uses
                Psi = fmap.batch(fresh_views(jax.random.fold_in(k_feat, 1), X, aug, n_views)).astype(dtype)
            R = _features_whitening(Psi, lam)
            gnorm = R @ R
            if aug is None:
                design = R @ design
            method += "/whiten"
    if objective == "vicreg_hard" and dim > P:
        raise ValueError(f"vicreg_hard: dim = {dim} exceeds the {P} parameters per output, so Q = I cannot hold")

    spec = _Spec(objective=objective, param=param, n_sources=n_sources, batch=batch, n_views=n_views, aug=aug,
                 whitened=whitened)
    data = _Data(design=design, gnorm=gnorm, R=R if aug is not None and spec.whitened else empty,
                 X=X if aug is not None else jnp.zeros((0, X.shape[1]), dtype),
                 A=A_checked, fmap=fmap if aug is not None else None,
                 members=members, v1=v1, v2=v2, lam=jnp.asarray(lam, dtype), beta=jnp.asarray(beta, dtype),
                 gamma=jnp.asarray(gamma, dtype), norm_penalty=jnp.asarray(norm_penalty, dtype))
    params0 = init_scale / math.sqrt(P) * jax.random.normal(k_init, (dim, P), dtype)
    params, history = _run(spec, params0, data, optimizer, steps=steps, key=k_train, log_every=log_every, tol=tol,
                           learning_rate=learning_rate, callback=callback)

    # --- the Solution: full batch (or one fresh draw of all sources with aug)
    final_spec = dataclasses.replace(spec, batch=None)
    final_data = data._replace(v1=fv1, v2=fv2)
    params, value, eig = _final_fn(final_spec)(params, final_data, k_eval)
    if param == "representer":
        coef, train_x, sol_kernel = params @ R, X, kernel
    else:
        train_x, sol_kernel, coef = fmap.representer(params @ R if spec.whitened else params)
    return Solution(coef=coef, train_x=train_x, kernel=sol_kernel, eigenvalues=eig, loss=value,
                    gram_eigenvalues=jnp.zeros((0,), dtype), loss_history=jnp.asarray(history, dtype),
                    objective=objective, dim=dim, lam=lam, beta=beta, method=method)
