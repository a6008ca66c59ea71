"""Data augmentations: pure functions of one example, batched with ``jax.vmap``.

Every augmentation is a function ``aug(key, x) -> x_aug`` acting on ONE example ``x`` of shape ``(d,)``, deterministic
given ``key`` and returning the same shape and dtype. The constructors below (``translate``, ``rotate``,
``gaussian_noise``...) fix the strength and return such a function; ``make_views`` draws a ``(n, n_views)`` grid
of keys and vmaps the augmentation over it, which is how the positive pairs (the groups of the augmentation graph)
are produced.

Image augmentations take the image shape ``(height, width)`` at construction and reshape the flat example internally,
so images and plain feature vectors flow through the same code path. A strength of zero always yields exactly the
identity: the constructor returns ``identity()`` instead of a resampling that would only be exact up to rounding.

Signal augmentations (``signal_shift``, ``time_scale``, ``time_warp``, ``amplitude_scale``, ``slope``,
``correlated_noise``) treat the flat example as a 1-D signal sampled at ``t = 0 .. d - 1``; they mirror the nuisances
of the MNIST-1D generator (translation, dilation, amplitude scale, shear, smoothed background noise). A shift ``s``
moves content ``s`` samples to the right (towards larger ``t``), a time-scale factor ``> 1`` stretches it about the
centre ``(d - 1) / 2``.

Geometric conventions (row index downwards, column index to the right, transforms about the image centre):
positive ``degrees`` rotate counter-clockwise as the image is displayed (so 90 degrees equals ``np.rot90``), a shift
``(dr, dc)`` moves content ``dr`` rows down and ``dc`` columns right, and ``zoom > 1`` enlarges the content.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import jax.scipy.signal
from jax.scipy.ndimage import map_coordinates

from kernel_ssl_jax import validation as _v

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]
"""``aug(key, x) -> x_aug`` on one flat example ``x`` of shape ``(d,)``."""

CONFIG_KEYS = ("rotation", "shift", "scale", "elastic", "elastic_sigma", "noise", "cutout", "hflip", "mask",
               "signal_shift", "signal_wrap", "time_scale", "time_warp", "time_warp_sigma", "amplitude", "slope",
               "corr_noise", "corr_noise_sigma")
"""Keys accepted by :func:`from_config`."""

_VECTOR_CONFIG_KEYS = ("noise", "mask", "amplitude")
_IMAGE_CONFIG_KEYS = ("rotation", "shift", "scale", "elastic", "cutout", "hflip")
_SIGNAL_CONFIG_KEYS = ("signal_shift", "time_scale", "time_warp", "slope", "corr_noise")


# ----------------------------------------------------------------------------------------------------------------------
# Validation helpers
# ----------------------------------------------------------------------------------------------------------------------


def _nonnegative(name: str, value) -> float:
    return float(_v.real(name, value))


def _probability(name: str, value) -> float:
    return float(_v.real(name, value, maximum=1.0))


def _image_shape(shape) -> tuple[int, int]:
    """Validates an image shape ``(height, width)`` of positive integers."""
    try:
        height, width = shape
        ok = all(int(s) == s and s > 0 for s in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape must be a pair (height, width) of positive integers; got {shape!r}")
    return int(height), int(width)


def _as_image(x: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """Reshapes one flat example to ``(height, width)``, checking that ``d == height * width``."""
    x = jnp.asarray(x)
    height, width = shape
    if x.ndim != 1:
        raise ValueError(
            f"augmentations act on one flat example of shape (d,); got x of shape {x.shape} (batch with jax.vmap)"
        )
    if x.shape[0] != height * width:
        raise ValueError(
            f"shape {shape} does not match the example: d = {x.shape[0]} but height * width = {height * width}"
        )
    return x.reshape(height, width)


def _check_example(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x)
    if x.ndim != 1:
        raise ValueError(
            f"augmentations act on one flat example of shape (d,); got x of shape {x.shape} (batch with jax.vmap)"
        )
    return x


def _check_floating(x: jax.Array) -> None:
    # Resampling and additive noise have no meaningful integer result, and silently rounding would hide a bug.
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must have a floating dtype for this augmentation; got {x.dtype}")


def _factor_bound(name: str, value, what: str = "factors") -> float:
    """The bound `b >= 1` of random factors in `[1 / b, b]` (zoom, time scale, amplitude)."""
    value = _nonnegative(name, value)
    if value < 1:
        raise ValueError(f"{name} must be >= 1 ({what} in [1/{name}, {name}]); got {value}")
    return value


def _positive(name: str, value) -> float:
    return float(_v.real(name, value, strict=True))


def _gaussian_taps(sigma: float) -> list[float]:
    """The taps of a Gaussian filter of standard deviation ``sigma`` samples, radius ``ceil(3 sigma)``, summing to 1."""
    radius = max(1, int(math.ceil(3 * sigma)))
    taps = [math.exp(-0.5 * (t / sigma) ** 2) for t in range(-radius, radius + 1)]
    total = sum(taps)
    return [t / total for t in taps]


# ----------------------------------------------------------------------------------------------------------------------
# Basic combinators
# ----------------------------------------------------------------------------------------------------------------------


def identity() -> Augmentation:
    """The augmentation that returns its input unchanged.

    Returns:
        ``aug(key, x) -> x``; the key is ignored.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> identity()(jax.random.key(0), jnp.arange(3.0)).tolist()
        [0.0, 1.0, 2.0]
    """

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        del key
        return jnp.asarray(x)

    return aug


def compose(*augs: Augmentation) -> Augmentation:
    """Applies augmentations left to right, each with its own independent subkey.

    Args:
        *augs: augmentations ``aug(key, x) -> x``. No argument gives the identity.

    Returns:
        The composed augmentation ``aug(key, x)``: ``augs[-1](k_m, ... augs[0](k_1, x))`` with
        ``k_1 ... k_m = jax.random.split(key, m)``.

    Raises:
        TypeError: if an argument is not callable.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> aug = compose(gaussian_noise(0.1), feature_mask(0.5))
        >>> aug(jax.random.key(0), jnp.ones(4)).shape
        (4,)
    """
    for i, aug in enumerate(augs):
        if not callable(aug):
            raise TypeError(f"augs[{i}] must be a callable aug(key, x); got {aug!r}")
    if not augs:
        return identity()
    if len(augs) == 1:
        return augs[0]

    def composed(key: jax.Array, x: jax.Array) -> jax.Array:
        keys = jax.random.split(key, len(augs))
        for i, aug in enumerate(augs):
            x = aug(keys[i], x)
        return x

    return composed


# ----------------------------------------------------------------------------------------------------------------------
# Vector augmentations
# ----------------------------------------------------------------------------------------------------------------------


def gaussian_noise(std: float) -> Augmentation:
    """Additive isotropic Gaussian noise, ``x + std * N(0, I)``; works for any flat vector.

    Args:
        std: standard deviation of the noise, >= 0. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``; the noise is drawn in ``x.dtype``.

    Raises:
        ValueError: if ``std`` is negative or not finite; at call time, if ``x`` is not a floating 1-D array.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> gaussian_noise(0.1)(jax.random.key(0), jnp.zeros(3)).shape
        (3,)
    """
    std = _nonnegative("std", std)
    if std == 0:
        return identity()

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        return x + std * jax.random.normal(key, x.shape, x.dtype)

    return aug


def feature_mask(p: float) -> Augmentation:
    """Sets each feature to zero independently with probability ``p`` (dropout without rescaling).

    Args:
        p: probability of zeroing a feature, in [0, 1]. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``p`` is outside [0, 1]; at call time, if ``x`` is not 1-D.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> feature_mask(1.0)(jax.random.key(0), jnp.ones(3)).tolist()
        [0.0, 0.0, 0.0]
    """
    p = _probability("p", p)
    if p == 0:
        return identity()

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
        return jnp.where(keep, x, jnp.zeros_like(x))

    return aug


# ----------------------------------------------------------------------------------------------------------------------
# Image augmentations
# ----------------------------------------------------------------------------------------------------------------------


def warp(
    x: jax.Array,
    shape: Sequence[int],
    degrees: float | jax.Array = 0.0,
    shift: Sequence[float] | jax.Array = (0.0, 0.0),
    zoom: float | jax.Array = 1.0,
) -> jax.Array:
    """Applies one given affine transform (rotation, zoom, shift about the centre) to one flat image.

    This is the single resampling routine behind ``translate``, ``rotate``, ``scale`` and ``affine``. The output pixel
    ``p`` (centred coordinates) reads the input at ``R(-degrees) (p - shift) / zoom``, interpolated bilinearly
    (``map_coordinates`` with order 1); pixels that read outside the image are 0. Integer shifts, and rotations by
    multiples of 90 degrees of a square image, land on the pixel grid, so they only move pixels.

    Args:
        x: one flat image, shape ``(height * width,)``, floating dtype.
        shape: ``(height, width)``.
        degrees: rotation angle, counter-clockwise as displayed (90 equals ``np.rot90``).
        shift: ``(dr, dc)``: content moves ``dr`` rows down and ``dc`` columns right; may be fractional.
        zoom: magnification factor > 0 (``> 1`` enlarges the content).

    Returns:
        The transformed image, flat, shape ``(height * width,)``, same dtype as ``x``.

    Raises:
        ValueError: if ``shape`` is not a pair of positive integers or does not match ``x``, or ``x`` is not floating.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.zeros(9).at[4].set(1.0)  # centre pixel of a 3x3 image
        >>> float(warp(x, (3, 3), shift=(1.0, 0.0)).reshape(3, 3)[2, 1])
        1.0
    """
    shape = _image_shape(shape)
    image = _as_image(x, shape)
    _check_floating(image)
    dtype = image.dtype
    height, width = shape
    theta = jnp.deg2rad(jnp.asarray(degrees, dtype))
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    # cos(pi / 2) is ~6e-17, not 0, which would blend a 1e-16 fraction of neighbours into every pixel; snapping
    # rounding-level values to 0 makes quarter turns exact pixel permutations (changes nothing beyond rounding).
    tiny = 8 * jnp.finfo(dtype).eps
    cos = jnp.where(jnp.abs(cos) < tiny, jnp.zeros_like(cos), cos)
    sin = jnp.where(jnp.abs(sin) < tiny, jnp.zeros_like(sin), sin)
    shift = jnp.asarray(shift, dtype)
    zoom = jnp.asarray(zoom, dtype)

    # Output grid in coordinates centred on the image centre, so rotation and zoom keep the centre fixed.
    centre_r, centre_c = (height - 1) / 2, (width - 1) / 2
    rows = jnp.arange(height, dtype=dtype)[:, None] - centre_r
    cols = jnp.arange(width, dtype=dtype)[None, :] - centre_c
    rows, cols = jnp.broadcast_arrays(rows, cols)
    # Inverse map (pull-back): resampling asks, for each output pixel, where it comes from in the input.
    rows, cols = rows - shift[0], cols - shift[1]
    src_r = (cos * rows + sin * cols) / zoom + centre_r
    src_c = (-sin * rows + cos * cols) / zoom + centre_c
    out = map_coordinates(image, [src_r, src_c], order=1, mode="constant", cval=0.0)
    return out.reshape(-1).astype(dtype)


def affine(
    shape: Sequence[int], max_degrees: float = 0.0, max_shift: float = 0.0, max_scale: float = 1.0
) -> Augmentation:
    """Random rotation, shift and zoom applied in a single bilinear resampling (see :func:`warp`).

    The angle is uniform in ``[-max_degrees, max_degrees]``, each shift component uniform in
    ``[-max_shift, max_shift]`` pixels, and the zoom log-uniform in ``[1 / max_scale, max_scale]`` (zooming in and
    out equally likely). Composing them in one resampling interpolates once instead of blurring three times.

    Args:
        shape: image shape ``(height, width)``.
        max_degrees: largest rotation angle in degrees, >= 0.
        max_shift: largest shift per axis in pixels, >= 0; need not be an integer.
        max_scale: largest zoom factor, >= 1 (1 means no zoom).

    Returns:
        The augmentation ``aug(key, x)``; exactly the identity when ``max_degrees == max_shift == 0`` and
        ``max_scale == 1``.

    Raises:
        ValueError: if a strength is negative or not finite, ``max_scale < 1``, or ``shape`` is invalid; at call
            time, if ``x`` is not a flat floating image of ``height * width`` pixels.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> aug = affine((8, 8), max_degrees=10.0, max_shift=1.0, max_scale=1.1)
        >>> aug(jax.random.key(0), jnp.ones(64)).shape
        (64,)
    """
    shape = _image_shape(shape)
    max_degrees = _nonnegative("max_degrees", max_degrees)
    max_shift = _nonnegative("max_shift", max_shift)
    max_scale = _factor_bound("max_scale", max_scale, "zoom")
    if max_degrees == 0 and max_shift == 0 and max_scale == 1:
        return identity()
    log_scale = math.log(max_scale)

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        key_angle, key_shift, key_zoom = jax.random.split(key, 3)
        degrees = jax.random.uniform(key_angle, (), x.dtype, -max_degrees, max_degrees)
        shift = jax.random.uniform(key_shift, (2,), x.dtype, -max_shift, max_shift)
        zoom = jnp.exp(jax.random.uniform(key_zoom, (), x.dtype, -log_scale, log_scale))
        return warp(x, shape, degrees, shift, zoom)

    return aug


def translate(shape: Sequence[int], max_shift: float) -> Augmentation:
    """Random sub-pixel translation, each axis uniform in ``[-max_shift, max_shift]`` pixels, bilinear.

    Args:
        shape: image shape ``(height, width)``.
        max_shift: largest shift per axis in pixels, >= 0. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``; vacated pixels are 0.

    Raises:
        ValueError: if ``max_shift`` is negative or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> translate((8, 8), 1.5)(jax.random.key(0), jnp.ones(64)).shape
        (64,)
    """
    return affine(shape, max_shift=max_shift)


def rotate(shape: Sequence[int], max_degrees: float) -> Augmentation:
    """Random rotation about the image centre by an angle uniform in ``[-max_degrees, max_degrees]``, bilinear.

    Args:
        shape: image shape ``(height, width)``.
        max_degrees: largest angle in degrees, >= 0. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``; corners rotated in from outside are 0.

    Raises:
        ValueError: if ``max_degrees`` is negative or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> rotate((8, 8), 15.0)(jax.random.key(0), jnp.ones(64)).shape
        (64,)
    """
    return affine(shape, max_degrees=max_degrees)


def scale(shape: Sequence[int], max_factor: float) -> Augmentation:
    """Random zoom about the image centre by a factor log-uniform in ``[1 / max_factor, max_factor]``, bilinear.

    Args:
        shape: image shape ``(height, width)``.
        max_factor: largest zoom factor, >= 1. One gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``max_factor < 1`` or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> scale((8, 8), 1.2)(jax.random.key(0), jnp.ones(64)).shape
        (64,)
    """
    max_factor = _factor_bound("max_factor", max_factor, "zoom")
    return affine(shape, max_scale=max_factor)


def elastic(shape: Sequence[int], alpha: float, sigma: float = 1.0) -> Augmentation:
    """Random elastic deformation (Simard, Steinkraus and Platt, 2003), bilinear.

    A displacement field uniform in ``[-1, 1]`` per pixel and axis is smoothed by a Gaussian of standard deviation
    ``sigma`` pixels (zero padding at the border) and rescaled so that its largest displacement is ``alpha`` pixels;
    output pixel ``p`` reads the input at ``p + displacement(p)`` (:func:`warp`'s pull-back convention and
    interpolation, ``map_coordinates`` with order 1; outside the image reads 0). Unlike an affine map the stroke
    bends locally, like handwriting that varies from one writer to the next.

    Args:
        shape: image shape ``(height, width)``.
        alpha: largest displacement in pixels, >= 0. Zero gives exactly the identity.
        sigma: smoothness of the field in pixels, > 0 (small: local jitter; large: a nearly affine warp).

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``alpha`` is negative, ``sigma`` is not positive, or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> elastic((8, 8), 1.0)(jax.random.key(0), jnp.ones(64)).shape
        (64,)
    """
    shape = _image_shape(shape)
    alpha = _nonnegative("alpha", alpha)
    sigma = _nonnegative("sigma", sigma)
    if sigma == 0:
        raise ValueError("sigma must be a finite number > 0; got 0.0")
    if alpha == 0:
        return identity()
    height, width = shape
    taps = _gaussian_taps(sigma)

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        image = _as_image(x, shape)
        _check_floating(image)
        dtype = image.dtype
        g = jnp.asarray(taps, dtype)
        field = jax.random.uniform(key, (2, height, width), dtype, -1.0, 1.0)
        smooth = jax.vmap(lambda f: jax.scipy.signal.convolve2d(f, g[:, None] * g[None, :], mode="same"))(field)
        peak = jnp.max(jnp.abs(smooth))
        field = alpha * smooth / jnp.where(peak > 0, peak, 1.0)
        rows = jnp.arange(height, dtype=dtype)[:, None] + field[0]
        cols = jnp.arange(width, dtype=dtype)[None, :] + field[1]
        out = map_coordinates(image, [rows, cols], order=1, mode="constant", cval=0.0)
        return out.reshape(-1).astype(dtype)

    return aug


def cutout(shape: Sequence[int], size: int) -> Augmentation:
    """Random erasing: sets a ``size x size`` square patch to 0 (DeVries & Taylor, 2017).

    The patch centre is uniform over all pixels and the patch is clipped at the border, so every pixel can be erased.

    Args:
        shape: image shape ``(height, width)``.
        size: side of the square patch in pixels, a non-negative integer. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``size`` is negative or not an integer, or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = cutout((8, 8), 3)(jax.random.key(0), jnp.ones(64))
        >>> int((x == 0).sum()) <= 9
        True
    """
    shape = _image_shape(shape)
    if isinstance(size, bool) or not float(_nonnegative("size", size)).is_integer():
        raise ValueError(f"size must be a non-negative integer; got {size!r}")
    size = int(size)
    if size == 0:
        return identity()
    height, width = shape

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        image = _as_image(x, shape)
        key_r, key_c = jax.random.split(key)
        top = jax.random.randint(key_r, (), 0, height) - size // 2
        left = jax.random.randint(key_c, (), 0, width) - size // 2
        rows = jnp.arange(height)[:, None]
        cols = jnp.arange(width)[None, :]
        inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
        return jnp.where(inside, jnp.zeros_like(image), image).reshape(-1)

    return aug


def hflip(shape: Sequence[int], p: float = 0.5) -> Augmentation:
    """Mirrors the image left-right with probability ``p``.

    Not label-preserving for digits (a mirrored 2 is no digit), so it is off in the digit configurations.

    Args:
        shape: image shape ``(height, width)``.
        p: flip probability in [0, 1]. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``p`` is outside [0, 1] or ``shape`` is invalid.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> hflip((1, 3), p=1.0)(jax.random.key(0), jnp.arange(3.0)).tolist()
        [2.0, 1.0, 0.0]
    """
    shape = _image_shape(shape)
    p = _probability("p", p)
    if p == 0:
        return identity()

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        image = _as_image(x, shape)
        flip = jax.random.bernoulli(key, p)
        return jnp.where(flip, image[:, ::-1], image).reshape(-1)

    return aug


# ----------------------------------------------------------------------------------------------------------------------
# Signal augmentations (1-D)
# ----------------------------------------------------------------------------------------------------------------------


def resample_signal(x: jax.Array, positions: jax.Array, circular: bool = True) -> jax.Array:
    """Reads one 1-D signal at fractional sample positions by linear interpolation.

    This is the single 1-D resampling routine behind ``signal_warp`` and ``time_warp`` (``map_coordinates`` with
    order 1, as :func:`warp` for images). With ``circular`` the signal is periodic (``np.interp(positions,
    arange(d), x, period=d)``); otherwise it is 0 outside ``[0, d - 1]``, fading linearly to 0 over the one sample
    beyond each end (``np.interp`` on the signal padded with one 0 at each end, 0 further out).

    Args:
        x: one signal, shape ``(d,)``, floating dtype.
        positions: where to read, any shape, in samples (``0 .. d - 1`` are the samples of ``x``).
        circular: wrap around (True) or read zeros outside the signal (False).

    Returns:
        The interpolated values, shape ``positions.shape``, dtype of ``x``.

    Raises:
        ValueError: if ``x`` is not a floating 1-D array.

    Example:
        >>> import jax.numpy as jnp
        >>> resample_signal(jnp.array([0.0, 1.0, 2.0]), jnp.array([0.5, 2.5])).tolist()
        [0.5, 1.0]
    """
    x = _check_example(x)
    _check_floating(x)
    positions = jnp.asarray(positions, x.dtype)
    out = map_coordinates(x, [positions], order=1, mode="wrap" if circular else "constant", cval=0.0)
    return out.astype(x.dtype)


def signal_warp(
    x: jax.Array, shift: float | jax.Array = 0.0, stretch: float | jax.Array = 1.0, circular: bool = True
) -> jax.Array:
    """Applies one given shift and time scaling (about the centre) to one signal, in a single resampling.

    Output sample ``t`` reads the input at ``c + (t - shift - c) / stretch`` with ``c = (d - 1) / 2``
    (:func:`resample_signal`). Integer shifts land on the sample grid, so they only move samples.

    Args:
        x: one signal, shape ``(d,)``, floating dtype.
        shift: samples to move the content to the right (towards larger ``t``); may be fractional or negative.
        stretch: time-scale factor > 0 (``> 1`` stretches the content about the centre).
        circular: wrap around (True) or zeros outside the signal (False).

    Returns:
        The transformed signal, shape ``(d,)``, dtype of ``x``.

    Raises:
        ValueError: if ``x`` is not a floating 1-D array.

    Example:
        >>> import jax.numpy as jnp
        >>> signal_warp(jnp.array([1.0, 2.0, 3.0, 4.0]), shift=1.0).tolist()
        [4.0, 1.0, 2.0, 3.0]
    """
    x = _check_example(x)
    _check_floating(x)
    dtype = x.dtype
    centre = (x.shape[0] - 1) / 2
    t = jnp.arange(x.shape[0], dtype=dtype)
    positions = centre + (t - jnp.asarray(shift, dtype) - centre) / jnp.asarray(stretch, dtype)
    return resample_signal(x, positions, circular)


def signal_affine(max_shift: float = 0.0, max_stretch: float = 1.0, circular: bool = True) -> Augmentation:
    """Random shift and time scaling of a 1-D signal in a single resampling (see :func:`signal_warp`).

    The shift is uniform in ``[-max_shift, max_shift]`` samples, the time-scale factor log-uniform in
    ``[1 / max_stretch, max_stretch]`` (stretching and compressing equally likely).

    Args:
        max_shift: largest shift in samples, >= 0; need not be an integer.
        max_stretch: largest time-scale factor, >= 1 (1 means none).
        circular: wrap around (True) or zeros outside the signal (False).

    Returns:
        The augmentation ``aug(key, x)``; exactly the identity when ``max_shift == 0`` and ``max_stretch == 1``.

    Raises:
        ValueError: if ``max_shift`` is negative or not finite, or ``max_stretch < 1``; at call time, if ``x`` is
            not a floating 1-D array.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> signal_affine(3.0, 1.2)(jax.random.key(0), jnp.ones(10)).shape
        (10,)
    """
    max_shift = _nonnegative("max_shift", max_shift)
    max_stretch = _factor_bound("max_stretch", max_stretch)
    if max_shift == 0 and max_stretch == 1:
        return identity()
    log_stretch = math.log(max_stretch)
    circular = bool(circular)

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        key_shift, key_stretch = jax.random.split(key)
        shift = jax.random.uniform(key_shift, (), x.dtype, -max_shift, max_shift)
        stretch = jnp.exp(jax.random.uniform(key_stretch, (), x.dtype, -log_stretch, log_stretch))
        return signal_warp(x, shift, stretch, circular)

    return aug


def signal_shift(max_shift: float, circular: bool = True) -> Augmentation:
    """Random shift of a 1-D signal by ``u`` samples, ``u`` uniform in ``[-max_shift, max_shift]``, linear
    interpolation between samples (:func:`signal_affine`).

    Args:
        max_shift: largest shift in samples, >= 0. Zero gives exactly the identity.
        circular: wrap around (True) or shift zeros in (False).

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``max_shift`` is negative or not finite.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> signal_shift(2.5)(jax.random.key(0), jnp.ones(8)).shape
        (8,)
    """
    return signal_affine(max_shift=max_shift, circular=circular)


def time_scale(max_factor: float, circular: bool = True) -> Augmentation:
    """Random stretch or compression of a 1-D signal about its centre by a factor log-uniform in
    ``[1 / max_factor, max_factor]`` (:func:`signal_affine`).

    Args:
        max_factor: largest factor, >= 1. One gives exactly the identity.
        circular: what a compressed signal reads beyond its ends: the wrapped signal (True) or zeros (False).

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``max_factor < 1``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> time_scale(1.3)(jax.random.key(0), jnp.ones(8)).shape
        (8,)
    """
    max_factor = _factor_bound("max_factor", max_factor)
    return signal_affine(max_stretch=max_factor, circular=circular)


def _smooth_noise(key: jax.Array, d: int, dtype, taps: Sequence[float]) -> jax.Array:
    """White Gaussian noise of length ``d`` filtered by ``taps`` (zero padding at the ends; any ``d``, also shorter
    than the filter, where ``mode="same"`` would return the filter's length)."""
    radius = (len(taps) - 1) // 2
    full = jnp.convolve(jax.random.normal(key, (d,), dtype), jnp.asarray(taps, dtype), mode="full")
    return full[radius : radius + d]


def time_warp(strength: float, sigma: float = 4.0) -> Augmentation:
    """Random smooth monotone time warp of a 1-D signal (a 1-D elastic deformation that never folds time).

    A white Gaussian field is smoothed by a Gaussian of standard deviation ``sigma`` samples and scaled to a largest
    absolute value of ``strength``; the local rate of time is ``exp(field)``, and output sample ``t`` reads the input
    at the cumulative rate up to ``t``, rescaled so that the first and last samples stay in place. Since every rate
    is positive the warp is strictly increasing: the order of events is kept, their spacing varies locally by
    factors in ``[exp(-strength), exp(strength)]`` (before the end-point rescaling).

    Args:
        strength: largest log-rate, >= 0. Zero gives exactly the identity.
        sigma: smoothness of the field in samples, > 0 (large: nearly a uniform stretch).

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``strength`` is negative or ``sigma`` not positive; at call time, if ``x`` is not a floating
            1-D array with at least 2 samples.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> time_warp(0.5)(jax.random.key(0), jnp.ones(10)).shape
        (10,)
    """
    strength = _nonnegative("strength", strength)
    sigma = _positive("sigma", sigma)
    if strength == 0:
        return identity()
    taps = _gaussian_taps(sigma)

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        d = x.shape[0]
        if d < 2:
            raise ValueError(f"time_warp needs a signal of at least 2 samples; got d = {d}")
        field = _smooth_noise(key, d - 1, x.dtype, taps)
        peak = jnp.max(jnp.abs(field))
        rate = jnp.exp(strength * field / jnp.where(peak > 0, peak, 1.0))
        # Positions of the d samples: 0, then the running sum of the d - 1 rates, mapped onto [0, d - 1].
        cumulative = jnp.concatenate([jnp.zeros(1, x.dtype), jnp.cumsum(rate)])
        positions = cumulative * ((d - 1) / cumulative[-1])
        return resample_signal(x, positions, circular=False)

    return aug


def amplitude_scale(max_factor: float) -> Augmentation:
    """Scales the example about its own mean by a factor ``a`` log-uniform in ``[1 / max_factor, max_factor]``:
    ``mean(x) + a (x - mean(x))`` (a contrast change; about the mean so that the result does not depend on where the
    data set puts its zero level). Works for any vector.

    Args:
        max_factor: largest factor, >= 1. One gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``max_factor < 1``; at call time, if ``x`` is not a floating 1-D array.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> amplitude_scale(1.2)(jax.random.key(0), jnp.ones(3)).shape
        (3,)
    """
    max_factor = _factor_bound("max_factor", max_factor)
    if max_factor == 1:
        return identity()
    log_factor = math.log(max_factor)

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        centre = jnp.mean(x)
        return centre + (x - centre) * jnp.exp(jax.random.uniform(key, (), x.dtype, -log_factor, log_factor))

    return aug


def slope(max_rise: float) -> Augmentation:
    """Adds a random linear trend (the MNIST-1D "shear"): ``x + c * linspace(-1/2, 1/2, d)``, ``c`` uniform in
    ``[-max_rise, max_rise]``, so the trend rises by ``c`` from the first sample to the last.

    Args:
        max_rise: largest end-to-end rise of the trend, >= 0. Zero gives exactly the identity.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``max_rise`` is negative or not finite; at call time, if ``x`` is not a floating 1-D array.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> slope(0.1)(jax.random.key(0), jnp.zeros(5)).shape
        (5,)
    """
    max_rise = _nonnegative("max_rise", max_rise)
    if max_rise == 0:
        return identity()

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        rise = jax.random.uniform(key, (), x.dtype, -max_rise, max_rise)
        return x + rise * jnp.linspace(-0.5, 0.5, x.shape[0], dtype=x.dtype)

    return aug


def correlated_noise(std: float, sigma: float = 2.0) -> Augmentation:
    """Additive Gaussian noise correlated along the signal: white noise smoothed by a Gaussian of standard deviation
    ``sigma`` samples, scaled so that each sample's noise has standard deviation ``std`` (away from the ends,
    where the zero-padded filter sees fewer samples).

    Args:
        std: standard deviation of the noise, >= 0. Zero gives exactly the identity.
        sigma: correlation length in samples, > 0.

    Returns:
        The augmentation ``aug(key, x)``.

    Raises:
        ValueError: if ``std`` is negative or ``sigma`` not positive; at call time, if ``x`` is not a floating 1-D
            array.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> correlated_noise(0.1)(jax.random.key(0), jnp.zeros(6)).shape
        (6,)
    """
    std = _nonnegative("std", std)
    sigma = _positive("sigma", sigma)
    if std == 0:
        return identity()
    taps = _gaussian_taps(sigma)
    gain = std / math.sqrt(sum(t * t for t in taps))

    def aug(key: jax.Array, x: jax.Array) -> jax.Array:
        x = _check_example(x)
        _check_floating(x)
        return x + gain * _smooth_noise(key, x.shape[0], x.dtype, taps)

    return aug


# ----------------------------------------------------------------------------------------------------------------------
# Views and configuration
# ----------------------------------------------------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("n_views", "aug", "include_original"))
def _views(key: jax.Array, X_nd: jax.Array, n_views: int, aug: Augmentation, include_original: bool) -> jax.Array:
    n, d = X_nd.shape
    n_augmented = n_views - 1 if include_original else n_views
    keys = jax.random.split(key, (n, n_augmented))
    # Inner vmap: views of one source (same x, different keys); outer vmap: sources.
    per_source = jax.vmap(aug, in_axes=(0, None))
    views_nvd = jax.vmap(per_source, in_axes=(0, 0))(keys, X_nd)
    if include_original:
        views_nvd = jnp.concatenate([X_nd[:, None, :], views_nvd.astype(X_nd.dtype)], axis=1)
    return views_nvd.reshape(n * n_views, d)


def make_views(
    key: jax.Array, X: jax.Array, n_views: int, aug: Augmentation, include_original: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Draws ``n_views`` augmented views of every sample: the nodes and groups of the augmentation graph.

    Args:
        key: PRNG key; one independent subkey per (source, view) pair.
        X: samples, shape ``(n, d)``.
        n_views: views per source, >= 1.
        aug: augmentation ``aug(key, x)`` on one example (e.g. from :func:`from_config`). It is a static argument
            of the compiled function: reuse the same object across calls, since a fresh closure recompiles.
        include_original: if True, the first view of each source is the untouched sample and the other
            ``n_views - 1`` are augmented.

    Returns:
        ``(views, groups)``: ``views`` of shape ``(n * n_views, d)`` ordered source-major (rows
        ``i * n_views ... i * n_views + n_views - 1`` are the views of sample ``i``) and ``groups`` of shape
        ``(n * n_views,)``, int32, with ``groups[j] = j // n_views``.

    Raises:
        ValueError: if ``X`` is not 2-D or ``n_views`` is not an integer >= 1.
        TypeError: if ``aug`` is not callable.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> views, groups = make_views(jax.random.key(0), jnp.ones((3, 4)), 2, gaussian_noise(0.1))
        >>> views.shape, groups.tolist()
        ((6, 4), [0, 0, 1, 1, 2, 2])
    """
    X = jnp.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D with shape (n, d); got shape {X.shape}")
    n_views = _v.integer("n_views", n_views)
    if not callable(aug):
        raise TypeError(f"aug must be a callable aug(key, x); got {aug!r}")
    n = X.shape[0]
    groups = jnp.arange(n * n_views, dtype=jnp.int32) // n_views
    if include_original and n_views == 1:
        return X, groups
    return _views(key, X, n_views, aug, bool(include_original)), groups


def from_config(spec: Mapping[str, object] | None, shape: Sequence[int] | None) -> Augmentation:
    """Builds a composed augmentation from a configuration mapping.

    Keys (all optional; a zero or False value skips the augmentation):

    - ``"rotation"``: ``max_degrees``;  ``"shift"``: ``max_shift`` in pixels;  ``"scale"``: zoom strength ``s``,
      giving zoom factors in ``[1 / (1 + s), 1 + s]``. These three share one resampling (:func:`affine`).
    - ``"elastic"``: largest displacement in pixels of an elastic deformation (:func:`elastic`), after the affine
      map; ``"elastic_sigma"``: its smoothness in pixels (default 1).
    - ``"hflip"``: True (probability 0.5) or a flip probability.
    - ``"cutout"``: patch size in pixels.
    - ``"mask"``: feature-masking probability;  ``"noise"``: Gaussian noise std.
    - ``"amplitude"``: amplitude strength ``s``, factors in ``[1 / (1 + s), 1 + s]`` about the example's mean
      (:func:`amplitude_scale`; any data set).

    Signals (``shape=None``, the example a 1-D signal):

    - ``"signal_shift"``: largest shift in samples;  ``"time_scale"``: time-scale strength ``s``, factors in
      ``[1 / (1 + s), 1 + s]``; both in one resampling (:func:`signal_affine`), wrapping around unless
      ``"signal_wrap"`` is False (then zeros come in).
    - ``"time_warp"``: largest log-rate of a smooth monotone warp (:func:`time_warp`); ``"time_warp_sigma"``: its
      smoothness in samples (default 4).
    - ``"slope"``: largest end-to-end rise of an added linear trend (:func:`slope`).
    - ``"corr_noise"``: std of additive correlated noise (:func:`correlated_noise`); ``"corr_noise_sigma"``: its
      correlation length in samples (default 2).

    They are applied in that order: geometry first (image affine, elastic, flip; or signal shift/scale, time
    warp), then erasing, then amplitude and slope, then masking and noise on top.

    Args:
        spec: mapping such as ``{"rotation": 12.0, "shift": 1.0, "noise": 0.03}``; None or empty gives the identity.
        shape: image shape ``(height, width)``, or None for plain vectors and signals (then only ``noise``,
            ``mask``, ``amplitude`` and the signal keys may be nonzero).

    Returns:
        The composed augmentation ``aug(key, x)``.

    Raises:
        ValueError: on an unknown key (naming it), a negative strength, a probability outside [0, 1], an image
            augmentation requested with ``shape=None`` or a signal augmentation with an image shape.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> aug = from_config({"rotation": 12.0, "shift": 1.0, "noise": 0.03}, (8, 8))
        >>> aug(jax.random.key(0), jnp.zeros(64)).shape
        (64,)
    """
    spec = dict(spec or {})
    for name in spec:
        if name not in CONFIG_KEYS:
            raise ValueError(f"unknown augmentation key {name!r}; known keys: {', '.join(CONFIG_KEYS)}")
    rotation = _nonnegative("rotation", spec.get("rotation", 0.0))
    shift = _nonnegative("shift", spec.get("shift", 0.0))
    zoom = _nonnegative("scale", spec.get("scale", 0.0))
    elastic_alpha = _nonnegative("elastic", spec.get("elastic", 0.0))
    elastic_sigma = _nonnegative("elastic_sigma", spec.get("elastic_sigma", 1.0))
    cutout_size = spec.get("cutout", 0)
    flip = spec.get("hflip", False)
    flip_p = (0.5 if flip else 0.0) if isinstance(flip, bool) else _probability("hflip", flip)
    mask_p = _probability("mask", spec.get("mask", 0.0))
    noise_std = _nonnegative("noise", spec.get("noise", 0.0))
    if isinstance(cutout_size, bool) or not float(_nonnegative("cutout", cutout_size)).is_integer():
        raise ValueError(f"cutout must be a non-negative integer patch size; got {cutout_size!r}")
    amplitude = _nonnegative("amplitude", spec.get("amplitude", 0.0))
    sig = {name: _nonnegative(name, spec.get(name, 0.0)) for name in _SIGNAL_CONFIG_KEYS}
    time_warp_sigma = _positive("time_warp_sigma", spec.get("time_warp_sigma", 4.0))
    corr_noise_sigma = _positive("corr_noise_sigma", spec.get("corr_noise_sigma", 2.0))
    wrap = spec.get("signal_wrap", True)
    if not isinstance(wrap, bool):
        raise TypeError(f"signal_wrap must be a bool; got {wrap!r} ({type(wrap).__name__})")

    if shape is None:
        image_only = {"rotation": rotation, "shift": shift, "scale": zoom, "elastic": elastic_alpha,
                      "cutout": cutout_size, "hflip": flip_p}
        requested = [name for name in _IMAGE_CONFIG_KEYS if image_only[name]]
        if requested:
            raise ValueError(
                f"augmentation(s) {', '.join(requested)} need an image shape; with shape=None only "
                f"{', '.join(_VECTOR_CONFIG_KEYS + _SIGNAL_CONFIG_KEYS)} are allowed"
            )
    else:
        shape = _image_shape(shape)
        requested = [f"{name}={sig[name]:g}" for name in _SIGNAL_CONFIG_KEYS if sig[name]]
        if requested:
            raise ValueError(
                f"signal augmentation(s) {', '.join(requested)} act on 1-D signals (data sets without an image "
                f"shape); got image shape {shape}"
            )

    augs = []
    if rotation or shift or zoom:
        augs.append(affine(shape, max_degrees=rotation, max_shift=shift, max_scale=1.0 + zoom))
    if elastic_alpha:
        augs.append(elastic(shape, elastic_alpha, elastic_sigma))
    if flip_p:
        augs.append(hflip(shape, flip_p))
    if sig["signal_shift"] or sig["time_scale"]:
        augs.append(signal_affine(sig["signal_shift"], 1.0 + sig["time_scale"], circular=wrap))
    if sig["time_warp"]:
        augs.append(time_warp(sig["time_warp"], time_warp_sigma))
    if cutout_size:
        augs.append(cutout(shape, int(cutout_size)))
    if amplitude:
        augs.append(amplitude_scale(1.0 + amplitude))
    if sig["slope"]:
        augs.append(slope(sig["slope"]))
    if mask_p:
        augs.append(feature_mask(mask_p))
    if noise_std:
        augs.append(gaussian_noise(noise_std))
    if sig["corr_noise"]:
        augs.append(correlated_noise(sig["corr_noise"], corr_noise_sigma))
    return compose(*augs)
