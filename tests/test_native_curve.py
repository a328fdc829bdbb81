"""``curve_fit``'s residuals formed in C (``native_model.ModelCall`` with a ``CurveModel``):
C calls the user's f(xdata, *p) itself and subtracts ydata (times the weights); what the model
returns that C does not read (a list, float32, a subclass, another shape) goes through the
Python conversion with its errors. Results are the trace's bit for bit."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import marquardt
from marquardt._backend.numpy import native_load, native_loop, native_model
from marquardt._core import host
from marquardt._core.functions import CurveModel

from test_native_emit import T, Y, exponential
from test_native_loop import assert_results_equal, spy_callbacks

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

SIGMA = 0.01 + 0.02 * np.abs(np.sin(T))


class Sub(np.ndarray):
    """A subclass: C leaves it to NumPy (a subclass may subtract its own way)."""


RETURNS = {
    "ndarray": lambda v: v,
    "strided": lambda v: np.repeat(v, 2)[::2],
    "list": lambda v: v.tolist(),
    "float32": lambda v: v.astype(np.float32),
    "subclass": lambda v: v.view(Sub),
    "big-endian": lambda v: v.astype(">f8"),
}


def _both(fit):
    """``fit()`` on the trace, then twice natively (the first records and builds)."""
    host._STEPS.clear()
    expected = fit()
    with native_loop.enabled():
        fit()
        got = fit()
    built = [b for b in native_loop._BUILT.values() if b is not None]
    assert built, native_loop._FAILURES
    return expected, got


@pytest.mark.parametrize("returns", list(RETURNS))
@pytest.mark.parametrize("sigma", [None, "scalar", "vector"])
def test_curve_fit_in_c_is_the_trace_bit_for_bit(returns, sigma):
    convert = RETURNS[returns]
    s = {None: None, "scalar": 0.3, "vector": SIGMA}[sigma]

    def model(t, a, b, c):
        assert type(a) is np.float64  # scalars as the host function passes them
        return convert(exponential(t, a, b, c))

    def fit():
        popt, pcov, info, mesg, ier = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], sigma=s,
                                                          full_output=True)
        return popt, pcov, info["result"], mesg, ier

    expected, got = _both(fit)
    assert_results_equal(expected, got)


def test_a_later_output_of_another_shape_is_the_same_error():
    calls = {"n": 0, "short_at": None}

    def model(t, a, b, c):
        calls["n"] += 1
        v = exponential(t, a, b, c)
        return v[:-1] if calls["n"] == calls["short_at"] else v

    def fit():
        calls["n"], calls["short_at"] = 0, 9
        with pytest.raises(ValueError) as info:
            marquardt.curve_fit(model, T, Y, p0=[1, 1, 0])
        return str(info.value)

    host._STEPS.clear()
    expected = fit()
    with native_loop.enabled():
        calls["short_at"] = None
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0])  # recorded and built
        got = fit()
    assert got == expected and "(49,) (50,)" in got  # NumPy's, from out - y


@pytest.mark.parametrize("vectorcall", [True, False])
@pytest.mark.parametrize("weights", [None, SIGMA])
def test_the_model_called_from_c_with_scalars(vectorcall, weights):
    """``mq_evaluate`` on a ``CurveModel``: f(xdata, *p) with NumPy scalars, then (f − y)·w,
    the bits NumPy gives; with ``PyObject_Vectorcall`` or a tuple (Python 3.10)."""
    from marquardt._backend.numpy import native_numdiff

    seen = []

    def f(t, a, b, c):
        seen.append((t, type(a), type(c)))
        return exponential(t, a, b, c)

    def fun(p):  # what C replaces (never called here)
        raise AssertionError("the host function was called")

    fun.curve = CurveModel(f, T, Y, weights, lambda out: None)
    call = native_model.ModelCall(fun, 3, 50)
    if not vectorcall:
        call._python.vectorcall = None
    evaluate = native_numdiff.python_function("mq_evaluate", 4)
    x, r, nfev = np.array([2.0, 1.25, -0.5]), np.zeros(50), ctypes.c_int(0)
    for _ in range(2):
        assert evaluate(ctypes.addressof(call.record), x.ctypes.data, r.ctypes.data,
                        ctypes.addressof(nfev)) == 0
    want = exponential(T, *map(np.float64, x.tolist())) - Y
    if weights is not None:
        want = want * weights
    assert r.tobytes() == want.tobytes() and nfev.value == 2
    assert seen == [(T, np.float64, np.float64)] * 2
    call.rebind(None)  # lets the model and xdata go
    assert call._keep[0] is None


def test_the_jacobian_at_the_start_formed_by_the_loop():
    """J at p0 is left to the native loop (``host.run``: ``j0`` None), which forms it in C:
    the configuration's steps are the trace's (one entry, its key from numdiff's J to come),
    the result the trace's, and an exception in one of its calls reaches the caller."""
    calls = {"n": 0, "raise_at": None}

    def model(t, a, b, c):
        calls["n"] += 1
        if calls["n"] == calls["raise_at"]:
            raise KeyError("at the first Jacobian")
        return exponential(t, a, b, c)

    def fit():
        popt, pcov, info, mesg, ier = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0],
                                                          full_output=True)
        return popt, pcov, info["result"], mesg, ier

    expected, got = _both(fit)
    assert_results_equal(expected, got)
    assert len(host._STEPS) == 1
    loops = list(native_loop._LOOPS.values())
    assert loops and all(loop.first_jacobian for loop in loops)
    with native_loop.enabled():
        calls["n"], calls["raise_at"] = 0, 3  # p0's call, then the differences' second
        with pytest.raises(KeyError, match="at the first Jacobian"):
            fit()
        calls["n"], calls["raise_at"] = 0, None
        assert_results_equal(expected, fit())


