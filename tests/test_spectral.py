"""Closed forms (kernel_ssl_jax/spectral.py) against SPEC.md §3-4: independent numpy references, peer libraries
(scikit-learn KernelPCA and spectral_embedding) and direct optimisation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.decomposition import KernelPCA
from sklearn.manifold import spectral_embedding

import kernel_ssl_jax as kssl
from kernel_ssl_jax import graphs, kernels, objectives, spectral

KERNELS = {
    "rbf": kernels.rbf(1.5),
    "laplacian": kernels.laplacian(2.0),
    "poly": kernels.polynomial(3, scale=0.3),
    "ntk": kernels.ntk(2, b_var=0.1),
}


def views(n=8, a=2, d=4, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n, d))
    X = np.repeat(src, a, axis=0) + 0.3 * rng.normal(size=(n * a, d))
    return X, np.repeat(np.arange(n), a)


def weighted_graph(N, seed=1):
    rng = np.random.default_rng(seed)
    W = rng.uniform(0.0, 1.0, size=(N, N))
    return np.triu(W, 1) + np.triu(W, 1).T


# ----------------------------------------------------------------------------------------------------------------
# An independent numpy reference of SPEC.md §3, with full matrices (F, S^{+1/2}, K^+ formed explicitly).


def top_eig(R, M, largest=True):
    w, V = np.linalg.eigh((R + R.T) / 2)
    order = np.argsort(-w if largest else w)[:M]
    return w[order], V[:, order]


def mat_fn(K, fn, rcond):
    s, U = np.linalg.eigh(K)
    keep = s > rcond * s.max()
    vals = np.zeros_like(s)
    vals[keep] = fn(s[keep])
    return (U * vals) @ U.T, (U[:, keep] @ U[:, keep].T)


def reference(objective, K, A, M, lam, beta=1.0, pairs=None, rcond=1e-12):
    S_half_pinv, P = mat_fn(K, lambda s: 1 / np.sqrt(s * s + lam * s), rcond)
    F, _ = mat_fn(K, lambda s: np.sqrt(s / (s + lam)), rcond)
    if objective == "contrastive":
        mu, V = top_eig(F @ A @ F, M)
        mu = np.maximum(mu, 0)
        return np.sqrt(mu)[:, None] * V.T @ S_half_pinv
    L = np.diag(A.sum(1)) - A
    if objective == "vicreg":
        mu, V = top_eig(P - beta / 2 * F @ L @ F, M)
        return np.sqrt(np.maximum(mu, 0))[:, None] * V.T @ S_half_pinv
    if objective == "vicreg_hard":
        # restrict F L F to range(K) with an orthonormal basis of the range
        s, U = np.linalg.eigh(K)
        Ur = U[:, s > rcond * s.max()]
        w, V = top_eig(Ur.T @ F @ L @ F @ Ur, M, largest=False)
        return (Ur @ V).T @ S_half_pinv
    v1, v2 = pairs
    S12 = K[:, v1] @ K[:, v2].T
    S12 = (S12 + S12.T) / 2
    K_half_pinv, _ = mat_fn(K, lambda s: 1 / np.sqrt(s), rcond)
    ell, Qv = top_eig(K_half_pinv @ S12 @ K_half_pinv, M)
    return (Qv / np.sqrt(ell)).T @ K_half_pinv


def problem(objective, kernel="rbf", n=8, a=2, seed=0, weighted=False):
    X, groups = views(n, a, seed=seed)
    A = weighted_graph(len(X), seed) if weighted else np.asarray(graphs.from_groups(groups))
    pairs = graphs.pairs_from_groups(groups) if objective == "barlow" else None
    return X, A, pairs, KERNELS[kernel]


def closed_form_value(sol):
    """The optimum predicted by SPEC §3 from the solver's eigenvalues alone."""
    w = np.asarray(sol.eigenvalues)
    return {"contrastive": -np.sum(w**2), "vicreg": sol.dim - np.sum(w**2), "vicreg_hard": np.sum(w),
            "barlow": 0.0}[sol.objective]


def rel(a, b):
    return np.linalg.norm(np.asarray(a) - np.asarray(b)) / max(np.linalg.norm(np.asarray(b)), 1e-300)


# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
@pytest.mark.parametrize("lam", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_matches_numpy_reference(objective, lam, kernel):
    # A weighted graph has a non-degenerate spectrum, so the solution is unique up to signs: compare induced kernels.
    X, A, pairs, k = problem(objective, kernel, weighted=True)
    M = 4
    sol = kssl.solve(objective, X, None if objective == "barlow" else A, kernel=k, dim=M, lam=lam, pairs=pairs,
                     beta=0.7)
    K = np.asarray(kssl.gram(k, X))
    C = reference(objective, K, A, M, lam, beta=0.7, pairs=pairs, rcond=len(X) * np.finfo(float).eps)
    Xt = views(5, 1, seed=9)[0]
    Kt = np.asarray(kssl.gram(k, Xt, X))
    ref_induced = Kt @ C.T @ C @ Kt.T
    assert rel(sol.induced_kernel(Xt), ref_induced) < 1e-6
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A, beta=0.7)
    ref_loss = float(objectives.loss_from_coef(objective, C, K, lam=lam, **kw))
    assert float(sol.loss) == pytest.approx(ref_loss, rel=1e-8, abs=1e-8)
    assert float(sol.loss) == pytest.approx(closed_form_value(sol), rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_constraints_hold(lam):
    X, A, _, k = problem("vicreg_hard", weighted=True)
    K = np.asarray(kssl.gram(k, X))
    S = K @ K + lam * K
    for objective in ("contrastive", "vicreg", "vicreg_hard"):
        sol = kssl.solve(objective, X, A, kernel=k, dim=5, lam=lam, beta=0.3)
        Q = np.asarray(sol.coef) @ S @ np.asarray(sol.coef).T
        expected = np.eye(5) if objective == "vicreg_hard" else np.diag(np.asarray(sol.eigenvalues))
        np.testing.assert_allclose(Q, expected, atol=1e-8)
    Xb, _, pairs, _ = problem("barlow")
    sol = kssl.solve("barlow", Xb, kernel=k, dim=5, pairs=pairs)
    Z = np.asarray(sol.representations)
    S12 = Z[:, pairs[0]] @ Z[:, pairs[1]].T
    np.testing.assert_allclose((S12 + S12.T) / 2, np.eye(5), atol=1e-8)


def test_induced_kernel_equals_A_on_training_views():
    # SPEC §4: contrastive, lam = 0, K invertible, M >= n  =>  k*(x_i, x_j) = A_ij.
    X, A, _, k = problem("contrastive", n=10, a=3)
    for M in (10, 14):
        sol = kssl.solve("contrastive", X, A, kernel=k, dim=M, lam=0.0)
        np.testing.assert_allclose(sol.induced_kernel(X), A, atol=1e-8)
    # and k*(x, x') = k_X(x)^T K^-1 A K^-1 k_X(x') out of sample
    K = np.asarray(kssl.gram(k, X))
    Xt = views(4, 1, seed=3)[0]
    Kt = np.asarray(kssl.gram(k, Xt, X))
    Kinv_A_Kinv = np.linalg.solve(K, np.linalg.solve(K, A).T)
    assert rel(sol.induced_kernel(Xt), Kt @ Kinv_A_Kinv @ Kt.T) < 1e-6


@pytest.mark.parametrize("a", [2, 3])
def test_vicreg_clique_is_contrastive_over_a(a):
    # SPEC §4: clique graph, lam = 0, K invertible, M = n, beta < 2/a  =>  vicreg k* = contrastive k* / a.
    n = 7
    X, A, _, k = problem("vicreg", n=n, a=a)
    beta = 1.5 / a
    sc = kssl.solve("contrastive", X, A, kernel=k, dim=n, lam=0.0)
    sv = kssl.solve("vicreg", X, A, kernel=k, dim=n, lam=0.0, beta=beta)
    Xt = views(5, 1, seed=4)[0]
    np.testing.assert_allclose(sv.induced_kernel(X), sc.induced_kernel(X) / a, atol=1e-8)
    assert rel(sv.induced_kernel(Xt), sc.induced_kernel(Xt) / a) < 1e-6


def test_kernel_pca_equivalence():
    # SPEC §4: with the centred Gram Kc as kernel and target, contrastive Z equals KernelPCA scores.
    X, _, _, k = problem("contrastive", n=15, a=2)
    K = np.asarray(kssl.gram(k, X))
    N = len(X)
    H = np.eye(N) - 1.0 / N
    Kc = H @ K @ H
    M = 5
    coef, _, _, _ = spectral.solve_gram("contrastive", Kc, Kc, dim=M, lam=0.0, method="dense")
    Z = np.asarray(coef @ Kc).T
    kpca = KernelPCA(n_components=M, kernel="precomputed", eigen_solver="dense")
    Zs = kpca.fit_transform(K)  # KernelPCA centres K itself, giving Kc; transform then centres test Grams alike
    signs = np.sign(np.sum(Z * Zs, axis=0))
    np.testing.assert_allclose(Z * signs, Zs, atol=1e-8)
    Xt = views(6, 1, seed=5)[0]
    Kt = np.asarray(kssl.gram(k, Xt, X))
    Kt_c = Kt - Kt.mean(1, keepdims=True) - K.mean(0)[None, :] + K.mean()
    Ft = Kt_c @ np.asarray(coef).T
    np.testing.assert_allclose(Ft * signs, kpca.transform(Kt), atol=1e-8)


def test_laplacian_eigenmaps_equivalence():
    # SPEC §4: vicreg_hard, lam = 0, invertible K spans sklearn's spectral_embedding subspace.
    X, A, _, k = problem("vicreg_hard", n=10, a=2, weighted=True)
    M = 4
    sol = kssl.solve("vicreg_hard", X, A, kernel=k, dim=M, lam=0.0)
    Z = np.asarray(sol.representations).T
    E = spectral_embedding(A, n_components=M, norm_laplacian=False, drop_first=False, random_state=0)
    angles = scipy.linalg.subspace_angles(Z, E)
    assert np.max(angles) < 1e-6


def test_pseudo_inverse_forms_at_lam_zero_with_singular_kernel():
    # Linear kernel in 3 dimensions: K has rank 3 < N, so only pseudo-inverses make sense.
    X, A, _, _ = problem("contrastive", n=6, a=2, weighted=True)
    X = X[:, :3]
    k = kernels.linear()
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=2, lam=0.0, method="dense")
    K = X @ X.T
    P = K @ np.linalg.pinv(K)
    mu, V = top_eig(P @ A @ P, 2)
    C = np.sqrt(mu)[:, None] * V.T @ np.linalg.pinv(K)
    assert rel(sol.induced_kernel(X), K @ C.T @ C @ K) < 1e-8
    for method in ("dense", "auto"):  # auto takes the linear feature path here (d = 3 < N) with the same check
        with pytest.raises(ValueError, match="largest feasible dim is 3"):
            kssl.solve("contrastive", X, A, kernel=k, dim=4, lam=0.0, method=method)


