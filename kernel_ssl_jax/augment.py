"""Data augmentations: pure functions of one example, batched with ``jax.vmap``.

Every augmentation is a function ``aug(key, x) -> x_aug`` acting on ONE example ``x`` of shape ``(d,)``, deterministic
given ``key`` and returning the same shape and dtype. The constructors below (``translate``, ``rotate``,
``gaussian_noise``...) fix the strength and return such a function; ``make_views`` draws a ``(n, n_views)`` grid
of keys and vmaps the augmentation over it, which is how the positive pairs (the groups of the augmentation graph)
are produced.

Image augmentations take the image shape ``(height, width)`` at construction and reshape the flat example internally,
so images and plain feature vectors flow through the same code path. A strength of zero always yields exactly the
identity: the constructor returns ``identity()`` instead of a resampling that would only be exact up to rounding.

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
from jax.scipy.ndimage import map_coordinates

from kernel_ssl_jax import validation as _v

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]
"""``aug(key, x) -> x_aug`` on one flat example ``x`` of shape ``(d,)``."""

CONFIG_KEYS = ("rotation", "shift", "scale", "noise", "cutout", "hflip", "mask")
"""Keys accepted by :func:`from_config`."""

_VECTOR_CONFIG_KEYS = ("noise", "mask")


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
    max_scale = _nonnegative("max_scale", max_scale)
    if max_scale < 1:
        raise ValueError(f"max_scale must be >= 1 (zoom in [1/max_scale, max_scale]); got {max_scale}")
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
    max_factor = _nonnegative("max_factor", max_factor)
    if max_factor < 1:
        raise ValueError(f"max_factor must be >= 1 (zoom in [1/max_factor, max_factor]); got {max_factor}")
    return affine(shape, max_scale=max_factor)


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
    - ``"hflip"``: True (probability 0.5) or a flip probability.
    - ``"cutout"``: patch size in pixels.
    - ``"mask"``: feature-masking probability;  ``"noise"``: Gaussian noise std.

    They are applied in that order: geometry first, then erasing, then noise on top.

    Args:
        spec: mapping such as ``{"rotation": 12.0, "shift": 1.0, "noise": 0.03}``; None or empty gives the identity.
        shape: image shape ``(height, width)``, or None for plain vectors (then only ``noise`` and ``mask`` may be
            nonzero).

    Returns:
        The composed augmentation ``aug(key, x)``.

    Raises:
        ValueError: on an unknown key (naming it), a negative strength, a probability outside [0, 1], or an image
            augmentation requested with ``shape=None``.

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
    cutout_size = spec.get("cutout", 0)
    flip = spec.get("hflip", False)
    flip_p = (0.5 if flip else 0.0) if isinstance(flip, bool) else _probability("hflip", flip)
    mask_p = _probability("mask", spec.get("mask", 0.0))
    noise_std = _nonnegative("noise", spec.get("noise", 0.0))
    if isinstance(cutout_size, bool) or not float(_nonnegative("cutout", cutout_size)).is_integer():
        raise ValueError(f"cutout must be a non-negative integer patch size; got {cutout_size!r}")

    if shape is None:
        image_only = {"rotation": rotation, "shift": shift, "scale": zoom, "cutout": cutout_size, "hflip": flip_p}
        requested = [name for name, value in image_only.items() if value]
        if requested:
            raise ValueError(
                f"augmentation(s) {', '.join(requested)} need an image shape; with shape=None only "
                f"{' and '.join(_VECTOR_CONFIG_KEYS)} are allowed"
            )
    else:
        shape = _image_shape(shape)

    augs = []
    if rotation or shift or zoom:
        augs.append(affine(shape, max_degrees=rotation, max_shift=shift, max_scale=1.0 + zoom))
    if flip_p:
        augs.append(hflip(shape, flip_p))
    if cutout_size:
        augs.append(cutout(shape, int(cutout_size)))
    if mask_p:
        augs.append(feature_mask(mask_p))
    if noise_std:
        augs.append(gaussian_noise(noise_std))
    return compose(*augs)
