"""Tests for kernel_ssl_jax.graphs against numpy references and scikit-learn's kneighbors_graph (SPEC.md §1)."""

import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.neighbors import kneighbors_graph

import kernel_ssl_jax as kssl
from kernel_ssl_jax import graphs


def _ref_from_groups(groups):
    g = np.asarray(groups)
    n = g.shape[0]
    A = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            A[i, j] = float(g[i] == g[j])
    return A


def _points(n=20, d=3, seed=0):
    # Continuous random points: no two pairwise distances tie (almost surely), so neighbours are unique.
    return np.random.default_rng(seed).normal(size=(n, d))


def _has_distinct_distances(X):
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)[np.triu_indices(X.shape[0], 1)]
    return np.min(np.diff(np.sort(d))) > 1e-9


# ---------------------------------------------------------------------------------------------------------------------
# from_groups


@pytest.mark.parametrize(
    "groups",
    [
        [0, 0, 1, 1, 2, 2],  # contiguous
        [0, 1, 2, 0, 1, 2],  # interleaved views
        [7, 3, 7, 11, 3, 11, 7],  # non-contiguous, unsorted ids, unequal group sizes
        [5, 5, 5],  # one source
        [4, 2, 9, 1],  # every view its own source
        np.array([2.0, 1.0, 2.0, 1.0]),  # integral floats are accepted
    ],
)
def test_from_groups_matches_numpy(groups):
    A = graphs.from_groups(groups)
    np.testing.assert_array_equal(A, _ref_from_groups(groups))
    assert A.dtype == jnp.float64  # conftest enables x64: JAX's default float
    assert graphs.from_groups(groups, dtype=jnp.float32).dtype == jnp.float32


def test_from_groups_is_block_diagonal_after_sorting():
    rng = np.random.default_rng(1)
    n_src, a = 5, 3
    groups = rng.permutation(np.repeat(rng.choice(100, n_src, replace=False), a))
    A = np.asarray(graphs.from_groups(groups))
    order = np.argsort(groups, kind="stable")
    expected = np.kron(np.eye(n_src), np.ones((a, a)))
    np.testing.assert_array_equal(A[np.ix_(order, order)], expected)
    # Eigenvalues: a with multiplicity n_src, 0 otherwise (SPEC.md §3.5).
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(A))[::-1][:n_src], a, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(A)[: n_src * (a - 1)], 0, atol=1e-12)


def test_check_groups_relabels_in_order_of_first_appearance():
    np.testing.assert_array_equal(graphs.check_groups([7, 3, 7, 11, 3]), [0, 1, 0, 2, 1])
    np.testing.assert_array_equal(graphs.check_groups(np.array([2.0, 2.0, -1.0])), [0, 0, 1])
    assert graphs.check_groups([1, 1, 0], n=3).dtype == np.int32


@pytest.mark.parametrize(
    ("groups", "n", "match"),
    [
        (np.zeros((2, 2), dtype=int), None, "1-D"),
        (np.array(3), None, "1-D"),
        ([0.5, 1.0, 1.0], None, "integer"),
        ([0.0, np.nan], None, "integer"),
        (["a", "b"], None, "integer"),
        ([0, 0, 1, 1], 5, "expected length 5, got 4"),
    ],
)
def test_check_groups_errors(groups, n, match):
    with pytest.raises(ValueError, match=match):
        graphs.check_groups(groups, n)


def test_from_groups_rejects_bad_groups():
    with pytest.raises(ValueError, match="1-D"):
        graphs.from_groups(np.zeros((2, 3), dtype=int))


# ---------------------------------------------------------------------------------------------------------------------
# pairs_from_groups


@pytest.mark.parametrize("views", [2, 3])
def test_pairs_from_groups(views):
    rng = np.random.default_rng(views)
    n_src = 4
    groups = rng.permutation(np.repeat(np.arange(10, 10 + n_src), views))
    v1, v2 = graphs.pairs_from_groups(groups)
    expected = {(i, j) for i in range(len(groups)) for j in range(i + 1, len(groups)) if groups[i] == groups[j]}
    assert set(zip(v1.tolist(), v2.tolist(), strict=True)) == expected
    assert len(v1) == len(expected) == n_src * views * (views - 1) // 2
    assert np.all(v1 < v2)
    assert v1.dtype == v2.dtype == np.int32