@pytest.mark.parametrize("objective", ["contrastive", "vicreg", "vicreg_hard"])
def test_continuous_in_lam(objective):
    X, A, _, k = problem(objective, weighted=True)
    Xt = views(4, 1, seed=6)[0]
    base = kssl.solve(objective, X, A, kernel=k, dim=3, lam=0.0, beta=0.5).induced_kernel(Xt)
    gaps = [rel(kssl.solve(objective, X, A, kernel=k, dim=3, lam=lam, beta=0.5).induced_kernel(Xt), base)
            for lam in (1e-2, 1e-4, 1e-6)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-3


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("a", [2, 3])
@pytest.mark.parametrize("M", [3, 10, 12])
def test_structured_equals_dense(lam, a, M):
    X, A, _, k = problem("contrastive", n=10, a=a)
    sd = kssl.solve("contrastive", X, A, kernel=k, dim=M, lam=lam, method="dense")
    ss = kssl.solve("contrastive", X, A, kernel=k, dim=M, lam=lam, method="structured")
    assert sd.method in ("dense-eigh", "dense-cholesky")
    assert ss.method == f"structured-{'cholesky' if lam > 0 else 'eigh'}"
    assert kssl.solve("contrastive", X, A, kernel=k, dim=M, lam=lam).method.startswith("structured")
    assert float(ss.loss) == pytest.approx(float(sd.loss), rel=1e-8)
    np.testing.assert_allclose(ss.eigenvalues, sd.eigenvalues, rtol=1e-8, atol=1e-10)
    if lam > 0 or M >= 10:  # at lam = 0 and M < n the optimum is degenerate (SPEC §3.5)
        Xt = views(5, 1, seed=7)[0]
        assert rel(ss.induced_kernel(Xt), sd.induced_kernel(Xt)) < 1e-8


# ----------------------------------------------------------------------------------------------------------------
# Optimality against direct optimisation (scipy), several lam, dim and kernels.


def _minimise(fun, x0, **kw):
    return scipy.optimize.minimize(fun, x0, **kw)


@pytest.mark.parametrize("objective", ["contrastive", "vicreg"])
@pytest.mark.parametrize("lam,M,kernel", [(0.0, 2, "rbf"), (0.5, 3, "laplacian"), (2.0, 2, "ntk")])
def test_no_optimiser_beats_closed_form(objective, lam, M, kernel):
    X, A, _, k = problem(objective, kernel, n=5, a=2, weighted=True)
    K = np.asarray(kssl.gram(k, X))
    N = len(X)
    sol = kssl.solve(objective, X, A, kernel=k, dim=M, lam=lam, beta=0.5)
    f = jax.jit(jax.value_and_grad(
        lambda c: objectives.loss_from_coef(objective, c.reshape(M, N), K, lam=lam, A=A, beta=0.5)))

    def fun(c):
        value, grad = f(c)
        return float(value), np.asarray(grad)

    rng = np.random.default_rng(0)
    best = min(_minimise(fun, 0.1 * rng.normal(size=M * N), jac=True, method="L-BFGS-B",
                         options=dict(maxiter=3000, gtol=1e-10, ftol=1e-15)).fun for _ in range(2))
    cf = float(sol.loss)
    assert cf <= best + 1e-8 * max(1.0, abs(cf))
    assert best <= cf + 1e-4 * max(1.0, abs(cf))  # the optimiser does reach it: the test can tell


def test_vicreg_hard_optimal_under_constraint():
    X, A, _, k = problem("vicreg_hard", n=4, a=2, weighted=True)
    K = np.asarray(kssl.gram(k, X))
    N, M, lam = len(X), 2, 0.3
    S = K @ K + lam * K
    L = np.diag(A.sum(1)) - A
    sol = kssl.solve("vicreg_hard", X, A, kernel=k, dim=M, lam=lam)
    obj = lambda c: np.trace(c.reshape(M, N) @ K @ L @ K @ c.reshape(M, N).T)  # noqa: E731
    iu = np.triu_indices(M)
    cons = {"type": "eq", "fun": lambda c: (c.reshape(M, N) @ S @ c.reshape(M, N).T - np.eye(M))[iu]}
    rng = np.random.default_rng(1)
    best = min(_minimise(obj, 0.3 * rng.normal(size=M * N), constraints=[cons], method="SLSQP",
                         options=dict(maxiter=1000, ftol=1e-14)).fun for _ in range(4))
    assert float(sol.loss) <= best + 1e-7
    assert best <= float(sol.loss) + 1e-3


def test_barlow_is_minimum_norm():
    X, _, pairs, k = problem("barlow", n=4, a=2)
    K = np.asarray(kssl.gram(k, X))
    N, M = len(X), 2
    sol = kssl.solve("barlow", X, kernel=k, dim=M, pairs=pairs)
    C0 = np.asarray(sol.coef)
    norm = lambda c: np.trace(c.reshape(M, N) @ K @ c.reshape(M, N).T)  # noqa: E731
    v1, v2 = pairs
    iu = np.triu_indices(M)

    def cons(c):
        Z = c.reshape(M, N) @ K
        S12 = Z[:, v1] @ Z[:, v2].T
        return ((S12 + S12.T) / 2 - np.eye(M))[iu]

    rng = np.random.default_rng(2)
    results = [_minimise(norm, C0.ravel() + 0.5 * rng.normal(size=M * N), method="SLSQP",
                         constraints=[{"type": "eq", "fun": cons}], options=dict(maxiter=2000, ftol=1e-14))
               for _ in range(4)]
    feasible = [r.fun for r in results if np.max(np.abs(cons(r.x))) < 1e-6]
    assert feasible, "the optimiser found no feasible point"
    assert norm(C0.ravel()) <= min(feasible) + 1e-7
    assert float(sol.loss) == pytest.approx(0.0, abs=1e-10)


# ----------------------------------------------------------------------------------------------------------------
# Out of sample, jit, dtype


def test_features_are_samplewise_and_blockwise():
    X, A, _, k = problem("contrastive")
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=4, lam=0.1)
    Xt = views(7, 1, seed=8)[0]
    F = np.asarray(sol.features(Xt))
    assert F.shape == (7, 4)
    for i in range(7):
        np.testing.assert_allclose(np.asarray(sol.features(Xt[i : i + 1]))[0], F[i], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(sol.features(Xt, block_size=3)), F, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(sol.induced_kernel(Xt, Xt[:2])), F @ F[:2].T, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(sol.representations), np.asarray(sol.coef @ kssl.gram(k, X)), atol=1e-12)


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_identical_with_and_without_jit(objective):
    X, A, pairs, k = problem(objective, weighted=True)
    kw = dict(kernel=k, dim=3, lam=0.2, pairs=pairs)
    A_ = None if objective == "barlow" else A
    sol = kssl.solve(objective, X, A_, **kw)
    with jax.disable_jit():
        sol_nojit = kssl.solve(objective, X, A_, **kw)
    Xt = views(4, 1, seed=9)[0]
    np.testing.assert_allclose(sol.induced_kernel(Xt), sol_nojit.induced_kernel(Xt), rtol=1e-9, atol=1e-12)
    assert float(sol.loss) == pytest.approx(float(sol_nojit.loss), rel=1e-9, abs=1e-12)


