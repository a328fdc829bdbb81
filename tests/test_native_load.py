"""The native executor's loader: compiler discovery, the disk cache, NumPy's BLAS."""

from __future__ import annotations

import ctypes
import os

import numpy as np
import pytest

from marquardt._backend.numpy import native_load

needs_cc = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

TWICE = "double twice(double x) { return 2.0 * x; }\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUARDT_NATIVE_CACHE", str(tmp_path))
    return tmp_path


@needs_cc
def test_compiles_caches_and_loads(cache):
    lib = native_load.load(TWICE)
    lib.twice.restype = ctypes.c_double
    assert lib.twice(ctypes.c_double(1.5)) == 3.0
    files = os.listdir(cache)
    assert [f for f in files if f.endswith(".so")] == [
        native_load.source_key(TWICE, native_load.compiler()) + ".so"]
    assert not [f for f in files if f.startswith(".build-")]  # the build folder is gone
    assert native_load.load(TWICE) is lib  # the process's memo


@needs_cc
def test_a_later_process_finds_the_object(cache, monkeypatch):
    source = "int seven(void) { return 7; }\n"
    native_load.load(source)
    key = native_load.source_key(source, native_load.compiler())
    native_load._LOADED.pop(key)
    monkeypatch.setattr(native_load, "_compile", lambda *a: pytest.fail("compiled again"))
    assert native_load.load(source).seven() == 7


@needs_cc
def test_a_failed_compilation_is_unavailable(cache):
    with pytest.raises(native_load.NativeUnavailable, match="failed"):
        native_load.load("this is not C;\n")
    assert not [f for f in os.listdir(cache) if f.endswith(".so")]


def test_no_compiler_is_unavailable(cache, monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", "")
    assert native_load.compiler() is None
    with pytest.raises(native_load.NativeUnavailable, match="no C compiler"):
        native_load.load(TWICE)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MARQUARDT_NATIVE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert native_load.cache_dir() == os.path.join(str(tmp_path), "marquardt", "native")


GEMV = """
#include <stdint.h>
typedef {int} blasint;
typedef void (*gemv_t)(int, int, blasint, blasint, double, const double *, blasint,
                       const double *, blasint, double, double *, blasint);
void call(void *fn, const double *a, const double *x, double *y, long m, long n) {{
    /* y = a^T x for a C-ordered (m, n) a: the column-major (n, m) matrix, not transposed */
    ((gemv_t)fn)(102, 111, n, m, 1.0, a, n, x, 1, 0.0, y, 1);
}}
"""


@needs_cc
def test_numpy_blas_gives_numpy_bits(cache):
    b = native_load.blas()
    assert os.path.exists(b.path) and b.dgemv and b.dgesdd
    lib = native_load.load(GEMV.format(int="int64_t" if b.ilp64 else "int32_t"))
    rng = np.random.default_rng(3)
    a = rng.standard_normal((50, 3))
    x = rng.standard_normal(50)
    y = np.zeros(3)
    ptr = ctypes.POINTER(ctypes.c_double)
    lib.call(ctypes.c_void_p(b.dgemv), a.ctypes.data_as(ptr), x.ctypes.data_as(ptr),
             y.ctypes.data_as(ptr), ctypes.c_long(50), ctypes.c_long(3))
    assert y.tobytes() == (x[None, None, :] @ a[None])[0, 0].tobytes()


ORDERED = r"""
void pairs(const double *a, const double *b, double *sum, double *product, long n) {
    for (long k = 0; k < n; k++) { sum[k] = mq_add(a[k], b[k]); product[k] = mq_mul(a[k], b[k]); }
}
void times_one(const double *a, double *out, long n) {
    for (long k = 0; k < n; k++) out[k] = mq_mul(a[k], 1.0);
}
"""


def _nan(sign: int, payload: int, quiet: bool = True) -> np.float64:
    bits = (sign << 63) | (0x7FF << 52) | (int(quiet) << 51) | payload
    return np.array([bits], dtype=np.uint64).view(np.float64)[0]


@needs_cc
def test_ordered_add_and_multiply_keep_the_first_nan_at_flags(cache):
    """``mq_add``/``mq_mul`` compiled at ``FLAGS`` (optimised): where both operands are NaN the
    first one's NaN (quieted), as ``-O0``'s ``a + b`` on x86; else IEEE's result; and
    ``mq_mul(x, 1.0)`` is not folded to ``x`` (a signalling NaN comes out quiet)."""
    from marquardt._backend.numpy.native_prelude import prelude

    lib = native_load.load(prelude(True) + ORDERED)
    rng = np.random.default_rng(0)
    a = np.array([_nan(int(s), int(p)) for s, p in zip(rng.integers(0, 2, 64),
                                                        rng.integers(1, 1 << 40, 64))]
                 + [1.5, -0.0, np.inf, 2.0])
    b = np.array([_nan(int(s), int(p)) for s, p in zip(rng.integers(0, 2, 64),
                                                        rng.integers(1, 1 << 40, 64))]
                 + [_nan(1, 7), 0.0, -np.inf, 3.0])
    total, product = np.empty_like(a), np.empty_like(a)
    lib.pairs(*(ctypes.c_void_p(v.ctypes.data) for v in (a, b, total, product)),
              ctypes.c_long(a.size))
    quiet = np.uint64(1 << 51)
    first = a.view(np.uint64)[:64] | quiet
    assert (total.view(np.uint64)[:64] == first).all()
    assert (product.view(np.uint64)[:64] == first).all()
    with np.errstate(invalid="ignore"):
        assert total[64:].tobytes() == (a[64:] + b[64:]).tobytes()
        assert product[64:].tobytes() == (a[64:] * b[64:]).tobytes()
    if os.uname().machine in ("x86_64", "AMD64"):  # one instruction there: never folded
        signalling = np.array([_nan(0, 5, quiet=False), _nan(1, 9, quiet=False)])
        out = np.empty_like(signalling)
        lib.times_one(ctypes.c_void_p(signalling.ctypes.data), ctypes.c_void_p(out.ctypes.data),
                      ctypes.c_long(2))
        assert (out.view(np.uint64) == (signalling.view(np.uint64) | quiet)).all()
