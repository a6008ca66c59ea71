"""Feature-space closed forms (kernel_ssl_jax/lowrank.py) against the dense path (SPEC.md §3), sharding, numerics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import kernel_ssl_jax as kssl
from kernel_ssl_jax import eigenbasis, featuremaps, graphs, kernels, lowrank, objectives

OBJECTIVES = kssl.OBJECTIVES


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def loss_gap(a, b):
    # barlow's optimum is 0: compare absolutely there.
    return abs(float(a) - float(b)) / max(1.0, abs(float(b)))


def problem(n=15, a=3, d=6, seed=0):
    """N = n a views (N > d), clique groups, a random weighted graph (a unique optimum), pairs, test points."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n * a, d))
    groups = np.repeat(np.arange(n), a)
    W = rng.uniform(size=(n * a, n * a))
    A = (np.triu(W, 1) + np.triu(W, 1).T) * (2.0 / (n * a))
    return X, groups, A, graphs.pairs_from_groups(groups), rng.normal(size=(7, d))


def graph_kw(objective, graph, groups, A, pairs, dense=False):
    if objective == "barlow":
        return dict(pairs=pairs)
    if graph == "groups":
        return dict(A=graphs.from_groups(groups)) if dense else dict(groups=groups)
    return dict(A=A)


def assert_same(sol, ref, X_test, tol):
    assert loss_gap(sol.loss, ref.loss) < tol, (float(sol.loss), float(ref.loss))
    assert rel(sol.induced_kernel(X_test), ref.induced_kernel(X_test)) < tol
    np.testing.assert_allclose(sol.eigenvalues, ref.eigenvalues, rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------------------------------
# Exactness: linear features and Nystrom on all views reproduce the dense closed form


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("objective,graph", [(o, g) for o in OBJECTIVES for g in ("groups", "weighted")
                                             if not (o == "barlow" and g == "weighted")])  # barlow takes pairs
def test_linear_features_equal_the_dense_path(objective, lam, graph):
    """psi(x) = x: K = X X^T is rank-deficient (N = 45 > d = 6), every objective is a 6 x 6 problem."""
    X, groups, A, pairs, X_test = problem()
    k = kernels.linear()
    ref = kssl.solve(objective, X, kernel=k, dim=3, lam=lam, method="dense",
                     **graph_kw(objective, graph, groups, A, pairs, dense=True))
    sol = lowrank.solve_features(objective, X, kernel=k, dim=3, lam=lam, method="linear",
                                 **graph_kw(objective, graph, groups, A, pairs))
    assert sol.method == "features-linear" and sol.coef.shape == (3, 6)
    assert_same(sol, ref, X_test, 1e-8)
    # The nonzero eigenvalues of K are those of X^T X.
    np.testing.assert_allclose(np.sort(sol.gram_eigenvalues)[-6:], np.sort(ref.gram_eigenvalues)[-6:], rtol=1e-10)


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_nystrom_on_all_views_equals_the_dense_path(objective, lam):
    X, groups, A, pairs, X_test = problem(n=12, a=2, d=4)
    k = kernels.rbf(1.0)  # well conditioned on these 24 points: every eigenvalue of K is kept by both paths
    kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A)
    ref = kssl.solve(objective, X, kernel=k, dim=3, lam=lam, method="dense", **kw)
    sol = lowrank.solve_features(objective, X, kernel=k, dim=3, lam=lam, landmarks=X, **kw)
    assert sol.method == "features-nystrom" and sol.kernel is k and sol.train_x.shape == X.shape
    assert_same(sol, ref, X_test, 1e-8)


def test_clique_graph_given_as_A_or_groups_is_the_same_problem():
    X, groups, _, _, X_test = problem()
    k = kernels.linear()
    a = lowrank.solve_features("vicreg", X, graphs.from_groups(groups), kernel=k, dim=3, method="linear")
    b = lowrank.solve_features("vicreg", X, groups=groups, kernel=k, dim=3, method="linear")
    assert loss_gap(a.loss, b.loss) < 1e-12
    assert rel(a.induced_kernel(X_test), b.induced_kernel(X_test)) < 1e-10


def test_loss_from_stats_is_the_spec_loss():
    X, groups, A, pairs, _ = problem()
    W = jax.random.normal(jax.random.key(0), (3, X.shape[1]))
    fm = featuremaps.feature_map(kernels.linear(), "identity", points=X)
    Z = W @ X.T
    for objective in OBJECTIVES:
        kw = dict(pairs=pairs) if objective == "barlow" else dict(A=A)
        stats = lowrank.feature_stats(objective, fm, X, **kw)
        got = lowrank.loss_from_stats(objective, W, stats, lam=0.2, beta=0.7)
        reg = None if objective == "barlow" else 0.2 * W @ W.T
        want = objectives.loss(objective, Z, beta=0.7, reg=reg, **kw)
        np.testing.assert_allclose(float(got), float(want), rtol=1e-10)


