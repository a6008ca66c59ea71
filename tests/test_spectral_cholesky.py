"""The Cholesky form of the closed form (issue 14): `"dense-cholesky"` for contrastive with `lam > 0` and any graph
equals the eigendecomposition path (`"dense-eigh"`), and the pencil core (`eigenbasis.solve_pencil`) equals the
eigenbasis core. Small shared shapes (one compilation per shape)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import eigenbasis, graphs, kernels, spectral

N, D_IN, DIM = 40, 5, 6


def data(seed=0, n=N, k=4):
    # k = 4: rows with more than N / 8 neighbours, A R as a matrix product; k = 1: as neighbour lists (`_rows`)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, D_IN))
    return X, graphs.knn(X, k), kernels.rbf(2.0)


def rel(a, b):
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


@pytest.mark.parametrize("lam,neighbours", [(1e-3, 4), (1.0, 1)])
def test_dense_cholesky_equals_dense_eigh(lam, neighbours):
    X, A, k = data(k=neighbours)
    assert isinstance(spectral._rows(A), tuple) == (neighbours == 1)
    chol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam, method="dense")
    # An explicit rcond = 0 keeps every positive eigenvalue (as the Cholesky path does) on the eigendecomposition path.
    eigh = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam, method="dense", rcond=0.0)
    assert chol.method == "dense-cholesky" and eigh.method == "dense-eigh"
    assert kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam).method == "dense-cholesky"
    assert float(chol.loss) == pytest.approx(float(eigh.loss), rel=1e-10)
    np.testing.assert_allclose(chol.eigenvalues, eigh.eigenvalues, rtol=1e-10)
    Xt = np.random.default_rng(5).normal(size=(7, D_IN))
    assert rel(chol.induced_kernel(Xt), eigh.induced_kernel(Xt)) < 1e-8
    assert rel(chol.induced_kernel(X), eigh.induced_kernel(X)) < 1e-8


def test_dense_cholesky_falls_back_on_a_singular_gram():
    # Duplicated views: K is singular, its Cholesky factor fails, the eigendecomposition path runs instead.
    X, A, k = data()
    X = np.vstack([X[: N // 2], X[: N // 2]])
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)
    ref = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1, rcond=0.0)
    assert sol.method == "dense-eigh"
    assert float(sol.loss) == pytest.approx(float(ref.loss), rel=1e-12)


def test_dense_cholesky_keeps_the_eigh_path_where_it_does_not_apply():
    X, A, k = data()
    for kw in (dict(lam=0.0), dict(lam=0.1, rcond=1e-10), dict(lam=0.1, dim=N // 2 + 1)):
        kw = dict(dict(dim=DIM), **kw)
        assert kssl.solve("contrastive", X, A, kernel=k, **kw).method == "dense-eigh"
    assert kssl.solve("vicreg", X, A, kernel=k, dim=DIM, lam=0.1).method == "dense-eigh"


def test_dense_cholesky_float32():
    X, A, k = data()
    ref = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1, dtype=np.float32)
    assert sol.method == "dense-cholesky" and sol.coef.dtype == np.float32
    assert float(sol.loss) == pytest.approx(float(ref.loss), rel=1e-4)
    Xt = np.random.default_rng(5).normal(size=(7, D_IN))
    assert rel(sol.induced_kernel(Xt.astype(np.float32)), ref.induced_kernel(Xt)) < 1e-3


@pytest.mark.parametrize("objective", ["contrastive", "vicreg"])
def test_solve_pencil_equals_the_eigenbasis_core(objective):
    # Features Phi (D x N): the pencil form on (Phi Phi^T, Phi X Phi^T) against `solve` on the eigenbasis of
    # Phi Phi^T; both give W with f(x) = W phi(x).
    rng = np.random.default_rng(3)
    Phi = rng.normal(size=(12, N))
    _, A, _ = data()
    X = np.asarray(A) if objective == "contrastive" else np.asarray(graphs.laplacian(A))
    G, T = Phi @ Phi.T, Phi @ X @ Phi.T
    s, V = np.linalg.eigh(G)
    Cs, w = eigenbasis.solve(objective, jnp.asarray(s), jnp.asarray(V.T @ T @ V), 0.2, 0.7, DIM)
    W, mu = eigenbasis.solve_pencil(objective, jnp.asarray(G), jnp.asarray(T), 0.2, 0.7, DIM)
    np.testing.assert_allclose(mu, w, rtol=1e-10, atol=1e-12)
    Z_ref, Z = np.asarray(Cs @ V.T @ Phi), np.asarray(W @ Phi)
    np.testing.assert_allclose(Z.T @ Z, Z_ref.T @ Z_ref, rtol=1e-8, atol=1e-10)  # the subspace, not the signs


def test_eigh_pencil_branches_agree():
    # The CPU branch (LAPACK subset driver) against the accelerator branch (Cholesky reduction, full eigh).
    rng = np.random.default_rng(4)
    a = rng.normal(size=(N, N))
    B = rng.normal(size=(N, N))
    a, b = jnp.asarray(a + a.T), jnp.asarray(B @ B.T + 0.1 * np.eye(N))
    w, U = eigenbasis.eigh_pencil_extreme(a, b, DIM)
    w2, U2 = eigenbasis._eigh_pencil_reduced(a, b, N - DIM, N - 1)
    np.testing.assert_allclose(w, w2[::-1], rtol=1e-9)
    np.testing.assert_allclose(U.T @ b @ U, np.eye(DIM), atol=1e-9)
    np.testing.assert_allclose(np.abs(U.T @ b @ U2[:, ::-1]), np.eye(DIM), atol=1e-7)
    bad = eigenbasis.eigh_pencil_extreme(a, -b, DIM)[0]
    assert bool(jnp.all(jnp.isnan(bad)))


def test_triangular_moments_branches_agree():
    # The CPU branch (LAPACK lauum, BLAS trmm on the host) against the products; no callback on an accelerator.
    rng = np.random.default_rng(7)
    R, P = jnp.asarray(np.tril(rng.normal(size=(N, N)))), jnp.asarray(rng.normal(size=(N, N)))
    G, T = eigenbasis.triangular_moments(R, P)
    np.testing.assert_allclose(G, R.T @ R, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(T, R.T @ P, rtol=1e-12, atol=1e-12)
    lowered = jax.jit(eigenbasis.triangular_moments).trace(R, P)
    assert "callback" in lowered.lower().as_text()
    assert "callback" not in lowered.lower(lowering_platforms=("cuda",)).as_text()


# ----------------------------------------------------------------------------------------------------------------
# method="auto" by memory (KSSL_MEMORY_BYTES overrides the available memory: no large allocation here)


@pytest.mark.parametrize("objective", ["contrastive", "vicreg", "vicreg_hard", "barlow"])
def test_auto_never_plans_a_dense_gram_beyond_the_memory(monkeypatch, objective):
    monkeypatch.setenv(spectral.MEMORY_ENV, str(24 * 2**30))
    groups = np.zeros(1, int)  # only its presence matters to the choice
    for N in (1000, 20_000, 200_000):
        method, reason = spectral._auto_method(objective, kernels.rbf(1.0), N, 64, 0.1, groups, None, {})
        need = spectral.memory_estimate(method, N, 64, dense_graph=objective != "barlow")
        assert need <= spectral.AUTO_MEMORY_FRACTION * 24 * 2**30, (N, method)
        exact = "structured" if objective == "contrastive" else "dense"
        if N == 1000:
            assert method == exact
        if N == 200_000:
            assert method == "nystrom" and "too much" in reason
        assert "GiB" in reason


def test_auto_takes_nystrom_when_the_exact_path_does_not_fit(monkeypatch):
    X, A, k = data()
    groups = np.repeat(np.arange(N // 2), 2)
    monkeypatch.setenv(spectral.MEMORY_ENV, str(2 * N * N * 8))  # half of it: room for one N x N array
    sol = kssl.solve("contrastive", X, groups=groups, kernel=k, dim=DIM, lam=0.1, n_landmarks=N // 2)
    assert sol.method == "features-nystrom" and "too much" in sol.reason
    monkeypatch.setenv(spectral.MEMORY_ENV, str(10 * N * N * 8))
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)
    assert sol.method == "dense-cholesky" and "needs" in sol.reason and "too much" not in sol.reason
    assert kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1, method="dense").reason == ""
    monkeypatch.setenv(spectral.MEMORY_ENV, "lots")
    with pytest.raises(TypeError, match="KSSL_MEMORY_BYTES must be an integer"):
        kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)


def test_sparse_rows_of_a_graph():
    # A k-NN graph as neighbour lists gives A R exactly; a dense A stays dense.
    _, A, _ = data(k=1)
    R = np.random.default_rng(6).normal(size=(N, N))
    rows = spectral._rows(A)
    assert isinstance(rows, tuple) and rows[0].shape[1] <= N // 8
    np.testing.assert_allclose(spectral._times(rows, R), np.asarray(A) @ R, rtol=1e-14, atol=1e-12)
    assert isinstance(spectral._rows(np.ones((N, N))), np.ndarray)


# ----------------------------------------------------------------------------------------------------------------
# The block Krylov route ("dense-krylov"); at N = 40 it is forced (`_krylov_applies` takes it from
# N = `eigenbasis.KRYLOV_MIN_N`)


@pytest.mark.parametrize("lam,neighbours,dtype", [(1e-3, 4, np.float64), (1.0, 1, np.float64), (0.1, 1, np.float32)])
def test_dense_krylov_equals_the_exact_routes(monkeypatch, lam, neighbours, dtype):
    X, A, k = data(k=neighbours)
    exact = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam, eigensolver="exact")
    eigh = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam, rcond=0.0)
    monkeypatch.setattr(spectral, "_krylov_applies", lambda N, dim: True)
    monkeypatch.setattr(spectral, "KRYLOV_DEPTH", 3)  # 56 columns: every direction of the N = 40 problem
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=lam, dtype=dtype, method="dense")
    assert (exact.method, eigh.method, sol.method, sol.reason) == ("dense-cholesky", "dense-eigh", "dense-krylov", "")
    rtol = 1e-10 if dtype == np.float64 else 1e-4
    assert float(sol.loss) == pytest.approx(float(exact.loss), rel=rtol)
    assert float(sol.loss) == pytest.approx(float(eigh.loss), rel=rtol)
    np.testing.assert_allclose(sol.eigenvalues, exact.eigenvalues, rtol=rtol)
    Xt = np.random.default_rng(5).normal(size=(7, D_IN)).astype(dtype)
    assert rel(sol.induced_kernel(Xt), exact.induced_kernel(Xt)) < (1e-8 if dtype == np.float64 else 1e-3)


def test_dense_krylov_falls_back_to_the_exact_solver(monkeypatch):
    # One pass of a one-block Krylov space (subspace iteration, one step) does not converge: the exact route runs.
    X, A, k = data(k=1)
    monkeypatch.setattr(spectral, "_krylov_applies", lambda N, dim: True)
    monkeypatch.setattr(spectral, "KRYLOV_DEPTH", 0)
    monkeypatch.setattr(spectral, "KRYLOV_PASSES", 1)
    sol = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1)
    ref = kssl.solve("contrastive", X, A, kernel=k, dim=DIM, lam=0.1, rcond=0.0)
    assert sol.method == "dense-cholesky" and "did not converge in 1 passes" in sol.reason
    assert float(sol.loss) == pytest.approx(float(ref.loss), rel=1e-10)


def test_dense_krylov_route_choice_and_no_host_round_trip_on_an_accelerator():
    assert not spectral._krylov_applies(N, DIM) and spectral._krylov_applies(2000, 32)
    X, A, k = data(k=1)
    K = kernels.gram(k, jnp.asarray(X))
    lowered = spectral._dense_krylov.trace(K, spectral._rows(A), 0.1, DIM, 2, 1)
    assert "callback" in lowered.lower().as_text()  # LAPACK's Cholesky on CPU
    assert "callback" not in lowered.lower(lowering_platforms=("cuda",)).as_text()
    with pytest.raises(ValueError, match="eigensolver must be one of"):
        kssl.solve("contrastive", X, A, kernel=k, dim=DIM, eigensolver="arpack")