def test_float64_by_default_and_dtype_argument():
    X, A, _, k = problem("contrastive")
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=3)
    assert sol.coef.dtype == jnp.float64 and sol.features(X).dtype == jnp.float64
    sol32 = kssl.solve("contrastive", X, A, kernel=k, dim=3, dtype=jnp.float32)
    assert sol32.coef.dtype == jnp.float32
    assert float(sol32.loss) == pytest.approx(float(sol.loss), rel=1e-3)


def test_decomposition_shared_across_objectives():
    X, A, pairs, k = problem("barlow", weighted=True)
    K = kssl.gram(k, X)
    eig = spectral.decompose(K, 1e-12)
    for objective in objectives.OBJECTIVES:
        kw = dict(pairs=pairs) if objective == "barlow" else {}
        c1, w1, _, _ = spectral.solve_gram(objective, K, A, dim=3, lam=0.1, rcond=1e-12, eig=eig, **kw)
        c2, w2, _, _ = spectral.solve_gram(objective, K, A, dim=3, lam=0.1, rcond=1e-12, **kw)
        np.testing.assert_allclose(c1, c2, rtol=1e-12, atol=1e-12)


def test_extend_is_kernel_ridge_regression_of_the_training_representation():
    # spectral.extend: f'(x) = k_X(x)^T (K + ridge I)^-1 K C^T (numpy solve, no eigendecomposition), on new points
    # and on the views; ridge 0 keeps C on the range of K; a negative ridge is refused.
    X, _ = views()
    k = KERNELS["rbf"]
    K = np.asarray(kssl.gram(k, X))
    X_new = np.random.default_rng(3).normal(size=(5, X.shape[1]))
    K_new = np.asarray(kssl.gram(k, X_new, X))
    C = np.random.default_rng(4).normal(size=(3, X.shape[0]))
    eig = spectral.decompose(K, 0.0)
    for ridge in (0.05, 1.0):
        ref = K_new @ np.linalg.solve(K + ridge * np.eye(len(K)), K @ C.T)
        Ce = np.asarray(spectral.extend(C, eig, ridge))
        np.testing.assert_allclose(K_new @ Ce.T, ref, rtol=1e-8, atol=1e-10)
        assert not np.allclose(K_new @ Ce.T, K_new @ C.T, atol=1e-3)  # it does change the map
    np.testing.assert_allclose(np.asarray(spectral.extend(C, eig, 0.0)), C, atol=1e-8)
    with pytest.raises(ValueError, match="ridge"):
        spectral.extend(C, eig, -1.0)


