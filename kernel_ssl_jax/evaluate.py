"""Downstream evaluation: linear, logistic, kernel and nearest-neighbour probes (SPEC.md section 6).

This is the only module that sees labels. Every function works on plain arrays (features ``F``, Gram matrices
``K`` and integer labels ``y`` in ``0..n_classes-1``), so it depends on nothing else in the package: the same probes
score the induced kernel ``k*``, the base kernel ``k`` (the plain-kernel baseline) and any supervised reference.

Protocols are fixed, never tuned on the test split:

- :func:`ridge_probe` -- closed-form ridge regression on one-hot targets, with an unpenalised bias;
- :func:`logistic_probe` -- multinomial logistic regression trained with optax (a reference for the ridge probe);
- :func:`kernel_ridge_classify` -- kernel ridge regression on one-hot targets from precomputed Grams;
- :func:`knn_cosine` -- k-nearest neighbours under cosine similarity;
- :func:`accuracy_vs_labels` -- accuracy against the number of labelled examples per class, over seeded draws
  from :func:`sample_labelled`.

Regularisation strengths are relative (unit-free): ``reg`` is multiplied by a scale read off the training data
(the mean squared norm of the centred features, or the mean diagonal of the Gram), so a probe gives the same
predictions when features are rescaled by any constant and one ``reg`` is meaningful across representations.

Validation (shapes, NaN/Inf, label range, negative ``reg``) runs eagerly on concrete inputs and raises
``ValueError`` naming the offending argument; the numerics are jitted private functions. Value checks are skipped
for traced inputs, so the probes can also be called inside ``jax.jit`` (then ``n_classes`` must be given).
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from kernel_ssl_jax import validation as _v

__all__ = [
    "accuracy",
    "accuracy_vs_labels",
    "kernel_ridge_classify",
    "knn_cosine",
    "logistic_probe",
    "probe_features",
    "probe_kernel",
    "ridge_probe",
    "sample_labelled",
]

FEATURE_PROBES = ("ridge", "logistic", "knn")
KERNEL_PROBES = ("kernel_ridge",)


# ----------------------------------------------------------------------------------------------------------------------
# Validation helpers (eager, on concrete values; tracers skip value checks).
# ----------------------------------------------------------------------------------------------------------------------


def _labels(y: Any, name: str, n: int, n_classes: int | None) -> tuple[jax.Array, int]:
    """Validates integer labels of length ``n`` and returns them with the number of classes."""
    if not _v.is_traced(y):
        y_np = np.asarray(y)
        if y_np.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of shape ({n},); got shape {y_np.shape}")
        if y_np.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},) to match the training data; got shape {y_np.shape}")
        if y_np.dtype.kind not in "iu":
            if y_np.dtype.kind == "f" and np.all(np.isfinite(y_np)) and np.all(y_np == np.round(y_np)):
                y_np = y_np.astype(np.int64)
            else:
                raise ValueError(f"{name} must hold integer class labels; got dtype {y_np.dtype}")
        if y_np.size and y_np.min() < 0:
            raise ValueError(f"{name} must hold labels in 0..n_classes-1; found {int(y_np.min())}")
        inferred = int(y_np.max()) + 1
        if n_classes is None:
            n_classes = inferred
        elif inferred > n_classes:
            raise ValueError(f"{name} has label {inferred - 1}, which is out of range for n_classes={n_classes}")
        y_arr = jnp.asarray(y_np)
    else:
        if y.ndim != 1 or y.shape[0] != n:
            raise ValueError(f"{name} must have shape ({n},); got shape {tuple(y.shape)}")
        if n_classes is None:
            raise ValueError("n_classes must be given when the labels are traced (inside jax.jit)")
        y_arr = y
    return y_arr, _v.integer("n_classes", n_classes)


def _check_reg(reg: Any, name: str = "reg") -> float:
    reg = _v.real(name, reg)
    return reg if _v.is_traced(reg) else float(reg)


# ----------------------------------------------------------------------------------------------------------------------
# Numerics (jitted, private).
# ----------------------------------------------------------------------------------------------------------------------


def _psd_solve(G: jax.Array, B: jax.Array, alpha: jax.Array) -> jax.Array:
    """Returns ``(G + alpha I)^+ B`` for a symmetric PSD ``G`` by eigendecomposition (never ``inv``).

    Symmetrised first and negative eigenvalues (round-off) clipped at 0; eigenvalues of ``G + alpha I`` below
    ``eps * size * max`` are dropped, so ``alpha = 0`` gives the minimum-norm least-squares solution.
    """
    G = 0.5 * (G + G.T)
    s, U = jnp.linalg.eigh(G)
    denom = jnp.clip(s, 0.0) + alpha
    tol = jnp.finfo(G.dtype).eps * G.shape[0] * jnp.max(denom)
    keep = denom > tol
    inv = jnp.where(keep, 1.0 / jnp.where(keep, denom, 1.0), 0.0)
    return U @ (inv[:, None] * (U.T @ B))


def _relative_alpha(reg: jax.Array, scale: jax.Array) -> jax.Array:
    # A zero scale (all-constant features, zero Gram) would make the penalty vanish: fall back to an absolute reg.
    return reg * jnp.where(scale > 0, scale, 1.0)


@functools.partial(jax.jit, static_argnames=("n_classes",))
def _ridge_scores(
    F_train: jax.Array, y_train: jax.Array, F_test: jax.Array, reg: jax.Array, n_classes: int
) -> jax.Array:
    n, d = F_train.shape
    Y = jax.nn.one_hot(y_train, n_classes, dtype=F_train.dtype)  # (n, c)
    mu_1d = jnp.mean(F_train, axis=0, keepdims=True)  # (1, d)
    ybar_1c = jnp.mean(Y, axis=0, keepdims=True)  # (1, c)
    Fc = F_train - mu_1d
    Yc = Y - ybar_1c
    alpha = _relative_alpha(reg, jnp.sum(Fc * Fc) / n)
    Ft_c = F_test - mu_1d
    if d <= n:
        # Primal: (Fc^T Fc + alpha I_d) W = Fc^T Yc, a d x d system.
        W_dc = _psd_solve(Fc.T @ Fc, Fc.T @ Yc, alpha)
        scores = Ft_c @ W_dc
    else:
        # Dual: W = Fc^T (Fc Fc^T + alpha I_n)^-1 Yc, an n x n system; identical predictions.
        A_nc = _psd_solve(Fc @ Fc.T, Yc, alpha)
        scores = (Ft_c @ Fc.T) @ A_nc
    return scores + ybar_1c


@functools.partial(jax.jit, static_argnames=("n_classes",))
def _kernel_ridge_scores(
    K_train: jax.Array, y_train: jax.Array, K_test_train: jax.Array, reg: jax.Array, n_classes: int
) -> jax.Array:
    Y = jax.nn.one_hot(y_train, n_classes, dtype=K_train.dtype)
    alpha = _relative_alpha(reg, jnp.mean(jnp.diagonal(K_train)))
    A_nc = _psd_solve(K_train, Y, alpha)
    return K_test_train @ A_nc


@functools.partial(jax.jit, static_argnames=("n_classes", "steps"))
def _logistic_scores(
    F_train: jax.Array,
    y_train: jax.Array,
    F_test: jax.Array,
    reg: jax.Array,
    learning_rate: jax.Array,
    init_key: jax.Array | None,
    n_classes: int,
    steps: int,
) -> jax.Array:
    mu_1d = jnp.mean(F_train, axis=0, keepdims=True)
    sd_1d = jnp.std(F_train, axis=0, keepdims=True)
    # Constant features carry no information; dividing by 1 keeps them at 0 instead of producing NaN.
    sd_1d = jnp.where(sd_1d > 0, sd_1d, 1.0)
    X = (F_train - mu_1d) / sd_1d
    Xt = (F_test - mu_1d) / sd_1d
    d = X.shape[1]

    def loss_fn(params: tuple[jax.Array, jax.Array]) -> jax.Array:
        W_dc, b_1c = params
        logits = X @ W_dc + b_1c
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_train)
        # The bias is not penalised, as in scikit-learn.
        return jnp.mean(ce) + reg * jnp.sum(W_dc * W_dc)

    if init_key is None:
        W0 = jnp.zeros((d, n_classes), X.dtype)
    else:
        W0 = 1e-3 * jax.random.normal(init_key, (d, n_classes), X.dtype)
    params0 = (W0, jnp.zeros((1, n_classes), X.dtype))
    opt = optax.adam(learning_rate)

    def step(carry, _):
        params, state = carry
        grads = jax.grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params0, opt.init(params0)), None, length=steps)
    W_dc, b_1c = params
    return Xt @ W_dc + b_1c


@functools.partial(jax.jit, static_argnames=("k", "n_classes"))
def _knn_vote(S_mn: jax.Array, y_train: jax.Array, k: int, n_classes: int) -> jax.Array:
    sims_mk, idx_mk = jax.lax.top_k(S_mn, k)  # equal similarities: the lower training index comes first
    votes_mkc = jax.nn.one_hot(y_train[idx_mk], n_classes, dtype=S_mn.dtype)
    counts_mc = jnp.sum(votes_mkc, axis=1)
    summed_mc = jnp.sum(votes_mkc * sims_mk[:, :, None], axis=1)
    # Majority vote; among the tied classes the highest summed similarity wins (then the lowest label).
    tied_mc = counts_mc == jnp.max(counts_mc, axis=1, keepdims=True)
    return jnp.argmax(jnp.where(tied_mc, summed_mc, -jnp.inf), axis=1)


@functools.partial(jax.jit, static_argnames=("k", "n_classes"))
def _knn_predict(F_train: jax.Array, y_train: jax.Array, F_test: jax.Array, k: int, n_classes: int) -> jax.Array:
    def unit_rows(F):
        norm = jnp.linalg.norm(F, axis=1, keepdims=True)
        # A zero vector has no direction: leave it at 0 so its cosine similarity to everything is 0, not NaN.
        return F / jnp.where(norm > 0, norm, 1.0)

    return _knn_vote(unit_rows(F_test) @ unit_rows(F_train).T, y_train, k, n_classes)


# ----------------------------------------------------------------------------------------------------------------------
# Public probes.
# ----------------------------------------------------------------------------------------------------------------------


def ridge_probe(
    F_train: Any, y_train: Any, F_test: Any, *, reg: float = 1e-3, n_classes: int | None = None
) -> jax.Array:
    """Predicts classes with closed-form ridge regression on one-hot targets (a linear probe).

    Features are centred with the training mean and the targets with their mean, which fits an unpenalised bias.
    The weights solve ``min_W ||Yc - Fc W||^2 + alpha ||W||^2`` with the **relative** penalty

        ``alpha = reg * tr(Fc^T Fc) / n = reg * mean_i ||f_i - mean(f)||^2``,

    so rescaling the features by a constant does not change the predictions. ``alpha`` is the scikit-learn
    ``Ridge(alpha=alpha, fit_intercept=True)`` strength, and equals ``reg`` times the mean diagonal of the centred
    linear Gram (the convention of :func:`kernel_ridge_classify`). The smaller of the primal ``d x d`` and the dual
    ``n x n`` system is solved by eigendecomposition; ``reg = 0`` gives the minimum-norm least-squares fit.

    Args:
      F_train: training features, shape ``(n, d)``.
      y_train: integer labels in ``0..n_classes-1``, shape ``(n,)``.
      F_test: test features, shape ``(m, d)``.
      reg: relative ridge strength, ``>= 0``.
      n_classes: number of classes; defaults to ``max(y_train) + 1``.

    Returns:
      Predicted labels, integer array of shape ``(m,)`` (``argmax`` of the regression scores, lowest class on ties).

    Raises:
      ValueError: on mismatched shapes, NaN/Inf features, labels out of range, or a negative ``reg``.

    Example:
      >>> import numpy as np
      >>> F = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
      >>> ridge_probe(F, np.array([0, 0, 1, 1]), F).tolist()
      [0, 0, 1, 1]
    """
    F_train = _v.array("F_train", F_train)
    F_test = _v.array("F_test", F_test, d=F_train.shape[1])
    y_train, n_classes = _labels(y_train, "y_train", F_train.shape[0], n_classes)
    reg = _check_reg(reg)
    dtype = jnp.result_type(F_train.dtype, F_test.dtype)
    scores = _ridge_scores(
        F_train.astype(dtype), y_train, F_test.astype(dtype), jnp.asarray(reg, dtype), n_classes=n_classes
    )
    return jnp.argmax(scores, axis=1)


def logistic_probe(
    F_train: Any,
    y_train: Any,
    F_test: Any,
    *,
    reg: float = 1e-4,
    steps: int = 500,
    learning_rate: float = 0.05,
    n_classes: int | None = None,
    key: jax.Array | None = None,
) -> jax.Array:
    """Predicts classes with multinomial logistic regression trained by full-batch Adam (a reference probe).

    Features are standardised with the training mean and standard deviation (constant features map to 0). The loss
    is ``mean_i CE(W^T x_i + b, y_i) + reg * ||W||_F^2`` with an unpenalised bias; this is scikit-learn's
    ``LogisticRegression(C=1 / (2 * n * reg))`` on the standardised features. Training runs ``steps`` Adam steps
    inside one ``jax.lax.scan`` under ``jit``. The problem is convex, so the start point matters little: weights
    start at 0 unless ``key`` is given (then at ``1e-3`` times a standard normal).

    Args:
      F_train: training features, shape ``(n, d)``.
      y_train: integer labels in ``0..n_classes-1``, shape ``(n,)``.
      F_test: test features, shape ``(m, d)``.
      reg: L2 penalty on the weights, ``>= 0`` (absolute: the features are standardised).
      steps: number of Adam steps, ``>= 1``.
      learning_rate: Adam step size, ``> 0``.
      n_classes: number of classes; defaults to ``max(y_train) + 1``.
      key: optional PRNG key for a random start.

    Returns:
      Predicted labels, integer array of shape ``(m,)``.

    Raises:
      ValueError: on mismatched shapes, NaN/Inf features, labels out of range, a negative ``reg``, ``steps < 1`` or
        a non-positive ``learning_rate``.

    Example:
      >>> import numpy as np
      >>> F = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
      >>> logistic_probe(F, np.array([0, 0, 1, 1]), F, steps=100).tolist()
      [0, 0, 1, 1]
    """
    F_train = _v.array("F_train", F_train)
    F_test = _v.array("F_test", F_test, d=F_train.shape[1])
    y_train, n_classes = _labels(y_train, "y_train", F_train.shape[0], n_classes)
    reg = _check_reg(reg)
    steps = _v.integer("steps", steps)
    _v.real("learning_rate", learning_rate, strict=True)
    dtype = jnp.result_type(F_train.dtype, F_test.dtype)
    scores = _logistic_scores(
        F_train.astype(dtype),
        y_train,
        F_test.astype(dtype),
        jnp.asarray(reg, dtype),
        jnp.asarray(learning_rate, dtype),
        key,
        n_classes=n_classes,
        steps=int(steps),
    )
    return jnp.argmax(scores, axis=1)


def kernel_ridge_classify(
    K_train: Any, y_train: Any, K_test_train: Any, *, reg: float = 1e-3, n_classes: int | None = None
) -> jax.Array:
    """Predicts classes with kernel ridge regression on one-hot targets from precomputed Grams.

    Solves ``(K_train + alpha I) A = Y`` with the **relative** penalty ``alpha = reg * mean(diag(K_train))`` (so
    rescaling the kernel does not change the predictions) and scores ``K_test_train @ A``; ``alpha`` is the
    scikit-learn ``KernelRidge(alpha=alpha, kernel="precomputed")`` strength. There is no bias term. Use it with
    the base kernel (the plain-kernel baseline) and with the induced kernel ``k*`` alike. ``K_train`` is
    symmetrised and solved by eigendecomposition with round-off negative eigenvalues clipped at 0; ``reg = 0``
    gives the minimum-norm interpolant.

    Args:
      K_train: training Gram ``k(X_train, X_train)``, shape ``(n, n)``.
      y_train: integer labels in ``0..n_classes-1``, shape ``(n,)``.
      K_test_train: cross Gram ``k(X_test, X_train)``, shape ``(m, n)``.
      reg: relative ridge strength, ``>= 0``.
      n_classes: number of classes; defaults to ``max(y_train) + 1``.

    Returns:
      Predicted labels, integer array of shape ``(m,)``.

    Raises:
      ValueError: on mismatched shapes, NaN/Inf in a Gram, labels out of range, or a negative ``reg``.

    Example:
      >>> import numpy as np
      >>> X = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
      >>> K = X @ X.T
      >>> kernel_ridge_classify(K, np.array([0, 0, 1, 1]), K).tolist()
      [0, 0, 1, 1]
    """
    K_train = _v.array("K_train", K_train)
    K_test_train = _v.array("K_test_train", K_test_train)
    n = K_train.shape[0]
    if K_train.shape != (n, n):
        raise ValueError(f"K_train must be square, shape (n, n); got shape {tuple(K_train.shape)}")
    if K_test_train.shape[1] != n:
        raise ValueError(
            f"K_test_train must have shape (m, {n}) to match K_train of shape {tuple(K_train.shape)}; "
            f"got shape {tuple(K_test_train.shape)}"
        )
    y_train, n_classes = _labels(y_train, "y_train", n, n_classes)
    reg = _check_reg(reg)
    dtype = jnp.result_type(K_train.dtype, K_test_train.dtype)
    scores = _kernel_ridge_scores(
        K_train.astype(dtype), y_train, K_test_train.astype(dtype), jnp.asarray(reg, dtype), n_classes=n_classes
    )
    return jnp.argmax(scores, axis=1)


def knn_cosine(
    F_train: Any, y_train: Any, F_test: Any, *, k: int = 1, n_classes: int | None = None
) -> jax.Array:
    """Predicts classes by a majority vote of the ``k`` nearest training points under cosine similarity.

    Ties in the vote go to the tied class with the highest summed similarity, then to the lowest label. Zero
    vectors have cosine similarity 0 to every point (no NaN). The full ``(m, n)`` similarity matrix is formed, so
    memory grows as ``m * n``.

    Args:
      F_train: training features, shape ``(n, d)``.
      y_train: integer labels in ``0..n_classes-1``, shape ``(n,)``.
      F_test: test features, shape ``(m, d)``.
      k: number of neighbours, ``1 <= k <= n``.
      n_classes: number of classes; defaults to ``max(y_train) + 1``.

    Returns:
      Predicted labels, integer array of shape ``(m,)``.

    Raises:
      ValueError: on mismatched shapes, NaN/Inf features, labels out of range, or ``k`` outside ``1..n``.

    Example:
      >>> import numpy as np
      >>> F = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
      >>> knn_cosine(F, np.array([0, 0, 1, 1]), np.array([[0.2, 1.0]])).tolist()
      [0]
    """
    F_train = _v.array("F_train", F_train)
    F_test = _v.array("F_test", F_test, d=F_train.shape[1])
    n = F_train.shape[0]
    y_train, n_classes = _labels(y_train, "y_train", n, n_classes)
    k = _v.integer("k", k)
    if k > n:
        raise ValueError(f"k must be at most the number of training points ({n}); got k={k}")
    dtype = jnp.result_type(F_train.dtype, F_test.dtype)
    return _knn_predict(F_train.astype(dtype), y_train, F_test.astype(dtype), k=int(k), n_classes=n_classes)


def knn_similarity(S_test_train: Any, y_train: Any, *, k: int = 1, n_classes: int | None = None) -> jax.Array:
    """k-NN vote on a precomputed similarity matrix, e.g. a normalised kernel `k(x, y) / sqrt(k(x, x) k(y, y))`.

    With the normalised base kernel it is the base-kernel analogue of `knn_cosine` on features (the cosine
    similarity of features is the normalised induced kernel); the tie rule is the same.

    Args:
      S_test_train: similarities of test to training points, shape ``(m, n)``.
      y_train: integer labels, shape ``(n,)``.
      k: number of neighbours, ``1 <= k <= n``.
      n_classes: number of classes; defaults to ``max(y_train) + 1``.

    Returns:
      Predicted labels, shape ``(m,)``.

    Raises:
      ValueError: on a non-2-D or non-finite similarity matrix, labels of the wrong length, or ``k`` outside ``1..n``.
    """
    S = _v.array("S_test_train", S_test_train)
    n = S.shape[1]
    y_train, n_classes = _labels(y_train, "y_train", n, n_classes)
    k = _v.integer("k", k, maximum=n)
    return _knn_vote(S, y_train, k=k, n_classes=n_classes)


def accuracy(pred: Any, y: Any) -> jax.Array:
    """Returns the fraction of predictions equal to the labels.

    Args:
      pred: predicted labels, shape ``(m,)``.
      y: true labels, shape ``(m,)``.

    Returns:
      A 0-d float array in ``[0, 1]`` (``float(...)`` gives a Python number).

    Raises:
      ValueError: if ``pred`` and ``y`` are not 1-D arrays of the same, non-zero length.

    Example:
      >>> float(accuracy([0, 1, 1, 2], [0, 1, 2, 2]))
      0.75
    """
    pred = jnp.asarray(pred)
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] == 0:
        raise ValueError(f"y must be a non-empty 1-D array of shape (m,); got shape {tuple(y.shape)}")
    if pred.shape != y.shape:
        raise ValueError(f"pred must have shape {tuple(y.shape)} to match y; got shape {tuple(pred.shape)}")
    return jnp.mean((pred == y).astype(jnp.result_type(float)))


# ----------------------------------------------------------------------------------------------------------------------
# Label budgets.
# ----------------------------------------------------------------------------------------------------------------------


def _per_class_value(per_class: Any) -> int | None:
    """Normalises ``per_class`` to a positive int, or ``None`` for every example."""
    if per_class is None or (isinstance(per_class, str) and per_class == "all"):
        return None
    if isinstance(per_class, numbers.Integral) and not isinstance(per_class, bool) and per_class >= 1:
        return int(per_class)
    raise ValueError(f'per_class must be a positive integer, "all" or None; got {per_class!r}')


def _as_key(key_or_seed: Any) -> jax.Array:
    if isinstance(key_or_seed, numbers.Integral) and not isinstance(key_or_seed, bool):
        return jax.random.key(int(key_or_seed))
    return key_or_seed


def sample_labelled(
    key_or_seed: Any, y: Any, per_class: int | str | None, *, n_classes: int | None = None
) -> np.ndarray:
    """Draws ``per_class`` labelled examples of every class, without replacement.

    One uniform number is drawn per example and each class keeps its ``per_class`` examples with the smallest
    numbers, so a draw is a function of the key alone and draws with the same key are **nested**: the 2-per-class
    set is contained in the 5-per-class set.

    Args:
      key_or_seed: a JAX PRNG key or an integer seed.
      y: integer labels in ``0..n_classes-1``, shape ``(n,)``.
      per_class: examples per class, a positive integer; ``"all"`` or ``None`` selects every example.
      n_classes: number of classes; defaults to ``max(y) + 1`` (every class must then have examples).

    Returns:
      Sorted indices into ``y``, a NumPy integer array of shape ``(n_classes * per_class,)`` (or ``(n,)``).

    Raises:
      ValueError: if ``per_class`` is invalid, ``y`` is not a 1-D label array, or a class has fewer than
        ``per_class`` examples (the message names the class).

    Example:
      >>> import numpy as np
      >>> idx = sample_labelled(0, np.array([0, 0, 0, 1, 1, 1]), 2)
      >>> np.bincount(np.array([0, 0, 0, 1, 1, 1])[idx]).tolist()
      [2, 2]
    """
    count = _per_class_value(per_class)
    y_np = np.asarray(y)
    if y_np.ndim != 1 or y_np.shape[0] == 0:
        raise ValueError(f"y must be a non-empty 1-D array of labels, shape (n,); got shape {y_np.shape}")
    y_arr, n_classes = _labels(y_np, "y", y_np.shape[0], n_classes)
    y_np = np.asarray(y_arr)
    if count is None:
        return np.arange(y_np.shape[0])
    u = np.asarray(jax.random.uniform(_as_key(key_or_seed), (y_np.shape[0],)))
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(y_np == c)
        if members.shape[0] < count:
            raise ValueError(
                f"class {c} has {members.shape[0]} examples, fewer than per_class={count} requested"
            )
        chosen.append(members[np.argsort(u[members], kind="stable")[:count]])
    return np.sort(np.concatenate(chosen))


def accuracy_vs_labels(
    predict_fn: Callable[[np.ndarray], Any],
    y_train: Any,
    y_test: Any,
    per_class_list: Sequence[int | str | None] = (1, 2, 5, 10, "all"),
    n_draws: int = 5,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Measures test accuracy against the number of labelled training examples per class.

    For every budget and every draw ``j`` it calls ``predict_fn(idx)`` with the indices of the labelled training
    points from ``sample_labelled(jax.random.fold_in(jax.random.key(seed), j), y_train, per_class)`` and scores
    the returned test predictions. The draws depend only on ``seed``, ``j`` and ``y_train``, so every method
    evaluated with the same ``seed`` sees **the same labelled sets** and comparisons between methods are paired;
    within one draw the sets are nested across budgets. The ``"all"`` budget uses every training point once.

    Args:
      predict_fn: maps labelled-index array ``idx`` (shape ``(L,)``) to test predictions of shape ``(m,)``, e.g.
        ``lambda idx: ridge_probe(F_train[idx], y_train[idx], F_test)``.
      y_train: training labels, shape ``(n,)``.
      y_test: test labels, shape ``(m,)``.
      per_class_list: budgets, each a positive integer or ``"all"`` (``None`` also means all).
      n_draws: seeded draws per integer budget, ``>= 1``.
      seed: integer seed of the draws.

    Returns:
      ``{str(per_class): {"mean": float, "std": float, "draws": [float, ...]}}`` with keys such as ``"1"`` and
      ``"all"``; ``std`` is the population standard deviation (``ddof=0``) over draws.

    Raises:
      ValueError: on an invalid budget or ``n_draws``, or a class with fewer training examples than a budget.

    Example:
      >>> import numpy as np
      >>> F = np.array([[0.0, 1.0], [0.1, 0.9], [1.0, 0.0], [0.9, 0.2]])
      >>> y = np.array([0, 0, 1, 1])
      >>> res = accuracy_vs_labels(lambda idx: knn_cosine(F[idx], y[idx], F), y, y, (1, "all"), n_draws=2)
      >>> res["all"]["mean"]
      1.0
    """
    n_draws = _v.integer("n_draws", n_draws)
    y_train_np = np.asarray(y_train)
    y_test_np = np.asarray(y_test)
    if y_test_np.ndim != 1:
        raise ValueError(f"y_test must be a 1-D array of shape (m,); got shape {y_test_np.shape}")
    base_key = jax.random.key(int(seed))
    results: dict[str, dict[str, Any]] = {}
    for per_class in per_class_list:
        count = _per_class_value(per_class)
        name = "all" if count is None else str(count)
        draws = []
        for j in range(1 if count is None else int(n_draws)):
            idx = sample_labelled(jax.random.fold_in(base_key, j), y_train_np, count)
            draws.append(float(accuracy(predict_fn(idx), y_test_np)))
        results[name] = {"mean": float(np.mean(draws)), "std": float(np.std(draws)), "draws": draws}
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Dispatchers by name.
# ----------------------------------------------------------------------------------------------------------------------


