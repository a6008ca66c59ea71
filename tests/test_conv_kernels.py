"""The convolutional kernels `cnngp` / `cntk` (SPEC.md §7): an independent numpy reference, exact relations, and their
use everywhere a kernel is used. Their Monte Carlo check against random CNNs is in tests/test_networks.py."""

import math

import jax
import numpy as np
import pytest

import kernel_ssl_jax as kssl
from kernel_ssl_jax import kernels

SHAPE = (3, 3, 2)


def _ref(name, X, Y, image_shape, depth, w_var, b_var, readout):
    """Plain loops over pixel pairs: the covariance of every pair of pre-activations, layer by layer."""
    H, W, C = image_shape
    pix = [(i, j) for i in range(H) for j in range(W)]
    offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]

    def inside(p):
        return 0 <= p[0] < H and 0 <= p[1] < W

    def relu_pair(s, sa, sb):
        c = np.clip(s / np.sqrt(sa * sb), -1.0, 1.0)
        t = math.acos(c)
        return (w_var * np.sqrt(sa * sb) * (math.sin(t) + (math.pi - t) * c) / (2 * math.pi),
                w_var * (math.pi - t) / (2 * math.pi))

    def one(x, y):
        imgs = {"x": x.reshape(H, W, C), "y": y.reshape(H, W, C)}
        # sig[(a, b)][(p, q)]: Cov(z_a[p], z_b[q]) for a, b in {x, y}; theta likewise (NTK).
        sig, theta = {}, {}
        for a in "xy":
            for b in "xy":
                s = {}
                for p in pix:
                    for q in pix:
                        tot = 0.0
                        for o in offsets:
                            pp, qq = (p[0] + o[0], p[1] + o[1]), (q[0] + o[0], q[1] + o[1])
                            if inside(pp) and inside(qq):
                                tot += imgs[a][pp] @ imgs[b][qq]
                        s[p, q] = w_var * tot / (9 * C) + b_var
                sig[a, b], theta[a, b] = s, dict(s)
        for layer in range(depth):
            relu, dth = {}, {}
            for key in sig:
                a, b = key
                relu[key], dth[key] = {}, {}
                for p in pix:
                    for q in pix:
                        r, dr = relu_pair(sig[key][p, q], sig[a, a][p, p], sig[b, b][q, q])
                        relu[key][p, q] = r
                        dth[key][p, q] = theta[key][p, q] * dr + r
            if layer == depth - 1:
                pairs = [(p, p) for p in pix] if readout == "flatten" else [(p, q) for p in pix for q in pix]
                nngp = sum(relu["x", "y"][pq] for pq in pairs) / len(pairs) + b_var
                ntk = sum(dth["x", "y"][pq] for pq in pairs) / len(pairs) + b_var
                return nngp if name == "cnngp" else ntk
            for key in sig:
                for p in pix:
                    for q in pix:
                        s_tot = t_tot = 0.0
                        for o in offsets:
                            pp, qq = (p[0] + o[0], p[1] + o[1]), (q[0] + o[0], q[1] + o[1])
                            if inside(pp) and inside(qq):
                                s_tot += relu[key][pp, qq]
                                t_tot += dth[key][pp, qq]
                        sig[key][p, q] = s_tot / 9 + b_var
                        theta[key][p, q] = t_tot / 9 + b_var

    return np.array([[one(x, y) for y in Y] for x in X])


@pytest.mark.parametrize("readout", kernels.READOUTS)
def test_matches_numpy_reference(readout):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(3, 18)), rng.normal(size=(2, 18))
    for name in ("cnngp", "cntk"):
        k = kernels.by_name(name, image_shape=SHAPE, depth=2, w_var=1.7, b_var=0.2, readout=readout)
        ref = _ref(name, X, Y, SHAPE, 2, 1.7, 0.2, readout)
        np.testing.assert_allclose(kssl.gram(k, X, Y), ref, rtol=1e-12, atol=1e-13)
        if name == "cntk":  # the single-example call (vmap it for batches) is the same function
            np.testing.assert_allclose(float(jax.jit(lambda x, y, k=k: k(x, y))(X[0], Y[1])), ref[0, 1], rtol=1e-12)


