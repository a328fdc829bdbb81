"""Linear-algebra kernels whose ``keras.ops`` form does not fit LM.

``keras.ops.cholesky`` raises on a matrix that is not positive definite (it wraps the result in
``check_numerics``); a damped solver must instead *notice* the failure and fall back, inside a
compiled graph. ``tf.linalg.cholesky`` returns NaN in that case, which we test for.

``host_cholesky_solve`` factors one large system with the host's LAPACK (SciPy's ``potrf`` and
``potrs``) through ``tf.numpy_function``. On a CPU, TensorFlow's own Cholesky is much slower:
5,181 × 5,181 in float64 took 2.4-2.7 s against 0.91 s for SciPy's ``cho_factor`` on the
2-core development machine (same run), which made it the largest cost of a Keras LM iteration
with ~5,000 weights. It cannot run under XLA or on a GPU (where ``tf.linalg.cholesky`` is the
right kernel), so the caller opts in: ``use_host_lapack``.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["cholesky_solve_or_nan", "host_cholesky_solve", "use_host_lapack",
           "HOST_LAPACK_MIN_N"]

#: Smallest system factored on the host. Handing work to Python from inside a running graph
#: costs tens of milliseconds per call in a Keras step (thread hand-over), which only a large
#: factorisation repays. Measured per full-batch iteration on 10,000 samples, 2-core machine,
#: alternating runs: P = 481, host 73-143 ms against TensorFlow's 41-68 ms; P = 1,021, 0.20 s
#: against 0.14 s; P = 2,206, 0.72 s against 0.90 s; P = 5,181, 1.15 s against 2.5 s per solve.
HOST_LAPACK_MIN_N = 1500


def cholesky_solve_or_nan(m, b):
    """(x, ok): ``m x = b`` by TensorFlow's Cholesky, batched; ok False per system where the
    factor is not finite (``m`` not numerically positive definite: NaN, not an exception)."""
    chol = tf.linalg.cholesky(m)
    ok = tf.reduce_all(tf.math.is_finite(chol), axis=(-2, -1))
    return tf.linalg.cholesky_solve(chol, b[..., None])[..., 0], ok


def use_host_lapack(n: int, *, jit_compile: bool) -> bool:
    """Whether an n × n system should be factored by ``host_cholesky_solve``.

    Yes for n ≥ ``HOST_LAPACK_MIN_N`` when TensorFlow sees no GPU and the step is not
    compiled with XLA (which cannot run Python).
    """
    return (n >= HOST_LAPACK_MIN_N and not jit_compile
            and not tf.config.list_logical_devices("GPU"))


def _lapack_cholesky_solve(m, b):
    from marquardt._backend.numpy import xp as npx

    return npx.cholesky_solve_or_nan(m, b)


def host_cholesky_solve(m, b):
    """(x, ok): ``m x = b`` for symmetric positive definite systems (any leading batch axes)
    by LAPACK on the host (the NumPy namespace's ``cholesky_solve_or_nan``).

    ``ok`` is False (and x NaN) per system where ``potrf`` finds ``m`` not numerically positive
    definite, the same contract as ``tf.linalg.cholesky`` returning NaN, without its logged
    warning.
    """
    x, ok = tf.numpy_function(_lapack_cholesky_solve, [m, b], [m.dtype, tf.bool],
                              stateful=False)
    x.set_shape(b.shape)
    ok.set_shape(b.shape[:-1])
    return x, ok
