"""The dense path of kernel_ssl_jax/spectral.py (one eigh of K, one partial eigh of an r x r target): the partial
eigensolver against the full one, float32 against float64, and degenerate Grams."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.datasets import load_digits

import kernel_ssl_jax as kssl
from kernel_ssl_jax import eigenbasis, graphs, kernels, objectives, spectral


def views(n=40, a=4, d=8, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n, d))
    return np.repeat(src, a, axis=0) + noise * rng.normal(size=(n * a, d)), np.repeat(np.arange(n), a)


def graph_kw(objective, X, groups):
    # A k-NN graph is not a view-clique graph: contrastive takes the dense path, not the structured one.
    if objective == "barlow":
        return dict(pairs=graphs.pairs_from_groups(groups))
    return dict(A=np.asarray(graphs.knn(X, 5)))


def rel(a, b):
    return np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)) / np.linalg.norm(np.asarray(b, float))


# ----------------------------------------------------------------------------------------------------------------
# The partial eigensolver


def symmetric(n, seed=0, dtype=np.float64):
    B = np.random.default_rng(seed).normal(size=(n, n))
    return (B + B.T).astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("largest", [True, False])
def test_partial_eigh_matches_full(dtype, tol, largest):
    R = symmetric(30, dtype=dtype)
    k = 6
    w, V = jax.jit(eigenbasis.eigh_extreme, static_argnums=(1, 2))(jnp.asarray(R), k, largest)
    assert w.dtype == dtype and V.shape == (30, k)
    w_ref, V_ref = np.linalg.eigh(R.astype(float))
    w_ref, V_ref = (w_ref[::-1][:k], V_ref[:, ::-1][:, :k]) if largest else (w_ref[:k], V_ref[:, :k])
    np.testing.assert_allclose(np.asarray(w, float), w_ref, rtol=tol, atol=tol * np.abs(w_ref).max())
    assert np.max(scipy.linalg.subspace_angles(np.asarray(V, float), V_ref)) < 100 * tol


def test_partial_eigh_under_vmap_and_fallbacks():
    R = jnp.asarray(symmetric(20))
    scales = jnp.asarray([1.0, -2.0, 0.5])
    w, _ = jax.jit(jax.vmap(lambda c: eigenbasis.eigh_extreme(c * R, 4, True)))(scales)
    for i, c in enumerate(np.asarray(scales)):
        np.testing.assert_allclose(w[i], np.linalg.eigvalsh(c * np.asarray(R))[::-1][:4], rtol=1e-12)
    # no callback where the subset is not cheaper (k > n / 2) nor on an accelerator (the copy to the host)
    lowered = jax.jit(eigenbasis.eigh_extreme, static_argnums=(1, 2)).trace(R, 4, True)
    assert "callback" in lowered.lower().as_text()
    assert "callback" not in lowered.lower(lowering_platforms=("cuda",)).as_text()
    assert "callback" not in jax.jit(eigenbasis.eigh_extreme, static_argnums=(1, 2)).lower(R, 11, True).as_text()
    # NaN in, NaN out, as jnp.linalg.eigh (no exception from the host)
    w_nan, _ = eigenbasis.eigh_extreme(jnp.full((20, 20), jnp.nan), 3, True)
    assert np.all(np.isnan(np.asarray(w_nan)))


def test_partial_eigh_inside_a_degenerate_cluster():
    # The vicreg target of a view-clique graph has eigenvalue 1 with multiplicity n (F L F vanishes on the clique
    # indicators). Asked for the top 8 of this one (N = 400 digits views, 2 BLAS threads), ?syevr returned 6 (or
    # none; scipy/scipy#13913): the host falls back to the full driver. solve does not even try (more connected
    # components than dim) and gets 8 orthonormal eigenvectors of eigenvalue 1.
    X0 = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    N, a, lam = 400, 4, 0.1
    X = np.repeat(X0[: N // a], a, axis=0) + 0.05 * rng.normal(size=(N, 64))
    groups = np.repeat(np.arange(N // a), a)
    k = kernels.rbf(float(np.median(np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1)))))
    s, U = np.linalg.eigh(np.asarray(kssl.gram(k, X)))
    keep = s > N * np.finfo(float).eps * s.max()
    s, U = s[keep], U[:, keep]
    f = np.sqrt(s / (s + lam))
    A = np.asarray(graphs.from_groups(groups))
    R = np.eye(len(s)) - 0.5 * f[:, None] * (U.T @ (np.diag(A.sum(1)) - A) @ U) * f[None, :]
    R = (R + R.T) / 2
    w, V = eigenbasis._eigh_subset_host(R, len(s) - 8, len(s) - 1)
    np.testing.assert_allclose(w, 1.0, atol=1e-10)
    np.testing.assert_allclose(V.T @ V, np.eye(8), atol=1e-10)
    np.testing.assert_allclose(R @ V, V * w, atol=1e-10)
    assert eigenbasis.subset_cuts_a_cluster("vicreg", A, 8) and eigenbasis.subset_cuts_a_cluster("vicreg_hard", A, 8)
    assert not eigenbasis.subset_cuts_a_cluster("vicreg", A, N // a)
    assert not eigenbasis.subset_cuts_a_cluster("contrastive", A, 8)
    assert not eigenbasis.subset_cuts_a_cluster("vicreg", np.asarray(graphs.knn(X, 10)), 8)
    sol = kssl.solve("vicreg", X, A, kernel=k, dim=8, lam=lam, method="dense")
    np.testing.assert_allclose(sol.eigenvalues, 1.0, atol=1e-10)
    assert float(sol.loss) == pytest.approx(0.0, abs=1e-8)  # dim - sum(mu^2)


@pytest.mark.parametrize("failure", ["short", "raise"])
def test_partial_eigh_falls_back_when_the_subset_driver_fails(failure, monkeypatch):
    # Whether ?syevr comes up short above depends on the BLAS threads; here it always does (or raises).
    full_eigh = scipy.linalg.eigh

    def flaky(R, *args, driver=None, subset_by_index=None, **kwargs):
        if driver == "evr":
            if failure == "raise":
                raise np.linalg.LinAlgError("did not converge")
            w, V = full_eigh(R, *args, driver=driver, subset_by_index=subset_by_index, **kwargs)
            return w[:1], V[:, :1]
        return full_eigh(R, *args, driver=driver, subset_by_index=subset_by_index, **kwargs)

    monkeypatch.setattr(scipy.linalg, "eigh", flaky)
    R = symmetric(12)
    w, V = eigenbasis._eigh_subset_host(R, 8, 11)
    w_ref = np.linalg.eigvalsh(R)[8:]
    np.testing.assert_allclose(w, w_ref, rtol=1e-12)
    np.testing.assert_allclose(R @ V, V * w, atol=1e-10)


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_dense_partial_equals_full_eigh(objective, lam, monkeypatch):
    # The dense path with the subset driver (the default) against the same code with the full eigh: the threshold is
    # read when a function is traced, so the jitted solvers are replaced by fresh jits of the same functions, which
    # trace again under the patched threshold. Losses and induced kernels to 1e-10 relative (a k-NN graph: no ties).
    X, groups = views(n=15, a=4)
    kw = dict(kernel=kernels.rbf(float(kssl.median_bandwidth(X)) / 2), dim=5, lam=lam, beta=0.5, method="dense",
              **graph_kw(objective, X, groups))
    partial = kssl.solve(objective, X, **kw)
    monkeypatch.setattr(eigenbasis, "PARTIAL_EIGH_MAX_FRACTION", 0.0)
    for name, static in (("_coefficients", ("objective", "dim", "factored", "partial")), ("_dense_cholesky", ("dim",))):
        monkeypatch.setattr(spectral, name, jax.jit(getattr(spectral, name).__wrapped__, static_argnames=static))
    for name in ("_eigh_subset_host", "_eigh_pencil_host"):  # the full solve must not reach a subset driver
        monkeypatch.setattr(eigenbasis, name, lambda *a, **k: pytest.fail("subset driver called"))
    full = kssl.solve(objective, X, **kw)  # (contrastive, lam > 0: dense-cholesky against dense-eigh)
    Xt = views(n=6, a=1, seed=5)[0]
    assert float(partial.loss) == pytest.approx(float(full.loss), rel=1e-10, abs=1e-12)
    assert rel(partial.induced_kernel(Xt), full.induced_kernel(Xt)) < 1e-10


# ----------------------------------------------------------------------------------------------------------------
# float32 against float64


FLOAT32_LOSS_TOL = 1e-4  # measured <= 1.1e-5 on these problems (relative; absolute for barlow, whose loss is 0)
FLOAT32_KSTAR_TOL = 5e-3  # induced kernel out of sample, relative (float32 eigenvectors): measured <= 2.6e-4


def float32_gap(objective, X, groups, kernel, lam):
    kw = dict(kernel=kernel, dim=8, lam=lam, method="dense", **graph_kw(objective, X, groups))
    s64 = kssl.solve(objective, X, **kw)
    s32 = kssl.solve(objective, X, dtype=jnp.float32, **kw)
    assert s32.coef.dtype == jnp.float32 and s64.coef.dtype == jnp.float64
    Xt = views(n=20, a=1, seed=7)[0]
    loss_gap = abs(float(s32.loss) - float(s64.loss)) / max(abs(float(s64.loss)), 1.0)
    return loss_gap, rel(s32.induced_kernel(Xt.astype(np.float32)), s64.induced_kernel(Xt))


@pytest.mark.parametrize("objective", objectives.OBJECTIVES)
@pytest.mark.parametrize("lam", [0.0, 0.1])
def test_float32_matches_float64(objective, lam):
    """A Gram with condition number ~1e3 (RBF at a quarter of the median distance): every objective, either lam.

    vicreg and vicreg_hard (at any lam) and the lam = 0 pseudo-inverses depend on K's smallest kept eigenvalues: in
    float32 they agree with float64 only when those lie well above the cut-off `N * eps` (2e-5 here). See
    `test_float32_contrastive_keeps_directions_below_the_cutoff` for a Gram that is not.
    """
    X, groups = views()
    k = kernels.rbf(float(kssl.median_bandwidth(X)) / 4)
    loss_gap, kstar_gap = float32_gap(objective, X, groups, k, lam)
    assert loss_gap < FLOAT32_LOSS_TOL
    assert kstar_gap < FLOAT32_KSTAR_TOL


@pytest.mark.parametrize("objective", ["contrastive", "barlow"])
def test_float32_contrastive_keeps_directions_below_the_cutoff(objective):
    # RBF at the median distance: ~100 of K's 160 eigenvalues lie below N * eps32 * max, where s / (s + lam) is not
    # negligible. Truncating them there cost 3.8e-4 of the contrastive loss and 1.2e-2 of the induced kernel
    # (lam = 0.1; 7.6e-2 of the loss at N = 2000); the bounded filter keeps them: 2e-7 and 3e-5. barlow keeps the
    # cut-off (its loss is 0 either way); it is here for the induced kernel.
    X, groups = views()
    k = kernels.rbf(float(kssl.median_bandwidth(X)))
    s = np.linalg.eigvalsh(np.asarray(kssl.gram(k, X)))
    assert np.sum(s < len(X) * np.finfo(np.float32).eps * s.max()) > 50
    loss_gap, kstar_gap = float32_gap(objective, X, groups, k, lam=0.1)
    assert loss_gap < FLOAT32_LOSS_TOL
    assert kstar_gap < FLOAT32_KSTAR_TOL


# ----------------------------------------------------------------------------------------------------------------
# Degenerate Grams


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
@pytest.mark.parametrize("case", ["duplicates", "all_ones"])
def test_dense_finite_on_degenerate_grams(case, dtype):
    """Duplicated views (rank n of N) and K = all ones (rank 1), lam > 0: finite values or the documented error."""
    X, groups = views(n=10, a=2, d=4)
    k = kernels.rbf(float(kssl.median_bandwidth(X)))
    if case == "duplicates":
        X = np.repeat(X[::2], 2, axis=0)
    else:
        k = kernels.rbf(1e4)
    Xt = views(n=5, a=1, d=4, seed=3)[0]
    for objective in objectives.OBJECTIVES:
        try:
            sol = kssl.solve(objective, X, kernel=k, dim=2, lam=0.1, method="dense", dtype=dtype,
                             **graph_kw(objective, X, groups))
        except ValueError as e:
            assert "largest feasible dim" in str(e), str(e)
            continue
        for value in (sol.coef, sol.loss, sol.eigenvalues, sol.features(Xt.astype(dtype))):
            assert np.all(np.isfinite(np.asarray(value))), (objective, case)
