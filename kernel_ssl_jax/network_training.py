"""Training the networks of SPEC.md §7 on the objectives of §2 with optax: the kernel regime, observed.

Three models of the representation `f(x)` in `R^M` (M = `network.out_dim`), all trained on `objectives.loss`:

- `train="readout"`: the hidden layers stay at their initial values `theta0` and only the readout
  `V = readout_matrix(network, params)` is trained: `f(x) = V psi(x)` with `psi = network.features(theta0, .)`. This
  is exactly SPEC §2 for the explicit features `psi` (`W = V`, ridge `lam V V^T`), so the closed form of the empirical
  NNGP kernel `psi(x) . psi(y)` (`lowrank.solve_psi`, or `spectral.solve` with that kernel) is its optimum.
- `train="all"`: every parameter, on the centred output `f(x) = f_theta(x) - f_theta0(x)` (SPEC §7).
- `train="all", linearize=True`: the first-order Taylor model `f(x) = J_theta0(x) (theta - theta0)` (a `jax.jvp`),
  a linear map on the tangent features whose kernel is the empirical NTK.

Our choices (not forced by the math):

- The centred output is 0 at `theta0`, which is a stationary point of every objective (each gradient is a product with
  `Z`). Training therefore starts at `theta0 + delta` with `delta = J_theta0(X)^T r` (one `vjp`, `r` i.i.d. N(0, 1)
  per view and output) scaled to `||delta|| = init_scale`: a perturbation in the span of the training views' tangent
  features, whose output `Theta r` has a size set by the kernel whatever the number of parameters (a random
  direction in parameter space would give outputs ~ `init_scale / sqrt(n_params)`, and the escape from the
  stationary point would slow down with width). Readout training likewise starts from `V = r^T Psi(X)` of norm
  `init_scale`, not from the N(0, 1) readout of `theta0` (whose `||V||^2 ~ M * width` would make the ridge
  `lam V V^T` grow with the width). `theta0` stays the reference of the centred and linearised models.
- `lam`: for readout training the ridge `lam V V^T` is SPEC §2's `lam W W^*`. When all layers train, the outputs
  share parameters and `W W^*` has no `(M, M)` form at finite width; for ONE output (`out_dim = 1`) it is the scalar
  `||theta - theta0||^2`, the RKHS norm of the linearised model's map (exact there: the part of `theta - theta0`
  outside the span of the training tangent features only adds to the norm and decays). So `train="all"` takes
  `lam > 0` for `out_dim = 1` only, and `lam = 0` otherwise. At `lam = 0` the held-out induced kernel is
  `k_X(x)^T K^+ A K^+ k_X(x')`: a tiny optimisation error on the training views is amplified by `K^+`, so compare
  trained networks with closed forms at `lam > 0` (experiments/study_kernel_regime.py).
- `vicreg_hard` (a constraint) is not trained here: use `gradient.train` on the network's features, or `vicreg`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax

from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax.networks import Network, readout_matrix, with_readout
from kernel_ssl_jax import validation as _v

Array = jax.Array

TRAIN_MODES = ("readout", "all")

__all__ = ["NetworkSolution", "train_network", "check_objective", "TRAIN_MODES"]


def check_objective(objective: str) -> str:
    """`objective` if `train_network` trains it: any of `objectives.OBJECTIVES` but `vicreg_hard` (a constraint).

    Raises:
      ValueError: unknown objective, or `vicreg_hard`.
    """
    _objectives.check_objective(objective)
    if objective == "vicreg_hard":
        raise ValueError("train_network does not train vicreg_hard (a constraint): use 'vicreg', or gradient.train "
                         "on the network's features")
    return objective


def _model(network: Network, mode: str, linearize: bool, theta, params0, x: Array) -> Array:
    """`f(x)` of the trained variables `theta` (`V` for readout, all parameters otherwise) on one example."""
    if mode == "readout":
        return theta @ network.features(params0, x)
    if linearize:
        delta = jax.tree_util.tree_map(jnp.subtract, theta, params0)
        return jax.jvp(lambda p: network.apply(p, x), (params0,), (delta,))[1]
    return network.apply(theta, x) - network.apply(params0, x)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _model_batch(network, mode, linearize, theta, params0, X):
    return jax.vmap(functools.partial(_model, network, mode, linearize, theta, params0))(X)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class NetworkSolution:
    """A trained network representation: `features(X)` and `induced_kernel(Xa, Xb)` as for a `spectral.Solution`.

    Attributes:
      params: the trained network parameters (for readout training: `params0` with the trained readout).
      params0: the parameters at initialisation (the reference of the centred and linearised models).
      loss: the SPEC §2 objective at the end of training (with the ridge `lam V V^T` for readout training).
      loss_history: the objective before each step.
      network, train, linearize, objective, lam, beta: how it was obtained (static).
    """

    params: Any
    params0: Any
    loss: Array
    loss_history: Array
    network: Network = dataclasses.field(metadata=dict(static=True))
    train: str = dataclasses.field(metadata=dict(static=True), default="readout")
    linearize: bool = dataclasses.field(metadata=dict(static=True), default=False)
    objective: str = dataclasses.field(metadata=dict(static=True), default="contrastive")
    lam: float = dataclasses.field(metadata=dict(static=True), default=0.0)
    beta: float = dataclasses.field(metadata=dict(static=True), default=1.0)

    def features(self, X) -> Array:
        """`f(x)` for each row of `X`: `(n, M)` (sample-wise)."""
        theta = readout_matrix(self.network, self.params) if self.train == "readout" else self.params
        return _model_batch(self.network, self.train, self.linearize, theta, self.params0, jnp.asarray(X))

    def induced_kernel(self, Xa, Xb=None) -> Array:
        """`k*(Xa, Xb) = f(Xa) f(Xb)^T`: `(na, nb)`."""
        Fa = self.features(Xa)
        return Fa @ (Fa if Xb is None else self.features(Xb)).T


@functools.lru_cache(maxsize=32)
def _make_run(network, mode, linearize, objective, optimizer, steps):
    extra = isinstance(optimizer, optax.GradientTransformationExtraArgs)

    def value(theta, params0, X, A, v1, v2, lam, beta):
        Z = _model_batch(network, mode, linearize, theta, params0, X).T
        if objective == "barlow":
            return _objectives.loss("barlow", Z, pairs=(v1, v2))
        if mode == "readout":
            reg = lam * (theta @ theta.T)
        elif network.out_dim > 1:  # lam = 0 (checked by train_network)
            reg = None
        else:  # one output: W W^* = ||theta - theta0||^2
            sq = sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree_util.tree_leaves(theta),
                                                          jax.tree_util.tree_leaves(params0), strict=True))
            reg = jnp.reshape(lam * sq, (1, 1))
        return _objectives.loss(objective, Z, A=A, beta=beta, reg=reg)

    @jax.jit
    def run(theta, params0, X, A, v1, v2, lam, beta):
        fn = functools.partial(value, params0=params0, X=X, A=A, v1=v1, v2=v2, lam=lam, beta=beta)

        def step(carry, _):
            theta, state = carry
            loss, grad = jax.value_and_grad(fn)(theta)
            if extra:
                updates, state = optimizer.update(grad, state, theta, value=loss, grad=grad, value_fn=fn)
            else:
                updates, state = optimizer.update(grad, state, theta)
            return (optax.apply_updates(theta, updates), state), loss

        (theta, _), history = jax.lax.scan(step, (theta, optimizer.init(theta)), length=steps)
        return theta, history, fn(theta)

    return run


def train_network(objective: str, X, A=None, *, network: Network, key, train: str = "readout",
                  linearize: bool = False, lam: float = 0.0, beta: float = 1.0, pairs=None, steps: int = 1000,
                  learning_rate: float = 1e-2, optimizer: optax.GradientTransformation | None = None,
                  init_scale: float = 1e-2, params0=None) -> NetworkSolution:
    """Trains `network` on a SPEC §2 objective, full batch, with optax (module doc: the three models).

    Args:
      objective: `"contrastive"`, `"vicreg"` or `"barlow"`.
      X: `(N, d)` training views (flat rows; a `cnn` reads them as images).
      A: `(N, N)` relationship matrix (contrastive, vicreg).
      network: a `networks.Network`; its `out_dim` is the representation dimension M.
      key: PRNG key of the initialisation (and of the starting perturbation for `train="all"`).
      train: `"readout"` or `"all"`.
      linearize: train the first-order Taylor model around `theta0` (with `train="all"`; readout training is
        already linear).
      lam: ridge: `lam V V^T` for readout training; `lam ||theta - theta0||^2` for `train="all"` with one output
        (other `out_dim` need `lam = 0`).
      beta: invariance weight of vicreg.
      pairs: `(v1, v2)` paired views (barlow).
      steps: optimisation steps (one `jax.lax.scan` inside one `jax.jit`).
      learning_rate: Adam's learning rate when `optimizer` is None.
      optimizer: any `optax.GradientTransformation` (e.g. `optax.lbfgs()`).
      init_scale: norm of the starting perturbation (`train="all"`) or of the starting readout (module doc).
      params0: initial parameters (default `network.init(key, (d,))`).

    Returns:
      A `NetworkSolution`.

    Raises:
      ValueError: unknown objective or `train`, `vicreg_hard`, `lam > 0` with `train="all"` and `out_dim > 1`,
        missing `A` / `pairs`, bad shapes, NaN.
      TypeError: `network` not a `Network`, `optimizer` not an optax transformation.
      FloatingPointError: the loss became NaN or Inf.

    Example:
      >>> from kernel_ssl_jax import graphs, networks
      >>> X = jax.random.normal(jax.random.key(0), (8, 3))
      >>> A = graphs.from_groups(jnp.repeat(jnp.arange(4), 2))
      >>> sol = train_network("contrastive", X, A, network=networks.mlp(1, 16, out_dim=2), key=jax.random.key(1),
      ...                     lam=0.1, steps=50)
      >>> sol.features(X).shape
      (8, 2)
    """
    check_objective(objective)
    if train not in TRAIN_MODES:
        raise ValueError(f"train must be one of {list(TRAIN_MODES)}, got {train!r}")
    if not isinstance(network, Network):
        raise TypeError(f"network must be a networks.Network (networks.mlp, networks.cnn), got {network!r}")
    lam = float(_v.real("lam", lam))
    beta = float(_v.real("beta", beta))
    init_scale = float(_v.real("init_scale", init_scale))
    if train == "all" and lam != 0 and network.out_dim != 1:
        raise ValueError(f"train='all' takes lam > 0 for out_dim = 1 only (the ridge lam W W^* has no (M, M) form "
                         f"when the outputs share parameters), got lam={lam} with out_dim={network.out_dim}")
    steps = _v.integer("steps", steps)
    if optimizer is None:
        optimizer = optax.adam(float(_v.real("learning_rate", learning_rate, strict=True)))
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}")
    X = _v.array("X", X)
    N = X.shape[0]
    empty = jnp.zeros((0,), jnp.int32)
    v1 = v2 = empty
    if objective == "barlow":
        if pairs is None:
            raise ValueError("barlow needs pairs=(v1, v2), the index arrays of paired views")
        v1, v2 = _v.pairs(pairs, N)
        A = jnp.zeros((0, 0), X.dtype)
    else:
        if A is None:
            raise ValueError(f"{objective} needs the relationship matrix A, e.g. graphs.from_groups(groups)")
        A = _graphs.check_adjacency(A, N).astype(X.dtype)

    k_init, k_start = jax.random.split(key)
    if params0 is None:
        params0 = jax.jit(network.init, static_argnums=1)(k_init, (X.shape[1],))
    params0 = jax.tree_util.tree_map(lambda p: jnp.asarray(p, X.dtype), params0)
    # The starting perturbation lies in the span of the training views' tangent features (readout: of psi), so
    # that the output it adds, Theta r, has a size set by the kernel, not by the number of parameters.
    r = jax.random.normal(k_start, (N, network.out_dim), X.dtype)
    if train == "readout":
        theta = r.T @ jax.vmap(network.features, (None, 0))(params0, X)
        theta = init_scale * theta / jnp.linalg.norm(theta)
    else:
        _, vjp = jax.vjp(lambda p: jax.vmap(network.apply, (None, 0))(p, X), params0)
        (delta,) = vjp(r)
        norm = jnp.sqrt(sum(jnp.sum(d * d) for d in jax.tree_util.tree_leaves(delta)))
        theta = jax.tree_util.tree_map(lambda p, d: p + init_scale * d / norm, params0, delta)
    run = _make_run(network, train, bool(linearize) and train == "all", objective, optimizer, int(steps))
    theta, history, final = run(theta, params0, X, A, v1, v2, jnp.asarray(lam, X.dtype), jnp.asarray(beta, X.dtype))
    if not bool(jnp.isfinite(final)):
        bad = int(jnp.argmin(jnp.isfinite(history))) if not bool(jnp.all(jnp.isfinite(history))) else steps
        raise FloatingPointError(f"the loss became NaN or Inf at step {bad}: lower the learning rate")
    params = with_readout(network, params0, theta) if train == "readout" else theta
    return NetworkSolution(params=params, params0=params0, loss=final, loss_history=history, network=network,
                           train=train, linearize=bool(linearize) and train == "all", objective=objective,
                           lam=lam, beta=beta)