def test_pairs_from_groups_contiguous_two_views():
    v1, v2 = graphs.pairs_from_groups([0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(v1, [0, 2, 4])
    np.testing.assert_array_equal(v2, [1, 3, 5])


def test_pairs_from_groups_needs_two_views_per_source():
    with pytest.raises(ValueError, match="at least 2 views"):
        graphs.pairs_from_groups([0, 0, 1, 2, 2])


# ---------------------------------------------------------------------------------------------------------------------
# knn


@pytest.mark.parametrize("k", [1, 3, 6])
@pytest.mark.parametrize("mutual", [False, True])
def test_knn_matches_sklearn(k, mutual):
    X = _points(seed=k)
    assert _has_distinct_distances(X)
    G = kneighbors_graph(X, k, mode="connectivity", include_self=False).toarray()
    expected = np.minimum(G, G.T) if mutual else np.maximum(G, G.T)
    A = np.asarray(graphs.knn(X, k, mutual=mutual))
    np.testing.assert_array_equal(A, expected)
    assert np.all(np.diag(A) == 0)
    np.testing.assert_array_equal(A, A.T)
    # Union: every row has at least k neighbours; mutual: at most k.
    if mutual:
        assert np.all(A.sum(1) <= k)
    else:
        assert np.all(A.sum(1) >= k)


def test_knn_self_loops():
    X = _points(seed=10)
    A = np.asarray(graphs.knn(X, 4, self_loops=True))
    np.testing.assert_array_equal(np.diag(A), 1.0)
    B = np.asarray(graphs.knn(X, 4))
    np.testing.assert_array_equal(A - np.eye(X.shape[0]), B)


@pytest.mark.parametrize("block_size", [1, 3, 8, 100])
def test_knn_blockwise_equals_unblocked(block_size):
    X = _points(seed=11)  # 20 rows: blocks of 3 and 8 leave a ragged last block
    for mutual in (False, True):
        np.testing.assert_array_equal(
            graphs.knn(X, 5, mutual=mutual, block_size=block_size), graphs.knn(X, 5, mutual=mutual, block_size=2048)
        )


def test_knn_excludes_the_point_itself_even_with_duplicates():
    X = _points(n=17, seed=12)
    X = np.concatenate([X, X[:3]])  # views 17, 18, 19 duplicate 0, 1, 2
    A = np.asarray(graphs.knn(X, 1))
    assert np.all(np.diag(A) == 0)
    for i in range(3):
        assert A[i, 17 + i] == 1 and A[17 + i, i] == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int64])
def test_knn_integer_inputs(dtype):
    # Raw pixels are often uint8: squared distances must not overflow (wrapping would reorder the neighbours).
    X = np.array([[0, 0], [10, 0], [30, 0], [31, 0], [200, 3], [120, 90]], dtype=dtype)
    G = kneighbors_graph(X.astype(np.float64), 1, include_self=False).toarray()
    A = graphs.knn(X, 1)
    assert jnp.issubdtype(A.dtype, jnp.floating)
    np.testing.assert_array_equal(A, np.maximum(G, G.T))


@pytest.mark.parametrize(
    ("X", "k", "match"),
    [
        (np.ones(5), 1, "2-D"),
        (np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]), 1, "NaN"),
        (np.ones((4, 2)), 0, r"\[1, 3\]"),
        (np.ones((4, 2)), 4, r"\[1, 3\]"),
        (np.ones((4, 2)), 2.0, "must be an integer in"),
        (np.ones((4, 2)), True, "must be an integer in"),
    ],
)
def test_knn_errors(X, k, match):
    with pytest.raises(TypeError if isinstance(k, (bool, float)) else ValueError, match=match):
        graphs.knn(X, k)


# ---------------------------------------------------------------------------------------------------------------------
# degree, normalize, laplacian


