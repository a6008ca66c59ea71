"""The one closed-form core (`kernel_ssl_jax/eigenbasis.py`): every solver path agrees, and fails alike.

Paths: dense (eigenbasis of K), structured (clique contrastive: the factored target, and the Cholesky path at
`lam > 0`), linear features (eigenbasis of `X^T X`) and Nystrom features with every view as a landmark. On a Gram of
known rank (linear kernel, d < N) they solve the same problem, so losses and induced kernels on held-out points must
agree, and `dim > rank` must raise the same error everywhere. The per-objective formulas are checked against an
independent numpy reference in `tests/test_spectral.py`; this file checks the paths against each other.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import eigenbasis

N_SOURCES, A_VIEWS, D = 12, 2, 5


def _data():
    rng = np.random.default_rng(3)
    src = rng.normal(size=(N_SOURCES, D))
    X = np.repeat(src, A_VIEWS, axis=0) + 0.3 * rng.normal(size=(N_SOURCES * A_VIEWS, D))
    groups = np.repeat(np.arange(N_SOURCES), A_VIEWS)
    return X, groups, rng.normal(size=(7, D))


def _paths(objective, lam):
    paths = {"dense": dict(method="dense"), "linear": dict(method="linear"),
             "nystrom": dict(method="nystrom", n_landmarks=N_SOURCES * A_VIEWS)}
    if objective == "contrastive":
        paths["structured"] = dict(method="structured")
    return paths


@pytest.mark.parametrize("lam", [0.0, 0.5])
@pytest.mark.parametrize("objective", kssl.OBJECTIVES)
def test_every_path_gives_the_same_solution(objective, lam):
    X, groups, X_test = _data()
    k = kssl.kernels.linear()
    sols = {name: kssl.solve(objective, X, groups=groups, kernel=k, dim=3, lam=lam, rcond=1e-10, **kw)
            for name, kw in _paths(objective, lam).items()}
    ref = sols["dense"]
    assert ref.method == "dense-eigh"
    K_ref = np.asarray(ref.induced_kernel(X_test))
    for name, sol in sols.items():
        np.testing.assert_allclose(float(sol.loss), float(ref.loss), rtol=1e-8, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(np.asarray(sol.induced_kernel(X_test)), K_ref, rtol=1e-6, atol=1e-8, err_msg=name)
    expected = {"linear": "features-linear", "nystrom": "features-nystrom",
                "structured": "structured-cholesky" if lam > 0 else "structured-eigh"}
    for name, method in expected.items():
        if name in sols:
            assert sols[name].method == method


@pytest.mark.parametrize("objective", kssl.OBJECTIVES)
def test_dim_above_the_rank_is_the_same_error_on_every_path(objective):
    # K = X X^T has rank D = 5 < N = 24: dim = 6 is infeasible on every path, including the Cholesky path of the
    # clique contrastive problem, which never decomposes K unless it has to (it used to return zero columns).
    X, groups, _ = _data()
    k = kssl.kernels.linear()
    for kw in _paths(objective, 0.1).values():
        with pytest.raises(ValueError, match="dim = 6 exceeds the rank of .*the largest feasible dim is 5"):
            kssl.solve(objective, X, groups=groups, kernel=k, dim=6, lam=0.1, **kw)
    with pytest.raises(ValueError, match="largest feasible dim is 5"):
        kssl.solve(objective, X, groups=groups, kernel=k, dim=6, lam=0.1)  # auto


def test_solution_features_work_under_jit_and_vmap():
    X, groups, X_test = _data()
    sol = kssl.solve("vicreg", X, groups=groups, kernel=kssl.kernels.rbf(2.0), dim=3, lam=0.1)
    F = np.asarray(sol.features(X_test))
    np.testing.assert_allclose(np.asarray(jax.jit(sol.features)(X_test)), F, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.vmap(sol.features)(jnp.asarray(X_test))), F, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(jax.jit(kssl.induced_kernel)(sol, X_test)), F @ F.T, rtol=1e-10)

    # A learned representation inside a jitted model: the Solution is a pytree argument.
    @jax.jit
    def model(s, x):
        return jnp.tanh(s.features(x)).sum()

    assert float(model(sol, X_test)) == pytest.approx(float(np.tanh(F).sum()), rel=1e-12)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        sol.features(np.full((2, D), np.nan))
    with pytest.raises(ValueError, match="X must have 5 features"):
        sol.features(np.zeros((2, D + 1)))


def test_core_on_a_hand_made_eigenbasis_matches_numpy():
    # eigenbasis.solve on (s, T) against the SPEC §3.1 formula written in numpy in the original coordinates.
    rng = np.random.default_rng(0)
    B = rng.normal(size=(6, 6))
    K = B @ B.T
    A = np.abs(rng.normal(size=(6, 6)))
    A = A + A.T
    lam, dim = 0.3, 2
    s, U = np.linalg.eigh(K)
    T = np.sqrt(s)[:, None] * (U.T @ A @ U) * np.sqrt(s)[None, :]
    Cs, mu = eigenbasis.solve("contrastive", jnp.asarray(s), jnp.asarray(T), lam, 1.0, dim)
    C = np.asarray(Cs) / np.sqrt(s)[None, :] @ U.T
    F = U @ np.diag(np.sqrt(s / (s + lam))) @ U.T
    w, V = np.linalg.eigh(F @ A @ F)
    np.testing.assert_allclose(np.asarray(mu), w[::-1][:dim], rtol=1e-10)
    Q = C @ (K @ K + lam * K) @ C.T
    np.testing.assert_allclose(Q, np.diag(w[::-1][:dim]), atol=1e-9)
    Vm, wm = V[:, ::-1][:, :dim], w[::-1][:dim]
    C_ref = np.sqrt(wm)[:, None] * Vm.T @ U @ np.diag((s * s + lam * s) ** -0.5) @ U.T  # SPEC §3.1
    np.testing.assert_allclose(C.T @ C, C_ref.T @ C_ref, rtol=1e-8, atol=1e-10)


def test_checks_name_the_argument_and_the_allowed_values():
    with pytest.raises(ValueError, match=r"dim = 4 exceeds the rank of the Gram matrix \(3 at rcond=0.1\); the "
                                         r"largest feasible dim is 3"):
        eigenbasis.check_rank(4, 3, 0.1)
    with pytest.raises(ValueError, match="barlow: only 1 directions .* the largest feasible dim is 1"):
        eigenbasis.check_barlow_feasible(np.array([1.0, -0.5]), 2, 1e-12)
    assert eigenbasis.solver_rcond("contrastive", 0.1, 1e-9) == 0.0
    assert eigenbasis.solver_rcond("vicreg", 0.1, 1e-9) == 1e-9
    assert eigenbasis.default_rcond(10, np.float32) == pytest.approx(10 * np.finfo(np.float32).eps)


def test_block_krylov_top_pairs_match_numpy():
    # The top k of S = a b (a symmetric indefinite, b positive definite with eigenvalues in (0, 1]) against numpy on
    # b^1/2 a b^1/2; the basis (width 12, depth 4: 60 columns) is a fraction of n = 150.
    rng = np.random.default_rng(11)
    n, k = 150, 4
    Qa, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = (Qa * np.concatenate([[9.0, 8.0, 7.5, 7.0, 6.0], rng.uniform(-3, 3, n - 5)])) @ Qa.T
    Qb, _ = np.linalg.qr(rng.normal(size=(n, n)))
    sb = rng.uniform(0.1, 1.0, n)
    b, bh = (Qb * sb) @ Qb.T, (Qb * np.sqrt(sb)) @ Qb.T
    w_ref, V_ref = np.linalg.eigh(bh @ a @ bh)
    w_ref, V_ref = w_ref[::-1][:k], V_ref[:, ::-1][:, :k]
    res = eigenbasis.eigh_operator_top(lambda Z: jnp.asarray(a) @ Z, lambda Z: jnp.asarray(b) @ Z, n, k,
                                       jnp.float64, width=12, depth=4, passes=3)
    assert bool(res.converged) and float(res.residual) <= np.finfo(np.float64).eps ** (1 / 3)
    np.testing.assert_allclose(res.w, w_ref, rtol=1e-10)
    X = np.asarray(res.X)
    np.testing.assert_allclose(X.T @ b @ X, np.eye(k), atol=1e-10)
    V = bh @ X  # the eigenvectors of b^1/2 a b^1/2: the same subspace (signs free)
    np.testing.assert_allclose(V @ V.T, V_ref @ V_ref.T, atol=1e-8)
    one = eigenbasis.eigh_operator_top(lambda Z: jnp.asarray(a) @ Z, lambda Z: jnp.asarray(b) @ Z, n, k,
                                       jnp.float64, width=12, depth=0, passes=1)
    assert not bool(one.converged) and int(one.passes) == 1


def test_pencil_by_block_krylov_equals_the_subset_solver():
    # solve_pencil_krylov against solve_pencil (LAPACK's generalized subset driver) on a D = 120 pencil
    # (T PSD of rank 40, G + lam I positive definite); the basis (12 x 4 columns) is 40 % of D.
    rng = np.random.default_rng(12)
    D, k = 120, 4
    F, B = rng.normal(size=(40, D)), rng.normal(size=(D, D))
    G, T = jnp.asarray(B @ B.T / D), jnp.asarray(F.T @ F)
    W_ref, mu_ref = eigenbasis.solve_pencil("contrastive", G, T, 0.3, 0.0, k)
    W, mu, res = eigenbasis.solve_pencil_krylov(G, T, 0.3, k, depth=3)
    assert bool(res.converged)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-10)  # eigenvalues: to about the squared residual
    P, P_ref = np.asarray(W.T @ W), np.asarray(W_ref.T @ W_ref)  # vectors: to about the residual (eps^1/3) / gap
    assert np.linalg.norm(P - P_ref) < 1e-4 * np.linalg.norm(P_ref)
    assert eigenbasis.krylov_pays(2000, 32) and not eigenbasis.krylov_pays(1000, 32)
    assert not eigenbasis.krylov_pays(eigenbasis.KRYLOV_MIN_N - 1, 1)  # small problems: the exact route
