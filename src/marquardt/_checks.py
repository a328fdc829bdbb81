"""Front-door validation: every argument is checked once, before any numerics.

One message template, as in Keras: the argument in backticks, what it must be, then
``Received: name=value``.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any

import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "entry",
    "first_index",
    "reject_unknown_kwargs",
    "short_repr",
    "warn_user",
]


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, with array shapes shown for arrays."""
    if isinstance(value, np.ndarray) and value.size > 6:
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_float_array(value: Any, name: str, *, ndim: int | tuple[int, ...] | None = None,
                   dtype: Any = np.float64) -> np.ndarray:
    """Convert ``value`` to a float array, with a clear error when that is impossible.

    Text and object arrays are converted as NumPy's ``astype(float)`` converts them, the
    conversion SciPy applies to ``x0``, ``xdata`` and ``ydata``: ``["1", "2"]`` is accepted and
    ``"abc"`` is a ValueError, as in SciPy.

    Raises:
        TypeError: the value is not real (complex numbers, objects such as None).
        ValueError: text that is not a number; its number of dimensions is not ``ndim``, or it
            is empty.
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.size:  # as it is
        if ndim is None or value.ndim == ndim or (type(ndim) is tuple and value.ndim in ndim):
            return value
    if type(value) is not np.ndarray and hasattr(value, "numpy") and callable(value.numpy):
        value = value.numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(
            f"`{name}` must be a numeric array. Received: {name}={short_repr(value)} ({exc})"
        ) from None
    if arr.dtype.kind in "OSU":
        try:
            arr = arr.astype(dtype)
        except (TypeError, ValueError) as exc:
            raise type(exc)(
                f"`{name}` must hold real numbers. Received: {name} with dtype {arr.dtype} "
                f"({short_repr(value)}): {exc}"
            ) from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"`{name}` must hold real numbers. Received: {name} with dtype {arr.dtype} "
            f"({short_repr(value)})"
        )
    arr = arr.astype(dtype, copy=False)
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"`{name}` must have {want} dimension(s). Received: {name} with shape {arr.shape}"
            )
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty. Received: {name} with shape {arr.shape}")
    return arr


def first_index(mask: np.ndarray) -> tuple[int, ...]:
    """Index of the first True entry of ``mask`` (in C order); ``()`` for a 0-d mask."""
    return tuple(int(i) for i in np.argwhere(mask)[0])


def entry(arr: np.ndarray, index: tuple[int, ...], name: str) -> str:
    """``name[k, i]=value`` for one entry of ``arr`` (``name=value`` for a 0-d array), the
    value printed as a Python float: how messages show the entry they are about."""
    where = f"[{', '.join(str(i) for i in index)}]" if index else ""
    return f"{name}{where}={float(arr[index])!r}"


def check_finite(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first NaN or Inf entry of ``arr``."""
    if arr.dtype.kind == "f" and _finite_number(_sum(arr, axis=None)):
        return  # a NaN or ±Inf anywhere makes the sum one (a finite sum that overflowed
        # is checked below)
    finite = np.isfinite(arr)
    if _all(finite, axis=None):  # the usual answer, in one reduction
        return
    bad = ~finite
    if bad.any():
        raise ValueError(
            f"`{name}` must contain only finite values. Received: "
            f"{entry(arr, first_index(bad), name)} ({int(bad.sum())} non-finite value(s) in all)"
        )


def check_positive(value: float, name: str) -> float:
    """``value`` as a float, which must be finite and > 0."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive number. Received: {name}={value!r}") from None
    if not np.isfinite(out) or out <= 0:
        raise ValueError(f"`{name}` must be a positive number. Received: {name}={value!r}")
    return out


def reject_unknown_kwargs(kwargs: dict, where: str, allowed: tuple[str, ...] = ()) -> None:
    """Raise ``TypeError`` for keyword arguments ``where`` does not know."""
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise TypeError(
            f"{where}() got unexpected keyword argument(s): {', '.join(unknown)}. "
            f"Received: {', '.join(f'{k}={short_repr(kwargs[k])}' for k in unknown)}"
        )


_all = np.logical_and.reduce
_sum = np.add.reduce
_finite_number = math.isfinite

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside marquardt: the user's line
    that called ``least_squares`` or ``curve_fit``, however deep inside us the cause is."""
    level, frame = 2, sys._getframe(1)  # stacklevel 2: warn_user's caller
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