def _weighted(n=8, seed=13, isolated=(3,)):
    rng = np.random.default_rng(seed)
    W = rng.random((n, n)) * (rng.random((n, n)) < 0.6)
    W = np.triu(W, 1)
    W = W + W.T
    for i in isolated:
        W[i, :] = 0.0
        W[:, i] = 0.0
    return W


def test_degree():
    W = _weighted()
    np.testing.assert_allclose(graphs.degree(W), W.sum(axis=1), rtol=1e-14)


def test_normalize_matches_numpy_with_isolated_node():
    W = _weighted(isolated=(3, 6))
    d = W.sum(1)
    assert d[3] == 0 and d[6] == 0 and np.all(np.delete(d, [3, 6]) > 0)
    inv_sqrt = np.zeros_like(d)
    inv_sqrt[d > 0] = 1.0 / np.sqrt(d[d > 0])
    expected = np.diag(inv_sqrt) @ W @ np.diag(inv_sqrt)
    An = np.asarray(graphs.normalize(W))
    assert np.all(np.isfinite(An))
    np.testing.assert_allclose(An, expected, rtol=1e-13, atol=1e-15)
    assert np.all(An[3] == 0) and np.all(An[:, 6] == 0)
    # The normalised adjacency's spectrum lies in [-1, 1], with 1 attained on each connected component.
    eig = np.linalg.eigvalsh(An)
    assert eig.max() == pytest.approx(1.0, abs=1e-12) and eig.min() >= -1 - 1e-12


def test_normalize_clique_graph_divides_by_group_size():
    groups = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    sizes = np.bincount(groups)[groups]
    expected = _ref_from_groups(groups) / sizes[:, None]  # D^-1/2 A D^-1/2 with equal degrees within a block
    np.testing.assert_allclose(graphs.normalize(graphs.from_groups(groups)), expected, rtol=1e-14)