def test_solve_psi_on_explicit_features():
    X, groups, _, _, _ = problem()
    W, eig, loss_value = lowrank.solve_psi("contrastive", X, groups=groups, dim=3, lam=0.3)
    sol = lowrank.solve_features("contrastive", X, groups=groups, kernel=kernels.linear(), dim=3, lam=0.3,
                                 method="linear")
    np.testing.assert_allclose(W, sol.coef, atol=1e-12)
    np.testing.assert_allclose(float(loss_value), float(sol.loss), rtol=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Approximation error against the exact path


def views(n=60, a=4, d=4, seed=1):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(n, d))
    X = np.repeat(src, a, axis=0) + 0.1 * rng.normal(size=(n * a, d))
    return X, np.repeat(np.arange(n), a), rng.normal(size=(50, d))


def test_nystrom_error_decreases_with_the_number_of_landmarks():
    X, groups, X_test = views()
    k = kernels.rbf(kssl.median_bandwidth(X))
    exact = kssl.solve("contrastive", X, graphs.from_groups(groups), kernel=k, dim=8, lam=0.1)
    K_exact = exact.induced_kernel(X_test)
    errs, gaps = [], []
    for m in (10, 40, 160):
        runs = [lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=8, lam=0.1, n_landmarks=m,
                                       key=jax.random.key(s)) for s in range(2)]
        errs.append(np.mean([rel(r.induced_kernel(X_test), K_exact) for r in runs]))
        gaps.append(np.mean([loss_gap(r.loss, exact.loss) for r in runs]))
    print("kmeans++ Nystrom, m = 10, 40, 160 of N = 240: induced-kernel error", errs, "loss gap", gaps)
    assert errs[0] > errs[1] > errs[2] and gaps[0] > gaps[1] > gaps[2]
    assert errs[2] < 0.01 and gaps[2] < 1e-5


def test_random_features_approach_the_exact_path_as_D_grows():
    X, groups, X_test = views()
    k = kernels.rbf(kssl.median_bandwidth(X))
    exact = kssl.solve("contrastive", X, graphs.from_groups(groups), kernel=k, dim=8, lam=0.1)
    K_exact = exact.induced_kernel(X_test)
    errs, gaps = [], []
    for D in (16, 256):
        runs = [lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=8, lam=0.1, method="rff",
                                       n_features=D, key=jax.random.key(s)) for s in range(3)]
        errs.append(np.mean([rel(r.induced_kernel(X_test), K_exact) for r in runs]))
        gaps.append(np.mean([loss_gap(r.loss, exact.loss) for r in runs]))
    print("rff D = 16, 256: induced-kernel error", errs, "loss gap", gaps)
    assert errs[0] > errs[1] and gaps[0] > gaps[1]
    assert errs[1] < 0.4 and gaps[1] < 1e-2


def test_float32_feature_path_is_accurate():
    """float32 vs float64 with the same landmarks: bounded filter (lam > 0) and K_mm cut-off sqrt(m) eps."""
    X, groups, X_test = views()
    k = kernels.rbf(kssl.median_bandwidth(X))
    s64 = lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=8, lam=0.1, n_landmarks=40)
    s32 = lowrank.solve_features("contrastive", X, groups=groups, kernel=k, dim=8, lam=0.1, landmarks=s64.train_x,
                                 dtype=jnp.float32)
    assert s32.coef.dtype == jnp.float32
    assert loss_gap(s32.loss, s64.loss) < 1e-4
    # The subspace error scales as eps / eigengap; this problem has a small gap at dim 8 (3.82 vs 3.85).
    assert rel(s32.induced_kernel(X_test.astype(np.float32)), s64.induced_kernel(X_test)) < 1e-2


# --------------------------------------------------------------------------------------------------------------------
# Multi-device: rows sharded over the two fake CPU devices of conftest


@pytest.mark.parametrize("objective,graph", [("contrastive", "groups"), ("vicreg", "weighted"),
                                             ("vicreg_hard", "groups"), ("barlow", "pairs")])
