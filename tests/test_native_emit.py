"""The native executor's steps (``_backend/numpy/native_emit.py``): each traced step of a
single NumPy fit, emitted as C, gives the Python trace's results bit for bit on every call of
a fit (NaN and −0.0 included: bytes are compared)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import marquardt
from marquardt._backend.numpy import native_load, native_steps
from marquardt._backend.numpy.native_prelude import prelude
from marquardt._core import host

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
TG = np.linspace(-3.0, 5.0, 60)


def exponential(t, a, b, c):
    return a * np.exp(-b * t) + c


def exponential_jac(t, a, b, c):
    e = np.exp(-b * t)
    return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)


def gaussian(t, a, mu, s, b, c):
    return a * np.exp(-0.5 * ((t - mu) / s) ** 2) + b + c * t


YG = gaussian(TG, 2.0, 0.7, 1.1, 0.3, 0.05) + 0.01 * np.random.default_rng(1).standard_normal(60)

FITS = {
    "2-point": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point"),
    "jac": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac=exponential_jac),
    "bounds": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point",
                                          bounds=([0, 0, -1], [2.2, 5, 1])),
    "soft_l1": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point",
                                           loss="soft_l1"),
    "gaussian": lambda: marquardt.curve_fit(gaussian, TG, YG, p0=[1, 0, 1, 0, 0],
                                            jac="2-point"),
    # curve_fit_batch's configuration: the normal equations (matmul), the Cholesky branch
    "cholesky_unrolled": lambda: marquardt.curve_fit(gaussian, TG, YG, p0=[1, 0, 1, 0, 0],
                                                     jac="2-point", damping="nielsen",
                                                     solver="cholesky_unrolled"),
}


def recorded_fit(monkeypatch, fit):
    """Every call of a traced step in one fit: (step, its _Step, arguments)."""
    calls = []
    original = host._Step.__call__

    def record(self, *args):
        out = original(self, *args)
        calls.append((self.fn.__name__.lstrip("_"), self, args))
        return out

    host._STEPS.clear()
    with monkeypatch.context() as m:
        m.setattr(host._Step, "__call__", record)
        fit()
    return calls


def assert_same(a, b, path="result"):
    """Same structure, types and bytes."""
    if isinstance(a, tuple):
        assert type(a) is type(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
        return
    if a is None:
        assert b is None, path
        return
    if isinstance(a, np.ndarray):
        assert (a.shape, a.dtype) == (b.shape, b.dtype), path
        assert a.flags.c_contiguous == b.flags.c_contiguous, path  # the order BLAS sees
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), path
        return
    assert type(a) is type(b), path
    assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), (path, a, b)


@pytest.fixture(scope="module", params=list(FITS))
def fit_steps(request):
    with pytest.MonkeyPatch.context() as mp:
        calls = recorded_fit(mp, FITS[request.param])
    first, compiled = {}, {}
    for name, step, args in calls:
        first.setdefault(name, args)
        compiled[name] = step.compiled
    return calls, native_steps.build(compiled, first)


def test_every_call_bit_for_bit(fit_steps):
    calls, native = fit_steps
    assert {"start", "begin", "attempt", "judged", "end"} <= set(native.fns)
    for name, step, args in calls:
        expected = step.compiled.fn(*args)
        assert_same(expected, native.call(name, *args, like=expected), name)


def test_either_order_of_the_jacobian(fit_steps):
    """Every call again with its Jacobians in the other memory order (the trace's J is
    row-major after a rejected iteration's copy): the variant for that order gives the
    trace's bits too."""
    calls, native = fit_steps
    for name, step, args in calls:
        groups = native_steps._matrix_groups(args, native_steps.STEPS[name][0])
        if not groups:
            continue
        flipped = {id(obj): native_steps._in_order(obj, int(obj.flags.c_contiguous))
                   for obj, _ in groups}
        args = native_steps._replaced(args, flipped)
        expected = step.compiled.fn(*args)
        assert_same(expected, native.call(name, *args, like=expected), name)


def test_numpy_summation_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MARQUARDT_NATIVE_CACHE", str(tmp_path))
    ilp64 = native_load.blas().ilp64
    lib = native_load.load(prelude(ilp64) + "double sum(const double *a, long n, long s) "
                           "{ return np_sum(a, n, s); }\n")
    lib.sum.restype = ctypes.c_double
    lib.sum.argtypes = [ctypes.c_void_p, ctypes.c_long, ctypes.c_long]
    rng = np.random.default_rng(5)
    for n in range(1, 400, 3):
        a = rng.standard_normal(2 * n) * 10.0 ** rng.uniform(-8, 8, 2 * n)
        for stride in (1, 2):
            got = lib.sum(a.ctypes.data, n, stride)
            want = np.add.reduce(a[: n * stride: stride])
            assert np.float64(got).tobytes() == want.tobytes(), (n, stride)
    zeros = np.array([-0.0, -0.0])
    assert np.float64(lib.sum(zeros.ctypes.data, 2, 1)).tobytes() == np.add.reduce(zeros).tobytes()


def test_a_large_problem_keeps_the_trace(monkeypatch):
    """A step whose local arrays would not fit ``STACK_BYTES`` is not emitted."""
    from marquardt._backend.numpy import native_emit
    from marquardt._backend.numpy.native_slots import Unsupported

    monkeypatch.setattr(native_emit, "STACK_BYTES", 1000)  # the 50 x 3 J is 1200 bytes
    with pytest.MonkeyPatch.context() as mp:
        calls = recorded_fit(mp, FITS["2-point"])
    first, compiled = {}, {}
    for name, step, args in calls:
        first.setdefault(name, args)
        compiled[name] = step.compiled
    with pytest.raises(Unsupported, match="local arrays"):
        native_steps.build(compiled, first)


def test_the_cholesky_fallback_in_c(monkeypatch):
    """The attempt of ``cholesky_unrolled`` with a negative λ (A + λD not positive definite):
    the eigen side of the branch (``np_eigh``, LAPACK ``dsyevd``) gives the trace's bits,
    as the Cholesky side does, whichever side the recorded call took."""
    calls = recorded_fit(monkeypatch, FITS["cholesky_unrolled"])
    first, compiled = {}, {}
    for name, step, args in calls:
        first.setdefault(name, args)
        compiled[name] = step.compiled
    native = native_steps.build(compiled, first)
    attempts = [(step, args) for name, step, args in calls if name == "attempt"]
    assert attempts
    for step, (prep, s, c, lb, ub) in attempts:
        for lam in (c.lam, type(c.lam)(-2.0 * float(np.max(prep.d)) * 1e3)):
            args = (prep, s, c._replace(lam=lam), lb, ub)
            with np.errstate(all="ignore"):
                expected = step.compiled.fn(*args)
            assert_same(expected, native.call("attempt", *args, like=expected), "attempt")