@pytest.mark.parametrize("kind", ["weighted", "knn", "groups"])
def test_laplacian(kind):
    if kind == "weighted":
        A = _weighted()
    elif kind == "knn":
        A = np.asarray(graphs.knn(_points(seed=14), 3))
    else:
        A = np.asarray(graphs.from_groups([2, 0, 2, 1, 0, 1]))
    L = np.asarray(graphs.laplacian(A))
    np.testing.assert_allclose(L, np.diag(A.sum(1)) - A, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(L.sum(axis=1), 0.0, atol=1e-13)
    np.testing.assert_array_equal(L, L.T)
    eig = np.linalg.eigvalsh(L)
    assert eig.min() >= -1e-12 * max(eig.max(), 1.0)
    # z^T L z = (1/2) sum_ij A_ij (z_i - z_j)^2.
    z = np.random.default_rng(15).normal(size=A.shape[0])
    assert z @ L @ z == pytest.approx(0.5 * np.sum(A * (z[:, None] - z[None, :]) ** 2), rel=1e-12)


def test_laplacian_kernel_has_one_zero_per_component():
    groups = [0, 1, 0, 2, 1, 2, 2]
    eig = np.linalg.eigvalsh(np.asarray(graphs.laplacian(graphs.from_groups(groups))))
    assert np.sum(np.abs(eig) < 1e-10) == 3


# ---------------------------------------------------------------------------------------------------------------------
# clique_groups


@pytest.mark.parametrize(
    "groups",
    [[0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2], [7, 3, 7, 11, 3, 11, 7], [4, 4, 4], [1, 2, 3]],
)
def test_clique_groups_recognises_from_groups(groups):
    A = graphs.from_groups(groups)
    found = graphs.clique_groups(A)
    assert found is not None
    np.testing.assert_array_equal(graphs.from_groups(found), A)
    # Same partition as the input (labels may differ).
    np.testing.assert_array_equal(found, graphs.check_groups(groups))


def test_clique_groups_recognises_permuted_views():
    rng = np.random.default_rng(16)
    groups = np.repeat(np.arange(6), 3)
    perm = rng.permutation(groups.size)
    A = np.asarray(graphs.from_groups(groups))[np.ix_(perm, perm)]
    found = graphs.clique_groups(A)
    assert found is not None
    np.testing.assert_array_equal(_ref_from_groups(found), A)
    np.testing.assert_array_equal(_ref_from_groups(found), _ref_from_groups(groups[perm]))


def test_clique_groups_accepts_numpy_and_other_dtypes():
    A = _ref_from_groups([0, 1, 1, 0])
    for B in (A, A.astype(np.float32), A.astype(np.int64), A.astype(bool)):
        found = graphs.clique_groups(B)
        assert found is not None
        np.testing.assert_array_equal(found, [0, 1, 1, 0])


def _is_union_of_cliques(A):
    A = np.asarray(A)
    for i in range(A.shape[0]):
        for j in range(A.shape[0]):
            # transitivity of "i ~ j" on the 0/1 graph with self loops
            if A[i, j] and not np.array_equal(A[i], A[j]):
                return False
    return bool(np.all(np.diag(A) == 1))


def test_clique_groups_rejects_other_graphs():
    # A kNN graph (with self loops) that is not a union of cliques, by an independent check.
    A_knn = np.asarray(graphs.knn(_points(seed=17), 3, self_loops=True))
    assert not _is_union_of_cliques(A_knn)
    assert graphs.clique_groups(A_knn) is None

    A = _ref_from_groups([0, 0, 1, 1, 2, 2])
    weighted = A.copy()
    weighted[0, 1] = weighted[1, 0] = 0.5
    assert graphs.clique_groups(weighted) is None
    assert graphs.clique_groups(2.0 * A) is None

    no_self_loop = A.copy()
    no_self_loop[2, 2] = 0.0
    assert graphs.clique_groups(no_self_loop) is None
    assert graphs.clique_groups(A - np.eye(6)) is None

    # 0 ~ 1 and 1 ~ 2 but not 0 ~ 2: not transitive.
    path = np.eye(3)
    path[0, 1] = path[1, 0] = path[1, 2] = path[2, 1] = 1.0
    assert graphs.clique_groups(path) is None

    assert graphs.clique_groups(np.ones((2, 3))) is None
    assert graphs.clique_groups(np.ones(4)) is None
    assert graphs.clique_groups(np.zeros((0, 0))) is None


def test_clique_groups_recognises_a_knn_graph_that_is_a_union_of_cliques():
    # Two far-apart tight pairs: the 1-NN graph with self loops is exactly two 2-cliques.
    X = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.0, 0.2]])
    A = np.asarray(graphs.knn(X, 1, self_loops=True))
    assert _is_union_of_cliques(A)
    np.testing.assert_array_equal(graphs.clique_groups(A), [0, 0, 1, 1])


# ---------------------------------------------------------------------------------------------------------------------
# check_adjacency


def test_check_adjacency_accepts_valid_graphs():
    W = _weighted()
    np.testing.assert_array_equal(graphs.check_adjacency(W, 8), W)
    out = graphs.check_adjacency(np.eye(3, dtype=np.int32))
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_array_equal(graphs.from_weights(W), W)
    # Asymmetry at rounding level is tolerated.
    W2 = W.copy()
    W2[0, 1] += 1e-15
    graphs.check_adjacency(W2)


@pytest.mark.parametrize(
    ("A", "n", "match"),
    [
        (np.ones((3, 4)), None, r"square \(N, N\).*\(3, 4\)"),
        (np.ones(4), None, "square"),
        (np.ones((2, 2, 2)), None, "square"),
        (np.ones((4, 4)), 5, r"\(5, 5\) to match the 5 views"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), None, "NaN or Inf"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), None, "NaN or Inf"),
        (np.array([[1.0, 1.0], [0.0, 1.0]]), None, "symmetric"),
        (np.array([[1.0, 0.5], [0.5 + 1e-6, 1.0]]), None, "symmetric"),
        (np.array([[1.0, -0.5], [-0.5, 1.0]]), None, "non-negative"),
    ],
)
def test_check_adjacency_errors(A, n, match):
    with pytest.raises(ValueError, match=match):
        graphs.check_adjacency(A, n)