JAC_RETURNS = {
    "ndarray": lambda j: j,
    "fortran": lambda j: np.asfortranarray(j),
    "list": lambda j: j.tolist(),
    "float32": lambda j: j.astype(np.float32),
    "subclass": lambda j: j.view(Sub),
}


@pytest.mark.parametrize("returns", list(JAC_RETURNS))
@pytest.mark.parametrize("sigma", [None, "vector"])
def test_a_callable_jac_called_from_c_is_the_trace_bit_for_bit(returns, sigma, monkeypatch):
    """A curve's callable ``jac`` called by the loop in C (``mq_curve_jacobian``) as it
    calls f: the callback is asked for neither residuals nor J; what C does not read (a
    list, float32, a subclass) goes through ``jac_finish`` in Python."""
    from test_native_emit import exponential_jac

    convert = JAC_RETURNS[returns]
    s = None if sigma is None else SIGMA
    asked = spy_callbacks(monkeypatch)

    def fit():
        popt, pcov, info, mesg, ier = marquardt.curve_fit(
            exponential, T, Y, p0=[1, 1, 0], sigma=s, full_output=True,
            jac=lambda t, a, b, c: convert(exponential_jac(t, a, b, c)))
        return popt, pcov, info["result"], mesg, ier

    expected, got = _both(fit)
    assert_results_equal(expected, got)
    asked.clear()
    with native_loop.enabled():
        fit()
    assert set(asked) <= {4}  # history records only


def test_a_callable_jacs_error_from_c_is_the_pythons():
    """A wrong shape from ``jac``, and an exception raised in it, at its third call, reach
    the caller as on the trace."""
    from test_native_emit import exponential_jac

    def failing(how):
        calls = {"n": 0}

        def jac(t, a, b, c):
            calls["n"] += 1
            j = exponential_jac(t, a, b, c)
            if calls["n"] == 3:
                if how == "shape":
                    return j[:, :2]
                raise KeyError("in jac")
            return j
        return jac

    def fit(how):
        with pytest.raises(Exception) as info:
            marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac=failing(how))
        return type(info.value), str(info.value)

    host._STEPS.clear()
    expected = [fit("shape"), fit("raise")]
    with native_loop.enabled():
        marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac=exponential_jac)  # built
        got = [fit("shape"), fit("raise")]
    assert got == expected
    assert expected[0][0] is ValueError and "shape (m, n) = (50, 3)" in expected[0][1]
    assert expected[1][0] is KeyError
