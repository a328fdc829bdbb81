"""The damped Cholesky solve and tr(m⁻¹) of the JAX Keras step on the host's LAPACK (CPU).

Glossary: m = A + λD (P × P, symmetric positive definite when A + λD is numerically so); b the
right-hand side; ok whether the Cholesky factor of m was finite (``potrf``'s info = 0).

On a CPU device, XLA's Cholesky and triangular solves for one P × P system are slower than
LAPACK's ``potrf``/``potrs`` called from the host on one OpenBLAS thread, and far less steady
while other work shares the cores. Per solve of m x = b, float64, jitted, mean of 20 calls,
three repeats, interleaved in one run (``/tmp`` micro-benchmark, 2-core machine shared with
other jobs, load 1.3-2.7, 2026-12-04): P = 64 XLA 0.12-0.15 ms, host 0.38-0.42 ms;
P = 141 XLA 1.3-31 ms, host 0.44-0.49 ms; P = 481 XLA 13-71 ms, host 9.3-10 ms
(quieter moment: 3.4-11 against 2.6-3.8 ms); P = 1,021 XLA 185-618 ms, host 17-22 ms. On the
default OpenBLAS threads the host was 1.3-15x slower than on one (P = 141 and up): those
threads compete with XLA's own pool for the same cores, as in the TensorFlow step
(``_backend/numpy/blas_threads``). Hence the host route for P ≥ ``HOST_LAPACK_MIN_N`` on a
CPU, one thread inside the callback; on a GPU or TPU the data would cross to the host and
back, so XLA's kernels stay.

The host functions are ``jax.pure_callback``s: they run inside the compiled step, and their
compile cost is that of a call (~0.02 s against 0.22 s for XLA's Cholesky and solve at
P = 481). A factorisation that fails reports it the way XLA's route does
(``xp.cholesky_solve_or_nan``): x NaN and ok False, so ``_solvers.solve_normal_checked``
takes the eigen route (XLA's ``eigh``, traced only in that branch) and the iteration counts
the failure in ``cholesky_failures``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["HOST_LAPACK_MIN_N", "use_host_lapack", "host_cholesky_solve",
           "host_trace_inverse"]

#: Smallest system solved on the host (see the module docstring: XLA is faster at P = 64,
#: the host from P = 141 on).
HOST_LAPACK_MIN_N = 128


def use_host_lapack(n: int) -> bool:
    """Whether an n × n system of the step should go to the host's LAPACK: n ≥
    ``HOST_LAPACK_MIN_N`` and JAX's default device is a CPU."""
    return n >= HOST_LAPACK_MIN_N and jax.default_backend() == "cpu"


def _lapack_cholesky_solve(m, b):
    from marquardt._backend.numpy import xp as npx
    from marquardt._backend.numpy.blas_threads import one_thread

    with one_thread():  # OpenBLAS' own threads would compete with XLA's pool
        x, ok = npx.cholesky_solve_or_nan(np.asarray(m), np.asarray(b))
    return x.astype(np.asarray(b).dtype, copy=False), np.asarray(ok, dtype=bool)


def host_cholesky_solve(m, b):
    """(x, ok): m x = b for symmetric positive definite systems (any leading batch axes) by
    LAPACK ``potrf``/``potrs`` on the host; x NaN and ok False per system where m is not
    numerically positive definite (the contract of ``xp.cholesky_solve_or_nan``).

    Args:
        m: (…, n, n) array.
        b: (…, n) array, the same dtype.

    Returns:
        ``(x, ok)``, shapes (…, n) and (…,).
    """
    out = (jax.ShapeDtypeStruct(b.shape, b.dtype), jax.ShapeDtypeStruct(b.shape[:-1], jnp.bool_))
    return jax.pure_callback(_lapack_cholesky_solve, out, m, b, vmap_method="broadcast_all")


def _lapack_trace_inverse(m):
    from marquardt._backend.numpy.blas_threads import one_thread
    from marquardt._backend.numpy.trace_inverse import trace_inverse_or_nan

    with one_thread():
        t, ok = trace_inverse_or_nan(np.asarray(m))
    return np.asarray(t, np.asarray(m).dtype), np.asarray(ok, dtype=bool)


def host_trace_inverse(m):
    """(t, ok): t = tr(m⁻¹) = ‖L⁻¹‖²_F of one symmetric positive definite matrix by LAPACK
    ``potrf`` + ``trtri`` on the host (``_backend/numpy/trace_inverse``, P³/3 + P³/3 flops
    against P³/3 + P³ for a solve against the identity); t NaN and ok False where m is not
    numerically positive definite."""
    out = (jax.ShapeDtypeStruct((), m.dtype), jax.ShapeDtypeStruct((), jnp.bool_))
    return jax.pure_callback(_lapack_trace_inverse, out, m, vmap_method="sequential")
