"""Closed form against gradient descent on the same views, and the learning dynamics of gradient descent (issue 4).

Two questions, one module:

1. **Do the two routes agree?** `compare` solves an objective in closed form (`spectral.solve`, SPEC.md §3) and trains
   it by gradient (`gradient.train`, representer path, full batch, whitening preconditioner by default) on the same
   views, then reports:
   - the relative loss gap `(L_grad - L_closed) / max(|L_closed|, 1)` (barlow's optimum is 0: the gap is then
     absolute);
   - the distance between the two induced kernels on held-out points, `||K*_g - K*_c||_F / ||K*_c||_F` with
     `K* = F F^T`: invariant to any rotation of the output space by construction;
   - the largest principal angle between the column spaces of the two feature matrices `f(X_test)`
     (`scipy.linalg.subspace_angles`);
   - the relative gap between the `dim`-th and `(dim+1)`-th closed-form eigenvalues: near 0 the optimum is degenerate
     (view cliques with `vicreg`/`vicreg_hard`: the null space of L is n-dimensional, SPEC.md §3.5), the optimal
     subspace is not unique and only the loss gap is meaningful (the table says so);
   - wall times: each route runs once to compile (JAX) and is then timed on a second, identical run, so the times
     are steady-state (they include the Gram and, for the gradient path, its preconditioner eigendecomposition; the
     first-call times, compilation included, are reported too);
   - downstream accuracy of each with few labels (cosine k-NN and ridge probes, `evaluate.accuracy_vs_labels`, the
     same label draws for both routes), when labels are given.
2. **How does gradient descent get there?** `dynamics` trains from a small initialisation with plain gradient
   descent (`optax.sgd`, no whitening by default: `precondition="rkhs"` is gradient descent on `W` in the RKHS) and
   records the eigenvalues of `Q = C S C^T` (`S = K^2 + lam K`) along training. From a small start the
   eigen-directions are learned one at a time: the loss shows plateaus and the rank of the representation rises in
   steps (Simon et al. 2023, "On the stepwise nature of self-supervised learning"). Along a direction with linear
   coefficient `t` (an eigenvalue of `T`, the linear part of the loss in the optimiser's coordinates), the
   amplitude grows as `(1 + 4 lr t)^step` until it saturates, so a direction's rise time is `~ log(1/init) / (4 lr t)`.
   The default learning rate is `1 / (8 t_max)`, half the stability limit `1 / (4 t_max)` of plain gradient
   descent at the learned top direction (its curvature there is `8 t_max`).

`write_figures`-style helpers `plot_comparison` and `plot_dynamics` draw the PNGs (matplotlib, Agg, no pyplot state).
`run_cli` is the `kssl compare` job on a configured data set (digits by default).

Example:
  >>> import numpy as np, jax
  >>> from kernel_ssl_jax import graphs, kernels
  >>> rng = np.random.default_rng(0)
  >>> X, X_test = rng.normal(size=(20, 4)), rng.normal(size=(7, 4))
  >>> W = rng.uniform(size=(20, 20)); A = (np.triu(W, 1) + np.triu(W, 1).T) / 10
  >>> cmp = compare("contrastive", X, A, kernel=kernels.rbf(1.5), dim=3, lam=0.1, X_test=X_test)  # doctest: +SKIP
  >>> cmp.metrics["rel_loss_gap"] < 1e-4  # doctest: +SKIP
  True
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax
import scipy.linalg

from kernel_ssl_jax import evaluate as _evaluate
from kernel_ssl_jax import gradient as _gradient
from kernel_ssl_jax import graphs as _graphs
from kernel_ssl_jax import kernels as _kernels
from kernel_ssl_jax import objectives as _objectives
from kernel_ssl_jax import spectral as _spectral
from kernel_ssl_jax import validation as _validation
from kernel_ssl_jax.spectral import DEFAULT_LAM, Solution

__all__ = [
    "Comparison",
    "Dynamics",
    "compare",
    "dynamics",
    "format_comparison",
    "plot_comparison",
    "plot_dynamics",
    "default_optimizer",
    "downstream_accuracy",
    "jsonable",
    "DYNAMICS_OBJECTIVES",
]

DYNAMICS_OBJECTIVES = ("contrastive", "vicreg")


# --------------------------------------------------------------------------------------------------------------------
# Comparison


class Comparison(NamedTuple):
    """Result of `compare`.

    Attributes:
      closed: the closed-form `Solution`.
      trained: the gradient `Solution` (with `loss_history`, one value per step).
      metrics: `{"loss_closed", "loss_gradient", "rel_loss_gap", "kernel_distance", "max_angle_rad", "eigengap",
        "time_closed_s", "time_gradient_s", "time_closed_first_s", "time_gradient_first_s", "steps", ...}` (floats,
        ints and strings: JSON-ready).
      accuracy: `{route: {probe: {per_class: {"mean", "std", "draws"}}}}` for `route` in `("closed", "gradient")`,
        or `{}` without labels.
    """

    closed: Solution
    trained: Solution
    metrics: dict
    accuracy: dict


def default_optimizer(objective: str, steps: int):
    """The optimiser `compare` uses by default: L-BFGS for barlow, else adam with a cosine decay 1e-2 -> 1e-5."""
    if objective == "barlow":
        return optax.lbfgs()
    return optax.adam(optax.cosine_decay_schedule(1e-2, steps, alpha=1e-3))


def _rel_gap(loss: float, reference: float) -> float:
    # barlow's optimum is 0: the gap is then absolute (its loss at C = 0 is dim).
    return (float(loss) - float(reference)) / max(abs(float(reference)), 1.0)


def _kernel_distance(Fa: np.ndarray, Fb: np.ndarray) -> float:
    """`||Fa Fa^T - Fb Fb^T||_F / ||Fb Fb^T||_F`: the induced kernels, invariant to rotations of either output."""
    Ka, Kb = Fa @ Fa.T, Fb @ Fb.T
    return float(np.linalg.norm(Ka - Kb) / max(np.linalg.norm(Kb), 1e-300))


def _max_angle(Fa: np.ndarray, Fb: np.ndarray) -> float:
    """Largest principal angle (radians) between the column spaces of two `(n, dim)` feature matrices."""
    return float(np.max(scipy.linalg.subspace_angles(Fa, Fb)))


def _eigengap(objective: str, solve_fn, dim: int, n_views: int) -> float | None:
    """Relative gap between the `dim`-th and `(dim+1)`-th closed-form eigenvalues (None if it cannot be computed).

    Zero means the optimum is degenerate (e.g. view cliques: the null space of L has dimension n): the optimal
    subspace, hence the induced kernel, is not unique and only the loss gap is a meaningful comparison.
    """
    if dim + 1 > n_views:
        return None
    try:
        w = np.asarray(solve_fn(dim + 1).eigenvalues)
    except ValueError:
        return None
    scale = float(np.max(np.abs(w)))
    return float(abs(w[dim - 1] - w[dim]) / scale) if scale > 0 else 0.0


DEGENERATE_GAP = 1e-6


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out.coef)
    return out, time.perf_counter() - start


def _downstream(sol: Solution, X_probe, y_probe, X_test, y_test, labels_per_class, n_draws: int, knn_k: int,
                ridge_reg: float, seed: int) -> dict:
    return downstream_accuracy(sol.features(X_probe), y_probe, sol.features(X_test), y_test, labels_per_class,
                               n_draws=n_draws, knn_k=knn_k, ridge_reg=ridge_reg, seed=seed)


def downstream_accuracy(F_probe, y_probe, F_test, y_test, labels_per_class, *, n_draws: int, knn_k: int = 1,
                        ridge_reg: float = 0.1, seed: int = 0) -> dict:
    """Few-label accuracy of a representation given by its features: `{probe: {per_class: {"mean", "std",
    "draws"}}}` for the cosine k-NN and ridge probes (`evaluate.accuracy_vs_labels`; the same draws for every
    representation with the same `seed`)."""
    F_train, F_test = np.asarray(F_probe), np.asarray(F_test)
    y_probe, y_test = np.asarray(y_probe), np.asarray(y_test)
    n_classes = int(max(y_probe.max(), y_test.max())) + 1
    predictors = {
        "knn": lambda idx: _evaluate.knn_cosine(F_train[idx], y_probe[idx], F_test, k=min(knn_k, len(idx)),
                                                n_classes=n_classes),
        "ridge": lambda idx: _evaluate.ridge_probe(F_train[idx], y_probe[idx], F_test, reg=ridge_reg,
                                                   n_classes=n_classes),
    }
    return {name: _evaluate.accuracy_vs_labels(fn, y_probe, y_test, labels_per_class, n_draws=n_draws, seed=seed)
            for name, fn in predictors.items()}


def compare(objective: str, X, A=None, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
            pairs=None, X_test, X_probe=None, y_probe=None, y_test=None,
            labels_per_class: Sequence = (1, 5, "all"), n_draws: int = 5, knn_k: int = 1, ridge_reg: float = 0.1,
            steps: int = 3000, optimizer=None, precondition: str | None = "whiten", log_every: int = 500,
            key=None, warmup: bool = True, seed: int = 0, train_kwargs: Mapping | None = None) -> Comparison:
    """Closed form versus gradient descent on the same views (see the module docstring for every metric).

    Args:
      objective: one of `objectives.OBJECTIVES`.
      X: `(N, d)` training views.
      A: `(N, N)` relationship matrix (all objectives but barlow).
      kernel: base kernel.
      dim, lam, beta, pairs: as for `spectral.solve` / `gradient.train`.
      X_test: `(m, d)` held-out points for the induced-kernel distance and the subspace angle (m >= dim).
      X_probe, y_probe: labelled pool (e.g. the clean training samples) for the downstream probes; optional.
      y_test: labels of `X_test`; with `X_probe` and `y_probe` it turns on the downstream evaluation.
      labels_per_class: label budgets of the probes.
      n_draws: seeded label draws per budget (the same draws for both routes).
      knn_k: neighbours of the cosine k-NN probe.
      ridge_reg: relative ridge strength of the ridge probe.
      steps: gradient steps.
      optimizer: an optax optimiser; default `default_optimizer(objective, steps)`.
      precondition: `gradient.train`'s change of variables (`"whiten"` by default: fastest to the optimum).
      log_every: steps per compiled chunk of `gradient.train`.
      key: PRNG key of the gradient path (default `jax.random.key(seed)`).
      warmup: run each route once before timing it (the timed runs are then free of compilation).
      seed: seed of the label draws (and of `key` when not given).
      train_kwargs: further keyword arguments for `gradient.train` (e.g. `norm_penalty`, `init_scale`).

    Returns:
      A `Comparison`.

    Raises:
      ValueError: anything `spectral.solve` or `gradient.train` rejects, `X_test` with fewer rows than `dim`, or
        labels given only in part.
    """
    _objectives.check_objective(objective)
    X_test = _validation.array("X_test", X_test)
    if X_test.shape[0] < dim:
        raise ValueError(f"X_test needs at least dim = {dim} points to compare {dim}-dimensional subspaces, got "
                         f"{X_test.shape[0]}")
    labelled = [v is not None for v in (X_probe, y_probe, y_test)]
    if any(labelled) and not all(labelled):
        raise ValueError("downstream accuracy needs all of X_probe, y_probe and y_test (or none of them)")
    steps = _validation.integer("steps", steps)
    key = jax.random.key(seed) if key is None else key
    optimizer = default_optimizer(objective, steps) if optimizer is None else optimizer
    kw_graph = dict(pairs=pairs) if objective == "barlow" else dict(A=A)
    train_kw = dict(train_kwargs or {})
    if objective == "barlow":
        train_kw.setdefault("norm_penalty", 1e-5)  # selects the minimum-norm solution, as the closed form does
    log_every = min(int(log_every), int(steps))

    def closed_fn(d=dim):
        return _spectral.solve(objective, X, kernel=kernel, dim=d, lam=lam, beta=beta, **kw_graph)

    def grad_fn(n_steps):
        return _gradient.train(objective, X, kernel=kernel, dim=dim, lam=lam, beta=beta, precondition=precondition,
                               optimizer=optimizer, steps=n_steps, log_every=log_every, key=key, **kw_graph,
                               **train_kw)

    closed, t_closed_first = _timed(closed_fn)
    if warmup:
        # The closed form is cheap: the best of three runs damps the noise of a shared machine.
        runs = [_timed(closed_fn) for _ in range(3)]
        closed, t_closed = runs[-1][0], min(t for _, t in runs)
        # One chunk of the same length with the same optimiser object: `train` caches the compiled chunk.
        _, t_grad_first = _timed(lambda: grad_fn(log_every))
    trained, t_grad = _timed(lambda: grad_fn(steps))
    if not warmup:
        t_closed, t_grad_first = t_closed_first, t_grad

    F_c = np.asarray(closed.features(X_test))
    F_g = np.asarray(trained.features(X_test))
    metrics: dict[str, Any] = {
        "objective": objective, "dim": int(dim), "lam": float(lam), "beta": float(beta),
        "n_views": int(np.shape(X)[0]), "n_test": int(X_test.shape[0]), "steps": int(steps),
        "steps_run": int(trained.loss_history.shape[0]), "method_closed": closed.method,
        "method_gradient": trained.method,
        "loss_closed": float(closed.loss), "loss_gradient": float(trained.loss),
        "rel_loss_gap": _rel_gap(trained.loss, closed.loss),
        "eigengap": _eigengap(objective, closed_fn, dim, int(np.shape(X)[0])),
        "kernel_distance": _kernel_distance(F_g, F_c),
        "max_angle_rad": _max_angle(F_c, F_g),
        "time_closed_s": float(t_closed), "time_gradient_s": float(t_grad),
        "time_closed_first_s": float(t_closed_first), "time_gradient_first_s": float(t_grad_first),
        "timing_note": ("time_*_s: identical runs after a warm-up call (no compilation; closed form: best of 3); both "
                        "include the Gram of the views, the gradient time also its preconditioner "
                        "eigendecomposition and the final evaluation; time_gradient_first_s is the warm-up "
                        f"(compilation + one chunk of {log_every} steps)"
                        if warmup else "single runs, compilation included"),
    }
    accuracy: dict = {}
    if all(labelled):
        for name, sol in (("closed", closed), ("gradient", trained)):
            accuracy[name] = _downstream(sol, X_probe, y_probe, X_test, y_test, labels_per_class, n_draws, knn_k,
                                         ridge_reg, seed)
    return Comparison(closed=closed, trained=trained, metrics=metrics, accuracy=accuracy)


def format_comparison(cmp: Comparison) -> str:
    """A plain-text table of a `Comparison` (metrics, then accuracies per route, probe and budget)."""
    m = cmp.metrics
    rows = [
        ("", "closed form", "gradient"),
        ("method", m["method_closed"], m["method_gradient"]),
        ("loss", f"{m['loss_closed']:.8g}", f"{m['loss_gradient']:.8g}"),
        ("wall time (s, compiled)", f"{m['time_closed_s']:.3f}", f"{m['time_gradient_s']:.3f}"),
        ("first call (s, + compile)", f"{m['time_closed_first_s']:.3f}", f"{m['time_gradient_first_s']:.3f}"),
    ]
    for probe in ("knn", "ridge"):
        if probe in cmp.accuracy.get("closed", {}):
            for budget in cmp.accuracy["closed"][probe]:
                c = cmp.accuracy["closed"][probe][budget]
                g = cmp.accuracy["gradient"][probe][budget]
                rows.append((f"acc {probe} @ {budget}/class", f"{c['mean']:.3f} ± {c['std']:.3f}",
                             f"{g['mean']:.3f} ± {g['std']:.3f}"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * len(lines[0]))
    lines += [
        "",
        f"relative loss gap           {m['rel_loss_gap']:.3e}   ((L_grad - L_closed) / max(|L_closed|, 1), "
        f"{m['steps_run']} steps)",
        f"induced-kernel distance     {m['kernel_distance']:.3e}   (relative Frobenius on {m['n_test']} held-out "
        "points)",
        f"largest subspace angle      {m['max_angle_rad']:.3e} rad ({math.degrees(m['max_angle_rad']):.3g} deg)",
    ]
    gap = m.get("eigengap")
    if gap is not None:
        lines.append(f"closed-form eigengap        {gap:.3e}   (relative, between eigenvalues {m['dim']} and "
                     f"{m['dim'] + 1})")
        if gap < DEGENERATE_GAP:
            lines.append("  degenerate optimum: the optimal subspace is not unique, so the kernel distance and the "
                         "angle compare two equally optimal solutions; only the loss gap is meaningful")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# Learning dynamics


class Dynamics(NamedTuple):
    """Result of `dynamics`.

    Attributes:
      steps: `(R,)` steps at which `Q` was recorded (after that many optimiser steps).
      eigenvalues: `(R, dim)` eigenvalues of `Q = C S C^T`, descending, at each recorded step.
      loss_history: `(steps,)` loss before each step.
      closed_eigenvalues: `(dim,)` eigenvalues of `Q` at the closed-form optimum (descending).
      closed_loss: the closed-form loss.
      half_steps: `(dim,)` first recorded step at which eigenvalue `i` of `Q` reaches half its closed-form value
        (-1 if never).
      learning_rate: the step size used.
      rates: `(dim,)` largest eigenvalues `t` of the linear part of the loss in the optimiser's coordinates (the
        growth rate of each direction from a small start is `4 lr t` per step).
    """

    steps: np.ndarray
    eigenvalues: np.ndarray
    loss_history: np.ndarray
    closed_eigenvalues: np.ndarray
    closed_loss: float
    half_steps: np.ndarray
    learning_rate: float
    rates: np.ndarray


def dynamics(objective: str, X, A, *, kernel, dim: int, lam: float = DEFAULT_LAM, beta: float = 1.0,
             steps: int = 2000, record_every: int = 10, init_scale: float = 1e-3,
             precondition: str | None = "rkhs", learning_rate: float | None = None, optimizer=None,
             key=None) -> Dynamics:
    """Gradient descent from a small initialisation, recording the eigenvalues of `Q = C S C^T` along training.

    Trains with `gradient.train` (representer path, full batch) and reads the parameters through its `callback`
    every `record_every` steps.

    Args:
      objective: `"contrastive"` or `"vicreg"` (the objectives whose optimum is described by `Q`'s eigenvalues).
      X: `(N, d)` views.
      A: `(N, N)` relationship matrix.
      kernel, dim, lam, beta: as for `gradient.train`.
      steps: optimiser steps.
      record_every: steps between two records of `Q`.
      init_scale: `gradient.train`'s `init_scale` (small: the directions start near 0 and rise one at a time).
      precondition: `"rkhs"` (gradient descent on `W` in the RKHS, default), None (plain gradients in `C`) or
        `"whiten"` (isotropic `Q`: the rise times follow the closed-form eigenvalues exactly).
      learning_rate: step size of `optax.sgd`; default `1 / (8 t_max)` (see the module docstring).
      optimizer: overrides `optax.sgd(learning_rate)` (e.g. `optax.adam(...)`).
      key: PRNG key of the initialisation (default `jax.random.key(0)`).

    Returns:
      A `Dynamics`.

    Raises:
      ValueError: an objective other than contrastive/vicreg, bad `steps`/`record_every`, or what
        `gradient.train` rejects.
    """
    if objective not in DYNAMICS_OBJECTIVES:
        raise ValueError(f"dynamics records Q = C S C^T, which describes the optimum of {list(DYNAMICS_OBJECTIVES)} "
                         f"only; got {objective!r}")
    steps = _validation.integer("steps", steps)
    record_every = _validation.integer("record_every", record_every)
    key = jax.random.key(0) if key is None else key
    closed = _spectral.solve(objective, X, A, kernel=kernel, dim=dim, lam=lam, beta=beta)
    Xj = _validation.array("X", X)
    K = np.asarray(_kernels.gram(kernel, Xj))
    A_np = np.asarray(_graphs.check_adjacency(A, K.shape[0]), dtype=K.dtype)
    R, design, _ = (np.asarray(m) for m in _gradient.preconditioner(precondition, K, lam, barlow=False))
    M = R @ (K @ K + lam * K) @ R.T  # Q = B M B^T
    M = 0.5 * (M + M.T)
    if objective == "contrastive":
        T = design @ A_np @ design.T
    else:
        L = np.diag(A_np.sum(1)) - A_np
        T = M - 0.5 * beta * design @ L @ design.T
    t = np.linalg.eigvalsh(0.5 * (T + T.T))[::-1]
    rates = t[:dim]
    if optimizer is None:
        if learning_rate is None:
            learning_rate = 1.0 / (8.0 * max(float(t[0]), 1e-300))
        optimizer = optax.sgd(learning_rate)

    recorded_steps, recorded_eigs = [], []

    def record(step, loss, params):
        B = np.asarray(params)
        Q = B @ M @ B.T
        recorded_steps.append(int(step))
        recorded_eigs.append(np.linalg.eigvalsh(0.5 * (Q + Q.T))[::-1])

    sol = _gradient.train(objective, X, A, kernel=kernel, dim=dim, lam=lam, beta=beta, precondition=precondition,
                          optimizer=optimizer, learning_rate=learning_rate, steps=steps, key=key,
                          init_scale=init_scale, log_every=record_every, callback=record)
    eigs = np.asarray(recorded_eigs)
    target = np.asarray(closed.eigenvalues)
    half = np.full(dim, -1, dtype=np.int64)
    for i in range(dim):
        hit = np.flatnonzero(eigs[:, i] >= 0.5 * target[i])
        if hit.size:
            half[i] = recorded_steps[hit[0]]
    return Dynamics(steps=np.asarray(recorded_steps), eigenvalues=eigs, loss_history=np.asarray(sol.loss_history),
                    closed_eigenvalues=target, closed_loss=float(closed.loss), half_steps=half,
                    learning_rate=float(learning_rate) if learning_rate is not None else float("nan"), rates=rates)


# --------------------------------------------------------------------------------------------------------------------
# Figures


def plot_comparison(cmp: Comparison, path) -> None:
    """Loss against steps of the gradient path with the closed-form optimum as a line, and the gap on a log scale."""
    from matplotlib.figure import Figure

    hist = np.asarray(cmp.trained.loss_history)
    opt = float(cmp.closed.loss)
    steps = np.arange(hist.shape[0])
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(steps, hist, label=f"gradient ({cmp.trained.method})")
    ax1.axhline(opt, color="k", ls="--", label=f"closed-form optimum {opt:.6g}")
    lo, hi = opt - 0.05 * max(abs(opt), 1.0), max(float(np.max(hist[: max(1, len(hist) // 50)])), opt)
    ax1.set_ylim(lo, hi + 0.05 * (hi - lo))
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_title(f"{cmp.metrics['objective']}: loss along training")
    ax1.legend()
    gap = np.maximum((hist - opt) / max(abs(opt), 1.0), 1e-16)
    ax2.semilogy(steps, gap, label="(L - L*) / max(|L*|, 1)")
    ax2.axhline(1e-4, color="gray", ls=":", label="1e-4")
    ax2.set_xlabel("step")
    ax2.set_ylabel("relative gap to the closed form")
    ax2.set_title(f"final gap {cmp.metrics['rel_loss_gap']:.2e}, kernel distance "
                  f"{cmp.metrics['kernel_distance']:.1e}")
    ax2.legend()
    fig.savefig(path, dpi=110)


def plot_dynamics(dyn: Dynamics, path, title: str = "") -> None:
    """Eigenvalues of `Q` along training (solid) with the closed-form values (dashed), and the loss with plateaus."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    dim = dyn.eigenvalues.shape[1]
    cmap = __import__("matplotlib").colormaps["viridis"]
    for i in range(dim):
        color = cmap(i / max(dim - 1, 1))
        ax1.plot(dyn.steps, dyn.eigenvalues[:, i], color=color, label=f"eigenvalue {i + 1}" if dim <= 8 else None)
        ax1.axhline(dyn.closed_eigenvalues[i], color=color, ls="--", lw=0.8)
    ax1.plot([], [], "k--", lw=0.8, label="closed form")
    ax1.set_xscale("symlog", linthresh=max(int(dyn.steps[0]), 1))
    ax1.set_xlim(0, int(dyn.steps[-1]))
    ax1.set_xlabel("step (symmetric log scale)")
    ax1.set_ylabel("eigenvalues of Q = C S C^T")
    ax1.set_title(title or f"stepwise learning (lr {dyn.learning_rate:.3g})")
    ax1.legend(fontsize=7, ncol=2)
    hist = dyn.loss_history
    ax2.plot(np.arange(hist.shape[0]), hist, label="gradient descent")
    ax2.axhline(dyn.closed_loss, color="k", ls="--", label=f"closed-form optimum {dyn.closed_loss:.4g}")
    ax2.set_xscale("symlog", linthresh=max(int(dyn.steps[0]), 1))
    ax2.set_xlim(0, hist.shape[0])
    ax2.set_xlabel("step (symmetric log scale)")
    ax2.set_ylabel("loss")
    ax2.set_title("loss: plateaus between the steps")
    ax2.legend()
    fig.savefig(path, dpi=110)


# --------------------------------------------------------------------------------------------------------------------
# The `kssl compare` job


CLI_DEFAULTS = (
    "data.max_train=300",
    "views.n_views=2",
    "graph.knn=0",
    "ssl.dim=16",
    "ssl.lam=0.1",
    "ssl.objectives=[\"contrastive\"]",
    "eval.labels_per_class=[1, 5, \"all\"]",
    "eval.n_draws=5",
)


def jsonable(x):
    """`x` with numpy and JAX arrays and scalars turned into lists, floats and ints (for `json.dumps`)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.ndarray, jax.Array)):
        return jsonable(np.asarray(x).tolist())
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def run_cli(cfg: Mapping, *, objective: str, steps: int, dynamics_steps: int, out_dir, progress: bool = True,
            stdout=None, stderr=None) -> dict:
    """`kssl compare`: data, views, graph and kernel from `cfg` (`experiment.prepare`), then `compare` and
    `dynamics` on those views; prints the table and writes `<out_dir>/<timestamp>-compare-<objective>/` with
    `results.json`, `compare.png` and `dynamics.png` (the folder appears by one rename once complete).

    Raises:
      config.ConfigError: bad configuration or data; ValueError: what the solvers reject (nothing written).
    """
    from kernel_ssl_jax.lab import experiment as _experiment

    stdout = stdout if stdout is not None else sys.stdout
    from kernel_ssl_jax.lab import outputs as _outputs

    try:  # before any computation: a bad output folder fails at once
        where = _outputs.check_output_dir(out_dir, "--out")
    except _outputs.OutputError as e:
        raise _experiment.ConfigError(str(e)) from None
    start = time.perf_counter()
    prog = _experiment.Progress(progress, stderr)
    prep = _experiment.prepare(cfg, prog)
    ssl, ev = cfg["ssl"], cfg["eval"]
    dim, lam, beta = ssl["dim"], ssl["lam"], ssl["beta"]
    ds = prep.ds
    kw = dict(pairs=prep.pairs) if objective == "barlow" else dict(A=prep.A)
    with prog.stage("compare", f"{objective}: closed form vs {steps} gradient steps on {prep.views.shape[0]} views"):
        cmp = compare(objective, prep.views, kernel=prep.kernel, dim=dim, lam=lam, beta=beta, X_test=ds.X_test,
                      X_probe=ds.X_train, y_probe=ds.y_train, y_test=ds.y_test,
                      labels_per_class=ev["labels_per_class"], n_draws=ev["n_draws"], knn_k=ev["knn_k"],
                      ridge_reg=ev["ridge_reg"], steps=steps, seed=ev["seed"], **kw)
    dyn = None
    dyn_objective = objective if objective in DYNAMICS_OBJECTIVES else "contrastive"
    if dynamics_steps > 0:
        A = prep.A if prep.A is not None else _graphs.from_groups(prep.groups, dtype=prep.views.dtype)
        with prog.stage("dynamics", f"{dyn_objective}: {dynamics_steps} plain gradient steps from a small start"):
            dyn = dynamics(dyn_objective, prep.views, A, kernel=prep.kernel, dim=dim, lam=lam, beta=beta,
                           steps=dynamics_steps, record_every=max(1, dynamics_steps // 400))
    results = {
        "metrics": cmp.metrics,
        "accuracy": cmp.accuracy,
        "loss_history": np.asarray(cmp.trained.loss_history)[:: max(1, steps // 2000)],
        "loss_history_stride": max(1, steps // 2000),
        "eigenvalues": {"closed": cmp.closed.eigenvalues, "gradient": cmp.trained.eigenvalues},
        "dynamics": None if dyn is None else {
            "objective": dyn_objective, "precondition": "rkhs", "optimizer": "sgd",
            "learning_rate": dyn.learning_rate, "steps": dyn.steps, "eigenvalues": dyn.eigenvalues,
            "closed_eigenvalues": dyn.closed_eigenvalues, "half_steps": dyn.half_steps, "rates": dyn.rates,
            "loss_history": dyn.loss_history[:: max(1, dynamics_steps // 2000)], "closed_loss": dyn.closed_loss},
        "data": {"name": ds.name, "n_sources": int(ds.X_train.shape[0]), "n_views": int(prep.views.shape[0]),
                 "n_test": int(ds.X_test.shape[0])},
        "kernel": repr(prep.kernel),
        "config": cfg,
    }
    with prog.stage("write", "results.json, compare.png, dynamics.png"), \
            _experiment.new_run_folder(where, f"compare-{objective}") as (tmp, final):
        results["run_dir"] = str(final)
        results["timings"] = dict(prog.timings, total=time.perf_counter() - start)
        _experiment.atomic_write(tmp / "results.json",
                                 json.dumps(jsonable(results), indent=1, allow_nan=True) + "\n")
        plot_comparison(cmp, tmp / "compare.png")
        if dyn is not None:
            plot_dynamics(dyn, tmp / "dynamics.png", f"{dyn_objective}: stepwise learning from a small start "
                          f"(sgd, lr {dyn.learning_rate:.3g})")
    print(f"\n{objective} on {prep.views.shape[0]} views of {ds.X_train.shape[0]} {ds.name} samples "
          f"({prep.kernel!r}, dim {dim}, lam {lam:g}); accuracy on {ds.X_test.shape[0]} held-out samples, "
          f"mean ± std over {ev['n_draws']} label draws\n", file=stdout)
    print(format_comparison(cmp), file=stdout)
    if dyn is not None:
        print(f"\ndynamics ({dyn_objective}, sgd lr {dyn.learning_rate:.3g}, rkhs, init 1e-3): step at which "
              f"eigenvalue i of Q reaches half its closed-form value: {dyn.half_steps.tolist()}", file=stdout)
    print(f"total time {time.perf_counter() - start:.1f} s", file=stdout)
    print(f"run folder: {final}", file=stdout)
    return results
