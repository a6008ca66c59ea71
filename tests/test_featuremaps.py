"""Explicit feature maps and Nystrom landmarks (kernel_ssl_jax/featuremaps.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import featuremaps, gradient, kernels

KERNEL = kernels.rbf(1.0)


def clustered(seed=0, sizes=(150, 20, 10, 10, 5, 5), d=5):
    """Imbalanced clusters: uniform landmarks mostly land in the big one."""
    rng = np.random.default_rng(seed)
    centers = 5.0 * rng.normal(size=(len(sizes), d))
    return np.concatenate([c + 0.3 * rng.normal(size=(s, d)) for c, s in zip(centers, sizes, strict=True)])


def nystrom_error(X, m, rule, seed):
    fm = featuremaps.feature_map(KERNEL, "nystrom", n_features=m, key=jax.random.key(seed), points=X, landmarks=rule)
    K = np.asarray(kssl.gram(KERNEL, X))
    Psi = np.asarray(fm.batch(X))
    return np.linalg.norm(K - Psi @ Psi.T) / np.linalg.norm(K)


def test_moved_names_are_reexported_by_gradient():
    assert gradient.FeatureMap is featuremaps.FeatureMap
    assert gradient.feature_map is featuremaps.feature_map
    assert gradient.hartley is featuremaps.hartley
    assert gradient.FEATURE_MAPS == featuremaps.FEATURE_MAPS


@pytest.mark.parametrize("rule", ["uniform", "kmeans++"])
def test_landmarks_are_distinct_seeded_and_exact_on_themselves(rule):
    X = clustered()
    a = np.asarray(featuremaps.select_landmarks(KERNEL, X, 12, method=rule, key=jax.random.key(0)))
    b = np.asarray(featuremaps.select_landmarks(KERNEL, X, 12, method=rule, key=jax.random.key(0)))
    c = np.asarray(featuremaps.select_landmarks(KERNEL, X, 12, method=rule, key=jax.random.key(1)))
    assert a.shape == (12,) and len(np.unique(a)) == 12 and a.min() >= 0 and a.max() < X.shape[0]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    fm = featuremaps.feature_map(KERNEL, "nystrom", n_features=12, key=jax.random.key(0), points=X, landmarks=rule)
    np.testing.assert_allclose(fm.landmarks, X[np.sort(a)] if rule == "uniform" else X[a])
    P = fm.batch(fm.landmarks)
    np.testing.assert_allclose(P @ P.T, kssl.gram(KERNEL, fm.landmarks), atol=1e-10)


def test_kmeanspp_spreads_landmarks_and_lowers_the_nystrom_error():
    """D^2 sampling covers small clusters that uniform sampling misses: lower ||K - Psi Psi^T|| on average."""
    X = clustered()
    for m in (12, 24):
        uniform = np.mean([nystrom_error(X, m, "uniform", s) for s in range(6)])
        kpp = np.mean([nystrom_error(X, m, "kmeans++", s) for s in range(6)])
        print(f"m={m}: relative Nystrom error uniform {uniform:.3f}, kmeans++ {kpp:.3f}")
        assert kpp < 0.9 * uniform


def test_kmeanspp_never_repeats_a_point_while_a_new_one_remains():
    rng = np.random.default_rng(0)
    X = np.repeat(rng.normal(size=(5, 3)), 10, axis=0)  # 5 distinct points, 10 copies each
    idx = np.asarray(featuremaps.select_landmarks(KERNEL, X, 5, key=jax.random.key(0)))
    assert len(np.unique(X[idx], axis=0)) == 5
    # More landmarks than distinct points: uniform fallback among the unchosen, indices still distinct.
    idx = np.asarray(featuremaps.select_landmarks(KERNEL, X, 8, key=jax.random.key(0)))
    assert len(np.unique(idx)) == 8
    fm = featuremaps.feature_map(KERNEL, "nystrom", n_features=8, key=jax.random.key(0), points=X,
                                 landmarks="kmeans++")
    assert fm.dim == 5  # duplicated landmarks: K_mm has rank 5, the extra directions are dropped
    assert np.all(np.isfinite(np.asarray(fm.batch(X))))


def test_kmeanspp_with_a_callable_kernel():
    X = clustered()[:40]
    fm = featuremaps.feature_map(KERNEL, "rff", n_features=16, key=jax.random.key(0), points=X)
    idx = featuremaps.select_landmarks(fm.kernel, X, 6, key=jax.random.key(0))
    assert len(np.unique(np.asarray(idx))) == 6


def test_explicit_landmarks_and_blockwise_batch():
    X = clustered()[:50]
    fm = featuremaps.feature_map(kernels.ntk(2), "nystrom", points=X, landmarks=X[:10])
    assert fm.landmarks.shape == (10, 5)
    np.testing.assert_allclose(fm.batch(X, block_size=7), fm.batch(X), rtol=1e-12, atol=1e-12)


def test_bad_landmarks():
    X = clustered()[:20]
    with pytest.raises(ValueError, match="landmarks must be one of"):
        featuremaps.feature_map(KERNEL, "nystrom", n_features=4, key=jax.random.key(0), points=X, landmarks="grid")
    with pytest.raises(ValueError, match="landmarks must be an"):
        featuremaps.feature_map(KERNEL, "nystrom", points=X, landmarks=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"in \[1, 20\]"):
        featuremaps.select_landmarks(KERNEL, X, 21, key=jax.random.key(0))
    with pytest.raises(ValueError, match="PRNG key"):
        featuremaps.feature_map(KERNEL, "nystrom", n_features=4, points=X)


def test_nystrom_cholesky_projection_is_a_rotation_of_the_eigendecomposition():
    # A well-conditioned K_mm gives proj = L^-1 (lower triangular): against numpy's diag(s^-1/2) U^T, the same
    # kernel psi(x) . psi(y) and proj^T proj = K_mm^-1; the condition estimate within a factor 2 of numpy's.
    X = clustered()
    fm = featuremaps.feature_map(KERNEL, "nystrom", n_features=24, key=jax.random.key(0), points=X,
                                 landmarks="kmeans++")
    proj = np.asarray(fm.proj)
    assert fm.dim == 24 and not np.any(np.triu(proj, 1))
    Kmm = np.asarray(kssl.gram(KERNEL, fm.landmarks))
    s, U = np.linalg.eigh(Kmm)
    ref = (U / np.sqrt(s)).T @ np.asarray(kssl.gram(KERNEL, fm.landmarks, X))
    Psi = np.asarray(fm.batch(X))
    np.testing.assert_allclose(Psi @ Psi.T, ref.T @ ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(proj.T @ proj, np.linalg.inv(Kmm), rtol=1e-8, atol=1e-8)
    cond = float(featuremaps._inverse_cholesky(jnp.asarray(Kmm))[1])
    assert s.max() / s.min() / 2 < cond <= s.max() / s.min() * (1 + 1e-8)