def test_sharded_equals_single_device(objective, graph):
    assert len(jax.devices()) == 2
    # N = 45 (odd: one zero row pads it), 15 sources (odd: the source sums are padded too), 4 rows per block.
    X, groups, A, pairs, X_test = problem()
    if graph == "pairs":
        pairs = (pairs[0][:-1], pairs[1][:-1])  # an odd number of pairs
    kw = dict(groups=groups) if graph == "groups" else dict(A=A) if graph == "weighted" else dict(pairs=pairs)
    fm = featuremaps.feature_map(kernels.rbf(2.0), "nystrom", n_features=20, key=jax.random.key(0), points=X)
    one = lowrank.feature_stats(objective, fm, X, block_size=4, **kw)
    two = lowrank.feature_stats(objective, fm, X, block_size=4, shard=True, **kw)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-10, atol=1e-10 * float(jnp.max(one.M2)))
    s1 = lowrank.solve_features(objective, X, kernel=kernels.rbf(2.0), dim=3, lam=0.1, feature_map=fm, **kw)
    s2 = lowrank.solve_features(objective, X, kernel=kernels.rbf(2.0), dim=3, lam=0.1, feature_map=fm,
                                devices=jax.devices(), block_size=4, **kw)
    assert loss_gap(s2.loss, s1.loss) < 1e-10
    assert rel(s2.induced_kernel(X_test), s1.induced_kernel(X_test)) < 1e-10


def test_feature_matrix_is_sharded_by_rows():
    X = problem()[0][:44]
    fm = featuremaps.feature_map(kernels.rbf(2.0), "rff", n_features=16, key=jax.random.key(0), points=X)
    Psi = lowrank.feature_matrix(fm, X, block_size=11, shard=True)  # 2 devices x 2 blocks x 11 rows: no padding
    assert tuple(Psi.sharding.spec)[:1] == tuple(P("data", None))[:1] and len(Psi.sharding.device_set) == 2
    np.testing.assert_allclose(Psi, fm.batch(X), rtol=1e-12, atol=1e-12)
    odd = lowrank.feature_matrix(fm, problem()[0], shard=True)  # N = 45: the padding row is dropped
    np.testing.assert_allclose(odd, fm.batch(problem()[0]), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Robust numerics: no NaN for finite input, on every path, in float64 and float32


def _robust_case(case):
    rng = np.random.default_rng(3)
    base = rng.normal(size=(12, 4))
    groups = np.repeat(np.arange(12), 2)
    X = np.repeat(base, 2, axis=0) + 0.05 * rng.normal(size=(24, 4))
    k = kernels.rbf(kssl.median_bandwidth(X))
    if case == "duplicates":
        X = np.repeat(base, 2, axis=0)  # the two views of a source coincide: K is singular (rank 12)
    elif case == "tiny_bandwidth":
        k = kernels.rbf(1e-3)  # K = I
    elif case == "huge_bandwidth":
        k = kernels.rbf(1e4)  # K = all ones up to 1e-8
    return X, groups, k, rng.normal(size=(5, 4))


def _finite_or_clear_error(X_test, fn, *args, **kwargs):
    try:
        sol = fn(*args, **kwargs)
    except ValueError as e:  # a rank too small for dim is reported, never NaN
        assert "largest feasible dim" in str(e), str(e)
        return None
    for value in (sol.coef, sol.loss, sol.eigenvalues, sol.features(X_test)):
        assert np.all(np.isfinite(np.asarray(value))), sol.method
    return sol


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_no_nan_for_finite_input(dtype):
    """Duplicated points (singular K), K = I, K = all ones: finite values or a clear error, on every path.

    Paths: `kssl.solve` dense at lam = 0 (the pseudo-inverses: contrastive, and barlow's K^{+1/2}), `kssl.solve`
    auto (the Cholesky path of the clique contrastive problem, lam = 0.1), the feature path with random features for
    every objective and with Nystrom (degenerate K_mm). Shapes are shared across cases: each compiles once per dtype.
    """
    solved = 0
    for case in ("duplicates", "tiny_bandwidth", "huge_bandwidth"):
        X, groups, k, X_test = _robust_case(case)
        A = graphs.from_groups(groups)
        pairs = graphs.pairs_from_groups(groups)
        for objective in OBJECTIVES:
            fkw = dict(pairs=pairs) if objective == "barlow" else dict(groups=groups)
            sol = _finite_or_clear_error(X_test, lowrank.solve_features, objective, X, kernel=k, dim=2, lam=0.1,
                                         method="rff", n_features=32, dtype=dtype, **fkw)
            if sol is not None:
                assert sol.coef.dtype == dtype
                solved += 1
        for objective, kw in (("contrastive", dict(A=A)), ("barlow", dict(pairs=pairs))):
            sol = _finite_or_clear_error(X_test, kssl.solve, objective, X, kernel=k, dim=2, lam=0.0, method="dense",
                                         dtype=dtype, **kw)
            solved += sol is not None
        # The Cholesky path raises the rank error of every path where K has rank < dim (huge bandwidth: K ~ ones).
        structured = _finite_or_clear_error(X_test, kssl.solve, "contrastive", X, A, kernel=k, dim=2, lam=0.1,
                                            dtype=dtype)
        assert structured is None or structured.method.startswith("structured")
        solved += structured is not None
        nystrom = _finite_or_clear_error(X_test, lowrank.solve_features, "contrastive", X, groups=groups, kernel=k,
                                         dim=2, lam=0.1, n_landmarks=16, dtype=dtype)
        assert nystrom is None or nystrom.coef.dtype == dtype
        solved += nystrom is not None
    assert solved >= 8


# --------------------------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs,match", [
    (dict(groups="both"), "exactly one of A"),
    (dict(A=None), "exactly one of A"),
    (dict(method="exact"), "method must be one of"),
    (dict(method="linear"), "linear kernel only"),
    (dict(method="rff", kernel=kernels.ntk(1)), "rbf or laplacian"),
    (dict(n_landmarks=100), "exceeds the number of views"),
    (dict(pairs=([0], [1])), "barlow only"),
    (dict(objective="vicreg_hard", dim=40), "largest feasible dim"),
    (dict(objective="simclr"), "objective must be one of"),
])
def test_bad_arguments(kwargs, match):
    X, groups, A, _, _ = problem()
    kw = dict(objective="contrastive", A=A, kernel=kernels.rbf(1.0), dim=3, n_landmarks=20)
    kw.update(kwargs)
    if kw.get("groups") == "both":
        kw["groups"] = groups
    objective = kw.pop("objective")
    with pytest.raises(ValueError, match=match):
        lowrank.solve_features(objective, X, **kw)


