"""The TensorFlow array namespace of the LM core (see ``marquardt._xp``).

The same names as ``marquardt._backend.numpy.xp`` with NumPy's meanings, built from
``tf`` ops, so the core runs inside ``tf.function``, ``tf.while_loop`` and XLA. Keras'
``keras.ops`` is not used: it follows ``KERAS_BACKEND``, and the compiled solve is
TensorFlow's whatever backend Keras runs on.
"""

from __future__ import annotations

import tensorflow as tf

from marquardt._backend.tensorflow.linalg import cholesky_solve_or_nan  # noqa: F401

name = "tensorflow"

abs = tf.abs  # noqa: A001
sqrt = tf.sqrt
log1p = tf.math.log1p
arctan = tf.atan
greater = tf.greater
greater_equal = tf.greater_equal
less = tf.less
less_equal = tf.less_equal
equal = tf.equal
logical_and = tf.logical_and
logical_or = tf.logical_or
logical_not = tf.logical_not
isfinite = tf.math.is_finite
stack = tf.stack
reshape = tf.reshape
zeros_like = tf.zeros_like
ones_like = tf.ones_like
asarray = tf.convert_to_tensor


def _promote(x, y):
    """NumPy's promotion of a Python number or array to the other side's tensor dtype."""
    if tf.is_tensor(x) and not tf.is_tensor(y):
        y = tf.convert_to_tensor(y, dtype=x.dtype)
    elif tf.is_tensor(y) and not tf.is_tensor(x):
        x = tf.convert_to_tensor(x, dtype=y.dtype)
    return x, y


def where(cond, x, y):
    """``tf.where``, promoting a Python number (``where(ok, t, 0.0)`` for a float64 ``t``)."""
    return tf.where(cond, *_promote(x, y))


def maximum(x, y):
    return tf.maximum(*_promote(x, y))


def minimum(x, y):
    return tf.minimum(*_promote(x, y))


def full_like(a, value):
    # tf.constant, not tf.cast: casting a Python float goes through float32 first
    # (1e-3 would become 1.0000000475e-3 in a float64 tensor)
    return tf.fill(tf.shape(a), tf.constant(value, a.dtype))


def expand_dims(a, axis):
    if isinstance(axis, (tuple, list)):  # NumPy's meaning: positions in the result
        out_rank = a.shape.rank + len(axis)
        for ax in sorted(ax % out_rank for ax in axis):
            a = tf.expand_dims(a, ax)
        return a
    return tf.expand_dims(a, axis)


def transpose(a, axes):
    return tf.transpose(a, axes)


def squeeze(a, axis=None):
    return tf.squeeze(a, axis)


def swapaxes(a, i, j):
    rank = a.shape.rank
    perm = list(range(rank))
    perm[i], perm[j] = perm[j], perm[i]
    return tf.transpose(a, perm)


def shape(a):
    return tf.shape(a)


def eye(n, dtype=tf.float64):
    return tf.eye(n, dtype=dtype)


def cast(a, dtype):
    return tf.cast(a, dtype)


def sum(a, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_sum(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):  # noqa: A001
    return tf.reduce_max(a, axis=axis, keepdims=keepdims)


def all(a, axis=None):  # noqa: A001
    return tf.reduce_all(a, axis=axis)


def any(a, axis=None):  # noqa: A001
    return tf.reduce_any(a, axis=axis)


def norm(a, axis=-1):
    return tf.norm(a, axis=axis)


#: Largest product of a batched product's three matrix dimensions (p·q·r for (p, q) @ (q, r))
#: formed elementwise (``_small_batched``): one fused loop per product under XLA, where XLA's
#: CPU dot emitter calls a small-matrix kernel once per problem of the batch.
_ELEMENTWISE_MAX = 1024


def _small_batched(a, b) -> bool:
    """Both operands batched (rank ≥ 3) with static matrix dimensions whose product is at
    most ``_ELEMENTWISE_MAX``: many tiny products, cheaper as broadcast multiply and sum."""
    if a.shape.rank is None or b.shape.rank is None or a.shape.rank < 3 or b.shape.rank < 2:
        return False
    dims = list(a.shape[-2:]) + [b.shape[-1]]
    if None in dims:
        return False
    return dims[0] * dims[1] * dims[2] <= _ELEMENTWISE_MAX


def matmul(a, b):
    """``a @ b`` for (…, p, q) and (…, q, r): ``Σ_q a[…, p, q] b[…, q, r]``, elementwise for a
    batch of small matrices (``_small_batched``), else ``tf.matmul``."""
    if _small_batched(a, b):
        return tf.reduce_sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)
    return tf.matmul(a, b)


def matvec(a, x, transpose_a: bool = False):
    """``a @ x`` (or ``aᵀ @ x``) for a (…, m, n), per problem; elementwise for a batch of
    small matrices (``_small_batched``: 1 × m × n)."""
    if _small_batched(a, x[..., None]):
        if transpose_a:
            return tf.reduce_sum(a * x[..., :, None], axis=-2)
        return tf.reduce_sum(a * x[..., None, :], axis=-1)
    return tf.linalg.matvec(a, x, transpose_a=transpose_a)


def diagonal(a):
    """The diagonal of the last two axes."""
    return tf.linalg.diag_part(a)


#: A matrix with more than this many times as many rows as columns has its thin SVD taken
#: through a QR factorisation first (``svd``).
_TALL = 2


def svd(a):
    """Thin SVD ``(u, s, vh)`` in NumPy's order (TensorFlow returns ``(s, u, v)``).

    A tall matrix (m > ``_TALL`` · n, static shapes) is factored as A = QR (Householder) and
    R = U_R Σ Vᴴ, so A = (Q U_R) Σ Vᴴ: the "R-SVD" (Golub & Van Loan, Matrix Computations,
    4th ed., §8.6.3), backward stable as the direct SVD. Under XLA the direct SVD of a tall
    matrix is a one-sided Jacobi iteration over all m rows: NIST Gauss1's 250 × 8 Jacobian
    made a compiled fit 33 ms against 5 ms through QR (2026-12-05, docs/benchmarks.md)."""
    m, n = a.shape[-2], a.shape[-1]
    if m is not None and n is not None and m > _TALL * n:
        q, r = tf.linalg.qr(a)
        s, u_r, v = tf.linalg.svd(r, full_matrices=False)
        return tf.matmul(q, u_r), s, tf.linalg.adjoint(v)
    s, u, v = tf.linalg.svd(a, full_matrices=False)
    return u, s, tf.linalg.adjoint(v)


def eigh(a):
    """``(w, q)`` per symmetric matrix of a batch; NaN for a matrix with a non-finite entry.

    XLA's kernel returns NaN for such a matrix; TensorFlow's own (``jit_compile=False``)
    raises InvalidArgumentError ("Self-adjoint eigen decomposition was not successful")
    for the whole batch, so one problem whose normal matrix overflowed (a start at 1e±300)
    failed every problem of a ``curve_fit_batch``. The matrix is replaced by I for the
    kernel and its results by NaN, which the core handles as XLA's (a non-finite step)."""
    finite = tf.reduce_all(tf.math.is_finite(a), axis=[-2, -1])
    shape = tf.shape(a)
    identity = tf.eye(shape[-1], batch_shape=shape[:-2], dtype=a.dtype)
    w, q = tf.linalg.eigh(tf.where(finite[..., None, None], a, identity))
    nan = tf.constant(float("nan"), a.dtype)
    return tf.where(finite[..., None], w, nan), tf.where(finite[..., None, None], q, nan)


def cond(pred, true_fn, false_fn):
    return tf.cond(pred, true_fn, false_fn)
