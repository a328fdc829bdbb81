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

import os

import tensorflow as tf

__all__ = ["cholesky_solve_or_nan", "host_cholesky_solve", "use_host_lapack",
           "HOST_LAPACK_MIN_N", "host_trace_inverse", "host_effective_parameters",
           "use_host_trace", "HOST_TRACE_MIN_N", "HOST_TRACE_MIN_N_ONE_THREAD",
           "HOST_TRACE_MIN_N_FLOAT32"]

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


#: Smallest matrix whose tr(m⁻¹) (Bayesian regularisation, ``keras_bayes``) is taken on the host.
#: TensorFlow has no triangular inverse: its route is a Cholesky and a solve against the
#: identity (P³/3 + P³ flops); LAPACK's ``potrf`` + ``trtri`` do P³/3 + P³/3, each faster per
#: flop (P = 481, one thread: 1.2 + 2.2 ms against 2.3 + 4.1 ms), but the hand-over to Python
#: costs about 0.7 ms CPU per call and the host runs it on one BLAS thread
#: (``blas_threads.one_thread``) where TensorFlow uses all of its pool. Least CPU time per trainbr
#: iteration, ``benchmarks/trainbr_step_cost.py --trace tf,host [--one-thread]``, 2-core machine
#: at load 9-15, 2026-12-03, host against TensorFlow: one thread, P = 141 2.87 / 2.41 ms, P = 256
#: 7.39 / 7.04, P = 481 21.9-24.2 / 23.1-25.1 (2,000 rows), P = 726 33.5 / 40.0, P = 1,597 393 /
#: 586; default threads, P = 481 30.0-31.2 / 28.4-30.5, P = 726 60.5-68.8 / 64.9-68.5,
#: P = 1,597 580 / 779. So a clear gain from about a thousand on, in both configurations.
HOST_TRACE_MIN_N = 1000

#: The same threshold where TensorFlow runs its kernels on one intra-op thread (set by the user,
#: ``tf.config.threading.set_intra_op_parallelism_threads(1)``, or a one-core machine): then the
#: host's one BLAS thread competes with no TensorFlow pool and its P³/3 + P³/3 against
#: TensorFlow's P³/3 + P³ pays earlier. Least CPU time per trainbr iteration, one accepted
#: attempt, ``benchmarks/trainbr_step_cost.py --one-thread --trace tf,host,none --hidden H,H``,
#: 2,000 rows, 2-core machine at load 4.1-4.4, 2026-12-04, CPU per iteration with the host's
#: trace against TensorFlow's (and each against trainlm's): P = 321 9.91 against 9.40 ms
#: (1.28× and 1.22×), P = 481 19.33 against 19.10 (1.36× and 1.34×), P = 673 34.20 against
#: 36.57 (1.41× and 1.50×); with P = 726 above (33.5 against 40.0), the host pays from about
#: 600 on one thread (an earlier estimate of 400 was not reproduced).
HOST_TRACE_MIN_N_ONE_THREAD = 600

#: The same threshold for a float32 model, whose γ comes from the eigenvalues of A + ρI in
#: most epochs (its A is known to ε₃₂‖A‖ only, and ρ falls to that level early:
#: ``keras._evidence.effective_parameters``). Eigenvalues alone, in float32: TensorFlow's
#: ``eigvalsh`` (Eigen's solver) against LAPACK's ``ssyevd`` on one thread with the hand-over,
#: least wall time per call from a ``tf.function``, quiet 2-core machine, 2026-12-04: P = 141
#: 0.89 against 1.15 ms, P = 241 2.75 against 2.39, P = 321 4.44 against 4.15, P = 481 9.66
#: against 7.63 (and the Cholesky route, where ρ is larger, is no slower on the host there:
#: ``potrf`` + ``trtri`` on one thread 3.8 ms against TensorFlow's 5.1 ms at P = 481).
HOST_TRACE_MIN_N_FLOAT32 = 300


def _one_thread() -> bool:
    return (tf.config.threading.get_intra_op_parallelism_threads() == 1
            or (os.cpu_count() or 2) == 1)


def use_host_trace(n: int, *, jit_compile: bool, float32: bool = False) -> bool:
    """Whether γ's tr(m⁻¹) of an n × n matrix should be taken on the host
    (``host_effective_parameters``): for n ≥ ``HOST_TRACE_MIN_N`` (``HOST_TRACE_MIN_N_ONE_THREAD``
    where TensorFlow runs on one intra-op thread, ``HOST_TRACE_MIN_N_FLOAT32`` for a model whose
    weights are float32 or coarser) when TensorFlow sees no GPU and the step is not compiled
    with XLA."""
    least = HOST_TRACE_MIN_N_ONE_THREAD if _one_thread() else HOST_TRACE_MIN_N
    if float32:
        least = min(least, HOST_TRACE_MIN_N_FLOAT32)
    return (n >= least and not jit_compile
            and not tf.config.list_logical_devices("GPU"))


def _lapack_trace_inverse(m):
    from marquardt._backend.numpy.blas_threads import one_thread
    from marquardt._backend.numpy.trace_inverse import trace_inverse_or_nan

    with one_thread():  # OpenBLAS' own threads would compete with TensorFlow's
        return trace_inverse_or_nan(m)


def host_trace_inverse(m):
    """(t, ok): t = tr(m⁻¹) of one symmetric positive definite matrix, by LAPACK on the host
    (``potrf`` + ``trtri``: ``marquardt._backend.numpy.trace_inverse``); ok False (t NaN)
    where m is not numerically positive definite."""
    t, ok = tf.numpy_function(_lapack_trace_inverse, [m], [m.dtype, tf.bool], stateful=False)
    t.set_shape([])
    ok.set_shape([])
    return t, ok


def _lapack_effective_parameters(m, rho, eps):
    from marquardt._backend.numpy.blas_threads import one_thread
    from marquardt._backend.numpy.trace_inverse import effective_parameters

    with one_thread():
        return effective_parameters(m, rho, float(eps))


def host_effective_parameters(m, rho, eps: float):
    """(γ, fallback) of m = A + ρI by LAPACK on the host in one hand-over: γ = P − ρ·tr(m⁻¹)
    by ``potrf`` + ``trtri``, or from the eigenvalues of m where ``potrf`` fails or γ falls
    outside [0, P] (``marquardt._backend.numpy.trace_inverse.effective_parameters``); fallback
    1 then (int32). ``eps``: the rounding unit of the model's dtype."""
    gamma, fallback = tf.numpy_function(
        _lapack_effective_parameters, [m, tf.cast(rho, m.dtype), tf.constant(eps, tf.float64)],
        [m.dtype, tf.int32], stateful=False)
    gamma.set_shape([])
    fallback.set_shape([])
    return gamma, fallback


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
