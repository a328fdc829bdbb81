"""The NumPy array namespace of the LM core (see ``marquardt._xp``): host arrays, LAPACK.

Used by the host executor for single problems, where NumPy on small arrays costs about a
microsecond per operation and a compiled graph would cost tens of microseconds per call.
"""

from __future__ import annotations

import numpy as np

name = "numpy"

where = np.where
abs = np.abs  # noqa: A001
sqrt = np.sqrt
log1p = np.log1p
arctan = np.arctan
maximum = np.maximum
minimum = np.minimum
greater = np.greater
greater_equal = np.greater_equal
less = np.less
less_equal = np.less_equal
equal = np.equal
logical_and = np.logical_and
logical_or = np.logical_or
logical_not = np.logical_not
isfinite = np.isfinite
squeeze = np.squeeze
swapaxes = np.swapaxes
stack = np.stack
reshape = np.reshape
transpose = np.transpose
zeros_like = np.zeros_like
ones_like = np.ones_like
full_like = np.full_like
matmul = np.matmul
# Reductions through the ufuncs themselves: ``np.sum`` and friends add a few microseconds of
# dispatch per call, which on the host executor's tiny arrays is most of the cost.
_add_reduce = np.add.reduce
_max_reduce = np.maximum.reduce
_and_reduce = np.logical_and.reduce
_or_reduce = np.logical_or.reduce


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return _add_reduce(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return _max_reduce(a, axis=axis, keepdims=keepdims)


def all(a, axis=None):  # noqa: A001
    return _and_reduce(a, axis=axis)


def any(a, axis=None):  # noqa: A001
    return _or_reduce(a, axis=axis)


_NEW_AXES = {0: (None,), 1: (slice(None), None),
             -1: (Ellipsis, None), -2: (Ellipsis, None, slice(None)),
             (-1,): (Ellipsis, None), (-2,): (Ellipsis, None, slice(None)),
             (-2, -1): (Ellipsis, None, None), (-1, -2): (Ellipsis, None, None)}


def expand_dims(a, axis):
    """NumPy's ``expand_dims`` (axis an int or a tuple); the core's trailing axes by
    indexing (a tenth of ``np.expand_dims``' cost on small arrays)."""
    a = np.asarray(a)
    index = _NEW_AXES.get(axis)
    if index is not None:
        return a[index]
    axes = axis if isinstance(axis, tuple) else (axis,)
    out_rank = a.ndim + len(axes)
    shape = list(a.shape)
    for ax in sorted(ax % out_rank for ax in axes):
        shape.insert(ax, 1)
    return a.reshape(shape)


asarray = np.asarray


def shape(a):
    return np.shape(a)


def eye(n, dtype=np.float64):
    return np.eye(n, dtype=dtype)


_DTYPES = {"int32": np.dtype(np.int32), "float64": np.dtype(np.float64),
           "float32": np.dtype(np.float32), "bool": np.dtype(bool)}


def cast(a, dtype):
    return np.asarray(a).astype(_DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype,
                                copy=False)


def norm(a, axis=-1):
    return np.sqrt(_add_reduce(a * a, axis=axis))


def matvec(a, x, transpose_a: bool = False):
    """A x (or Aᵀ x) for batched A (…, m, n)."""
    if transpose_a:
        return (x[..., None, :] @ a)[..., 0, :]
    return (a @ x[..., :, None])[..., 0]


def diagonal(a):
    """The diagonal of the last two axes."""
    return np.diagonal(a, axis1=-2, axis2=-1)


def svd(a):
    """Thin SVD ``(u, s, vh)``."""
    return np.linalg.svd(a, full_matrices=False)


def eigh(a):
    return np.linalg.eigh(a)


def cond(pred, true_fn, false_fn):
    return true_fn() if bool(pred) else false_fn()


def cholesky_solve_or_nan(m, b):
    """(x, ok): m x = b per system by LAPACK ``potrf``/``potrs``; NaN and ok False where m is
    not numerically positive definite (no exception, as TensorFlow's kernel)."""
    m = np.asarray(m)
    b = np.asarray(b)
    batch = m.shape[:-2]
    mm = m.reshape((-1,) + m.shape[-2:])
    bb = b.reshape((-1, b.shape[-1]))
    x = np.empty_like(bb)
    ok = np.empty(bb.shape[0], dtype=bool)
    # SciPy's LAPACK wrappers, imported here: ``scipy.linalg`` takes longer to import than a
    # small fit takes, and only the Cholesky solvers need it (the default SVD does not)
    from scipy.linalg import lapack

    potrf, potrs = lapack.get_lapack_funcs(("potrf", "potrs"), (mm,))
    for i in range(mm.shape[0]):
        chol, info = potrf(mm[i], lower=True, clean=False)
        if info != 0 or not np.all(np.isfinite(np.diagonal(chol))):
            x[i] = np.nan
            ok[i] = False
            continue
        sol, info = potrs(chol, bb[i], lower=True)
        x[i] = sol
        ok[i] = info == 0 and np.all(np.isfinite(sol))
    return x.reshape(b.shape), ok.reshape(batch)
