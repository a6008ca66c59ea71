"""Argument checks shared by every public function: one message format, one rule for types and values.

A wrong type raises `TypeError`, a wrong value `ValueError`; each message names the argument, the value given and
what is allowed. Checks run at the public boundary on concrete values only: a traced value (inside `jax.jit` or
`jax.vmap`) passes through unchecked, so that the checked functions stay usable in jitted code.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

__all__ = [
    "all_finite",
    "array",
    "choice",
    "float_dtype",
    "integer",
    "is_traced",
    "pairs",
    "real",
]


def is_traced(x) -> bool:
    """Whether `x` is a JAX tracer (its values are unknown until run time)."""
    return isinstance(x, jax.core.Tracer)


@jax.jit
def _all_finite(x: Array) -> Array:
    return jnp.all(jnp.isfinite(x))


def all_finite(x) -> bool:
    """Whether a concrete array holds no NaN or Inf (a traced one passes: its values are unknown).

    Host (CPU) arrays are checked with numpy, which compiles nothing; arrays on an accelerator with one jitted
    reduction, so that only a scalar leaves the device.
    """
    if is_traced(x):
        return True
    if not isinstance(x, jax.Array) or all(d.platform == "cpu" for d in x.devices()):
        return bool(np.all(np.isfinite(np.asarray(x))))
    return bool(_all_finite(x))


def integer(name: str, value, minimum: int | None = 1, maximum: int | None = None, allow_none: bool = False):
    """An integer in `[minimum, maximum]` (bools and floats such as 2.0 or 2.5 are refused: TypeError)."""
    if value is None and allow_none:
        return None
    allowed = f"an integer{_range_text(minimum, maximum)}{' or None' if allow_none else ''}"
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def real(name: str, value, minimum: float | None = 0.0, strict: bool = False, maximum: float | None = None,
         allow_none: bool = False):
    """A finite real number `>= minimum` (`> minimum` with `strict`) and `<= maximum`; tracers pass unchecked.

    Strings (even numeric ones such as `"2"`), None and arrays of more than one element are refused (TypeError),
    so that a bad hyper-parameter fails here and not later inside JAX.
    """
    low = "" if minimum is None else (f" > {minimum:g}" if strict else f" >= {minimum:g}")
    high = "" if maximum is None else f" <= {maximum:g}"
    allowed = ("a probability in [0, 1]" if (minimum, maximum, strict) == (0.0, 1.0, False) else
               f"a finite number{low}{' and' if low and high else ''}{high}") + (" or None" if allow_none else "")
    if value is None and allow_none:
        return None
    if is_traced(value):
        return value
    if isinstance(value, (bool, str, bytes)) or not (isinstance(value, numbers.Real) or
                                                       (hasattr(value, "shape") and np.shape(value) == ())):
        raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__})")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {allowed}, got {value!r}") from None
    if not math.isfinite(v) or (minimum is not None and (v < minimum or (strict and v == minimum))) or (
            maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def choice(name: str, value, choices: Iterable):
    """One of `choices` (compared with `==`)."""
    choices = tuple(choices)
    if not isinstance(value, str) and all(isinstance(c, str) for c in choices):
        raise TypeError(f"{name} must be one of {list(choices)}, got {value!r} ({type(value).__name__})")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def float_dtype(name: str, dtype):
    """A floating dtype (None: JAX's default float). Integer dtypes would truncate the data and are refused."""
    if dtype is None:
        return jnp.zeros(()).dtype
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name} must be a floating dtype such as float32 or float64, got {dtype!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"{name} must be a floating dtype such as float32 or float64, got {dt.name}")
    return dt


def array(name: str, X, *, ndim: int | tuple[int, ...] = 2, d: int | None = None, dtype=None,
          allow_empty: bool = False) -> Array:
    """A floating array of `ndim` dimensions (a tuple: any of them), finite, with `d` columns (last axis).

    Integers and bools are converted to `dtype` (default: JAX's default float); other dtypes (strings, objects,
    complex) are refused with a TypeError. Finiteness is checked only on concrete arrays.
    """
    traced = is_traced(X)
    if not traced:
        try:
            Xn = np.asarray(X)
        except Exception:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of real numbers, got {type(X).__name__}") from None
        if not (np.issubdtype(Xn.dtype, np.number) or Xn.dtype == bool) or np.issubdtype(Xn.dtype, np.complexfloating):
            raise TypeError(f"{name} must be an array of real numbers, got dtype {Xn.dtype}")
        shape = Xn.shape
    else:
        shape = X.shape
    dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in dims:
        what = " or ".join(f"{k}-D" for k in dims)
        raise ValueError(f"{name} must be a {what} array{' (n_samples, n_features)' if dims == (2,) else ''}, "
                         f"got shape {shape}")
    if d is not None and len(shape) >= 1 and shape[-1] != d:
        raise ValueError(f"{name} must have {d} features (as the training data), got {shape[-1]}")
    if not allow_empty and math.prod(shape) == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    # Checked with numpy on concrete input: inside an outer jax.jit even a concrete array's jnp ops are staged.
    if not traced and np.issubdtype(Xn.dtype, np.floating) and not np.all(np.isfinite(Xn)):
        raise ValueError(f"{name} contains NaN or Inf")
    if not traced and not isinstance(X, jax.Array) and Xn.dtype.kind in "fiub":
        # Host input (numpy, lists): converted by numpy, then moved once (no compiled conversion per shape).
        target = dtype if dtype is not None else (Xn.dtype if Xn.dtype.kind == "f" else jnp.zeros(()).dtype)
        return jnp.asarray(Xn.astype(target, copy=False))
    X = jnp.asarray(X)
    target = dtype if dtype is not None else (X.dtype if jnp.issubdtype(X.dtype, jnp.floating)
                                              else jnp.zeros(()).dtype)
    X = X.astype(target)
    return X


def pairs(value, n: int) -> tuple[Array, Array]:
    """`(v1, v2)`: two non-empty 1-D integer index arrays of equal length into `[0, n)`."""
    try:
        v1, v2 = value
    except (TypeError, ValueError):
        raise TypeError("pairs must be a tuple (v1, v2) of index arrays of paired views, got "
                        f"{type(value).__name__}") from None
    v1, v2 = np.asarray(v1), np.asarray(v2)
    if not (np.issubdtype(v1.dtype, np.integer) and np.issubdtype(v2.dtype, np.integer)):
        raise TypeError(f"pairs must hold integer view indices, got dtypes {v1.dtype}, {v2.dtype}")
    if v1.ndim != 1 or v1.shape != v2.shape or v1.size == 0:
        raise ValueError(f"pairs must be two non-empty 1-D index arrays of equal length, got shapes {v1.shape}, "
                         f"{v2.shape}")
    if min(v1.min(), v2.min()) < 0 or max(v1.max(), v2.max()) >= n:
        raise ValueError(f"pairs must index views in [0, {n - 1}], got values in "
                         f"[{min(v1.min(), v2.min())}, {max(v1.max(), v2.max())}]")
    return jnp.asarray(v1, dtype=jnp.int32), jnp.asarray(v2, dtype=jnp.int32)


def _range_text(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
