"""Tests for kernel_ssl_jax.objectives against numpy implementations of SPEC.md §2 and its identities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import graphs, objectives

M, N = 3, 8


def _problem(seed=0, m=M, n=N, lam=0.7):
    """Random C (m x n), PSD K (n x n) with Z = C K, symmetric non-negative A, reg = lam C K C^T."""
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, n + 2))
    K = B @ B.T / n
    C = rng.normal(size=(m, n)) / n
    Z = C @ K
    A = rng.random((n, n)) * (rng.random((n, n)) < 0.5)
    A = A + A.T
    reg = lam * C @ K @ C.T
    return C, K, Z, A, reg


def _laplacian(A):
    return np.diag(A.sum(axis=1)) - A


def _ref_loss(name, Z, A=None, beta=1.0, pairs=None, reg=None, gamma=1.0):
    """SPEC.md §2, written directly with Q = Z Z^T + reg and L = D - A."""
    m = Z.shape[0]
    if name == "barlow":
        v1, v2 = pairs
        S = Z[:, v1] @ Z[:, v2].T
        S = (S + S.T) / 2
        D = S - np.eye(m)
        off = ~np.eye(m, dtype=bool)
        return float(np.sum(np.diag(D) ** 2) + gamma * np.sum(D[off] ** 2))
    L = _laplacian(A)
    dirichlet = float(np.trace(Z @ L @ Z.T))
    if name == "vicreg_hard":
        return dirichlet
    Q = Z @ Z.T + (0 if reg is None else reg)
    if name == "contrastive":
        return float(np.sum(Q**2) - 2 * np.trace(Z @ A @ Z.T))
    if name == "vicreg":
        return float(np.sum((Q - np.eye(m)) ** 2) + beta * dirichlet)
    raise AssertionError(name)


PAIRS = (np.array([0, 2, 4, 6]), np.array([1, 3, 5, 7]))


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("beta", [0.3, 1.7])
def test_loss_matches_numpy(name, seed, beta):
    C, K, Z, A, reg = _problem(seed)
    value = objectives.loss(name, Z, A=A, beta=beta, pairs=PAIRS, reg=reg)
    assert value.shape == ()
    assert float(value) == pytest.approx(_ref_loss(name, Z, A, beta, PAIRS, reg), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
def test_loss_without_reg_is_lam_zero(name):
    C, K, Z, A, reg = _problem(2)
    kw = dict(A=A, beta=0.8, pairs=PAIRS)
    assert float(objectives.loss(name, Z, **kw)) == pytest.approx(_ref_loss(name, Z, A, 0.8, PAIRS), rel=1e-12)
    zeros = np.zeros((M, M))
    assert float(objectives.loss(name, Z, reg=zeros, **kw)) == float(objectives.loss(name, Z, **kw))


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
@pytest.mark.parametrize("lam", [0.0, 0.5, 3.0])
def test_loss_from_coef_is_loss_at_representer_form(name, lam):
    C, K, Z, A, reg = _problem(3, lam=lam)
    kw = dict(A=A, beta=0.6, pairs=PAIRS)
    from_coef = objectives.loss_from_coef(name, C, K, lam=lam, **kw)
    # barlow is minimum-norm, without a ridge term (SPEC.md §3.4): its lam is ignored.
    expected_reg = None if name == "barlow" else reg
    assert float(from_coef) == pytest.approx(_ref_loss(name, Z, A, 0.6, PAIRS, expected_reg), rel=1e-12)
    assert float(from_coef) == pytest.approx(
        float(objectives.loss(name, jnp.asarray(C @ K), reg=expected_reg, **kw)), rel=1e-13
    )


def test_ridge_term():
    C, K, Z, A, reg = _problem(4, lam=1.3)
    np.testing.assert_allclose(objectives.ridge_term(C, K, 1.3), reg, rtol=1e-13)
    # ||W||_HS^2 = tr(C K C^T) >= 0 for PSD K.
    assert float(jnp.trace(objectives.ridge_term(C, K, 1.0))) > 0


def test_lam_changes_the_loss_through_reg_only():
    C, K, Z, A, _ = _problem(5)
    base = float(objectives.loss_from_coef("contrastive", C, K, lam=0.0, A=A))
    ridge = np.asarray(C @ K @ C.T)
    lam = 0.4
    # ||Z Z^T + lam R||^2 = ||Z Z^T||^2 + 2 lam <Z Z^T, R> + lam^2 ||R||^2.
    G = Z @ Z.T
    expected = base + 2 * lam * np.sum(G * ridge) + lam**2 * np.sum(ridge**2)
    assert float(objectives.loss_from_coef("contrastive", C, K, lam=lam, A=A)) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------------------------------
# SPEC.md §2 identities


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_contrastive_at_lam_zero_is_gram_matching(seed):
    _, _, Z, A, _ = _problem(seed)
    G = Z.T @ Z
    expected = np.sum((G - A) ** 2) - np.sum(A**2)
    assert float(objectives.loss("contrastive", Z, A=A)) == pytest.approx(expected, rel=1e-11, abs=1e-12)


@pytest.mark.parametrize("beta", [0.0, 0.25, 1.0, 3.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_vicreg_at_lam_zero_is_contrastive_with_target_T(beta, seed):
    _, _, Z, A, _ = _problem(seed)
    G = Z.T @ Z
    T = np.eye(N) - beta / 2 * _laplacian(A)
    expected = np.sum((G - T) ** 2) - np.sum(T**2) + M
    assert float(objectives.loss("vicreg", Z, A=A, beta=beta)) == pytest.approx(expected, rel=1e-11, abs=1e-11)
    # Equivalently: vicreg(A) = contrastive with target T, plus M.
    assert float(objectives.loss("vicreg", Z, A=A, beta=beta)) == pytest.approx(
        float(objectives.loss("contrastive", Z, A=T)) + M, rel=1e-11, abs=1e-11
    )


def test_contrastive_and_vicreg_with_clique_graph():
    groups = [0, 0, 1, 1, 2, 2, 3, 3]
    A = np.asarray(graphs.from_groups(groups))
    _, _, Z, _, _ = _problem(6)
    # tr(Z A Z^T) = sum over sources of ||sum of its views' columns||^2.
    tr_zaz = sum(np.sum(Z[:, [2 * s, 2 * s + 1]].sum(axis=1) ** 2) for s in range(4))
    expected = np.sum((Z @ Z.T) ** 2) - 2 * tr_zaz
    assert float(objectives.loss("contrastive", Z, A=A)) == pytest.approx(expected, rel=1e-12)
    # tr(Z L Z^T) = (1/2) sum_ij A_ij ||z_i - z_j||^2 = sum over pairs of views of ||z_1 - z_2||^2.
    inv = sum(np.sum((Z[:, 2 * s] - Z[:, 2 * s + 1]) ** 2) for s in range(4))
    assert float(objectives.loss("vicreg_hard", Z, A=A)) == pytest.approx(inv, rel=1e-12)


def test_barlow_gamma_one_is_frobenius_distance_to_identity():
    _, _, Z, _, _ = _problem(7)
    Z1, Z2 = Z[:, PAIRS[0]], Z[:, PAIRS[1]]
    S = (Z1 @ Z2.T + Z2 @ Z1.T) / 2
    assert float(objectives.loss("barlow", Z, pairs=PAIRS)) == pytest.approx(np.sum((S - np.eye(M)) ** 2), rel=1e-12)
    assert float(objectives.loss("barlow", Z, pairs=PAIRS, gamma=1.0)) == float(
        objectives.loss("barlow", Z, pairs=PAIRS)
    )


@pytest.mark.parametrize("gamma", [0.0, 0.1, 5.0])
def test_barlow_gamma_weighs_off_diagonals(gamma):
    _, _, Z, _, _ = _problem(8)
    Z1, Z2 = Z[:, PAIRS[0]], Z[:, PAIRS[1]]
    S = (Z1 @ Z2.T + Z2 @ Z1.T) / 2
    diag = np.sum((np.diag(S) - 1) ** 2)
    off = np.sum(S**2) - np.sum(np.diag(S) ** 2)
    assert off > 0
    value = float(objectives.loss("barlow", Z, pairs=PAIRS, gamma=gamma))
    assert value == pytest.approx(diag + gamma * off, rel=1e-12)
    # Linear in gamma with slope = the off-diagonal mass.
    assert float(objectives.loss("barlow", Z, pairs=PAIRS, gamma=gamma + 1)) - value == pytest.approx(off, rel=1e-9)


def test_barlow_with_pairs_from_groups_and_three_views():
    groups = [0, 1, 2, 0, 1, 2, 0, 1]  # source 2 has two views, sources 0 and 1 three
    pairs = graphs.pairs_from_groups(groups)
    _, _, Z, _, _ = _problem(9)
    assert float(objectives.loss("barlow", Z, pairs=pairs)) == pytest.approx(
        _ref_loss("barlow", Z, pairs=pairs), rel=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_dirichlet_is_trace_of_zlz(seed):
    _, _, Z, A, _ = _problem(seed)
    expected = np.trace(Z @ _laplacian(A) @ Z.T)
    assert float(objectives.dirichlet(jnp.asarray(Z), jnp.asarray(A))) == pytest.approx(expected, rel=1e-12)
    assert float(objectives.dirichlet(jnp.asarray(Z), jnp.asarray(A))) >= 0
    # vicreg_hard is exactly the Dirichlet energy, whatever reg says.
    reg = np.eye(M)
    assert float(objectives.loss("vicreg_hard", Z, A=A, reg=reg)) == pytest.approx(expected, rel=1e-12)


def test_dirichlet_of_constant_rows_is_zero():
    _, _, _, A, _ = _problem(10)
    Z = np.outer(np.arange(1.0, M + 1), np.ones(N))
    assert abs(float(objectives.dirichlet(jnp.asarray(Z), jnp.asarray(A)))) < 1e-12


# ---------------------------------------------------------------------------------------------------------------------
# jit, gradients, dtypes


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
def test_loss_is_deterministic_and_traceable(name):
    C, K, Z, A, reg = _problem(11)
    kw = dict(A=A, beta=0.9, pairs=PAIRS, reg=reg)
    first = objectives.loss(name, Z, **kw)
    second = objectives.loss(name, Z, **kw)
    assert float(first) == float(second)

    # Differentiable in C through loss_from_coef, and usable inside jit; the gradient matches finite differences.
    def f(coef):
        return objectives.loss_from_coef(name, coef, K, lam=0.7, A=A, beta=0.9, pairs=PAIRS)

    g = jax.jit(jax.grad(f))(jnp.asarray(C))
    assert float(jax.jit(f)(jnp.asarray(C))) == pytest.approx(float(f(jnp.asarray(C))), rel=1e-13)
    direction = np.random.default_rng(12).normal(size=C.shape)
    eps = 1e-6
    fd = (float(f(jnp.asarray(C + eps * direction))) - float(f(jnp.asarray(C - eps * direction)))) / (2 * eps)
    assert float(jnp.sum(g * direction)) == pytest.approx(fd, rel=1e-6, abs=1e-9)


def test_loss_accepts_float32():
    _, _, Z, A, reg = _problem(13)
    value = objectives.loss("vicreg", Z.astype(np.float32), A=A, reg=reg)
    assert value.dtype == jnp.float32
    assert float(value) == pytest.approx(_ref_loss("vicreg", Z, A, 1.0, None, reg), rel=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# Errors


def test_unknown_objective_lists_the_valid_ones():
    _, _, Z, A, _ = _problem()
    with pytest.raises(ValueError, match="objective must be one of") as info:
        objectives.loss("simclr", Z, A=A)
    for name in objectives.OBJECTIVES:
        assert name in str(info.value)
    assert "simclr" in str(info.value)
    with pytest.raises(ValueError, match="objective must be one of"):
        objectives.check_objective("VICReg")
    assert objectives.check_objective("barlow") == "barlow"
    assert kssl.OBJECTIVES == objectives.OBJECTIVES


@pytest.mark.parametrize("name", ["contrastive", "vicreg", "vicreg_hard"])
def test_missing_A(name):
    _, _, Z, _, _ = _problem()
    with pytest.raises(ValueError, match="needs the relationship matrix A"):
        objectives.loss(name, Z)


def test_barlow_needs_pairs():
    _, _, Z, A, _ = _problem()
    with pytest.raises(ValueError, match="barlow needs pairs"):
        objectives.loss("barlow", Z, A=A)
    with pytest.raises(ValueError, match="pairs must be two non-empty 1-D index arrays of equal length"):
        objectives.loss("barlow", Z, pairs=(np.array([0, 1]), np.array([2])))
    with pytest.raises(ValueError, match="pairs must be two non-empty 1-D"):
        objectives.loss("barlow", Z, pairs=(np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int)))


@pytest.mark.parametrize("name", ["contrastive", "vicreg", "vicreg_hard"])
def test_A_shape_mismatch(name):
    _, _, Z, _, _ = _problem()
    with pytest.raises(ValueError, match=r"A must be \(8, 8\) to match the 8 views, got shape \(7, 7\)"):
        objectives.loss(name, Z, A=np.eye(7))
    with pytest.raises(ValueError, match=r"A must be a square \(N, N\) matrix, got shape \(8, 7\)"):
        objectives.loss(name, Z, A=np.eye(8)[:, :7])


@pytest.mark.parametrize("name", objectives.OBJECTIVES)
def test_reg_shape_mismatch(name):
    _, _, Z, A, _ = _problem()
    with pytest.raises(ValueError, match=r"reg must be \(3, 3\), got \(8, 8\)"):
        objectives.loss(name, Z, A=A, pairs=PAIRS, reg=np.eye(8))


@pytest.mark.parametrize("Z", [np.ones(8), np.ones((2, 3, 8)), np.array(1.0)])
def test_Z_not_2d(Z):
    with pytest.raises(ValueError, match="Z must be a 2-D"):
        objectives.loss("contrastive", Z, A=np.eye(8))


def test_loss_from_coef_shape_errors():
    C, K, _, A, _ = _problem()
    with pytest.raises(ValueError, match="A must be"):
        objectives.loss_from_coef("contrastive", C, K, lam=0.1, A=np.eye(5))
    with pytest.raises(ValueError, match="objective must be one of"):
        objectives.loss_from_coef("nope", C, K, A=A)
