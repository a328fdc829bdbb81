"""One BLAS thread for a LAPACK call made from inside a running TensorFlow graph.

SciPy's OpenBLAS starts as many threads as there are cores. Called from a ``tf.numpy_function``
while TensorFlow's own thread pools are busy, those threads compete with TensorFlow's for the
same cores: tr(m⁻¹) of a 481 × 481 matrix took 4.4-4.8 ms CPU inside a Keras step on one
OpenBLAS thread and made the whole step 10-15 ms CPU dearer on the default two
(``benchmarks/trainbr_step_cost.py --trace host``, 2-core machine, 2026-12-03).

OpenBLAS 0.3.27 and later (SciPy ≥ 1.14's wheels) offer ``openblas_set_num_threads_local``, a
thread count for the calling thread only, which returns the previous one: set and restored
around the call, it changes nothing for any other thread. It is looked up in the OpenBLAS that
SciPy's wheel bundles (``scipy.libs``); where there is none (SciPy built against another BLAS),
``one_thread`` does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import glob
import os

__all__ = ["one_thread"]


@functools.lru_cache(maxsize=1)
def _setter():
    import scipy

    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "*openblas*"))):
        try:
            lib = ctypes.CDLL(path)  # already loaded by scipy.linalg: the same handle
            fn = lib.openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes = [ctypes.c_int]
        fn.restype = ctypes.c_int
        return fn
    return None


@contextlib.contextmanager
def one_thread():
    """SciPy's OpenBLAS on one thread for the calling thread, inside the block."""
    fn = _setter()
    if fn is None:
        yield
        return
    previous = fn(1)
    try:
        yield
    finally:
        fn(previous)
