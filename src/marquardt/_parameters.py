"""The rules on parameters, shared by ``least_squares``, ``curve_fit`` and ``curve_fit_batch``.

How many parameters a model ``f(x, *params)`` takes (read from its signature), start values
(finite, one per parameter), bounds (scalars broadcast, no NaN, lb < ub) and the start inside
the bounds. Each rule is written once, for a trailing axis of n parameters; ``batch=K`` adds
``curve_fit_batch``'s leading axis of K problems: one row per problem, or one row for all,
broadcast.
"""

from __future__ import annotations

import inspect
import math
import weakref
from typing import Any, Callable, NamedTuple

import numpy as np

from marquardt import _checks

__all__ = ["CheckedBounds", "check_within_bounds", "prepare_bounds", "prepare_p0",
           "start_values", "strictly_feasible"]


#: ``inspect.signature`` per model, read once: it costs tens of microseconds, as much as a
#: small fit's numerics (a model that cannot be weakly referenced is read at every call).
_SIGNATURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _signature(f: Callable) -> inspect.Signature | None:
    try:
        return _SIGNATURES[f]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(f)
    except (TypeError, ValueError):
        sig = None
    try:
        _SIGNATURES[f] = sig
    except TypeError:  # not weakly referenceable or not hashable
        pass
    return sig


def _takes_varargs(sig: inspect.Signature) -> bool:
    return any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())


