"""The native executor's loop (``_backend/numpy/native_loop.py``): a single NumPy fit on the
C steps ends with the Python trace's result bit for bit (x, cost, residuals, Jacobian, nfev,
status, history, covariance), and falls back to the trace where it cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import marquardt
from marquardt._backend.numpy import native_load, native_loop, native_tier
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
        "cholesky_unrolled": lambda: marquardt.curve_fit(
            e.gaussian, e.TG, e.YG, p0=[1, 0, 1, 0, 0], jac="2-point", damping="nielsen",
            solver="cholesky_unrolled", **kw),
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
        fns, fit = dict(built.fns), built.fit

        def counting(fn):
            def call(*args):
                calls["n"] += 1
                return fn(*args)
            return call
        built.fns = {k: counting(f) for k, f in fns.items()}
        built.fit = counting(fit) if fit is not None else None
        try:
            got = run()
        finally:
            built.fns, built.fit = fns, fit
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


def test_the_loop_in_python_too():
    """The loop in Python (``LOOP_IN_C = False``) on the same C steps: the same bits."""
    run = full(FULL["soft_l1"])
    host._STEPS.clear()
    expected = run()
    with native_loop.enabled():
        run()
        try:
            native_loop.LOOP_IN_C = False
            got = run()
        finally:
            native_loop.LOOP_IN_C = True
    assert_results_equal(expected, got)


def test_an_exception_in_the_model_reaches_the_caller():
    host._STEPS.clear()
    state = {"calls": 0, "raise_at": None}

    def model(t, a, b, c):
        state["calls"] += 1
        if state["calls"] == state["raise_at"]:
            raise KeyError("from the model")
        return a * np.exp(-b * t) + c

    with native_loop.enabled():
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac="2-point")
        state["calls"], state["raise_at"] = 0, 12
        with pytest.raises(KeyError, match="from the model"):
            marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac="2-point")
        state["calls"], state["raise_at"] = 0, None
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac="2-point")  # usable again


def test_on_by_default_with_the_rent_rule_and_off_by_the_environment(monkeypatch):
    monkeypatch.setattr(native_loop, "_FORCED", False)
    for value, expected in (("0", None), ("off", None), ("", native_tier.run),
                            ("1", native_tier.run)):
        monkeypatch.setenv("MARQUARDT_NATIVE", value)
        monkeypatch.setattr(host, "_native", host._native_first)
        marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point")
        assert host._native is expected, value


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


def test_an_operation_without_a_c_form_runs_the_trace():
    """``loss='cauchy'`` takes ``log1p``, whose NumPy kernel C cannot match bit for bit: the
    configuration stays on the trace."""
    host._STEPS.clear()
    run = full(lambda **kw: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0],
                                                jac="2-point", loss="cauchy", **kw))
    expected = run()
    with native_loop.enabled():
        run()
        got = run()
    steps = next(iter(host._STEPS.values()))
    assert native_loop._BUILT[steps] is None
    assert isinstance(native_loop._FAILURES[steps], native_loop.Unsupported)
    assert_results_equal(expected, got)


def test_candidates_where_the_model_is_nan():
    """A model that is NaN for b < 0.3, started at b = 0.31: many candidates give NaN
    residuals (non-finite trials rejected in C as in the trace), the same bits."""
    nans = {"n": 0}

    def fun(p):
        a, b, c = p
        r = a * np.exp(-(1.0 + np.sqrt(b - 0.3)) * T) + c - Y
        nans["n"] += int(np.isnan(r).any())
        return r

    def fit():
        return marquardt.least_squares(fun, [1.0, 0.31, 0.0], max_nfev=300)

    host._STEPS.clear()
    with np.errstate(all="ignore"):
        expected = fit()
        assert nans["n"] > 10
        with native_loop.enabled():
            fit()
            got = fit()
    for key in ("x", "cost", "fun", "jac", "grad", "nfev", "njev", "status", "nit",
                "history"):
        assert np.asarray(expected[key]).tobytes() == np.asarray(got[key]).tobytes(), key


@pytest.mark.parametrize("options", [
    dict(damping="nielsen", jac="3-point"),
    dict(damping="trainlm", jac="cs", x_scale="jac"),
    dict(loss="huber", jac="2-point", bounds=([0, 0, -1], [2.2, 5, 1])),
    dict(damping="nielsen", solver="cholesky_unrolled"),  # curve_fit_batch's configuration
    dict(damping="nielsen", solver="cholesky_unrolled", bounds=([0, 0, -1], [2.2, 5, 1])),
], ids=["nielsen-3-point", "trainlm-cs-x_scale", "huber-bounds", "cholesky-unrolled",
        "cholesky-unrolled-bounds"])
def test_other_options_bit_for_bit(options):
    """Other damping policies, difference schemes, scaling and losses: the same bits."""
    def fun(p):
        return p[0] * np.exp(-p[1] * T) + p[2] - Y

    def fit():
        return marquardt.least_squares(fun, [1.0, 1.0, 0.0], **options)

    host._STEPS.clear()
    expected = fit()
    with native_loop.enabled():
        fit()
        got = fit()
    assert native_loop._BUILT[next(iter(host._STEPS.values()))] is not None
    for key in ("x", "cost", "fun", "jac", "grad", "nfev", "njev", "status", "nit",
                "history"):
        assert np.asarray(expected[key]).tobytes() == np.asarray(got[key]).tobytes(), key


def test_a_configuration_moves_to_the_native_steps_once_it_has_paid_for_them(monkeypatch, tmp_path):
    """The ski-rental rule (``native_tier``'s docstring): fits stay on the trace until the
    configuration's evaluations reach ``LOAD_EVALUATIONS``; then the steps are emitted and
    loaded only where the disk cache holds them, compiled once the evaluations reach
    ``COMPILE_EVALUATIONS``; every fit gives the trace's bits."""
    monkeypatch.setenv("MARQUARDT_NATIVE_CACHE", str(tmp_path))  # an empty disk cache
    monkeypatch.setattr(native_load, "_LOADED", {})
    monkeypatch.setattr(native_loop, "_FORCED", False)
    monkeypatch.setattr(host, "_native", native_tier.run)
    for table in ("_BUILT", "_LOOPS", "_FAILURES"):
        monkeypatch.setattr(native_loop, table, {})
    monkeypatch.setattr(native_tier, "_RENT", {})
    monkeypatch.setattr(native_loop, "_UNCOMPILED", set())
    fit = lambda: marquardt.curve_fit(exponential, T, Y, p0=[1, 1, 0], jac="2-point",  # noqa: E731
                                      xtol=1e-13)  # a configuration of this test's own
    expected = fit()
    nfev = next(iter(native_tier._RENT.values()))
    monkeypatch.setattr(native_tier, "LOAD_EVALUATIONS", 2 * nfev)
    monkeypatch.setattr(native_tier, "COMPILE_EVALUATIONS", 4 * nfev)
    states = []
    for _ in range(5):
        popt, pcov = fit()
        assert popt.tobytes() == expected[0].tobytes() and pcov.tobytes() == expected[1].tobytes()
        states.append((sorted(native_tier._RENT.values()), bool(native_loop._UNCOMPILED),
                       [v is not None for v in native_loop._BUILT.values()]))
    assert states == [
        ([2 * nfev], False, []),  # on the trace, paying
        ([3 * nfev], True, []),  # rent reached: emitted, not on disk, so not compiled
        ([4 * nfev], True, []),  # on the trace again
        ([5 * nfev], False, [True]),  # compiled
        ([5 * nfev], False, [True]),  # a native fit: no rent
    ]
    assert len(list(tmp_path.glob("*.so"))) == 1


def test_the_loops_differences_follow_each_fits_model_and_let_it_go():
    """A configuration's loop reuses its differences' records from fit to fit
    (``NativeDifferences.rebind``): each fit calls its own model with its own bounds, ends with
    the trace's result, and the loop keeps no model once a fit has ended."""
    def fit(y, bounds):
        return marquardt.curve_fit(exponential, T, y, p0=[1, 1, 0], jac="2-point",
                                   bounds=bounds, full_output=True)

    cases = [(Y, ([0, 0, -1], [2.2, 5, 1])), (2.0 * Y, ([0, 0, -1], [9.0, 5, 3])),
             (Y + 0.3, ([0, 0, -1], [2.2, 5, 1]))]
    host._STEPS.clear()
    try:
        _reuse_and_release(fit, cases)
    finally:  # no loop left behind for another test's spies (a loop's callback is bound once)
        host._STEPS.clear()
        native_loop._BUILT.clear()
        native_loop._LOOPS.clear()


def _reuse_and_release(fit, cases):
    import gc
    import weakref

    expected = [fit(y, b) for y, b in cases]
    with native_loop.enabled():
        fit(*cases[0])  # recorded and built
        got = [fit(y, b) for y, b in cases]
    for (pa, ca, ia, _, _), (pb, cb, ib, _, _) in zip(expected, got):
        assert pa.tobytes() == pb.tobytes() and ca.tobytes() == cb.tobytes()
        assert ia["nfev"] == ib["nfev"]
    loops = [loop for loop in native_loop._LOOPS.values() if loop.differences]
    assert loops, "no loop reused its differences"

    class Model:
        def __call__(self, t, a, b, c):
            return exponential(t, a, b, c)
    model = Model()
    alive = weakref.ref(model)
    with native_loop.enabled():
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac="2-point",
                            bounds=([0, 0, -1], [2.2, 5, 1]))
    del model
    gc.collect()
    assert alive() is None


def spy_callbacks(monkeypatch) -> list:
    """What the native loop asks of Python (``_Loop.called_back``'s ``what``), appended to the
    list returned; the loops are built anew for the test (a loop built earlier keeps its
    callback bound to the method before the spy)."""
    asked: list = []
    called_back = native_loop._Loop.called_back

    def spy(self, what, it, old_cost):
        asked.append(what)
        return called_back(self, what, it, old_cost)

    monkeypatch.setattr(native_loop._Loop, "called_back", spy)
    for table in ("_BUILT", "_LOOPS"):
        monkeypatch.setattr(native_loop, table, {})
    return asked
