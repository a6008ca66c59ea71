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
    "elastic": lambda: augment.elastic(SHAPE, 1.0, 1.0),
    "hflip": lambda: augment.hflip(SHAPE, 0.5),
    "noise": lambda: augment.gaussian_noise(0.1),
    "mask": lambda: augment.feature_mask(0.3),
    "compose": lambda: augment.compose(augment.rotate(SHAPE, 10.0), augment.gaussian_noise(0.05)),
    "config": lambda: augment.from_config(
        {"rotation": 12.0, "shift": 1.0, "scale": 0.1, "noise": 0.03, "cutout": 2, "hflip": True, "mask": 0.1}, SHAPE
    ),
    "signal_affine": lambda: augment.signal_affine(2.0, 1.2),
    "signal_shift_zeros": lambda: augment.signal_shift(2.0, circular=False),
    "time_warp": lambda: augment.time_warp(0.5, 2.0),
    "amplitude": lambda: augment.amplitude_scale(1.2),
    "slope": lambda: augment.slope(0.2),
    "corr_noise": lambda: augment.correlated_noise(0.1, 2.0),
    "signal_config": lambda: augment.from_config(
        {"signal_shift": 3.0, "time_scale": 0.2, "time_warp": 0.3, "amplitude": 0.2, "slope": 0.2, "corr_noise": 0.05,
         "noise": 0.01, "rotation": 0.0, "shift": 0.0}, None),
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
    "signal_affine": lambda: augment.signal_affine(0.0, 1.0),
    "signal_shift": lambda: augment.signal_shift(0.0),
    "time_scale": lambda: augment.time_scale(1.0),
    "time_warp": lambda: augment.time_warp(0.0),
    "amplitude": lambda: augment.amplitude_scale(1.0),
    "slope": lambda: augment.slope(0.0),
    "corr_noise": lambda: augment.correlated_noise(0.0),
    "signal_config_zero": lambda: augment.from_config(
        {"signal_shift": 0.0, "time_scale": 0.0, "time_warp": 0.0, "amplitude": 0.0, "slope": 0.0, "corr_noise": 0.0,
         "signal_wrap": False}, None),
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


# One per building block (affine covers translate/rotate/scale, signal_affine shift/time scale): each jit of a new
# closure compiles afresh.
@pytest.mark.parametrize("name", ["affine", "cutout", "hflip", "noise", "mask", "signal_affine", "time_warp",
                                  "corr_noise"])
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


def test_elastic_moves_content_at_most_alpha_pixels_and_zero_is_the_identity():
    x = jnp.zeros(81).at[40].set(1.0)  # one bright pixel at the centre of a 9x9 image
    aug = augment.elastic((9, 9), 1.0, sigma=1.5)
    views = jax.vmap(aug, in_axes=(0, None))(jax.random.split(jax.random.key(0), 16), x)
    assert views.shape == (16, 81) and views.dtype == x.dtype
    rows, cols = np.divmod(np.arange(81), 9)
    for v in np.asarray(views):
        lit = np.flatnonzero(v > 1e-12)
        # A pixel reads the input within alpha = 1 pixel of itself (bilinear: at most one more pixel of support).
        assert lit.size and np.max(np.hypot(rows[lit] - 4, cols[lit] - 4)) <= 2.0 + 1e-9
    assert not np.allclose(views[0], views[1])  # a different field per key
    assert augment.elastic((9, 9), 0.0)(jax.random.key(0), x) is x  # identity() returns its input
    np.testing.assert_allclose(augment.elastic((9, 9), 1e-9)(jax.random.key(1), x), x, atol=1e-8)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        augment.elastic((9, 9), 1.0, sigma=0.0)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        augment.elastic((9, 9), -1.0)


def test_elastic_from_config_needs_an_image_and_runs_in_make_views():
    with pytest.raises(ValueError, match="elastic"):
        augment.from_config({"elastic": 1.0}, None)
    aug = augment.from_config({"rotation": 10.0, "elastic": 0.8, "elastic_sigma": 1.0}, SHAPE)
    views, groups = augment.make_views(jax.random.key(0), jnp.stack([_image(0), _image(1)]), 3, aug)
    assert views.shape == (6, D) and groups.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.all(np.isfinite(np.asarray(views)))


# ----------------------------------------------------------------------------------------------------------------------
# Signal (1-D) augmentations against numpy references (np.interp)
# ----------------------------------------------------------------------------------------------------------------------


def _signal(seed=0, d=D):
    return np.random.default_rng(seed).normal(size=d)


def _interp_reference(x, positions, circular):
    """np.interp: periodic, or on the signal padded with one 0 at each end and 0 further out."""
    d = x.size
    if circular:
        return np.interp(positions, np.arange(d), x, period=d)
    return np.interp(positions, np.arange(-1, d + 1), np.concatenate([[0.0], x, [0.0]]), left=0.0, right=0.0)


