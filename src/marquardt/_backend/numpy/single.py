"""The NumPy namespace for one problem (K = 1): per-problem values as NumPy scalars.

The core is written for K problems, every per-problem value (cost, λ, ρ, status, ...) an array of
shape (K,). For a single fit on the host those are (1,) arrays, and each of the iteration's
hundred-odd operations on them is a ufunc call of about a microsecond, most of a small fit's
time. Here a reduction that leaves one value per problem returns it as a NumPy scalar
(``np.float64``, ``np.bool_``, ``np.int32``), and the elementwise functions take a scalar path
(Python's operators on NumPy scalars, a tenth of the cost); arrays (x, r, J, d) stay arrays
with their leading axis of 1, and a scalar broadcasts against them exactly as the (1,) array
did. The values, and so every decision of the iteration, are bit for bit those of
``marquardt._backend.numpy.xp`` (``tests/test_host_executor.py``): the same IEEE operations,
NaN propagated as NumPy propagates it.

Only the host executor uses it, for K = 1 (``marquardt._core.host``).
"""

from __future__ import annotations

import math

import numpy as np

from marquardt._backend.numpy import xp as _xp
from marquardt._backend.numpy.svd_kernel import THIN_SVD_KERNEL as _SVD_THIN
from marquardt._backend.numpy.xp import (arctan, asarray, cholesky_solve_or_nan, cond,  # noqa: F401
                                         diagonal, eigh, eye, log1p, matmul, matvec, reshape,
                                         shape, stack, swapaxes, transpose)

name = "numpy"

_SCALAR = (np.generic, float, int, bool)
_F64 = np.float64


def _scalars(*values) -> bool:
    for v in values:
        if not isinstance(v, _SCALAR):
            return False
    return True


def _value(v, like=None):
    """A Python number as the NumPy scalar an array operation would give (float64; an int
    takes the integer type of ``like``, int64 otherwise)."""
    t = type(v)
    if t is float:
        return _F64(v)
    if t is int:
        return like.dtype.type(v) if isinstance(like, np.integer) else np.int64(v)
    if t is bool:
        return np.bool_(v)
    return v


def _one(r):
    """A reduction's result: a per-problem (1,) array as its scalar."""
    return r[0] if r.shape == (1,) else r


def where(cond_, x, y):
    if isinstance(cond_, (np.bool_, bool)) and _scalars(x, y):
        return _value(x, y) if cond_ else _value(y, x)
    return np.where(cond_, x, y)


def maximum(x, y):
    if _scalars(x, y):  # NumPy's rule: NaN wins, else the larger (x on a tie)
        return _value(x if (x >= y or x != x) else y)
    return np.maximum(x, y)


def minimum(x, y):
    if _scalars(x, y):
        return _value(x if (x <= y or x != x) else y)
    return np.minimum(x, y)


def _comparison(op, ufunc):
    def compare(x, y):
        if _scalars(x, y):
            return np.bool_(op(x, y))
        return ufunc(x, y)
    compare.__name__ = ufunc.__name__
    return compare


greater = _comparison(lambda x, y: x > y, np.greater)
greater_equal = _comparison(lambda x, y: x >= y, np.greater_equal)
less = _comparison(lambda x, y: x < y, np.less)
less_equal = _comparison(lambda x, y: x <= y, np.less_equal)
equal = _comparison(lambda x, y: x == y, np.equal)


def logical_and(x, y):
    if _scalars(x, y):
        return np.bool_(x) & np.bool_(y)
    return np.logical_and(x, y)


def logical_or(x, y):
    if _scalars(x, y):
        return np.bool_(x) | np.bool_(y)
    return np.logical_or(x, y)


def logical_not(x):
    if isinstance(x, _SCALAR):
        return ~np.bool_(x)
    return np.logical_not(x)


def isfinite(x):
    if isinstance(x, _SCALAR):
        return np.bool_(math.isfinite(x))
    return np.isfinite(x)


def abs(x):  # noqa: A001
    if isinstance(x, _SCALAR):
        return _value(x.__abs__())
    return np.abs(x)


def sqrt(x):
    if isinstance(x, _SCALAR):  # correctly rounded, as np.sqrt; NaN below 0 and for NaN
        return _F64(math.sqrt(x)) if x >= 0 else _F64(math.nan)
    return np.sqrt(x)


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return _one(_xp.sum(a, axis=axis, keepdims=keepdims))


def max(a, axis=None, keepdims=False):  # noqa: A001
    return _one(_xp.max(a, axis=axis, keepdims=keepdims))


def all(a, axis=None):  # noqa: A001
    if isinstance(a, _SCALAR):
        return np.bool_(a)
    return _one(np.asarray(_xp.all(a, axis=axis)))


def any(a, axis=None):  # noqa: A001
    if isinstance(a, _SCALAR):
        return np.bool_(a)
    return _one(np.asarray(_xp.any(a, axis=axis)))


def norm(a, axis=-1):
    return _one(_xp.norm(a, axis=axis))


def squeeze(a, axis=None):
    return _one(np.squeeze(a, axis)) if not isinstance(a, _SCALAR) else a


def expand_dims(a, axis):
    """A scalar stays a scalar (it broadcasts as the (1, 1) array would)."""
    if isinstance(a, _SCALAR):
        return a
    return _xp.expand_dims(a, axis)


def cast(a, dtype):
    if isinstance(a, _SCALAR):
        return np.dtype(_xp._DTYPES.get(dtype, dtype) if isinstance(dtype, str)
                        else dtype).type(a)
    return _xp.cast(a, dtype)


def zeros_like(a):
    return (type(_value(a)))(0) if isinstance(a, _SCALAR) else np.zeros_like(a)


def ones_like(a):
    return (type(_value(a)))(1) if isinstance(a, _SCALAR) else np.ones_like(a)


def full_like(a, value):
    return (type(_value(a)))(value) if isinstance(a, _SCALAR) else np.full_like(a, value)


def svd(a):
    """Thin SVD ``(u, s, vh)`` of one problem's float64 matrix (1, m, n): NumPy's own LAPACK
    kernel called directly, the same bits as ``np.linalg.svd`` without its wrapper's type
    checks and error-state context (two thirds of its time at 50 × 3). Where LAPACK does not
    converge the kernel gives NaN: the call is then ``np.linalg.svd``'s, which raises as
    before. Other shapes and dtypes take ``np.linalg.svd``."""
    if (_SVD_THIN is not None and type(a) is np.ndarray and a.dtype == np.float64
            and a.ndim == 3 and a.shape[0] == 1):
        u, s, vh = _SVD_THIN(a, signature="d->ddd")
        if s.item(0) == s.item(0):
            return u, s, vh
    return _xp.svd(a)