def test_one_pixel_image_is_the_mlp_with_a_ninth_of_the_variance_per_layer(depth=2):
    # On a 1x1 image only the centre tap of each 3x3 filter sees a pixel (zero padding), so each convolution is a
    # dense layer with w_var / 9; with b_var = 0 the ReLU recursion is homogeneous: cnn = mlp / 9^depth exactly.
    X = np.random.default_rng(1).normal(size=(4, 3))
    for readout in kernels.READOUTS:
        for conv, dense in ((kernels.cnngp, kernels.nngp), (kernels.cntk, kernels.ntk)):
            got = kssl.gram(conv((1, 1, 3), depth, w_var=1.3, readout=readout), X)
            np.testing.assert_allclose(got, kssl.gram(dense(depth, w_var=1.3), X) / 9**depth, rtol=1e-13)


def test_gram_blocks_symmetry_and_positive_definiteness():
    # gap: the readout whose k(x, y) and k(y, x) sum pixel pairs in different orders.
    X = np.random.default_rng(2).normal(size=(5, 16))
    k = kernels.cntk((4, 4, 1), depth=2, b_var=0.1, readout="gap")
    K = kssl.gram(k, X)
    np.testing.assert_array_equal(K, K.T)
    np.testing.assert_allclose(kssl.gram(k, X, X, block_size=2), K, rtol=1e-13)  # padded last block
    assert np.linalg.eigvalsh(np.asarray(K)).min() > 0


def test_usable_as_any_kernel():
    k = kernels.cnngp((4, 4, 1), depth=1, readout="gap")
    assert repr(k) == "cnngp(depth=1, image_shape=(4, 4, 1), readout=gap, w_var=2, b_var=0)"
    assert not k.dot_product and kernels.rbf(1.0).dot_product
    # A pytree: w_var is a leaf, so a jitted function takes it as an argument.
    leaves, tree = jax.tree_util.tree_flatten(k)
    assert len(leaves) == 2 and jax.tree_util.tree_unflatten(tree, leaves) == k
    X = np.random.default_rng(3).normal(size=(12, 16))
    groups = np.repeat(np.arange(6), 2)
    sol = kssl.solve("contrastive", X, kssl.graphs.from_groups(groups), kernel=k, dim=3, lam=0.1)
    assert sol.features(X[:2]).shape == (2, 3)
    with pytest.raises(TypeError, match="not a dot-product kernel"):
        k.from_dots(1.0, 1.0, 1.0, 16)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: kernels.cnngp((4, 4)), ValueError, r"image_shape must be a tuple \(H, W, C\).*got \(4, 4\)"),
        (lambda: kernels.cnngp((4, 0, 1)), ValueError, "image_shape"),
        (lambda: kernels.cnngp("4x4"), TypeError, "image_shape"),
        (lambda: kernels.cntk((4, 4, 1), depth=0), ValueError, "depth must be an integer >= 1, got 0"),
        (lambda: kernels.cntk((4, 4, 1), depth=2.0), TypeError, "depth must be an integer"),
        (lambda: kernels.cntk((4, 4, 1), w_var=0.0), ValueError, "w_var"),
        (lambda: kernels.cntk((4, 4, 1), b_var="x"), TypeError, "b_var"),
        (lambda: kernels.cntk((4, 4, 1), readout="max"), ValueError, r"readout must be one of \['flatten', 'gap'\]"),
        (lambda: kernels.cntk((4, 4, 1), readout=None), TypeError, "readout"),
        (lambda: kernels.by_name("cntk", depth=1), ValueError, "bad parameters for kernel 'cntk'"),
        (lambda: kssl.gram(kernels.cntk((4, 4, 1)), np.ones((2, 15))), ValueError, "must have 16 features"),
    ],
)
def test_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