@pytest.mark.parametrize("circular", [True, False])
def test_resample_signal_matches_np_interp(circular):
    x = _signal()
    positions = np.random.default_rng(1).uniform(-3.0, D + 3.0, size=50)
    out = augment.resample_signal(jnp.asarray(x), jnp.asarray(positions), circular)
    np.testing.assert_allclose(out, _interp_reference(x, positions, circular), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("circular", [True, False])
@pytest.mark.parametrize("shift, stretch", [(2.0, 1.0), (-3.3, 1.0), (0.0, 1.4), (1.7, 0.8)])
def test_signal_warp_matches_np_interp(shift, stretch, circular):
    x = _signal()
    centre = (D - 1) / 2
    positions = centre + (np.arange(D) - shift - centre) / stretch
    out = augment.signal_warp(jnp.asarray(x), shift, stretch, circular)
    np.testing.assert_allclose(out, _interp_reference(x, positions, circular), rtol=1e-12, atol=1e-12)


def test_signal_warp_integer_circular_shift_is_np_roll():
    x = _signal()
    np.testing.assert_allclose(augment.signal_warp(jnp.asarray(x), shift=4.0), np.roll(x, 4), rtol=0, atol=1e-15)


@pytest.mark.parametrize("circular", [True, False])
def test_signal_shift_draws_a_shift_within_range_and_resamples_like_np_interp(circular):
    aug = augment.signal_shift(3.5, circular=circular)
    impulse = np.zeros(D)
    impulse[D // 2] = 1.0
    x = _signal()
    for k in range(6):
        key = jax.random.key(k)
        response = np.asarray(aug(key, jnp.asarray(impulse)))
        # The impulse lands between two samples: its centre of mass is D // 2 + the drawn shift.
        u = float(np.sum(np.arange(D) * response)) - D // 2
        assert abs(u) <= 3.5 + 1e-12 and abs(response.sum() - 1.0) < 1e-12
        expected = _interp_reference(x, np.arange(D) - u, circular)
        np.testing.assert_allclose(aug(key, jnp.asarray(x)), expected, rtol=1e-10, atol=1e-10)


def test_time_scale_draws_a_factor_within_range_and_resamples_about_the_centre():
    aug = augment.time_scale(1.3, circular=False)
    ramp = np.arange(D, dtype=float)
    centre = (D - 1) / 2
    x = _signal()
    factors = []
    for k in range(6):
        key = jax.random.key(k)
        read = np.asarray(aug(key, jnp.asarray(ramp)))  # a ramp returns the positions it was read at (inside)
        factor = 1.0 / (read[D // 2] - read[D // 2 - 1])
        assert 1 / 1.3 - 1e-12 <= factor <= 1.3 + 1e-12
        np.testing.assert_allclose(read[D // 2], centre + (D // 2 - centre) / factor, rtol=1e-12)
        positions = centre + (np.arange(D) - centre) / factor
        np.testing.assert_allclose(aug(key, jnp.asarray(x)), _interp_reference(x, positions, False), atol=1e-10)
        factors.append(factor)
    assert min(factors) < 1 < max(factors)  # stretching and compressing both happen


def test_time_warp_is_monotone_keeps_the_ends_and_resamples_like_np_interp():
    strength = 0.6
    aug = augment.time_warp(strength, sigma=2.0)
    ramp = np.arange(D, dtype=float)
    x = _signal()
    for k in range(4):
        key = jax.random.key(k)
        positions = np.asarray(aug(key, jnp.asarray(ramp)))  # linear interpolation of a ramp is exact
        steps = np.diff(positions)
        assert positions[0] == pytest.approx(0.0, abs=1e-12) and positions[-1] == pytest.approx(D - 1, abs=1e-12)
        assert steps.min() > 0 and steps.max() / steps.min() <= np.exp(2 * strength) + 1e-9
        assert not np.allclose(steps, 1.0)
        np.testing.assert_allclose(aug(key, jnp.asarray(x)), np.interp(positions, ramp, x), rtol=1e-12, atol=1e-12)


def test_amplitude_scale_scales_about_the_mean_within_range():
    aug = augment.amplitude_scale(1.25)
    x = _signal() + 3.0
    factors = []
    for k in range(8):
        out = np.asarray(aug(jax.random.key(k), jnp.asarray(x)))
        a = (out - x.mean()) / (x - x.mean())
        np.testing.assert_allclose(a, a[0], rtol=1e-10)
        assert 1 / 1.25 - 1e-12 <= a[0] <= 1.25 + 1e-12
        factors.append(a[0])
    assert min(factors) < 1 < max(factors)


def test_slope_adds_a_linear_trend_within_range():
    aug = augment.slope(0.4)
    x = _signal()
    for k in range(4):
        trend = np.asarray(aug(jax.random.key(k), jnp.asarray(x))) - x
        rise = trend[-1] - trend[0]
        assert abs(rise) <= 0.4 + 1e-12
        np.testing.assert_allclose(trend, rise * (np.arange(D) / (D - 1) - 0.5), atol=1e-12)


def test_correlated_noise_has_the_stated_std_and_the_filters_correlation():
    std, sigma, d = 0.3, 1.5, 24
    aug = augment.correlated_noise(std, sigma)
    noise = np.asarray(jax.vmap(aug, in_axes=(0, None))(jax.random.split(jax.random.key(0), 4000), jnp.zeros(d)))
    inner = noise[:, 6:-6]  # away from the zero-padded ends
    assert np.std(inner) == pytest.approx(std, rel=0.05)
    # Reference: lag-1 correlation of white noise filtered by the Gaussian taps (numpy, radius ceil(3 sigma)).
    t = np.arange(-5, 6)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    rho = np.sum(g[:-1] * g[1:]) / np.sum(g * g)
    lag1 = np.mean(inner[:, :-1] * inner[:, 1:]) / np.mean(inner * inner)
    assert lag1 == pytest.approx(rho, abs=0.03)


def test_from_config_signals_matches_composition():
    spec = {"signal_shift": 3.0, "time_scale": 0.2, "signal_wrap": False, "time_warp": 0.3, "time_warp_sigma": 2.0,
            "amplitude": 0.1, "slope": 0.2, "mask": 0.1, "noise": 0.01, "corr_noise": 0.05, "corr_noise_sigma": 1.5}
    expected = augment.compose(
        augment.signal_affine(3.0, 1.2, circular=False),
        augment.time_warp(0.3, 2.0),
        augment.amplitude_scale(1.1),
        augment.slope(0.2),
        augment.feature_mask(0.1),
        augment.gaussian_noise(0.01),
        augment.correlated_noise(0.05, 1.5),
    )
    key, x = jax.random.key(4), jnp.asarray(_signal())
    np.testing.assert_array_equal(augment.from_config(spec, None)(key, x), expected(key, x))


@pytest.mark.parametrize(
    "spec, shape, error, match",
    [
        ({"signal_shift": -1.0}, None, ValueError, "signal_shift must be a finite number >= 0"),
        ({"time_scale": float("inf")}, None, ValueError, "time_scale must be a finite number >= 0"),
        ({"time_warp_sigma": 0.0}, None, ValueError, "time_warp_sigma must be a finite number > 0"),
        ({"corr_noise_sigma": -1.0}, None, ValueError, "corr_noise_sigma must be a finite number > 0"),
        ({"slope": "steep"}, None, TypeError, "slope must be a finite number >= 0"),
        ({"signal_wrap": 1}, None, TypeError, "signal_wrap must be a bool; got 1"),
        ({"signal_shift": 2.0, "slope": 0.1}, SHAPE, ValueError,
         r"signal augmentation\(s\) signal_shift=2, slope=0.1 act on 1-D signals .* image shape \(6, 5\)"),
    ],
)
def test_from_config_signal_errors(spec, shape, error, match):
    with pytest.raises(error, match=match):
        augment.from_config(spec, shape)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: augment.signal_shift(-1.0), "max_shift must be a finite number >= 0"),
        (lambda: augment.time_scale(0.9), r"max_factor must be >= 1"),
        (lambda: augment.signal_affine(max_stretch=0.5), r"max_stretch must be >= 1"),
        (lambda: augment.time_warp(0.5, sigma=0.0), "sigma must be a finite number > 0"),
        (lambda: augment.time_warp(-0.5), "strength must be a finite number >= 0"),
        (lambda: augment.amplitude_scale(0.5), r"max_factor must be >= 1"),
        (lambda: augment.slope(float("nan")), "max_rise must be a finite number >= 0"),
        (lambda: augment.correlated_noise(-0.1), "std must be a finite number >= 0"),
    ],
)
def test_signal_constructor_errors(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_signal_augmentations_on_signals_shorter_than_their_filters():
    x = jnp.asarray(_signal(d=5))  # the default filters span 2 * ceil(3 sigma) + 1 = 13 and 25 samples
    for aug in (augment.correlated_noise(0.1), augment.time_warp(0.5)):
        assert aug(jax.random.key(0), x).shape == (5,)


def test_signal_call_errors():
    with pytest.raises(ValueError, match=r"one flat example of shape \(d,\)"):
        augment.signal_shift(1.0)(jax.random.key(0), jnp.zeros((2, D)))
    with pytest.raises(ValueError, match="x must have a floating dtype"):
        augment.time_warp(0.5)(jax.random.key(0), jnp.zeros(D, jnp.int32))
    with pytest.raises(ValueError, match="time_warp needs a signal of at least 2 samples; got d = 1"):
        augment.time_warp(0.5)(jax.random.key(0), jnp.zeros(1))
