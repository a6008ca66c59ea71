"""Tests for kernel_ssl_jax/evaluate.py against independent references (scikit-learn, small numpy closed forms)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from kernel_ssl_jax.evaluate import (
    accuracy,
    accuracy_vs_labels,
    kernel_ridge_classify,
    knn_cosine,
    knn_similarity,
    logistic_probe,
    probe_features,
    probe_kernel,
    ridge_probe,
    sample_labelled,
)


def _blobs(seed, n, d, n_classes, m=None, spread=1.0, sep=1.5):
    """Gaussian class blobs: (F_train, y_train, F_test, y_test)."""
    rng = np.random.default_rng(seed)
    means = sep * rng.normal(size=(n_classes, d))
    m = n if m is None else m
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    yt = rng.integers(0, n_classes, m)
    F = means[y] + spread * rng.normal(size=(n, d))
    Ft = means[yt] + spread * rng.normal(size=(m, d))
    return F, y, Ft, yt


def _sklearn_alpha(F, reg):
    """The documented scaling: alpha = reg * mean squared norm of the centred training features."""
    Fc = F - F.mean(axis=0, keepdims=True)
    return reg * np.sum(Fc**2) / F.shape[0]


# ----------------------------------------------------------------------------------------------------------------------
# Ridge probe.
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(60, 8), (20, 50)])  # primal (d <= n) and dual (d > n) systems
@pytest.mark.parametrize("reg", [1e-3, 1.0])
def test_ridge_probe_matches_sklearn_ridge(n, d, reg):
    F, y, Ft, _ = _blobs(0, n, d, 4, m=40)
    alpha = _sklearn_alpha(F, reg)
    scores = Ridge(alpha=alpha, fit_intercept=True).fit(F, np.eye(4)[y]).predict(Ft)
    pred = ridge_probe(F, y, Ft, reg=reg)
    np.testing.assert_array_equal(np.asarray(pred), scores.argmax(axis=1))
    # RidgeClassifier uses +-1 targets, an affine map of one-hot: the argmax is the same.
    ref = RidgeClassifier(alpha=alpha).fit(F, y).predict(Ft)
    np.testing.assert_array_equal(np.asarray(pred), ref)


def test_ridge_probe_numpy_closed_form_and_primal_dual_agree():
    # Scores are private, so compare predictions on many points with a numpy normal-equations reference, for a
    # dual-sized and a primal-sized problem built from the same data.
    rng = np.random.default_rng(1)
    F = rng.normal(size=(30, 12))
    y = rng.integers(0, 3, 30)
    Ft = rng.normal(size=(200, 12))
    reg = 0.05
    for F_use, Ft_use in [(F, Ft), (np.hstack([F, np.zeros((30, 40))]), np.hstack([Ft, np.zeros((200, 40))]))]:
        mu = F_use.mean(0, keepdims=True)
        Y = np.eye(3)[y]
        Fc = F_use - mu
        alpha = reg * np.sum(Fc**2) / F_use.shape[0]
        W = np.linalg.solve(Fc.T @ Fc + alpha * np.eye(Fc.shape[1]), Fc.T @ (Y - Y.mean(0, keepdims=True)))
        ref = ((Ft_use - mu) @ W + Y.mean(0, keepdims=True)).argmax(1)
        np.testing.assert_array_equal(np.asarray(ridge_probe(F_use, y, Ft_use, reg=reg)), ref)


def test_ridge_probe_is_unit_free_and_reg_zero_is_least_squares():
    F, y, Ft, _ = _blobs(2, 50, 6, 3)
    pred = np.asarray(ridge_probe(F, y, Ft, reg=0.1))
    np.testing.assert_array_equal(np.asarray(ridge_probe(1e3 * F, y, 1e3 * Ft, reg=0.1)), pred)
    Y = np.eye(3)[y]
    A = np.hstack([F, np.ones((50, 1))])
    coef, *_ = np.linalg.lstsq(A, Y, rcond=None)
    ref = (np.hstack([Ft, np.ones((Ft.shape[0], 1))]) @ coef).argmax(1)
    np.testing.assert_array_equal(np.asarray(ridge_probe(F, y, Ft, reg=0.0)), ref)


def test_ridge_probe_constant_features_and_n_classes():
    F = np.ones((6, 3))
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.asarray(ridge_probe(F, y, F, reg=1e-3, n_classes=5))
    # No information in the features: every point gets the majority class, and no NaN appears.
    np.testing.assert_array_equal(pred, np.zeros(6, dtype=int))


def test_ridge_probe_float32_inputs():
    F, y, Ft, _ = _blobs(3, 40, 5, 3)
    pred = ridge_probe(F.astype(np.float32), y, Ft.astype(np.float32), reg=1e-2)
    assert pred.shape == (Ft.shape[0],)
    ref = np.asarray(ridge_probe(F, y, Ft, reg=1e-2))
    assert np.mean(np.asarray(pred) == ref) >= 0.95


# ----------------------------------------------------------------------------------------------------------------------
# Kernel ridge.
# ----------------------------------------------------------------------------------------------------------------------


def _rbf(A, B, bandwidth):
    sq = np.sum(A**2, 1)[:, None] + np.sum(B**2, 1)[None, :] - 2 * A @ B.T
    return np.exp(-np.maximum(sq, 0) / (2 * bandwidth**2))


@pytest.mark.parametrize("reg", [1e-3, 0.1])
def test_kernel_ridge_matches_sklearn_precomputed(reg):
    X, y, Xt, _ = _blobs(4, 80, 5, 4, m=60)
    K = _rbf(X, X, 2.0)
    Kt = _rbf(Xt, X, 2.0)
    alpha = reg * np.mean(np.diag(K))
    ref = KernelRidge(alpha=alpha, kernel="precomputed").fit(K, np.eye(4)[y]).predict(Kt).argmax(1)
    np.testing.assert_array_equal(np.asarray(kernel_ridge_classify(K, y, Kt, reg=reg)), ref)
    # Relative regularisation: scaling the kernel does not change predictions.
    np.testing.assert_array_equal(np.asarray(kernel_ridge_classify(7.0 * K, y, 7.0 * Kt, reg=reg)), ref)


def test_kernel_ridge_low_rank_linear_gram_and_dispatcher():
    # Rank-deficient linear Gram (d < n) with reg=0: the minimum-norm interpolant, as numpy's pinv gives it.
    X, y, Xt, _ = _blobs(5, 40, 4, 3)
    K, Kt = X @ X.T, Xt @ X.T
    ref = (Kt @ np.linalg.pinv(K) @ np.eye(3)[y]).argmax(1)
    pred = probe_kernel("kernel_ridge", K, y, Kt, reg=0.0)
    np.testing.assert_array_equal(np.asarray(pred), ref)


# ----------------------------------------------------------------------------------------------------------------------
# Logistic probe.
# ----------------------------------------------------------------------------------------------------------------------


def test_logistic_probe_agrees_with_sklearn():
    F, y, Ft, yt = _blobs(6, 200, 10, 3, m=200)
    reg = 1e-3
    scaler = StandardScaler().fit(F)
    ref_model = LogisticRegression(C=1.0 / (2 * F.shape[0] * reg), max_iter=5000, tol=1e-10)
    ref = ref_model.fit(scaler.transform(F), y).predict(scaler.transform(Ft))
    pred = np.asarray(logistic_probe(F, y, Ft, reg=reg))
    assert np.mean(pred == ref) >= 0.95
    assert abs(float(accuracy(pred, yt)) - np.mean(ref == yt)) <= 0.02
    # A random start with a key leads to the same convex optimum.
    pred_key = np.asarray(logistic_probe(F, y, Ft, reg=reg, key=jax.random.key(3)))
    assert np.mean(pred_key == pred) >= 0.99
    np.testing.assert_array_equal(np.asarray(probe_features("logistic", F, y, Ft, reg=reg)), pred)


# ----------------------------------------------------------------------------------------------------------------------
# k-NN.
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 5])
def test_knn_cosine_matches_sklearn(k):
    # Two classes and odd k: the vote never ties, and continuous random data has no tied similarities.
    F, y, Ft, _ = _blobs(7, 120, 6, 2, m=150, spread=2.0, sep=1.0)
    ref = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(F, y).predict(Ft)
    pred = knn_cosine(F, y, Ft, k=k)
    np.testing.assert_array_equal(np.asarray(pred), ref)
    np.testing.assert_array_equal(np.asarray(probe_features("knn", F, y, Ft, k=k)), ref)


def test_knn_cosine_multiclass_matches_sklearn_where_vote_is_not_tied():
    F, y, Ft, _ = _blobs(8, 150, 6, 4, m=200, spread=2.0, sep=1.0)
    k = 5
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(F, y)
    counts = np.stack([np.bincount(y[row], minlength=4) for row in knn.kneighbors(Ft, return_distance=False)])
    untied = (np.sort(counts, axis=1)[:, -1] > np.sort(counts, axis=1)[:, -2])
    assert untied.sum() > 100
    pred = np.asarray(knn_cosine(F, y, Ft, k=k))
    np.testing.assert_array_equal(pred[untied], knn.predict(Ft)[untied])


def test_knn_cosine_tie_break_by_summed_similarity_and_zero_vectors():
    # Two neighbours of each class among the k=4 nearest; class 1's are closer in sum, so it wins the tie.
    F = np.array([[1.0, 0.0], [1.0, 0.3], [1.0, 0.05], [1.0, 0.1], [-1.0, 0.0]])
    y = np.array([0, 0, 1, 1, 0])
    assert np.asarray(knn_cosine(F, y, np.array([[1.0, 0.0]]), k=4)).tolist() == [1]
    # Zero vectors (train and test) give similarity 0, not NaN.
    F0 = np.vstack([F, np.zeros((1, 2))])
    y0 = np.append(y, 1)
    pred = np.asarray(knn_cosine(F0, y0, np.array([[0.0, 0.0], [1.0, 0.01]]), k=1))
    assert pred.tolist()[1] == 0
    assert pred[0] in (0, 1)


# ----------------------------------------------------------------------------------------------------------------------
# accuracy, sample_labelled, accuracy_vs_labels.
# ----------------------------------------------------------------------------------------------------------------------


def test_accuracy():
    assert float(accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2]))) == 0.75
    assert float(accuracy(jnp.array([1, 1]), np.array([1, 1]))) == 1.0
    with pytest.raises(ValueError, match=r"pred must have shape \(3,\)"):
        accuracy(np.zeros(2, int), np.zeros(3, int))


def test_sample_labelled_counts_determinism_no_replacement():
    y = np.repeat(np.arange(4), [5, 7, 9, 11])
    np.random.default_rng(0).shuffle(y)
    idx = sample_labelled(0, y, 3)
    assert idx.shape == (12,)
    assert len(np.unique(idx)) == 12
    np.testing.assert_array_equal(np.bincount(y[idx]), [3, 3, 3, 3])
    np.testing.assert_array_equal(sample_labelled(0, y, 3), idx)
    np.testing.assert_array_equal(sample_labelled(jax.random.key(0), y, 3), idx)
    assert not np.array_equal(sample_labelled(1, y, 3), idx)
    # Nested across budgets with the same key.
    assert set(sample_labelled(0, y, 1)) <= set(idx) <= set(sample_labelled(0, y, 5))
    # Taking every example of the smallest class is allowed, and "all"/None select everything.
    np.testing.assert_array_equal(np.bincount(y[sample_labelled(2, y, 5)]), [5, 5, 5, 5])
    np.testing.assert_array_equal(sample_labelled(0, y, "all"), np.arange(len(y)))
    np.testing.assert_array_equal(sample_labelled(0, y, None), np.arange(len(y)))


def test_sample_labelled_errors():
    y = np.array([0, 0, 0, 1, 2, 2])
    with pytest.raises(ValueError, match="class 1 has 1 examples, fewer than per_class=2"):
        sample_labelled(0, y, 2)
    with pytest.raises(ValueError, match="class 3 has 0 examples"):
        sample_labelled(0, y, 1, n_classes=4)
    with pytest.raises(ValueError, match="per_class must be a positive integer"):
        sample_labelled(0, y, 0)
    with pytest.raises(ValueError, match="per_class must be a positive integer"):
        sample_labelled(0, y, "some")


def test_accuracy_vs_labels_structure_and_paired_draws():
    F, y, Ft, yt = _blobs(9, 60, 5, 3, m=50)
    seen = []

    def predict(idx):
        seen.append(np.array(idx))
        return ridge_probe(F[idx], y[idx], Ft, reg=1e-2, n_classes=3)

    res = accuracy_vs_labels(predict, y, yt, per_class_list=(1, 2, "all"), n_draws=3, seed=4)
    assert list(res) == ["1", "2", "all"]
    assert [len(res[key]["draws"]) for key in res] == [3, 3, 1]
    for entry in res.values():
        assert set(entry) == {"mean", "std", "draws"}
        assert all(isinstance(a, float) and 0.0 <= a <= 1.0 for a in entry["draws"])
        assert entry["mean"] == pytest.approx(np.mean(entry["draws"]))
        assert entry["std"] == pytest.approx(np.std(entry["draws"]))
    assert res["all"]["std"] == 0.0
    np.testing.assert_array_equal(seen[-1], np.arange(len(y)))
    assert all(np.bincount(y[idx], minlength=3).tolist() == [1, 1, 1] for idx in seen[:3])

    # Same seed -> the same labelled sets for another method (paired comparison); another seed -> other sets.
    seen_first = seen[:]
    seen.clear()
    res_again = accuracy_vs_labels(predict, y, yt, per_class_list=(1, 2, "all"), n_draws=3, seed=4)
    assert res_again == res
    assert all(np.array_equal(a, b) for a, b in zip(seen_first, seen, strict=True))
    other = []
    accuracy_vs_labels(lambda idx: other.append(idx) or knn_cosine(F[idx], y[idx], Ft), y, yt, (1,), 3, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(seen_first[:3], other, strict=True))
    other.clear()
    accuracy_vs_labels(lambda idx: other.append(idx) or knn_cosine(F[idx], y[idx], Ft), y, yt, (1,), 3, seed=5)
    assert not all(np.array_equal(a, b) for a, b in zip(seen_first[:3], other, strict=True))


def test_accuracy_vs_labels_errors():
    y = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="n_draws must be an integer >= 1"):
        accuracy_vs_labels(lambda idx: y, y, y, (1,), n_draws=0)
    with pytest.raises(ValueError, match="class 0 has 2 examples, fewer than per_class=5"):
        accuracy_vs_labels(lambda idx: y, y, y, (5,))


# ----------------------------------------------------------------------------------------------------------------------
# Error paths.
# ----------------------------------------------------------------------------------------------------------------------


def test_probe_errors_name_the_argument():
    rng = np.random.default_rng(10)
    F, y, Ft = rng.normal(size=(10, 3)), np.arange(10) % 2, rng.normal(size=(4, 3))
    with pytest.raises(ValueError, match=r"F_test must have 3 features \(as the training data\), got 2"):
        ridge_probe(F, y, rng.normal(size=(4, 2)))
    with pytest.raises(ValueError, match=r"y_train must have shape \(10,\)"):
        ridge_probe(F, y[:9], Ft)
    with pytest.raises(ValueError, match="F_train must be a 2-D array"):
        ridge_probe(F[0], y, Ft)
    bad = F.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="F_train contains NaN or Inf"):
        ridge_probe(bad, y, Ft)
    with pytest.raises(ValueError, match="F_test contains NaN or Inf"):
        knn_cosine(F, y, np.full((2, 3), np.inf))
    with pytest.raises(ValueError, match="reg must be a finite number >= 0"):
        ridge_probe(F, y, Ft, reg=-1.0)
    with pytest.raises(ValueError, match="reg must be a finite number >= 0"):
        logistic_probe(F, y, Ft, reg=-1e-4)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        knn_cosine(F, y, Ft, k=0)
    with pytest.raises(ValueError, match="k must be at most the number of training points"):
        knn_cosine(F, y, Ft, k=11)
    with pytest.raises(ValueError, match="y_train has label 1, which is out of range for n_classes=1"):
        ridge_probe(F, y, Ft, n_classes=1)
    with pytest.raises(ValueError, match="y_train must hold labels in 0..n_classes-1"):
        ridge_probe(F, y - 1, Ft)
    with pytest.raises(ValueError, match="y_train must hold integer class labels"):
        ridge_probe(F, y + 0.5, Ft)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        logistic_probe(F, y, Ft, steps=0)
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        logistic_probe(F, y, Ft, learning_rate=0.0)


def test_kernel_errors_name_the_argument():
    K = np.eye(5)
    y = np.array([0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match=r"K_train must be square, shape \(n, n\)"):
        kernel_ridge_classify(np.ones((5, 4)), y, np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"K_test_train must have shape \(m, 5\)"):
        kernel_ridge_classify(K, y, np.ones((2, 4)))
    with pytest.raises(ValueError, match="K_train contains NaN or Inf"):
        kernel_ridge_classify(np.full((5, 5), np.nan), y, np.ones((2, 5)))
    with pytest.raises(ValueError, match="reg must be a finite number >= 0"):
        kernel_ridge_classify(K, y, np.ones((2, 5)), reg=-0.1)


def test_dispatchers_reject_unknown_names():
    F = np.eye(3)
    y = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="unknown feature probe 'svm'; valid names: ridge, logistic, knn"):
        probe_features("svm", F, y, F)
    with pytest.raises(ValueError, match="use probe_kernel"):
        probe_features("kernel_ridge", F, y, F)
    message = "unknown kernel probe 'ridge' .*use probe_features.*valid names: kernel_ridge"
    with pytest.raises(ValueError, match=message):
        probe_kernel("ridge", F, y, F)
    np.testing.assert_array_equal(np.asarray(probe_features("ridge", F, y, F, reg=1e-6)), y)


def test_probes_run_inside_jit_with_static_n_classes():
    F, y, Ft, _ = _blobs(11, 30, 4, 3)
    f = jax.jit(lambda a, b, c: ridge_probe(a, b, c, reg=1e-2, n_classes=3))
    np.testing.assert_array_equal(np.asarray(f(F, y, Ft)), np.asarray(ridge_probe(F, y, Ft, reg=1e-2)))


def test_knn_similarity_on_cosine_matrix_equals_knn_cosine():
    rng = np.random.default_rng(5)
    F_train, F_test = rng.normal(size=(40, 6)), rng.normal(size=(15, 6))
    y = rng.integers(0, 3, size=40)
    unit = lambda F: F / np.linalg.norm(F, axis=1, keepdims=True)  # noqa: E731
    S = unit(F_test) @ unit(F_train).T
    for k in (1, 3, 5):
        np.testing.assert_array_equal(knn_similarity(S, y, k=k, n_classes=3),
                                      knn_cosine(F_train, y, F_test, k=k, n_classes=3))
    with pytest.raises(ValueError, match="k must be an integer in"):
        knn_similarity(S, y, k=41)
