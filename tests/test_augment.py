"""Tests for kernel_ssl_jax.augment: one-example augmentations, views and configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kernel_ssl_jax import augment

SHAPE = (6, 5)  # deliberately non-square so a transposed reshape would be caught
D = SHAPE[0] * SHAPE[1]


def _image(seed=0, dtype=np.float64):
    return jnp.asarray(np.random.default_rng(seed).random(D).astype(dtype))


# Every constructor at a nonzero strength, named for parametrisation.
AUGS = {
    "translate": lambda: augment.translate(SHAPE, 1.5),
    "rotate": lambda: augment.rotate(SHAPE, 20.0),
    "scale": lambda: augment.scale(SHAPE, 1.3),
    "affine": lambda: augment.affine(SHAPE, 10.0, 1.0, 1.2),
    "cutout": lambda: augment.cutout(SHAPE, 3),
    "hflip": lambda: augment.hflip(SHAPE, 0.5),
    "noise": lambda: augment.gaussian_noise(0.1),
    "mask": lambda: augment.feature_mask(0.3),
    "compose": lambda: augment.compose(augment.rotate(SHAPE, 10.0), augment.gaussian_noise(0.05)),
    "config": lambda: augment.from_config(
        {"rotation": 12.0, "shift": 1.0, "scale": 0.1, "noise": 0.03, "cutout": 2, "hflip": True, "mask": 0.1}, SHAPE
    ),
}

# Every constructor at zero strength: each must be exactly the identity.
ZERO_AUGS = {
    "translate": lambda: augment.translate(SHAPE, 0.0),
    "rotate": lambda: augment.rotate(SHAPE, 0.0),
    "scale": lambda: augment.scale(SHAPE, 1.0),
    "affine": lambda: augment.affine(SHAPE, 0.0, 0.0, 1.0),
    "cutout": lambda: augment.cutout(SHAPE, 0),
    "hflip": lambda: augment.hflip(SHAPE, 0.0),
    "noise": lambda: augment.gaussian_noise(0.0),
    "mask": lambda: augment.feature_mask(0.0),
    "identity": augment.identity,
    "compose_empty": augment.compose,
    "config_zero": lambda: augment.from_config(
        {"rotation": 0.0, "shift": 0.0, "scale": 0.0, "noise": 0.0, "cutout": 0, "hflip": False, "mask": 0.0}, SHAPE
    ),
    "config_empty": lambda: augment.from_config({}, None),
}


@pytest.mark.parametrize("name", sorted(AUGS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shape_and_dtype_preserved(name, dtype):
    x = _image(dtype=dtype)
    out = AUGS[name]()(jax.random.key(0), x)
    assert out.shape == (D,)
    assert out.dtype == dtype


@pytest.mark.parametrize("name", sorted(AUGS))
def test_deterministic_given_key_and_varies_with_key(name):
    aug = AUGS[name]()
    x = _image()
    a = aug(jax.random.key(3), x)
    b = aug(jax.random.key(3), x)
    np.testing.assert_array_equal(a, b)
    # hflip and cutout have few outcomes, so look across several keys for one that differs.
    outs = [aug(jax.random.key(k), x) for k in range(8)]
    assert any(not np.array_equal(outs[0], o) for o in outs[1:])


# One per building block (affine covers translate/rotate/scale): each jit of a new closure compiles afresh.
@pytest.mark.parametrize("name", ["affine", "cutout", "hflip", "noise", "mask"])
def test_jit_and_vmap_match_loop(name):
    aug = AUGS[name]()
    X = jnp.stack([_image(s) for s in range(3)])
    keys = jax.random.split(jax.random.key(1), 3)
    batched = jax.jit(jax.vmap(aug))(keys, X)
    looped = jnp.stack([aug(keys[i], X[i]) for i in range(3)])
    np.testing.assert_allclose(batched, looped, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ZERO_AUGS))
def test_zero_strength_is_exactly_identity(name):
    x = _image()
    out = ZERO_AUGS[name]()(jax.random.key(0), x)
    np.testing.assert_array_equal(out, x)
    assert out.dtype == x.dtype


def test_warp_identity_transform_is_exact():
    x = _image()
    np.testing.assert_array_equal(augment.warp(x, SHAPE), x)


@pytest.mark.parametrize("shift", [(1, 2), (-2, 1), (0, -2), (3, 0)])
def test_integer_shift_moves_one_hot_pixel(shift):
    image = np.zeros(SHAPE)
    image[2, 2] = 1.0
    out = np.asarray(augment.warp(jnp.asarray(image.ravel()), SHAPE, shift=shift)).reshape(SHAPE)
    expected = np.zeros(SHAPE)
    expected[2 + shift[0], 2 + shift[1]] = 1.0
    np.testing.assert_array_equal(out, expected)


def test_shift_out_of_the_image_fills_zero():
    image = np.ones(SHAPE)
    out = np.asarray(augment.warp(jnp.asarray(image.ravel()), SHAPE, shift=(2, 0))).reshape(SHAPE)
    np.testing.assert_array_equal(out[:2], 0.0)
    np.testing.assert_array_equal(out[2:], 1.0)


def test_half_pixel_shift_is_bilinear():
    image = np.zeros(SHAPE)
    image[2, 2] = 1.0
    out = np.asarray(augment.warp(jnp.asarray(image.ravel()), SHAPE, shift=(0, 0.5))).reshape(SHAPE)
    expected = np.zeros(SHAPE)
    expected[2, 2] = expected[2, 3] = 0.5
    np.testing.assert_allclose(out, expected, atol=1e-15)


@pytest.mark.parametrize("n", [4, 5])  # even and odd sides: the centre is a pixel corner or a pixel centre
@pytest.mark.parametrize("quarter_turns", [1, 2, 3, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quarter_turn_matches_rot90_exactly(n, quarter_turns, dtype):
    # A square image rotated about its centre by a multiple of 90 degrees maps the pixel grid onto itself, so there
    # is no border interpolation and the result must equal np.rot90 bit for bit.
    image = np.arange(n * n, dtype=dtype).reshape(n, n) ** 2  # asymmetric under every rotation and flip
    out = augment.warp(jnp.asarray(image.ravel()), (n, n), degrees=90.0 * quarter_turns)
    np.testing.assert_array_equal(np.asarray(out).reshape(n, n), np.rot90(image, quarter_turns))


def test_zoom_about_centre_keeps_centre_pixel():
    image = np.zeros((5, 5))
    image[2, 2] = 1.0
    out = np.asarray(augment.warp(jnp.asarray(image.ravel()), (5, 5), zoom=2.0)).reshape(5, 5)
    assert out[2, 2] == 1.0
    assert out.sum() > 1.0  # enlarged: the bump spreads over neighbours


def test_hflip_always_mirrors_with_p_one():
    x = _image()
    out = augment.hflip(SHAPE, 1.0)(jax.random.key(0), x)
    np.testing.assert_array_equal(np.asarray(out).reshape(SHAPE), np.asarray(x).reshape(SHAPE)[:, ::-1])


def test_cutout_erases_at_most_one_clipped_square():
    x = jnp.ones(D)
    aug = augment.cutout(SHAPE, 3)
    for k in range(10):
        zero = np.asarray(aug(jax.random.key(k), x)).reshape(SHAPE) == 0
        assert 1 <= zero.sum() <= 9
        rows, cols = np.nonzero(zero)
        # The erased set is a full rectangle (a clipped square).
        assert zero.sum() == (np.ptp(rows) + 1) * (np.ptp(cols) + 1)


def test_feature_mask_only_zeroes():
    x = _image() + 1.0
    out = np.asarray(augment.feature_mask(0.5)(jax.random.key(0), x))
    kept = out != 0
    np.testing.assert_array_equal(out[kept], np.asarray(x)[kept])
    assert 0 < kept.sum() < D
    np.testing.assert_array_equal(augment.feature_mask(1.0)(jax.random.key(0), x), 0.0)


def test_gaussian_noise_statistics():
    x = jnp.zeros(20000)
    out = np.asarray(augment.gaussian_noise(0.5)(jax.random.key(0), x))
    assert abs(out.mean()) < 0.02
    assert abs(out.std() - 0.5) < 0.02


def test_compose_applies_in_order_with_split_keys():
    key = jax.random.key(7)
    first, second = augment.rotate(SHAPE, 15.0), augment.gaussian_noise(0.1)
    k1, k2 = jax.random.split(key)
    x = _image()
    np.testing.assert_array_equal(augment.compose(first, second)(key, x), second(k2, first(k1, x)))


# One augmentation object and one X shape for all make_views tests: the augmentation is a static argument of the
# compiled function, so sharing it lets the tests share compilations.
_NOISE = augment.gaussian_noise(0.01)
_X = jnp.stack([_image(s) for s in range(4)])


@pytest.mark.parametrize("key_fn", [jax.random.key, jax.random.PRNGKey])
def test_make_views_layout(key_fn):
    views, groups = augment.make_views(key_fn(0), _X, 3, _NOISE)
    assert views.shape == (12, D)
    assert views.dtype == _X.dtype
    assert groups.dtype == jnp.int32
    np.testing.assert_array_equal(groups, np.arange(12) // 3)
    # Source-major: the views of sample i are rows 3i..3i+2 and lie close to X[i], not to any other sample.
    distances = np.linalg.norm(np.asarray(views)[:, None, :] - np.asarray(_X)[None, :, :], axis=-1)
    np.testing.assert_array_equal(distances.argmin(axis=1), np.asarray(groups))
    # Views of one source are distinct draws.
    assert not np.array_equal(views[0], views[1])


def test_make_views_deterministic_key_dependent_and_matches_per_example_calls():
    key = jax.random.key(5)
    views, _ = augment.make_views(key, _X, 3, _NOISE)
    again, _ = augment.make_views(key, _X, 3, _NOISE)
    other, _ = augment.make_views(jax.random.key(6), _X, 3, _NOISE)
    np.testing.assert_array_equal(views, again)
    assert not np.array_equal(views, other)
    keys = jax.random.split(key, (4, 3))
    expected = jnp.stack([_NOISE(keys[i, v], _X[i]) for i in range(4) for v in range(3)])
    np.testing.assert_allclose(views, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_views", [1, 3])
def test_make_views_include_original(n_views):
    views, groups = augment.make_views(jax.random.key(0), _X, n_views, _NOISE, True)
    assert views.shape == (4 * n_views, D)
    np.testing.assert_array_equal(views[::n_views], _X)
    np.testing.assert_array_equal(groups, np.arange(4 * n_views) // n_views)
    if n_views > 1:
        assert not np.array_equal(views[1], _X[0])


def test_from_config_matches_composition():
    spec = {"rotation": 12.0, "shift": 1.0, "scale": 0.1, "cutout": 2, "hflip": 0.3, "mask": 0.2, "noise": 0.03}
    key = jax.random.key(2)
    expected = augment.compose(
        augment.affine(SHAPE, 12.0, 1.0, 1.1),
        augment.hflip(SHAPE, 0.3),
        augment.cutout(SHAPE, 2),
        augment.feature_mask(0.2),
        augment.gaussian_noise(0.03),
    )
    x = _image()
    np.testing.assert_array_equal(augment.from_config(spec, SHAPE)(key, x), expected(key, x))


def test_from_config_vectors_without_shape():
    aug = augment.from_config({"noise": 0.1, "mask": 0.2, "rotation": 0.0, "hflip": False}, None)
    x = jnp.ones(7)
    out = aug(jax.random.key(0), x)
    assert out.shape == (7,)
    assert not np.array_equal(out, x)


# ----------------------------------------------------------------------------------------------------------------------
# Error paths: each must name the offending argument.
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: augment.translate(SHAPE, -1.0), "max_shift must be a finite number >= 0"),
        (lambda: augment.rotate(SHAPE, -5.0), "max_degrees must be a finite number >= 0"),
        (lambda: augment.rotate(SHAPE, float("nan")), "max_degrees must be a finite number >= 0"),
        (lambda: augment.scale(SHAPE, 0.5), r"max_factor must be >= 1"),
        (lambda: augment.affine(SHAPE, max_scale=0.9), r"max_scale must be >= 1"),
        (lambda: augment.gaussian_noise(-0.1), "std must be a finite number >= 0"),
        (lambda: augment.gaussian_noise("a lot"), "std must be a finite number >= 0, got 'a lot' .str."),
        (lambda: augment.feature_mask(1.5), r"p must be a probability in \[0, 1\]"),
        (lambda: augment.feature_mask(-0.1), r"p must be a probability in \[0, 1\]"),
        (lambda: augment.hflip(SHAPE, 2.0), r"p must be a probability in \[0, 1\]"),
        (lambda: augment.cutout(SHAPE, -2), "size must be a finite number >= 0"),
        (lambda: augment.cutout(SHAPE, 1.5), "size must be a non-negative integer"),
        (lambda: augment.rotate((8,), 10.0), r"shape must be a pair \(height, width\)"),
        (lambda: augment.rotate((0, 8), 10.0), r"shape must be a pair \(height, width\)"),
    ],
)
def test_constructor_errors(build, match):
    with pytest.raises(TypeError if ".str." in match else ValueError, match=match):
        build()


def test_compose_rejects_non_callable():
    with pytest.raises(TypeError, match=r"augs\[1\] must be a callable"):
        augment.compose(augment.identity(), 3)


@pytest.mark.parametrize("name", ["translate", "rotate", "cutout", "hflip"])
def test_shape_mismatch_names_shape_and_d(name):
    aug = AUGS[name]()
    with pytest.raises(ValueError, match=r"shape \(6, 5\) does not match the example: d = 31"):
        aug(jax.random.key(0), jnp.zeros(D + 1))


@pytest.mark.parametrize("name", ["rotate", "noise", "mask", "hflip"])
def test_batched_input_is_rejected(name):
    with pytest.raises(ValueError, match=r"one flat example of shape \(d,\).*jax.vmap"):
        AUGS[name]()(jax.random.key(0), jnp.zeros((2, D)))


def test_integer_input_rejected_for_resampling():
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        augment.rotate(SHAPE, 10.0)(jax.random.key(0), jnp.zeros(D, jnp.int32))


def test_make_views_errors():
    aug = augment.identity()
    with pytest.raises(ValueError, match=r"X must be 2-D with shape \(n, d\); got shape \(5,\)"):
        augment.make_views(jax.random.key(0), jnp.zeros(5), 2, aug)
    with pytest.raises(ValueError, match="n_views must be an integer >= 1, got 0"):
        augment.make_views(jax.random.key(0), jnp.zeros((3, 5)), 0, aug)
    with pytest.raises(TypeError, match="aug must be a callable"):
        augment.make_views(jax.random.key(0), jnp.zeros((3, 5)), 2, None)
    with pytest.raises(ValueError, match=r"shape \(6, 5\) does not match the example: d = 5"):
        augment.make_views(jax.random.key(0), jnp.zeros((3, 5)), 2, augment.rotate(SHAPE, 10.0))


@pytest.mark.parametrize(
    "spec, shape, match",
    [
        ({"rotations": 10.0}, SHAPE, "unknown augmentation key 'rotations'"),
        ({"rotation": -1.0}, SHAPE, "rotation must be a finite number >= 0"),
        ({"noise": -0.1}, SHAPE, "noise must be a finite number >= 0"),
        ({"mask": 1.2}, SHAPE, r"mask must be a probability in \[0, 1\]"),
        ({"hflip": 3.0}, SHAPE, r"hflip must be a probability in \[0, 1\]"),
        ({"cutout": 2.5}, SHAPE, "cutout must be a non-negative integer"),
        ({"rotation": 10.0, "noise": 0.1}, None, "rotation need an image shape"),
        ({"shift": 1.0, "hflip": True}, None, "shift, hflip need an image shape"),
        ({"noise": 0.1}, (3, 3, 3), r"shape must be a pair \(height, width\)"),
    ],
)
def test_from_config_errors(spec, shape, match):
    with pytest.raises(ValueError, match=match):
        augment.from_config(spec, shape)
