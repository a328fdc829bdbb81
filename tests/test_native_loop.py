"""The native executor's loop (``_backend/numpy/native_loop.py``): a single NumPy fit on the
C steps ends with the Python trace's result bit for bit (x, cost, residuals, Jacobian, nfev,
status, history, covariance), and falls back to the trace where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import marquardt
from marquardt._backend.numpy import native_load, native_loop
from marquardt._core import host

from test_native_emit import FITS, T, Y, exponential

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")


def full(fit):
    """A fit's least-squares result and its covariance, through ``curve_fit``'s full
    output."""
    def run():
        popt, pcov, info, mesg, ier = fit(full_output=True)
        return popt, pcov, info["result"], mesg, ier
    return run


def assert_results_equal(a, b):
    popt_a, pcov_a, res_a, mesg_a, ier_a = a
    popt_b, pcov_b, res_b, mesg_b, ier_b = b
    assert popt_a.tobytes() == popt_b.tobytes()
    assert pcov_a.tobytes() == pcov_b.tobytes()
    assert (mesg_a, ier_a) == (mesg_b, ier_b)
    for key in res_a:
        va, vb = res_a[key], res_b[key]
        if isinstance(va, np.ndarray):
            assert (va.dtype, va.shape) == (vb.dtype, vb.shape), key
            assert np.ascontiguousarray(va).tobytes() == np.ascontiguousarray(vb).tobytes(), key
        elif isinstance(va, (float, int, np.generic)):
            assert np.asarray(va).tobytes() == np.asarray(vb).tobytes(), key
        else:
            assert str(va) == str(vb), key


FULL = {
    name: (lambda name=name: (lambda **kw: _call(name, **kw)))()
    for name in FITS
}


def _call(name, **kw):
    # FITS' lambdas take no options: rebuild the call with full_output
    import test_native_emit as e
    calls = {
        "2-point": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point", **kw),
        "jac": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0],
                                           jac=e.exponential_jac, **kw),
        "bounds": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point",
                                              bounds=([0, 0, -1], [2.2, 5, 1]), **kw),
        "soft_l1": lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point",
                                               loss="soft_l1", **kw),
        "gaussian": lambda: marquardt.curve_fit(e.gaussian, e.TG, e.YG, p0=[1, 0, 1, 0, 0],
                                                jac="2-point", **kw),
    }
    return calls[name]()


@pytest.mark.parametrize("name", list(FITS))
def test_native_fit_is_the_trace_bit_for_bit(name):
    run = full(FULL[name])
    host._STEPS.clear()
    expected = run()
    with native_loop.enabled():
        first = run()  # on the trace, recording; the steps then compiled
        steps = [s for s in native_loop._BUILT if native_loop._BUILT[s] is not None]
        assert steps, native_loop._FAILURES
        calls = {"n": 0}
        built = native_loop._BUILT[host._STEPS[next(iter(host._STEPS))]]
        fns = dict(built.fns)

        def counting(fn):
            def call():
                calls["n"] += 1
                return fn()
            return call
        built.fns = {k: counting(f) for k, f in fns.items()}
        try:
            got = run()
        finally:
            built.fns = fns
    assert calls["n"] > 0  # it ran on the C steps
    assert_results_equal(expected, first)
    assert_results_equal(expected, got)


def test_no_compiler_runs_the_trace(monkeypatch):
    monkeypatch.setenv("CC", "")
    monkeypatch.setenv("PATH", "")
    native_load._LOADED.clear()
    host._STEPS.clear()
    run = full(FULL["2-point"])
    expected = run()
    with native_loop.enabled():
        run()
        got = run()
    assert None in native_loop._BUILT.values()
    assert_results_equal(expected, got)


def test_off_by_default():
    assert host._native is None


def test_a_step_never_traced_runs_as_the_host_step():
    """Steps recorded on a fit without a rejected attempt (no ``refit``), then a fit of the
    same configuration that needs the trust radius's refit: the host's step serves it, and
    the result is the trace's."""
    host._STEPS.clear()
    near = full(lambda **kw: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0],
                                                 jac="2-point", **kw))
    far = full(lambda **kw: marquardt.curve_fit(exponential, T, Y, p0=[10, 0.1, 5],
                                                jac="2-point", **kw))
    with native_loop.enabled():
        near()
        built = native_loop._BUILT[next(iter(host._STEPS.values()))]
        assert "refit" not in built.fns
        got = far()
    host._STEPS.clear()
    assert_results_equal(far(), got)