def _positional(sig: inspect.Signature) -> list[inspect.Parameter]:
    return [p for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


#: ``_parameter_range`` per model, as ``_SIGNATURES``.
_RANGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parameter_range(f: Callable) -> tuple[int, int] | None:
    """(fewest, most) start values ``f(x, *params)`` accepts: its positional parameters after x
    without a default, and all of them (as SciPy's ``curve_fit``, which fits a defaulted
    parameter when p0 covers it); None when ``f`` takes ``*args`` or has no readable
    signature (``p0`` then decides). Read once per model (``_RANGES``)."""
    try:
        return _RANGES[f]
    except (KeyError, TypeError):
        pass
    answer = _read_parameter_range(f)
    try:
        _RANGES[f] = answer
    except TypeError:  # not weakly referenceable or not hashable
        pass
    return answer


def _read_parameter_range(f: Callable) -> tuple[int, int] | None:
    sig = _signature(f)
    if sig is None or _takes_varargs(sig):
        return None
    params = _positional(sig)[1:]
    required = [p for p in params if p.default is p.empty]
    return len(required), len(params)


def _default_parameter_count(f: Callable) -> int:
    """n for ``p0=None``: every positional parameter after x, defaulted ones included, as
    SciPy's ``curve_fit`` counts them; ``ValueError`` when the signature cannot tell."""
    sig = _signature(f)
    if sig is None:
        raise ValueError("`p0` is needed: the number of parameters of `f` cannot be read from "
                         "its signature. Received: p0=None")
    params = _positional(sig)
    if _takes_varargs(sig) or len(params) < 2:
        raise ValueError("`p0` is needed: `f` takes *args or no parameters after x. "
                         "Received: p0=None")
    return len(params) - 1


def _start_array(value: Any, name: str, batch: int | None) -> np.ndarray:
    """``value`` as float64, at least 1-D, finite: shape (n,), or with ``batch=K`` (K, n).
    Complex values are a ValueError, as in SciPy (``x0`` must be real)."""
    if batch is None:
        arr = _plain_start(value)
        if arr is not None:
            return arr
    if value is None:  # np.asarray(None, float) is nan, which the message would name
        raise ValueError(f"`{name}` must be an array of starting values, one per parameter. "
                         f"Received: {name}=None")
    if np.iscomplexobj(value):
        raise ValueError(f"`{name}` must be real. Received: {name}={_checks.short_repr(value)}")
    arr = _checks.as_float_array(value, name, ndim=(0, 1) if batch is None else (0, 1, 2))
    if arr.ndim == 2 and arr.shape[0] != batch:
        raise ValueError(f"`{name}` must have shape (n,) or (K, n) with K={batch} problems. "
                         f"Received: {name} with shape {arr.shape}")
    _checks.check_finite(arr, name)
    return np.atleast_1d(arr)


def _per_problem(arr: np.ndarray, batch: int | None) -> np.ndarray:
    """``arr`` (n,) or (K, n) as (K, n) for ``batch=K``; unchanged for one problem."""
    if batch is None:
        return arr
    return np.ascontiguousarray(np.broadcast_to(arr, (batch, arr.shape[-1])))


def start_values(value: Any, name: str, batch: int | None = None) -> np.ndarray:
    """Checked start values: float64, finite, shape (n,) from a scalar or (n,); with
    ``batch=K`` shape (K, n) from a scalar, (n,) shared by all problems or (K, n)."""
    return _per_problem(_start_array(value, name, batch), batch)


def prepare_p0(p0: Any, f: Callable, batch: int | None = None) -> np.ndarray:
    """``start_values`` of the model ``f(x, *params)``: ``p0=None`` means ones, one for each
    positional parameter after x (SciPy's rule; with bounds the front doors then move them
    inside, ``feasible_start``); an explicit p0 may leave out parameters that
    have a default (they keep it) and is refused when its length fits no call of ``f``: a
    ``TypeError``, as SciPy's ``curve_fit`` raises it (from the call ``f(x, *p0)``, "f() takes 3
    positional arguments but 4 were given", or "missing 1 required positional argument"),
    here before any call, naming ``p0`` and the counts."""
    arr = _plain_start(p0) if batch is None else None
    if arr is not None:  # a list or tuple of finite floats (the checks' answer, directly)
        pass
    elif p0 is None:
        p0 = np.ones(_default_parameter_count(f))
    elif batch is None and _nested(p0):
        p0 = np.ravel(p0)  # SciPy's curve_fit (lm: leastsq flattens x0) takes p0 of any shape
    if arr is None:
        arr = _start_array(p0, "p0", batch)
    allowed = _parameter_range(f)
    if allowed is not None and not allowed[0] <= arr.shape[-1] <= allowed[1]:
        fewest, most = allowed
        expected = (f"{most}" if fewest == most else
                    f"{fewest} to {most}: a parameter with a default is fitted when p0 covers it")
        received = f"length {arr.size}" if arr.ndim == 1 else f"shape {arr.shape}"
        raise TypeError(f"`p0` must have one value per parameter of `f` ({expected}). "
                         f"Received: p0 with {received}")
    return _per_problem(arr, batch)


def _plain_start(p0: Any) -> np.ndarray | None:
    """``_start_array``'s answer for a non-empty list or tuple of finite Python floats (ints
    of at most 53 bits too: exact as floats), made from it in one conversion instead of the
    general checks' several; None for anything else (the checks then decide)."""
    if type(p0) is not list and type(p0) is not tuple or not p0:
        return None
    for v in p0:
        t = type(v)
        if not ((t is float and _isfinite(v)) or (t is int and -_EXACT < v < _EXACT)):
            return None
    return np.array(p0, dtype=np.float64)


_isfinite = math.isfinite
_EXACT = 2 ** 53


def _nested(p0: Any) -> bool:
    """p0 of two or more dimensions, real (a ragged or complex one is left to the checks)."""
    try:
        return np.ndim(p0) > 1 and not np.iscomplexobj(p0)
    except ValueError:
        return False


def feasible_start(lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
    """The start of a ``curve_fit`` given no ``p0`` (SciPy's ``_initialize_feasible``): 1
    where a parameter is unbounded, the middle of [lb, ub] where both bounds are finite, lb + 1
    or ub − 1 where only one is. Without bounds these are SciPy's ones."""
    p0 = np.ones_like(lb, dtype=np.float64)
    low, high = np.isfinite(lb), np.isfinite(ub)
    both = low & high
    p0[both] = 0.5 * (lb[both] + ub[both])
    p0[low & ~high] = lb[low & ~high] + 1.0
    p0[~low & high] = ub[~low & high] - 1.0
    return p0


class CheckedBounds(NamedTuple):
    """``prepare_bounds``' answer: float64 arrays of the checked shape, lb < ub, no NaN. Given
    to ``prepare_bounds`` again for the same shape (``curve_fit`` checks its bounds before
    ``solve_problem`` does), it is returned as it is instead of being checked twice."""

    lb: np.ndarray
    ub: np.ndarray


def prepare_bounds(bounds: Any, n: int, batch: int | None = None) -> CheckedBounds:
    """``(lb, ub)`` as float64 arrays of shape (n,), or (K, n) with ``batch=K``, checked lb < ub.

    Each bound is a scalar or shape (n,), broadcast; with ``batch=K`` also (K, n), one row per
    problem. ``bounds=None`` means no bounds; a ``scipy.optimize.Bounds`` (any object with
    ``lb`` and ``ub`` attributes) means ``(bounds.lb, bounds.ub)``.
    """
    shape = (n,) if batch is None else (batch, n)
    if type(bounds) is CheckedBounds and bounds.lb.shape == shape:
        return bounds
    if type(bounds) is tuple and len(bounds) == 2:  # two Python floats (the default ±inf):
        lo, hi = bounds  # the common case's answer below without the array checks
        if type(lo) is float and type(hi) is float and lo < hi:  # (NaN fails lo < hi)
            return CheckedBounds(np.full(shape, lo), np.full(shape, hi))
    if bounds is None:
        bounds = (-np.inf, np.inf)
    if hasattr(bounds, "lb") and hasattr(bounds, "ub") and not isinstance(bounds, (tuple, list)):
        bounds = (bounds.lb, bounds.ub)
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise ValueError("`bounds` must be a pair (lb, ub) of scalars or arrays of length n. "
                         f"Received: bounds={_checks.short_repr(bounds)}")
    out = []
    for name, b in zip(("lb", "ub"), bounds):
        arr = np.asarray(b, dtype=np.float64)
        if arr.shape not in ((), (n,), shape):
            want = (f"length n={n}" if batch is None
                    else f"shape (n,) or (K, n) with K={batch}, n={n}")
            raise ValueError(f"`bounds` {name} must be a scalar or have {want}. "
                             f"Received: {name} with shape {arr.shape}")
        nan = np.isnan(arr)
        if nan.any():
            raise ValueError(f"`bounds` {name} must not contain NaN. Received: "
                             f"{_checks.entry(arr, _checks.first_index(nan), name)} "
                             f"({int(nan.sum())} NaN value(s) in all)")
        out.append(arr)
    if out[0].ndim == 0 and out[1].ndim == 0 and out[0] < out[1]:  # the common case, cheaply
        return CheckedBounds(np.full(shape, float(out[0])), np.full(shape, float(out[1])))
    # Compared at the shape the user gave (n,) or (K, n): the index names their entry.
    if out[0].shape == out[1].shape == (n,):
        lb, ub = out
    else:
        common = np.broadcast_shapes(out[0].shape, out[1].shape, (n,))
        lb, ub = (np.broadcast_to(b, common) for b in out)
    crossed = lb >= ub
    if crossed.any():
        index = _checks.first_index(crossed)
        raise ValueError("`bounds` must satisfy lb < ub for each parameter. Received: "
                         f"{_checks.entry(lb, index, 'lb')} >= {_checks.entry(ub, index, 'ub')}")
    return CheckedBounds(*(b.copy() if b.shape == shape
                           else np.broadcast_to(b, shape).astype(np.float64) for b in out))


def check_within_bounds(x: np.ndarray, lb: np.ndarray, ub: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first start value ``x`` outside ``[lb, ub]``."""
    outside = (x < lb) | (x > ub)
    if outside.any():
        index = _checks.first_index(outside)
        raise ValueError(f"Initial guess is outside of provided bounds: `{name}` must lie "
                         f"within `bounds`. Received: "
                         f"{_checks.entry(x, index, name)} outside "
                         f"[{float(lb[index])!r}, {float(ub[index])!r}]")


#: How far inside its bound a start on the bound is moved, relative to max(1, |bound|): SciPy's
#: ``make_strictly_feasible`` default, which its ``least_squares(method='trf')`` applies to x0.
STRICT_STEP = 1e-10


def strictly_feasible(x: np.ndarray, lb: np.ndarray, ub: np.ndarray,
                      rstep: float = STRICT_STEP) -> np.ndarray:
    """``x`` (within [lb, ub]) with the values on or within rstep·max(1, |bound|) of a finite
    bound moved to that distance inside it, the middle of [lb, ub] where the bounds are closer
    than that: SciPy's ``make_strictly_feasible``, which its ``trf`` applies to x0.

    A model that is undefined on its bound (k·x/(k + x) with x = 0 among the data and k ≥ 0,
    log k, 1/k) then starts where it is finite, as in SciPy, instead of failing at its start.
    Shapes (n,) or (K, n), the bounds broadcast to x's; other values are returned as they
    are."""
    lb, ub = np.broadcast_to(lb, np.shape(x)), np.broadcast_to(ub, np.shape(x))
    lower_dist, upper_dist = x - lb, ub - x
    with np.errstate(invalid="ignore"):  # inf - inf where x is unbounded
        lower = np.isfinite(lb) & (lower_dist <= np.minimum(
            upper_dist, rstep * np.maximum(1.0, np.abs(lb))))
        upper = np.isfinite(ub) & ~lower & (upper_dist <= np.minimum(
            lower_dist, rstep * np.maximum(1.0, np.abs(ub))))
    if not (lower.any() or upper.any()):
        return x
    out = np.array(x, dtype=np.float64, copy=True)
    with np.errstate(invalid="ignore"):  # inf - inf at an infinite bound, not selected
        out[lower] = (lb + rstep * np.maximum(1.0, np.abs(lb)))[lower]
        out[upper] = (ub - rstep * np.maximum(1.0, np.abs(ub)))[upper]
        tight = (out < lb) | (out > ub)
        out[tight] = (0.5 * (lb + ub))[tight]
    return out
