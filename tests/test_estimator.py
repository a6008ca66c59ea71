"""KernelSSL estimator: scikit-learn conventions over spectral.solve."""

import numpy as np
import pytest

import kernel_ssl_jax as kssl


def data(n=15, a=2, d=4, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n, d))
    return np.repeat(src, a, axis=0) + 0.2 * rng.normal(size=(n * a, d)), np.repeat(np.arange(n), a)


@pytest.mark.parametrize("objective", kssl.OBJECTIVES)
def test_estimator_matches_solve(objective):
    X, groups = data()
    k = kssl.kernels.rbf(1.3)
    est = kssl.KernelSSL(objective=objective, kernel=k, dim=4, lam=0.2, beta=0.5).fit(X, groups)
    if objective == "barlow":
        sol = kssl.solve("barlow", X, kernel=k, dim=4, pairs=kssl.graphs.pairs_from_groups(groups))
    else:
        sol = kssl.solve(objective, X, kssl.graphs.from_groups(groups), kernel=k, dim=4, lam=0.2, beta=0.5)
    Xt = data(5, 1, seed=3)[0]
    np.testing.assert_allclose(est.induced_kernel(Xt), np.asarray(sol.induced_kernel(Xt)), atol=1e-10)
    np.testing.assert_allclose(est.fit_transform(X, groups), np.asarray(sol.features(X)), atol=1e-10)
    assert est.loss_ == pytest.approx(float(sol.loss))
    assert est.n_features_in_ == 4


def test_kernel_by_name_uses_median_bandwidth_and_knn_graph():
    X, groups = data()
    est = kssl.KernelSSL(kernel="rbf", dim=3, knn=3).fit(X, groups)
    assert est.kernel_.name == "rbf"
    assert float(est.kernel_.params["bandwidth"]) == pytest.approx(kssl.median_bandwidth(X))
    A = np.maximum(np.asarray(kssl.graphs.from_groups(groups)), np.asarray(kssl.graphs.knn(X, 3)))
    sol = kssl.solve("contrastive", X, A, kernel=est.kernel_, dim=3)
    np.testing.assert_allclose(est.transform(X) @ est.transform(X).T, np.asarray(sol.induced_kernel(X)),
                               atol=1e-10)


def test_estimator_errors():
    X, groups = data()
    with pytest.raises(RuntimeError, match="not fitted"):
        kssl.KernelSSL().transform(X)
    with pytest.raises(ValueError, match="objective must be one of"):
        kssl.KernelSSL(objective="byol").fit(X, groups)
    with pytest.raises(ValueError, match="groups must have one entry per view"):
        kssl.KernelSSL().fit(X, groups[:-1])
    with pytest.raises(ValueError, match="kernel must be one of"):
        kssl.KernelSSL(kernel="cosine").fit(X, groups)
    with pytest.raises(ValueError, match="needs groups"):
        kssl.KernelSSL().fit(X)
    with pytest.raises(ValueError, match="unknown parameter"):
        kssl.KernelSSL().set_params(gamma=2)
