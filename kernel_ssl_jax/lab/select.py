"""Model selection without the test split: a labelled validation subset of the TRAINING split (`[select]`).

The protocol, the same for every method (the kernel-SSL objectives, the base kernel and the peers of `peers`):

1. `protocol`: `select.val_per_class` training samples per class are drawn (seed `select.seed`) as a labelled
   validation subset. These labels are EXTRA labels on top of each budget (with the default 5 per class, 50 labels
   on a 10-class data set): results selected this way must say so. The rest of the training split is the pool.
2. For each label budget `b`, `select.n_draws` labelled sets of `b` samples per class are drawn from the pool only
   (disjoint from the validation subset); `"all"` is the whole pool, once.
3. `choose`: every candidate (one point of the method's grid) predicts the validation labels from each labelled set
   and is scored by the mean validation accuracy over the draws; the best candidate per budget wins (ties: the
   first in grid order, so a grid lists its preferred values first).
4. Only then, with the chosen candidate fixed per budget, is the test split scored (by the caller, once, on the
   label draws of `[eval]`, the same for every method).

Nothing here takes test labels or test inputs: `choose` sees only `y_train` and predictions on training indices
(transductive peers may have seen the unlabelled test INPUTS while fitting; that is their nature and is stated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from kernel_ssl_jax import evaluate as _evaluate

__all__ = ["Protocol", "Candidate", "feature_candidate", "protocol", "choose", "rank_methods", "standard_error",
           "describe"]

# A labelled-set predictor: predict(labelled_idx, query_idx) -> predicted labels of the query training samples.
Predictor = Callable[[np.ndarray, np.ndarray], Any]


class Protocol(NamedTuple):
    """The validation subset and the selection draws (indices into the training split).

    Attributes:
      val_idx: `(C * val_per_class,)` labelled validation samples.
      pool_idx: the other training samples, from which the labelled sets are drawn.
      draws: `{budget key: [labelled index arrays]}` (keys `"1"`, ..., `"all"`), each disjoint from `val_idx`.
      val_per_class: validation labels per class (extra labels, on top of each budget).
    """

    val_idx: np.ndarray
    pool_idx: np.ndarray
    draws: dict[str, list[np.ndarray]]
    val_per_class: int


class Candidate(NamedTuple):
    """One point of a method's grid: its hyper-parameters and how it predicts from a labelled set.

    Attributes:
      params: the hyper-parameters (JSON values).
      predict_train: `predict_train(labelled_idx, query_idx)` -> labels of the query TRAINING samples (selection).
      predict_test: `predict_test(labelled_idx)` -> labels of the test samples (the final score only).
    """

    params: dict[str, Any]
    predict_train: Predictor
    predict_test: Callable[[np.ndarray], Any]


def feature_candidate(params: Mapping[str, Any], F_train, F_test, y_train, ev: Mapping[str, Any],
                      n_classes: int) -> Candidate:
    """A representation `(F_train, F_test)` under the main probe of `[eval]` (`evaluate.probe_features` /
    `evaluate.probe_kernel` with the probe's own `[eval]` settings), as a candidate of the selection protocol."""
    y = np.asarray(y_train)
    probe = ev["main_probe"]

    def predict(idx, F_query):
        if probe == "knn":
            return _evaluate.probe_features("knn", F_train[idx], y[idx], F_query, k=min(ev["knn_k"], len(idx)),
                                            n_classes=n_classes)
        if probe == "ridge":
            return _evaluate.probe_features("ridge", F_train[idx], y[idx], F_query, reg=ev["ridge_reg"],
                                            n_classes=n_classes)
        if probe == "logistic":
            return _evaluate.probe_features("logistic", F_train[idx], y[idx], F_query, n_classes=n_classes)
        Fl = F_train[idx]
        return _evaluate.probe_kernel("kernel_ridge", Fl @ Fl.T, y[idx], F_query @ Fl.T,
                                      reg=ev["kernel_ridge_reg"], n_classes=n_classes)

    return Candidate(dict(params), lambda idx, query: predict(idx, F_train[query]),
                         lambda idx: predict(idx, F_test))


def protocol(y_train, budgets: Sequence[int | str], sel: Mapping[str, Any]) -> Protocol:
    """The validation subset and the selection draws of `[select]` for the label `budgets` (see the module doc).

    Raises:
      ValueError: a class with fewer than `val_per_class + budget` training samples.
    """
    y = np.asarray(y_train)
    key = jax.random.key(int(sel["seed"]))
    val_idx = _evaluate.sample_labelled(jax.random.fold_in(key, 2**20), y, int(sel["val_per_class"]))
    pool_idx = np.setdiff1d(np.arange(y.shape[0]), val_idx)
    draws: dict[str, list[np.ndarray]] = {}
    for b in budgets:
        name = str(b)
        if b == "all":
            draws[name] = [pool_idx]
            continue
        counts = np.bincount(y[pool_idx], minlength=int(y.max()) + 1)
        if counts.min() < b:
            raise ValueError(f"select: class {int(np.argmin(counts))} has {int(counts.min())} training samples "
                             f"outside the validation subset ({sel['val_per_class']} per class), fewer than the "
                             f"budget {b}")
        draws[name] = [pool_idx[_evaluate.sample_labelled(jax.random.fold_in(key, j), y[pool_idx], b)]
                       for j in range(int(sel["n_draws"]))]
    return Protocol(val_idx, pool_idx, draws, int(sel["val_per_class"]))


def choose(candidates: Sequence[Candidate], proto: Protocol, y_train) -> dict[str, dict[str, Any]]:
    """Scores every candidate on the validation subset and picks the best per budget.

    Returns:
      `{budget key: {"index": i, "params": candidates[i].params, "val_accuracy": best score,
      "grid": [{"params", "val_accuracy"}, ...]}}`.
    """
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    y = np.asarray(y_train)
    y_val = y[proto.val_idx]
    out: dict[str, dict[str, Any]] = {}
    for name, draws in proto.draws.items():
        scores = [float(np.mean([float(_evaluate.accuracy(c.predict_train(idx, proto.val_idx), y_val))
                                 for idx in draws])) for c in candidates]
        best = int(np.argmax(scores))  # the first of equal scores: grid order
        out[name] = {"index": best, "params": dict(candidates[best].params), "val_accuracy": scores[best],
                     "grid": [{"params": dict(c.params), "val_accuracy": s}
                              for c, s in zip(candidates, scores, strict=True)]}
    return out


def rank_methods(val_scores: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, list[dict[str, Any]]]:
    """Ranks METHODS (e.g. objective x graph x cut-off, each with its own grid chosen by `choose`) by their mean
    VALIDATION accuracy over several development seeds: the choice of a method, or of a default, without a test
    label. One seed's 50 validation labels cannot tell methods 1-2 points apart; the mean over seeds can.

    Args:
      val_scores: one mapping per development seed, `{method: {budget key: validation accuracy of the point that
        `choose` picked}}`; every seed must score the same methods at the same budgets.

    Returns:
      `{budget key: ranking, ..., "mean": ranking}`, where `"mean"` ranks by the mean over budgets too. A ranking is a
      list, best first, of `{"method", "val_accuracy" (mean over seeds), "per_seed", "se"}` (`se`: the standard
      error over seeds, 0 for one seed); ties keep the order of the methods in the first seed.

    Raises:
      ValueError: no seed, or seeds that differ in their methods or budgets.
    """
    if len(val_scores) == 0:
        raise ValueError("val_scores: expected at least one development seed, got none")
    methods = list(val_scores[0])
    budgets = list(val_scores[0][methods[0]]) if methods else []
    for i, seed in enumerate(val_scores):
        got = {m: sorted(seed[m]) for m in seed}
        if got != {m: sorted(budgets) for m in methods}:
            raise ValueError(f"val_scores: seed {i} scores {got}, the first seed {methods} at budgets {budgets}; "
                             "every seed must score the same methods at the same budgets")
    table = {m: np.array([[float(seed[m][b]) for b in budgets] for seed in val_scores]) for m in methods}

    def ranking(column) -> list[dict[str, Any]]:
        rows = []
        for m in methods:
            v = table[m][:, column].mean(axis=1) if isinstance(column, slice) else table[m][:, column]
            se = standard_error(v)
            rows.append({"method": m, "val_accuracy": float(v.mean()), "per_seed": [float(x) for x in v], "se": se})
        return sorted(rows, key=lambda r: -r["val_accuracy"])  # a stable sort: ties keep the first seed's order

    out = {str(b): ranking(j) for j, b in enumerate(budgets)}
    out["mean"] = ranking(slice(None))
    return out


def standard_error(values) -> float:
    """The standard error of the mean of `values` (sample std / sqrt(n)); 0 for fewer than two values."""
    v = np.asarray(values, dtype=float).ravel()
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


def describe(params: Mapping[str, Any]) -> str:
    """`lam=0.1, dim=20` (for tables)."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