# ----------------------------------------------------------------------------------------------------------------
# Property-based: random sizes, dim, lam, beta, kernels


# A few fixed shapes (two sizes, dim in 1..3): the values vary freely, the compilations stay bounded (each new shape
# or static argument is an XLA compilation, which dominated this test's time).
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.sampled_from([4, 6]), objective=st.sampled_from(objectives.OBJECTIVES),
       kernel=st.sampled_from(sorted(KERNELS)), lam=st.floats(0.0, 3.0), beta=st.floats(0.0, 1.5),
       dim=st.integers(1, 3), seed=st.integers(0, 1000), weighted=st.booleans())
def test_property_finite_and_consistent(n, objective, kernel, lam, beta, dim, seed, weighted):
    X, A, pairs, k = problem(objective, kernel, n=n, a=2, seed=seed, weighted=weighted)
    try:
        sol = kssl.solve(objective, X, None if objective == "barlow" else A, kernel=k, dim=dim, lam=lam,
                         beta=beta, pairs=pairs)
    except ValueError as e:  # only the documented infeasibility may be raised
        assert "largest feasible dim" in str(e)
        return
    Xt = views(3, 1, seed=seed + 1)[0]
    assert np.all(np.isfinite(np.asarray(sol.coef)))
    assert np.all(np.isfinite(np.asarray(sol.induced_kernel(Xt))))
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A, beta=beta)
    reg = None if objective == "barlow" else lam * sol.coef @ kssl.gram(k, X) @ sol.coef.T
    direct = float(objectives.loss(objective, sol.representations, reg=reg, **kw))
    scale = max(1.0, abs(direct))
    assert float(sol.loss) == pytest.approx(direct, abs=1e-7 * scale)
    assert float(sol.loss) == pytest.approx(closed_form_value(sol), abs=1e-6 * scale)