def probe_features(name: str, F_train: Any, y_train: Any, F_test: Any, **kw: Any) -> jax.Array:
    """Runs the feature probe called ``name`` (one of ``"ridge"``, ``"logistic"``, ``"knn"``).

    Args:
      name: probe name.
      F_train: training features, shape ``(n, d)``.
      y_train: integer labels, shape ``(n,)``.
      F_test: test features, shape ``(m, d)``.
      **kw: keyword arguments of the probe (``reg``, ``k``, ``steps``, ...).

    Returns:
      Predicted labels, shape ``(m,)``.

    Raises:
      ValueError: for an unknown name (listing the valid ones) or invalid inputs.

    Example:
      >>> import numpy as np
      >>> F = np.array([[0.0, 1.0], [1.0, 0.0]])
      >>> probe_features("knn", F, np.array([0, 1]), F, k=1).tolist()
      [0, 1]
    """
    probes = {"ridge": ridge_probe, "logistic": logistic_probe, "knn": knn_cosine}
    if name not in probes:
        hint = " (it takes Grams: use probe_kernel)" if name in KERNEL_PROBES else ""
        raise ValueError(f"unknown feature probe {name!r}{hint}; valid names: {', '.join(FEATURE_PROBES)}")
    return probes[name](F_train, y_train, F_test, **kw)


def probe_kernel(name: str, K_train: Any, y_train: Any, K_test_train: Any, **kw: Any) -> jax.Array:
    """Runs the kernel probe called ``name`` (``"kernel_ridge"``) on precomputed Grams.

    Args:
      name: probe name.
      K_train: training Gram, shape ``(n, n)``.
      y_train: integer labels, shape ``(n,)``.
      K_test_train: cross Gram, shape ``(m, n)``.
      **kw: keyword arguments of the probe (``reg``, ``n_classes``).

    Returns:
      Predicted labels, shape ``(m,)``.

    Raises:
      ValueError: for an unknown name (listing the valid ones) or invalid inputs.

    Example:
      >>> import numpy as np
      >>> K = np.eye(2)
      >>> probe_kernel("kernel_ridge", K, np.array([0, 1]), K).tolist()
      [0, 1]
    """
    probes = {"kernel_ridge": kernel_ridge_classify}
    if name not in probes:
        hint = " (it takes features: use probe_features)" if name in FEATURE_PROBES else ""
        raise ValueError(f"unknown kernel probe {name!r}{hint}; valid names: {', '.join(KERNEL_PROBES)}")
    return probes[name](K_train, y_train, K_test_train, **kw)