def test_check_adjacency_names_the_matrix():
    with pytest.raises(ValueError, match="^W must be symmetric"):
        graphs.from_weights(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="^target contains NaN"):
        graphs.check_adjacency(np.full((2, 2), np.nan), name="target")


def test_public_names_reexported():
    assert kssl.graphs is graphs


# ---------------------------------------------------------------------------------------------------------------------
# normalize(kind=...): the weighting of `graph.normalize`


def test_normalize_kinds_match_numpy_and_are_symmetric():
    W = _weighted(n=9, seed=4, isolated=())
    d = W.sum(1)
    expected = W / np.sqrt(np.outer(d, d))
    An = np.asarray(graphs.normalize(W, kind="sym"))
    np.testing.assert_allclose(An, expected, rtol=1e-13)
    np.testing.assert_array_equal(An, An.T)
    np.testing.assert_array_equal(graphs.normalize(W, kind="none"), W)
    # A degree-regular graph: every degree equal, so "sym" only divides by it.
    C = _ref_from_groups([0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(graphs.normalize(C, kind="sym"), C / 2, rtol=1e-15)


@pytest.mark.parametrize("kind, A, error, match", [
    ("rw", None, ValueError, r"kind must be one of \['none', 'sym'\], got 'rw'"),
    (1, None, TypeError, r"kind must be one of \['none', 'sym'\], got 1 \(int\)"),
    (None, None, TypeError, "kind must be one of"),
    ("sym", np.ones((2, 3)), ValueError, r"A must be a square \(N, N\) matrix, got shape \(2, 3\)"),
    ("sym", np.array([[0.0, 1.0], [0.0, 0.0]]), ValueError, "A must be symmetric"),
    ("sym", -np.eye(2), ValueError, "A must be non-negative"),
    ("none", np.array([[np.nan, 0.0], [0.0, 1.0]]), ValueError, "A contains NaN or Inf"),
])
def test_normalize_errors(kind, A, error, match):
    with pytest.raises(error, match=match):
        graphs.normalize(_weighted() if A is None else A, kind=kind)


@pytest.mark.parametrize("objective", ["contrastive", "vicreg_hard"])
def test_tiny_lam_spans_the_leading_eigenvectors_of_the_normalised_target(objective):
    # Full-rank RBF Gram, lam -> 0: the training representations span the top eigenvectors of the target, here
    # A_sym = D^-1/2 A D^-1/2 (contrastive; the normalised Laplacian I - A_sym has the same eigenvectors, the
    # basis of scikit-learn's SpectralEmbedding) or the bottom ones of laplacian(A_sym) (vicreg_hard). Reference:
    # numpy's eigh of a matrix built in numpy here.
    import scipy.linalg

    import kernel_ssl_jax as kssl
    from kernel_ssl_jax import kernels

    rng = np.random.default_rng(7)
    n, M = 14, 4
    X = rng.normal(size=(n, 3))
    W = _weighted(n=n, seed=21, isolated=())
    d = W.sum(1)
    A_sym = W / np.sqrt(np.outer(d, d))
    T = A_sym if objective == "contrastive" else np.diag(A_sym.sum(1)) - A_sym
    w, V = np.linalg.eigh(T)
    ref = V[:, ::-1][:, :M] if objective == "contrastive" else V[:, :M]
    gap = (w[::-1][M - 1] - w[::-1][M]) if objective == "contrastive" else (w[M] - w[M - 1])
    assert gap > 1e-2  # the leading subspace is well defined
    sol = kssl.solve(objective, X, graphs.normalize(W, kind="sym"), kernel=kernels.rbf(1.0), dim=M, lam=1e-10,
                     rcond=0.0, method="dense")
    Z = np.asarray(sol.representations).T  # (N, M)
    assert np.max(scipy.linalg.subspace_angles(Z, ref)) < 1e-5
    # ... and not those of the unnormalised graph (the test can fail).
    w0, V0 = np.linalg.eigh(W if objective == "contrastive" else np.diag(d) - W)
    ref0 = V0[:, ::-1][:, :M] if objective == "contrastive" else V0[:, :M]
    assert np.max(scipy.linalg.subspace_angles(Z, ref0)) > 1e-2