# ----------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(objective="simclr"), ValueError, "objective must be one of"),
    (dict(dim=0), ValueError, "dim must be an integer >= 1, got 0"),
    (dict(dim=2.5), TypeError, "dim must be an integer >= 1, got 2.5"),
    (dict(dim=100), ValueError, "dim = 100 exceeds the rank of the Gram matrix .16 at rcond=.*feasible dim is 16"),
    (dict(lam=-1.0), ValueError, "lam must be a finite number >= 0"),
    (dict(beta=-0.1), ValueError, "beta must be a finite number >= 0"),
    (dict(lam="big"), TypeError, "lam must be a finite number >= 0, got 'big' .str."),
    (dict(method="fast"), ValueError, "method must be one of"),
    (dict(kernel=3), TypeError, "kernel must be"),
    (dict(X=np.ones(16)), ValueError, "X must be a 2-D array"),
    (dict(X=np.full((16, 4), np.nan)), ValueError, "X contains NaN or Inf"),
    (dict(A=np.ones((15, 15))), ValueError, r"A must be \(16, 16\) to match the 16 views"),
    (dict(A=np.ones((16, 15))), ValueError, "A must be a square"),
    (dict(A="nan"), ValueError, "A contains NaN or Inf"),
    (dict(A="asym"), ValueError, "A must be symmetric"),
    (dict(A="neg"), ValueError, "A must be non-negative"),
    (dict(A=None), ValueError, "needs the relationship matrix A"),
])
def test_bad_input(kwargs, exc, match):
    X, A, _, k = problem("contrastive")
    args = dict(objective="contrastive", X=X, A=A, kernel=k, dim=3, lam=0.1)
    args.update(kwargs)
    if isinstance(args["A"], str):
        bad = np.array(A, dtype=float)
        bad[0, 1] = {"nan": np.nan, "asym": 0.5, "neg": -1.0}[args["A"]]
        if args["A"] != "asym":
            bad[1, 0] = bad[0, 1]
        args["A"] = bad
    with pytest.raises(exc, match=match):
        kssl.solve(args.pop("objective"), args.pop("X"), args.pop("A"), **args)


def test_bad_input_barlow_and_rank():
    X, A, pairs, k = problem("barlow")
    with pytest.raises(ValueError, match="barlow needs pairs"):
        kssl.solve("barlow", X, kernel=k, dim=2)
    with pytest.raises(ValueError, match="pairs must index views"):
        kssl.solve("barlow", X, kernel=k, dim=2, pairs=(np.array([0, 1]), np.array([2, 99])))
    # Two pairs only: S12 has at most 2 positive directions, so dim = 3 is infeasible and the message says 2 is.
    with pytest.raises(ValueError, match="largest feasible dim is [12]"):
        kssl.solve("barlow", X, kernel=k, dim=3, pairs=(np.array([0, 2]), np.array([1, 3])))
    for lam, method in ((0.0, "auto"), (0.1, "dense")):  # the structured Cholesky path (lam > 0) needs no rank
        with pytest.raises(ValueError, match="largest feasible dim is 2"):
            kssl.solve("contrastive", np.repeat(X[:2], 8, axis=0), A, kernel=k, dim=3, lam=lam, method=method)
    with pytest.raises(ValueError, match="method='structured' needs A to be a view-clique graph"):
        kssl.solve("contrastive", X, weighted_graph(len(X)), kernel=k, dim=2, method="structured")


