"""Tests for kernel_ssl_jax.kernels against independent numpy references (SPEC.md §1b), scikit-learn, and
Monte-Carlo estimates from explicit wide ReLU networks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import pairwise

import kernel_ssl_jax as kssl
from kernel_ssl_jax import kernels

# ---------------------------------------------------------------------------------------------------------------------
# Independent numpy references, one pair at a time, written from the formulas in SPEC.md §1b.


def _relu_ref(x, y, depth, w_var, b_var):
    """(nngp, ntk) of SPEC.md §1b for one pair, in plain Python floats.

    On the diagonal (x == y) the angle is exactly 0 at every layer, so it is set to 0 rather than recovered from
    arccos(c) near 1, which is ill-conditioned; this makes the reference exact there.
    """
    same = np.array_equal(x, y)
    d = x.shape[0]
    sxy = w_var * float(x @ y) / d + b_var
    sxx = w_var * float(x @ x) / d + b_var
    syy = w_var * float(y @ y) / d + b_var
    theta = sxy
    for _ in range(depth):
        norm = math.sqrt(sxx * syy)
        if same:
            t = 0.0
        else:
            t = math.acos(min(1.0, max(-1.0, sxy / norm)))
        new_xy = w_var * norm * (math.sin(t) + (math.pi - t) * math.cos(t)) / (2 * math.pi) + b_var
        dsigma = w_var * (math.pi - t) / (2 * math.pi)
        theta = theta * dsigma + new_xy
        # E[relu(u)^2] = var(u) / 2 for a centred Gaussian u.
        sxx = w_var * sxx / 2 + b_var
        syy = w_var * syy / 2 + b_var
        sxy = new_xy
    return sxy, theta


def _ref_pair(name, params, x, y):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if name == "linear":
        return float(x @ y)
    if name == "polynomial":
        return (params["scale"] * float(x @ y) + params["offset"]) ** params["degree"]
    if name == "rbf":
        return math.exp(-float(np.sum((x - y) ** 2)) / (2 * params["bandwidth"] ** 2))
    if name == "laplacian":
        return math.exp(-float(np.linalg.norm(x - y)) / params["bandwidth"])
    if name == "nngp":
        return _relu_ref(x, y, params["depth"], params["w_var"], params["b_var"])[0]
    if name == "ntk":
        return _relu_ref(x, y, params["depth"], params["w_var"], params["b_var"])[1]
    raise AssertionError(name)


def _ref_gram(name, params, X, Y):
    X = np.asarray(X)
    Y = np.asarray(Y)
    return np.array([[_ref_pair(name, params, x, y) for y in Y] for x in X])


# (name, kwargs) for every kernel at several hyper-parameters; the kwargs are both the constructor's and the
# reference's parameters.
CASES = [
    ("linear", {}),
    ("polynomial", {"degree": 1, "scale": 1.0, "offset": 1.0}),
    ("polynomial", {"degree": 2, "scale": 0.5, "offset": 1.0}),
    ("polynomial", {"degree": 3, "scale": 0.3, "offset": 0.0}),
    ("polynomial", {"degree": 4, "scale": 0.2, "offset": 2.0}),
    ("rbf", {"bandwidth": 0.7}),
    ("rbf", {"bandwidth": 2.0}),
    ("laplacian", {"bandwidth": 0.8}),
    ("laplacian", {"bandwidth": 3.0}),
    ("nngp", {"depth": 0, "w_var": 2.0, "b_var": 0.0}),
    ("nngp", {"depth": 1, "w_var": 2.0, "b_var": 0.0}),
    ("nngp", {"depth": 2, "w_var": 1.5, "b_var": 0.1}),
    ("nngp", {"depth": 3, "w_var": 1.7, "b_var": 0.3}),
    ("nngp", {"depth": 5, "w_var": 1.3, "b_var": 0.1}),
    ("ntk", {"depth": 0, "w_var": 1.0, "b_var": 0.5}),
    ("ntk", {"depth": 1, "w_var": 2.0, "b_var": 0.0}),
    ("ntk", {"depth": 2, "w_var": 1.5, "b_var": 0.1}),
    ("ntk", {"depth": 3, "w_var": 1.7, "b_var": 0.3}),
    ("ntk", {"depth": 5, "w_var": 1.3, "b_var": 0.1}),
]
CASE_IDS = [f"{n}-" + "-".join(f"{k}{v:g}" for k, v in p.items()) for n, p in CASES]


def _make(name, params):
    return kernels.KERNELS[name](**params)


def _data(n=8, m=5, d=4, seed=0):
    # One shape everywhere (8 x 4 against 5 x 4) so that the compiled Grams are reused across tests.
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(m, d))


# ---------------------------------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_gram_matches_numpy_reference(name, params):
    X, Y = _data()
    k = _make(name, params)
    np.testing.assert_allclose(kssl.gram(k, X, Y), _ref_gram(name, params, X, Y), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(kssl.gram(k, X), _ref_gram(name, params, X, X), rtol=1e-11, atol=1e-12)


@jax.jit
def _vmap_vmap(k, X, Y):
    # The kernel is an argument (a pytree), so kernels of one structure share a compilation.
    return jax.vmap(lambda x: jax.vmap(lambda y: k(x, y))(Y))(X)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_gram_equals_vmap_of_single_example_kernel(name, params):
    X, Y = _data(seed=1)
    k = _make(name, params)
    expected = _vmap_vmap(k, X, Y)
    assert expected.shape == (X.shape[0], Y.shape[0])
    np.testing.assert_allclose(kssl.gram(k, X, Y), expected, rtol=1e-12, atol=1e-13)
    # The single-example call is also the reference on one pair.
    assert float(k(X[0], Y[1])) == pytest.approx(_ref_pair(name, params, X[0], Y[1]), rel=1e-11, abs=1e-12)


# One case per kernel family for the blockwise path (each block shape is a new compilation).
BLOCK_CASES = [CASES[i] for i in (0, 3, 5, 8, 12, 17)]


@pytest.mark.parametrize(("name", "params"), BLOCK_CASES, ids=[f"{n}" for n, _ in BLOCK_CASES])
@pytest.mark.parametrize("block_size", [2, 3])
def test_blockwise_equals_unblocked(name, params, block_size):
    X, Y = _data(seed=2)
    k = _make(name, params)
    np.testing.assert_allclose(kssl.gram(k, X, Y, block_size=block_size), kssl.gram(k, X, Y), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(kssl.gram(k, X, block_size=block_size), kssl.gram(k, X), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(("name", "params"), BLOCK_CASES[:3], ids=[f"{n}" for n, _ in BLOCK_CASES[:3]])
def test_symmetric_gram_in_panels_is_exact_and_mirrored(name, params):
    # Panels of 3 rows over 7 points: full panels, a ragged last one, and mirrored off-diagonal blocks.
    X, _ = _data(seed=4)
    X = np.concatenate([X, X[:2] * 1.5])[:7]
    k = _make(name, params)
    K = np.asarray(kssl.gram(k, X, block_size=3))
    assert K.shape == (7, 7)
    assert np.array_equal(K, K.T)
    np.testing.assert_allclose(K, _vmap_vmap(k, X, X), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(np.diag(K), [_ref_pair(name, params, x, x) for x in X], rtol=1e-13, atol=0)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_symmetric_gram_is_exactly_symmetric_with_exact_diagonal(name, params):
    # Rows at very different scales and two near-duplicate rows stress the x.x + y.y - 2 x.y cancellation.
    X, _ = _data(seed=3)
    X[1] *= 7.0
    X[4] = X[3] + 1e-9
    k = _make(name, params)
    K = np.asarray(kssl.gram(k, X))
    assert np.array_equal(K, K.T)
    exact_diag = np.array([_ref_pair(name, params, x, x) for x in X])
    np.testing.assert_allclose(np.diag(K), exact_diag, rtol=1e-13, atol=0)
    if name in ("rbf", "laplacian"):
        assert np.all(np.diag(K) == 1.0)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_gram_is_positive_semidefinite(name, params):
    X, _ = _data(seed=4)
    K = np.asarray(kssl.gram(_make(name, params), X))
    eig = np.linalg.eigvalsh(K)
    assert eig.min() >= -1e-10 * eig.max()


def test_custom_callable_goes_through_generic_path():
    X, Y = _data(seed=5)

    def cauchy(x, y):
        return 1.0 / (1.0 + jnp.sum((x - y) ** 2))

    expected = 1.0 / (1.0 + ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(kssl.gram(cauchy, X, Y), expected, rtol=1e-13)
    np.testing.assert_allclose(kssl.gram(cauchy, X, Y, block_size=2), expected, rtol=1e-13)
    np.testing.assert_allclose(kssl.gram(cauchy, X, block_size=3), kssl.gram(cauchy, X), rtol=1e-13)

    # A Python callable wrapping a library kernel goes the vmap(vmap(k)) way and agrees with the dot-product path.
    k = kernels.ntk(depth=2, w_var=1.5, b_var=0.2)
    np.testing.assert_allclose(kssl.gram(lambda x, y: k(x, y), X, Y), kssl.gram(k, X, Y), rtol=1e-12)


def test_gram_accepts_mixed_dtypes_and_lists():
    X, Y = _data(seed=6)
    k = kernels.rbf(1.3)
    K = kssl.gram(k, X.tolist(), Y.astype(np.float32))
    assert K.shape == (8, 5)
    np.testing.assert_allclose(K, _ref_gram("rbf", {"bandwidth": 1.3}, X, Y.astype(np.float32)), rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_integer_inputs_are_computed_in_float(dtype):
    # Raw pixels are often uint8: x . y must not overflow (200 * 200 > 255) nor return an integer Gram.
    X = np.array([[0, 0, 1], [10, 0, 3], [30, 0, 0], [31, 2, 0], [200, 3, 100]], dtype=dtype)
    Xf = X.astype(np.float64)
    for name, params in [
        ("linear", {}),
        ("rbf", {"bandwidth": 50.0}),
        ("ntk", {"depth": 2, "w_var": 2.0, "b_var": 0.1}),
    ]:
        K = kssl.gram(_make(name, params), X)
        assert K.dtype == jnp.float64
        np.testing.assert_allclose(K, _ref_gram(name, params, Xf, Xf), rtol=1e-12)
        np.testing.assert_allclose(
            kssl.gram(_make(name, params), X, X[:2]), _ref_gram(name, params, Xf, Xf[:2]), rtol=1e-12
        )


# ---------------------------------------------------------------------------------------------------------------------
# Peer library: scikit-learn's pairwise kernels.


@pytest.mark.parametrize("bandwidth", [0.5, 1.0, 3.0])
def test_rbf_matches_sklearn(bandwidth):
    X, Y = _data(seed=7)
    expected = pairwise.rbf_kernel(X, Y, gamma=1.0 / (2.0 * bandwidth**2))
    np.testing.assert_allclose(kssl.gram(kernels.rbf(bandwidth), X, Y), expected, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("bandwidth", [0.5, 1.0, 3.0])
def test_laplacian_uses_euclidean_distance(bandwidth):
    # sklearn's laplacian_kernel uses the L1 distance, so the reference is numpy's Euclidean distance.
    X, Y = _data(seed=8)
    dist = np.linalg.norm(X[:, None, :] - Y[None, :, :], axis=-1)
    np.testing.assert_allclose(kssl.gram(kernels.laplacian(bandwidth), X, Y), np.exp(-dist / bandwidth), rtol=1e-11)
    assert not np.allclose(
        kssl.gram(kernels.laplacian(bandwidth), X, Y), pairwise.laplacian_kernel(X, Y, 1 / bandwidth)
    )


@pytest.mark.parametrize(("degree", "scale", "offset"), [(1, 1.0, 0.0), (2, 0.5, 1.0), (3, 0.2, 2.0)])
def test_polynomial_matches_sklearn(degree, scale, offset):
    X, Y = _data(seed=9)
    expected = pairwise.polynomial_kernel(X, Y, degree=degree, gamma=scale, coef0=offset)
    np.testing.assert_allclose(kssl.gram(kernels.polynomial(degree, scale, offset), X, Y), expected, rtol=1e-12)


def test_linear_matches_sklearn():
    X, Y = _data(seed=10)
    np.testing.assert_allclose(kssl.gram(kernels.linear(), X, Y), pairwise.linear_kernel(X, Y), rtol=1e-12)


def test_by_name_builds_the_same_kernel():
    X, _ = _data(seed=11)
    for name, params in CASES:
        np.testing.assert_array_equal(kssl.gram(kernels.by_name(name, **params), X), kssl.gram(_make(name, params), X))


# ---------------------------------------------------------------------------------------------------------------------
# Monte-Carlo: explicit wide ReLU networks in the NTK parameterisation,
#   h_1 = sqrt(w_var / d) W_1 x + sqrt(b_var) b_1,
#   h_{l+1} = sqrt(w_var / width) W_{l+1} relu(h_l) + sqrt(b_var) b_{l+1},
#   f = h_{depth+1} (scalar readout), all W, b standard normal. float32 is plenty for Monte-Carlo errors of ~1%.

MC_X = np.array(
    [
        [1.0, 0.0, 0.5, -0.3],
        [0.8, 0.4, 0.3, -0.1],  # close in angle to the first
        [-0.5, 1.0, 0.2, 0.7],
        [0.0, -1.2, 0.9, 0.4],
        [-0.9, -0.2, -0.6, 0.1],  # nearly opposite the first
    ]
)
MC_CASES = [(depth, w_var, b_var) for depth in (1, 2, 3) for w_var, b_var in ((2.0, 0.0), (1.5, 0.2))]
WIDTH, N_NETS = 512, 64


def _init(rng, d, width, depth, n_nets=None, dtype=np.float32):
    """Standard normal `[(W_1, b_1), ..., (W_{depth+1}, b_{depth+1})]`, with a leading `n_nets` axis if given.

    Drawn with numpy: a seeded Generator is fast and keeps the jitted estimators small to compile.
    """
    sizes = [d] + [width] * depth + [1]
    lead = () if n_nets is None else (n_nets,)
    return [
        (
            rng.standard_normal(lead + (fan_out, fan_in), dtype=dtype),
            rng.standard_normal(lead + (fan_out,), dtype=dtype),
        )
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def _forward(params, x, w_var, b_var, shifts=None):
    """Returns `(f(x), inputs)`: the scalar output and the input of every dense layer (x, then relu(h_l)).

    `shifts[l]` is added to the pre-activation of layer `l`, so that the gradient with respect to `shifts` at 0 is
    `df/dh_l`, the back-propagated signal.
    """
    h = x
    inputs = []
    for i, (W, b) in enumerate(params):
        a = h if i == 0 else jax.nn.relu(h)
        inputs.append(a)
        h = jnp.sqrt(w_var / a.shape[0]) * (W @ a) + jnp.sqrt(b_var) * b
        if shifts is not None:
            h = h + shifts[i]
    return h[0], inputs


def _empirical_ntk_full(params, X, w_var, b_var):
    """sum over every parameter of df(x)/dtheta df(y)/dtheta, by per-example jax.grad (memory N * n_params)."""
    grads = jax.vmap(lambda x: jax.grad(lambda p: _forward(p, x, w_var, b_var)[0])(params))(X)
    return sum(g.reshape(g.shape[0], -1) @ g.reshape(g.shape[0], -1).T for g in jax.tree_util.tree_leaves(grads))


def _empirical_ntk_layerwise(params, X, w_var, b_var):
    """The same sum, layer by layer without materialising the weight gradients.

    With `g_l = df/dh_l` and `a_l` the layer's input: `df/dW_l = sqrt(w_var / fan_in) g_l a_l^T` and
    `df/db_l = sqrt(b_var) g_l`, so layer `l` contributes `(g_l(x) . g_l(y)) (w_var / fan_in a_l(x) . a_l(y) + b_var)`.
    """
    zeros = [jnp.zeros_like(b) for _, b in params]

    def signals(x):
        g, inputs = jax.grad(lambda s: _forward(params, x, w_var, b_var, s), has_aux=True)(zeros)
        return g, inputs

    g, inputs = jax.vmap(signals)(X)
    return sum((gl @ gl.T) * (w_var / al.shape[1] * (al @ al.T) + b_var) for gl, al in zip(g, inputs, strict=True))


@pytest.mark.parametrize(("depth", "w_var", "b_var"), [(1, 2.0, 0.0), (3, 1.5, 0.2)])
def test_layerwise_empirical_ntk_equals_full_jacobian(depth, w_var, b_var):
    # Checks the test's own fast estimator against the definition, on a narrow float64 network.
    params = _init(np.random.default_rng(0), 4, 16, depth, dtype=np.float64)
    X = jnp.asarray(MC_X)
    np.testing.assert_allclose(
        jax.jit(_empirical_ntk_layerwise)(params, X, w_var, b_var),
        jax.jit(_empirical_ntk_full)(params, X, w_var, b_var),
        rtol=1e-12,
    )


def _relative_errors(est, K):
    scale = np.sqrt(np.outer(np.diag(K), np.diag(K)))
    return np.abs(np.asarray(est, dtype=np.float64) - np.asarray(K)) / scale


@jax.jit
def _wide_network_estimates(params, X, w_var, b_var):
    """Means over a batch of networks (leading axis of `params`) of the readout-averaged NNGP estimate and of the
    empirical NTK."""

    def one_net(params):
        width = params[-1][0].shape[1]
        act = jax.vmap(lambda x: _forward(params, x, w_var, b_var)[1][-1])(X)
        return w_var / width * act @ act.T + b_var, _empirical_ntk_layerwise(params, X, w_var, b_var)

    nngp_est, ntk_est = jax.vmap(one_net)(params)
    return jnp.mean(nngp_est, axis=0), jnp.mean(ntk_est, axis=0)


@pytest.mark.parametrize(("depth", "w_var", "b_var"), MC_CASES)
def test_nngp_and_ntk_match_wide_random_networks(depth, w_var, b_var):
    # NNGP(x, y) = E[f(x) f(y)]. Averaging the readout's own weights out exactly leaves
    #   w_var / width * relu(h_L(x)) . relu(h_L(y)) + b_var,
    # an average over `width` units. NTK(x, y) is the limit of the empirical NTK, sum over all parameters of
    # df(x)/dtheta df(y)/dtheta, which fluctuates by O(1/sqrt(width)) with a large constant (squared readout weights).
    # Both are averaged over 64 networks of width 512 (32k units): relu(u)^2 has relative standard deviation ~2.2,
    # so an entry's NNGP error is ~2.2 / sqrt(32768) ~ 1.2%, and each layer adds a finite-width bias of order
    # 1 / width and more variance. Over 25 correlated entries and 12 seeds the largest relative error seen was
    # 3.9% (NNGP) / 2.4% (NTK) at depth 1, 4.3% / 3.5% at depth 2 and 4.8% / 3.2% at depth 3: the tolerance is
    # 5% + 1% per layer. A wrong layer count, a missing bias or a factor 2 in w_var is off by far more.
    params = _init(np.random.default_rng(depth), MC_X.shape[1], WIDTH, depth, N_NETS)
    nngp_est, ntk_est = _wide_network_estimates(params, jnp.asarray(MC_X, dtype=jnp.float32), w_var, b_var)
    tol = 0.05 + 0.01 * depth
    np.testing.assert_array_less(_relative_errors(nngp_est, kssl.gram(kernels.nngp(depth, w_var, b_var), MC_X)), tol)
    np.testing.assert_array_less(_relative_errors(ntk_est, kssl.gram(kernels.ntk(depth, w_var, b_var), MC_X)), tol)


@pytest.mark.parametrize(("w_var", "b_var"), [(2.0, 0.0), (1.5, 0.2)])
def test_nngp_is_the_output_covariance_over_networks(w_var, b_var):
    # The definition itself, E[f(x) f(y)] over random networks, readout randomness included. With one hidden layer
    # the first pre-activations are exactly Gaussian with covariance Sigma_0, so E[f(x) f(y)] equals the NNGP at
    # any width: a narrow network suffices and the only error is Monte-Carlo. For Gaussian f, f(x) f(y) has relative
    # standard deviation sqrt(1 + c^2) <= sqrt(2) (c the correlation), and width 16 adds some excess kurtosis: with
    # 50000 networks an entry's error is ~0.7%; the largest over 25 entries and 8 seeds was 1.5%.
    # The tolerance is 3%.
    params = _init(np.random.default_rng(100), MC_X.shape[1], 16, 1, 50000)
    f = np.asarray(_network_outputs(params, jnp.asarray(MC_X, dtype=jnp.float32), w_var, b_var), dtype=np.float64)
    est = f.T @ f / f.shape[0]
    np.testing.assert_array_less(_relative_errors(est, kssl.gram(kernels.nngp(1, w_var, b_var), MC_X)), 0.03)


@jax.jit
def _network_outputs(params, X, w_var, b_var):
    """`f(X)` of each network in a batch (leading axis of `params`): `(n_nets, n)`."""
    return jax.vmap(lambda p: jax.vmap(lambda x: _forward(p, x, w_var, b_var)[0])(X))(params)


def test_depth_zero_is_the_affine_layer():
    # Depth 0 is the readout alone: w_var * x.y / d + b_var, for both nngp and ntk.
    X, Y = _data(seed=12)
    expected = 1.3 * X @ Y.T / X.shape[1] + 0.4
    np.testing.assert_allclose(kssl.gram(kernels.nngp(0, 1.3, 0.4), X, Y), expected, rtol=1e-13)
    np.testing.assert_allclose(kssl.gram(kernels.ntk(0, 1.3, 0.4), X, Y), expected, rtol=1e-13)


# ---------------------------------------------------------------------------------------------------------------------
# median_bandwidth


@pytest.mark.parametrize("n", [2, 3, 4, 5, 8, 9])
def test_median_bandwidth_is_median_pairwise_distance(n):
    # n(n-1)/2 pairs: an even count for n = 4, 5, 8, 9, where the median averages the two middle distances.
    X = np.random.default_rng(n).normal(size=(n, 3))
    iu = np.triu_indices(n, k=1)
    dist = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)[iu]
    assert kssl.median_bandwidth(X) == pytest.approx(float(np.median(dist)), rel=1e-12)


def test_median_bandwidth_subsampling_is_seeded():
    X = np.random.default_rng(13).normal(size=(300, 4))
    a = kssl.median_bandwidth(X, max_points=50, seed=3)
    b = kssl.median_bandwidth(X, max_points=50, seed=3)
    c = kssl.median_bandwidth(X, max_points=50, seed=4)
    assert a == b
    assert a != c
    full = kssl.median_bandwidth(X)  # 300 <= max_points: no subsampling
    iu = np.triu_indices(300, k=1)
    ref = float(np.median(np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)[iu]))
    assert full == pytest.approx(ref, rel=1e-12)
    # A 50-point subset has 1225 pairs: its median is within a few % of the full one.
    assert a == pytest.approx(full, rel=0.1)
    # The subsample is a subset of rows: its median is the median distance of some 50 of the rows. With max_points
    # equal to n the subset is a permutation of all rows, so the value is the full one.
    assert kssl.median_bandwidth(X, max_points=299, seed=0) == pytest.approx(full, rel=0.02)


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.ones(5), "2-D"),
        (np.ones((1, 3)), "at least 2 rows"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
        (np.ones((4, 2)), "median distance"),
    ],
)
def test_median_bandwidth_errors(X, match):
    with pytest.raises(ValueError, match=match):
        kssl.median_bandwidth(X)


# ---------------------------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("make", "match", "error"),
    [
        (lambda: kernels.rbf(-1.0), "bandwidth", ValueError),
        (lambda: kernels.rbf(0.0), "bandwidth", ValueError),
        (lambda: kernels.rbf(float("nan")), "bandwidth", ValueError),
        (lambda: kernels.rbf(float("inf")), "bandwidth", ValueError),
        (lambda: kernels.laplacian(-2.0), "bandwidth", ValueError),
        (lambda: kernels.laplacian(0.0), "bandwidth", ValueError),
        (lambda: kernels.laplacian(float("nan")), "bandwidth", ValueError),
        (lambda: kernels.polynomial(0), "degree", ValueError),
        (lambda: kernels.polynomial(-1), "degree", ValueError),
        (lambda: kernels.polynomial(2.5), "degree", TypeError),
        (lambda: kernels.polynomial(2, scale=-1.0), "scale", ValueError),
        (lambda: kernels.polynomial(2, offset=-1.0), "offset", ValueError),
        (lambda: kernels.nngp(-1), "depth", ValueError),
        (lambda: kernels.ntk(-1), "depth", ValueError),
        (lambda: kernels.nngp(1, w_var=-1.0), "w_var", ValueError),
        (lambda: kernels.ntk(1, w_var=-1.0), "w_var", ValueError),
        (lambda: kernels.nngp(1, b_var=-0.1), "b_var", ValueError),
        (lambda: kernels.ntk(1, b_var=float("nan")), "b_var", ValueError),
        (lambda: kernels.by_name("gaussian"), "kernel must be one of", ValueError),
        (lambda: kernels.rbf("2"), "bandwidth must be a finite number > 0, got '2' .str.", TypeError),
        (lambda: kernels.rbf(None), "bandwidth must be", TypeError),
        (lambda: kernels.by_name("rbf", width=2.0), "bad parameters", ValueError),
    ],
)
def test_constructor_errors(make, match, error):
    with pytest.raises(error, match=match):
        make()


def test_unknown_kernel_name_lists_known_ones():
    with pytest.raises(ValueError, match="rbf") as info:
        kernels.by_name("nope")
    for name in kernels.KERNELS:
        assert name in str(info.value)


def test_non_numeric_bandwidth_is_a_type_error():
    with pytest.raises(TypeError, match="bandwidth"):
        kernels.rbf("wide")


@pytest.mark.parametrize(
    ("X", "Y", "block_size", "match"),
    [
        (np.ones(4), None, None, "X must be a 2-D"),
        (np.ones((2, 3, 4)), None, None, "X must be a 2-D"),
        (np.ones((4, 3)), np.ones(3), None, "Y must be a 2-D"),
        (np.ones((4, 3)), np.ones((5, 2)), None, "Y must have 3 features"),
        (np.ones((4, 3)), None, 0, "block_size"),
        (np.ones((4, 3)), None, -2, "block_size"),
        (np.ones((4, 3)), None, 1.5, "block_size must be an integer >= 1 or None, got 1.5"),
        (np.zeros((0, 3)), None, None, "X must not be empty"),
        (np.array([[0.0, np.nan]]), None, None, "X contains NaN or Inf"),
        (np.array([["a", "b"]]), None, None, "X must be an array of real numbers"),
    ],
)
def test_gram_errors(X, Y, block_size, match):
    wrong_type = isinstance(block_size, float) or np.asarray(X).dtype.kind == "U"
    with pytest.raises(TypeError if wrong_type else ValueError, match=match):
        kssl.gram(kernels.rbf(1.0), X, Y, block_size=block_size)


def test_gram_is_finite_where_the_kernel_is_or_says_why():
    X = np.random.default_rng(0).normal(size=(6, 3))
    K = np.asarray(kssl.gram(kernels.rbf(1e-200), X))  # bandwidth**2 underflows: computed without squaring it
    np.testing.assert_array_equal(K, np.eye(6))
    with pytest.raises(ValueError, match="has NaN or Inf although X is finite"):
        kssl.gram(kernels.polynomial(degree=400), 10 * X)


def test_gram_rejects_non_callable_kernel():
    with pytest.raises(TypeError, match="kernel"):
        kssl.gram("rbf", np.ones((3, 2)))


# ---------------------------------------------------------------------------------------------------------------------
# Pytrees and jit


@jax.jit
def _jit_call(k, x, y):
    return k(x, y)


@pytest.mark.parametrize(("name", "params"), CASES, ids=CASE_IDS)
def test_kernel_passes_through_jit(name, params):
    X, Y = _data(seed=14)
    x, y = jnp.asarray(X[0]), jnp.asarray(Y[0])
    k = _make(name, params)
    assert float(_jit_call(k, x, y)) == pytest.approx(float(k(x, y)), rel=1e-13, abs=1e-14)


def test_kernel_is_a_pytree_with_continuous_leaves_and_static_discrete_parameters():
    k = kernels.ntk(depth=2, w_var=1.5, b_var=0.1)
    leaves, treedef = jax.tree_util.tree_flatten(k)
    assert sorted(float(v) for v in leaves) == [0.1, 1.5]
    doubled = jax.tree_util.tree_map(lambda v: 2 * v, k)
    assert isinstance(doubled, kssl.Kernel)
    assert dict(doubled.static) == {"depth": 2}
    X, _ = _data(seed=15)
    np.testing.assert_allclose(kssl.gram(doubled, X), kssl.gram(kernels.ntk(2, 3.0, 0.2), X), rtol=1e-13)
    # depth is part of the structure: different depths give different tree definitions.
    assert treedef != jax.tree_util.tree_structure(kernels.ntk(depth=3, w_var=1.5, b_var=0.1))
    assert jax.tree_util.tree_structure(kernels.ntk(depth=2, w_var=9.0, b_var=0.0)) == treedef


def test_jit_does_not_recompile_for_new_hyper_parameters():
    x, y = jnp.arange(3.0), jnp.ones(3)
    traces = []

    @jax.jit
    def f(k):
        traces.append(1)
        return k(x, y)

    values = [float(f(kernels.rbf(bw))) for bw in (0.5, 1.0, 2.0)]
    assert len(traces) == 1
    d2 = float(np.sum((np.arange(3.0) - 1.0) ** 2))
    np.testing.assert_allclose(values, [math.exp(-d2 / (2 * bw**2)) for bw in (0.5, 1.0, 2.0)], rtol=1e-13)


def test_vmap_over_kernel_hyper_parameters():
    x, y = jnp.arange(3.0), jnp.ones(3)
    bws = jnp.array([0.5, 1.0, 2.0])
    # Build the kernel once eagerly, then vmap over its leaf (a pytree of arrays).
    batched = jax.tree_util.tree_map(lambda _: bws, kernels.rbf(1.0))
    values = jax.vmap(lambda k: k(x, y))(batched)
    d2 = float(np.sum((np.arange(3.0) - 1.0) ** 2))
    np.testing.assert_allclose(values, np.exp(-d2 / (2 * np.asarray(bws) ** 2)), rtol=1e-13)


def test_repr_names_the_hyper_parameters():
    assert repr(kernels.rbf(2.0)) == "rbf(bandwidth=2)"
    assert repr(kernels.ntk(3, 1.5, 0.1)) == "ntk(depth=3, w_var=1.5, b_var=0.1)"