def test_feature_stats_validates_the_graph():
    X = problem()[0]
    fm = featuremaps.feature_map(kernels.linear(), "identity", points=X)
    with pytest.raises(ValueError, match="exactly one of A"):
        lowrank.feature_stats("contrastive", fm, X)
    with pytest.raises(ValueError, match="barlow needs pairs"):
        lowrank.feature_stats("barlow", fm, X)


def test_barlow_infeasible_dim_names_the_largest_feasible_one():
    X, groups, _, _, _ = problem()
    pairs = (np.arange(0, 4), np.arange(4, 8))  # four pairs: at most four correlated directions
    with pytest.raises(ValueError, match="largest feasible dim"):
        lowrank.solve_features("barlow", X, kernel=kernels.linear(), dim=5, method="linear", pairs=pairs)


def test_nystrom_statistics_from_kernel_columns_equal_those_of_the_features(monkeypatch):
    # N >= 4 m and a well-conditioned K_mm: the statistics are reduced in kernel columns and projected after
    # (`lowrank._columns_pay`); the same statistics as from the features, on one device and sharded over two.
    # vicreg with groups needs all three (M2, PD, PA).
    objective = "vicreg"
    X, groups, _, _, _ = problem()
    fm = featuremaps.feature_map(kernels.rbf(2.0), "nystrom", n_features=8, key=jax.random.key(0), points=X)
    assert lowrank._columns_pay(fm, X.shape[0])
    cols = [lowrank.feature_stats(objective, fm, X, groups=groups, block_size=4, shard=s) for s in (False, True)]
    monkeypatch.setattr(lowrank, "_columns_pay", lambda fmap, n: False)
    ref = lowrank.feature_stats(objective, fm, X, groups=groups, block_size=4)
    for st in cols:
        for a, b in zip(st, ref, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-9 * float(jnp.max(ref.M2)))
    # the second moment of a block: BLAS syrk on CPU, the product elsewhere (no host round trip there)
    from kernel_ssl_jax import eigenbasis

    Pb = jnp.asarray(X[:10])
    np.testing.assert_allclose(eigenbasis.moment(Pb), Pb.T @ Pb, rtol=1e-12)
    lowered = jax.jit(eigenbasis.moment).trace(Pb)
    assert "callback" in lowered.lower().as_text()
    assert "callback" not in lowered.lower(lowering_platforms=("cuda",)).as_text()


def test_krylov_fallback_on_the_feature_path_is_recorded(monkeypatch):
    """The contrastive pencil's block Krylov solver, forced (here D is small) and starved (one pass of one block),
    does not converge: the exact subset solver gives the solution and `Solution.reason` says why."""
    X, groups, _, _, _ = problem()
    kw = dict(groups=groups, kernel=kssl.kernels.rbf(2.0), dim=2, lam=0.1, n_landmarks=40)
    ref = lowrank.solve_features("contrastive", X, **kw)  # D < KRYLOV_MIN_N: the exact route
    assert ref.reason == ""
    monkeypatch.setattr(eigenbasis, "krylov_pays", lambda *args, **kwargs: True)
    monkeypatch.setattr(eigenbasis, "solve_pencil_krylov",
                        functools.partial(eigenbasis.solve_pencil_krylov, depth=0, passes=1))
    sol = lowrank.solve_features("contrastive", X, **kw)
    assert "did not converge in 1 passes" in sol.reason
    assert float(sol.loss) == pytest.approx(float(ref.loss), rel=1e-10)