@pytest.mark.parametrize("objective", ["vicreg", "vicreg_hard"])
def test_vicreg_ridge_optimum_is_over_the_span_of_the_views(objective):
    # SPEC §1 claims the representer form for any objective with a ridge; for vicreg/vicreg_hard the ridge sits inside
    # Q, so a map W that vanishes on every training view adds variance for free: Z = 0 and lam W W^T = I give loss 0.
    # The closed form is the optimum over W = C Phi^* (the span of the views), which is what the library computes.
    rng = np.random.default_rng(0)
    d, N, M, lam = 8, 4, 2, 0.5
    X = rng.normal(size=(N, d))
    A = weighted_graph(N, seed=3)
    sol = kssl.solve(objective, X, A, kernel=kernels.linear(), dim=M, lam=lam, beta=1.0)
    null = scipy.linalg.null_space(X)  # (d, d - N): directions orthogonal to every view
    W = null[:, :M].T / np.sqrt(lam)
    Z = W @ X.T
    np.testing.assert_allclose(Z, 0.0, atol=1e-12)
    outside = float(objectives.loss(objective, Z, A=A, beta=1.0, reg=lam * W @ W.T))
    assert outside == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(lam * W @ W.T, np.eye(M), atol=1e-12)  # feasible for vicreg_hard too
    if objective == "vicreg":
        assert float(sol.loss) > 1e-3  # the span-restricted optimum is strictly worse than the collapse
    else:
        assert float(sol.loss) > outside - 1e-12


def test_feature_methods_and_groups_through_solve():
    X, A, _, _ = problem("contrastive", n=12, a=2)
    groups = np.repeat(np.arange(12), 2)
    k = kernels.linear()
    exact = kssl.solve("vicreg", X, A, kernel=k, dim=3, lam=0.2, method="dense")
    via_groups = kssl.solve("vicreg", X, groups=groups, kernel=k, dim=3, lam=0.2, method="dense")
    linear = kssl.solve("vicreg", X, groups=groups, kernel=k, dim=3, lam=0.2, method="linear")
    assert linear.method == "features-linear"
    Xt = views(4, 1, seed=2)[0]
    assert float(via_groups.loss) == pytest.approx(float(exact.loss), rel=1e-10)
    assert float(linear.loss) == pytest.approx(float(exact.loss), rel=1e-8, abs=1e-10)
    assert rel(linear.induced_kernel(Xt), exact.induced_kernel(Xt)) < 1e-8
    nys = kssl.solve("contrastive", X, A, kernel=KERNELS["rbf"], dim=3, lam=0.2, method="nystrom",
                     n_landmarks=len(X), landmarks="uniform")
    dense = kssl.solve("contrastive", X, A, kernel=KERNELS["rbf"], dim=3, lam=0.2, method="dense")
    assert float(nys.loss) == pytest.approx(float(dense.loss), rel=1e-8)
    with pytest.raises(ValueError, match="either A or groups"):
        kssl.solve("vicreg", X, A, groups=groups, kernel=k, dim=3)
    with pytest.raises(TypeError, match="apply to the feature-space methods"):
        kssl.solve("vicreg", X, A, kernel=k, dim=3, n_landmarks=5)


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
def test_auto_takes_linear_for_the_linear_kernel_with_few_dimensions(objective):
    # Linear kernel, d = 4 < N = 24: auto solves in the d-dimensional feature space, O(N d^2), and equals dense.
    X, A, pairs, _ = problem(objective, n=12, a=2, weighted=True)
    k = kernels.linear()
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A)
    auto = kssl.solve(objective, X, kernel=k, dim=3, lam=0.2, beta=0.5, **kw)
    dense = kssl.solve(objective, X, kernel=k, dim=3, lam=0.2, beta=0.5, method="dense", **kw)
    assert auto.method == "features-linear" and dense.method == "dense-eigh"
    assert float(auto.loss) == pytest.approx(float(dense.loss), rel=1e-8, abs=1e-10)
    Xt = views(4, 1, seed=2)[0]
    assert rel(auto.induced_kernel(Xt), dense.induced_kernel(Xt)) < 1e-8
    # d >= N: the feature space is no smaller than the Gram, auto stays dense
    wide = np.hstack([X, np.random.default_rng(0).normal(size=(len(X), len(X)))])
    assert kssl.solve(objective, wide, kernel=k, dim=3, lam=0.2, **kw).method in ("dense-eigh", "dense-cholesky",
                                                                                  "structured-cholesky")
