"""Linear-algebra kernels whose ``keras.ops`` form does not fit LM.

``keras.ops.cholesky`` raises on a matrix that is not positive definite (it wraps the result in
``check_numerics``); a damped solver must instead *notice* the failure and fall back, inside a
compiled graph. ``tf.linalg.cholesky`` returns NaN in that case, which we test for.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["cholesky_or_nan", "cholesky_solve", "all_finite"]


def cholesky_or_nan(a):
    """Lower Cholesky factor of ``a``; NaN entries (no exception) when ``a`` is not PD."""
    return tf.linalg.cholesky(a)


def cholesky_solve(chol, rhs):
    """Solve ``L Lᵀ x = rhs`` for vector right-hand sides (batched leading dims)."""
    return tf.linalg.cholesky_solve(chol, rhs[..., None])[..., 0]


def all_finite(x):
    """Scalar boolean: every entry of ``x`` is finite."""
    return tf.reduce_all(tf.math.is_finite(x))
