"""Finite differences in C (``_backend/numpy/native_numdiff.py``) against the host executor's
Python ones (``numdiff.one_problem_jacobian`` through ``functions.numpy_evaluator``): the same
J byte for byte, the same points handed to the model in the same order, the same count of
calls, and the model's exception reaching the caller as it was raised. Skipped without a C
compiler; the C is compiled once (``native_load``'s disk cache, as the native loop's tests)."""

import re

import numpy as np
import pytest

from marquardt._backend.numpy import native_load
from marquardt._core import numdiff
from marquardt._core.functions import numpy_evaluator

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

# benchmarks/single_fit.py's exponential, as curve_fit's host function sees it
T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
INF = np.inf


def exponential(p):
    return np.asarray(p[0] * np.exp(-p[1] * T) + p[2], dtype=np.float64) - Y


def signed_zero(p):  # sees the sign of a zero parameter; 1/p[2] is ±inf at ±0
    with np.errstate(divide="ignore"):
        return exponential(p) + np.copysign(T, p[2]) + 1e-3 / p[2]


def non_finite(p):  # NaN and ±inf in some entries, NaN of both signs
    r = exponential(p)
    r[3] = np.nan
    r[7] = -np.abs(np.float64(np.nan))
    r[11] = np.inf if p[0] > 1.0 else -np.inf
    r[13] = p[1] * np.inf  # NaN where p[1] = 0
    return r


def nan_payloads(p):  # a NaN per point, sign and payload from its bits: which NaN wins shows
    r = exponential(p)
    tag = int(np.frombuffer(np.array(p, np.float64).tobytes(), np.uint64).sum() % 2**20)
    bits = np.uint64(0x7FF8000000000000 | tag | ((tag & 1) << 63))
    r[T > 2.5] = np.array([bits]).view(np.float64)[0]  # the vector body and the tail
    return r


def tiny_and_huge(p):  # magnitudes near 1e±300: differences overflow or vanish
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return p[0] * 1e-300 * np.exp(-T) + p[1] * 1e300 * T + p[2]


def float32_list(p):  # not a float64 array: converted as the evaluator converts
    r = exponential(p)
    if p[2] > 0.0:
        return np.round(r * 1e6).astype(np.int64)  # 8 bytes an element, not doubles
    return r.astype(np.float32) if p[0] > 1.0 else list(r)


def strided(p):  # a float64 vector not contiguous, or big-endian: read as NumPy reads it
    r = np.repeat(exponential(p), 2)[::2]
    return r if p[1] >= 1.0 else r.astype(">f8")


MODELS = {"exponential": exponential, "float32-list": float32_list, "strided": strided,
          "signed-zero": signed_zero,
          "non-finite": non_finite, "nan-payloads": nan_payloads, "1e300": tiny_and_huge}

CASES = {  # x, lb, ub, typical (None: SciPy's 1), rel_step (None: SciPy's)
    "p0": ([1.0, 1.0, 0.0], -INF, INF, None, None),
    "p0-typical": ([1.0, 1.0, 0.0], -INF, INF, [1.0, 1.0, 1.0], None),
    "optimum": ([2.4987, 1.3021, 0.50012], -INF, INF, [1.0, 1.0, 1.0], None),
    # the step turned back below an upper bound, and one-sided where x − h crosses lb
    "bounds-near": ([1.0, 1.3, 0.5], [1.0 - 1e-9, -INF, 0.5], [INF, 1.3 + 1e-9, 0.5 + 1e-12],
                    None, None),
    "on-bounds": ([1.0, 2.0, 0.5], [1.0, -INF, 0.5], [INF, 2.0, 0.5], None, None),
    # every '3-point' column one-sided: two NaNs meet in −3·r + 4·f⁺ in every column
    "on-lower-bounds": ([1.0, 1.3, 0.5], [1.0, 1.3, 0.5], INF, None, None),
    "zeros": ([-0.0, 0.0, -0.0], -INF, INF, None, None),
    "negative-zero-c": ([2.0, -1e-300, -0.0], [-INF, -INF, -1.0], [INF, INF, 1e-320],
                        [3.0, 1e-7, 1.0], (1e-6, 1e-8, 3e-5)),
    "1e300": ([1e300, -1e-300, 1e-300], -INF, INF, None, None),
    "1e300-typical": ([1e300, -1e-300, 1e-300], -INF, [INF, 0.0, INF], [1e300, 1e-300, 1e-300],
                      None),
    "non-finite-x": ([np.nan, -np.inf, 1.0], -INF, INF, None, None),
}


# native_model.ModelCall (the C API; "packed": without PyObject_CallOneArg, the point's copy
# passed in a tuple), ModelCallback (ctypes)
ROUTES = ["call", "packed", "callback"]


def _model(route):
    from marquardt._backend.numpy import native_model

    if route == "packed":
        def packed(*args, **kwargs):
            model = native_model.ModelCall(*args, **kwargs)
            model._python.call1 = None  # as where the interpreter does not export it
            return model
        return packed
    return native_model.ModelCall if route == "call" else native_model.ModelCallback


def _recording(fun, log):
    def recorded(p):
        log.append(np.array(p).tobytes())  # the point's bits, in call order
        return fun(p)
    return recorded


def _python_and_native(fun, method, case, row_major=False, route="call"):
    """J by the host executor's evaluator and by C, with the points each handed the model."""
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    x, lb, ub, typical, rel = case
    x = np.array([x], dtype=np.float64)
    lb, ub = (np.broadcast_to(np.asarray(v, np.float64), (1, 3)).copy() for v in (lb, ub))
    typ = None if typical is None else np.array([typical], dtype=np.float64)
    with np.errstate(all="ignore"):
        r = np.asarray(fun(x[0]), dtype=np.float64)[None]
    seen_py, seen_c = [], []
    ev = numpy_evaluator(_recording(fun, seen_py), method, 3, 50, lb, ub, rel, typical=typ)
    with np.errstate(all="ignore"):
        want = ev.jacobian(x, r)
    nd = NativeDifferences(_model(route)(_recording(fun, seen_c), 3, 50), method, lb, ub,
                           rel, typ, row_major=row_major)
    with np.errstate(all="ignore"):
        got = nd(x, r)
    return want, got, seen_py, seen_c, nd


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("method", ["2-point", "3-point"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
@pytest.mark.parametrize("model", list(MODELS), ids=list(MODELS))
def test_jacobian_bytes_points_and_calls_are_numdiffs(method, case, model, route):
    want, got, seen_py, seen_c, nd = _python_and_native(MODELS[model], method, CASES[case],
                                                        route=route)
    assert got.shape == want.shape == (1, 50, 3)
    assert got.strides == want.strides  # numdiff's memory order
    assert got.tobytes() == want.tobytes()  # -0.0, NaN's sign and payload included
    assert np.asarray(got).ravel(order="K").tobytes() == np.asarray(want).ravel(
        order="K").tobytes()
    assert seen_c == seen_py  # the same points, bit for bit, in the same order
    assert nd.nfev == len(seen_c) == numdiff.calls_per_jacobian(method) * 3


@pytest.mark.parametrize("method", ["2-point", "3-point"])
def test_row_major_layout_holds_the_same_values(method):
    want, got, *_ = _python_and_native(non_finite, method, CASES["bounds-near"],
                                       row_major=True)
    assert got.flags.c_contiguous
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


def test_the_cases_turn_steps_back_and_take_one_sided_differences():
    """The cases above do exercise both bound rules (a guard on the test's own inputs)."""
    _, _, seen_py, _, nd = _python_and_native(exponential, "3-point", CASES["on-bounds"])
    points = [np.frombuffer(b) for b in seen_py]
    x = np.array([1.0, 2.0, 0.5])
    assert nd.h[0] > 0 and nd.h[1] < 0 and nd.h[2] < 0  # b and c turned back from ub
    assert points[3 + 0][0] == x[0] + 2.0 * nd.h[0]  # one-sided for a (x − h < lb)
    assert points[3 + 1][1] == x[1] - nd.h[1]  # central for b


class _Stop(BaseException):  # not an Exception: KeyboardInterrupt's kind
    pass


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("raised", [ZeroDivisionError("model broke"), _Stop("interrupted")],
                         ids=["exception", "base-exception"])
@pytest.mark.parametrize("method", ["2-point", "3-point"])
def test_the_models_exception_propagates_unchanged_and_c_stops(raised, method, route):
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    calls, fail = [], [True]

    def fails_at_the_second_call(p):
        calls.append(1)
        if fail[0] and len(calls) == 2:
            raise raised
        return exponential(p)

    nd = NativeDifferences(_model(route)(fails_at_the_second_call, 3, 50), method, -INF, INF)
    x = np.array([[1.0, 1.0, 0.0]])
    with pytest.raises(type(raised)) as info:
        nd(x, exponential(x[0])[None])
    assert info.value is raised
    assert len(calls) == 2 and nd.nfev == 1  # stopped at the failure
    assert nd.model.error is None  # nothing kept for a later call
    fail[0] = False  # the same objects again: a whole J
    assert nd(x, exponential(x[0])[None]).shape == (1, 50, 3)
    assert nd.nfev == 1 + 3 * numdiff.calls_per_jacobian(method)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("out", [np.zeros(49), np.zeros((1, 50)), 0.0, [0.0] * 49],
                         ids=["short", "2-d", "scalar", "list"])
def test_a_wrong_shape_raises_the_evaluators_message(route, out):
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    nd = NativeDifferences(_model(route)(lambda p: out, 3, 50, who="f"), "2-point", -INF, INF)
    shape = re.escape(str(np.atleast_1d(np.asarray(out)).shape))
    with pytest.raises(ValueError, match=r"`f` must return the same shape \(m,\) = \(50,\) "
                                         rf"at every call. Received: shape {shape}"):
        nd(np.zeros((1, 3)), np.zeros((1, 50)))


def test_bounds_and_steps_in_any_nesting_and_their_size_checked():
    from marquardt._backend.numpy.native_model import ModelCall
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    x = np.array([[1.0, 1.0, 0.0]])
    r = exponential(x[0])[None]
    forms = [dict(lb=[[-1.0, -1.0, -1.0]], ub=INF, rel_step=[1e-7], typical=[[2.0] * 3]),
             dict(lb=np.full((1, 3), -1.0), ub=[INF] * 3, rel_step=1e-7, typical=2.0)]
    got = [NativeDifferences(ModelCall(exponential, 3, 50), "3-point", **f)(x, r)
           for f in forms]
    assert got[0].tobytes() == got[1].tobytes()
    for bad in ([1.0, 2.0], np.ones((2, 3)), "x"):  # (numdiff._values reads (3, 1) as 3)
        with pytest.raises(ValueError, match=r"`ub` must hold 1 or n=3 float values"):
            NativeDifferences(ModelCall(exponential, 3, 50), "2-point", -INF, bad)


def test_an_unknown_method_is_refused():
    from marquardt._backend.numpy.native_model import ModelCallback
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    with pytest.raises(ValueError, match=r"`method` must be '2-point', '3-point', 'exact' or "
                                         r"'callable'.*"
                                         r"Received: method='cs'"):
        NativeDifferences(ModelCallback(exponential, 3, 50), "cs", -INF, INF)


# Whole fits: the evaluator's J formed in C (``native_numdiff.enabled``) ends every fit with the
# same bits, on the Python trace and on cstep's native loop.

def _exp3(t, a, b, c):
    return a * np.exp(-b * t) + c


FITS = {
    "2-point": dict(jac="2-point"),
    "3-point": dict(jac="3-point"),
    "bounds": dict(jac="2-point", bounds=([0.0, 0.0, -1.0], [2.2, 5.0, 1.0])),
    "bounds-3-point": dict(jac="3-point", bounds=([1.0, 0.0, 0.0], [2.2, 5.0, 1.0])),
    "soft_l1": dict(jac="2-point", loss="soft_l1"),
    "sigma": dict(jac="2-point", sigma=np.linspace(0.5, 1.5, 50)),
}


def _fit(options):
    import marquardt

    popt, pcov, info, mesg, ier = marquardt.curve_fit(_exp3, T, Y, p0=[1.0, 1.0, 0.0],
                                                      full_output=True, **options)
    res = info["result"]
    return [popt, pcov, np.asarray(res["jac"]), np.asarray(res["fun"]), res["nfev"],
            res["status"], np.asarray(res["history"]) if "history" in res else None, mesg, ier]


def _same(a, b):
    for va, vb in zip(a, b):
        if isinstance(va, np.ndarray):
            assert np.ascontiguousarray(va).tobytes() == np.ascontiguousarray(vb).tobytes()
        else:
            assert va == vb


@pytest.mark.parametrize("name", list(FITS))
def test_a_whole_fit_with_differences_in_c_ends_with_the_same_bits(name, monkeypatch):
    from marquardt._backend.numpy import native_numdiff
    from marquardt._core import functions

    made = []

    def counted(*args):
        jacobian = native_numdiff.evaluator_jacobian(*args)
        made.append(jacobian)
        return jacobian

    expected = _fit(FITS[name])
    monkeypatch.setattr(functions, "_native_differences", counted)
    got = _fit(FITS[name])
    assert len(made) == 1 and made[0] is not None  # the C differences served
    _same(expected, got)


@pytest.mark.parametrize("name", ["bounds", "3-point"])
def test_a_fit_on_the_native_loop_with_differences_in_c_ends_with_the_same_bits(name,
                                                                              monkeypatch):
    """The loop in C (``native_cloop``) forms J and the residuals in C: its Python callback
    is never asked for them (``what`` 0 or 1)."""
    from marquardt._backend.numpy import native_loop, native_numdiff
    from test_native_loop import spy_callbacks

    asked = spy_callbacks(monkeypatch)
    expected = _fit(FITS[name])
    with native_loop.enabled(), native_numdiff.enabled():
        _fit(FITS[name])  # on the trace, recording; the steps compiled
        asked.clear()
        got = _fit(FITS[name])
    _same(expected, got)
    assert asked and set(asked) <= {4}  # history records only


@pytest.mark.parametrize("row_major", [False, True], ids=["columns", "rows"])
def test_at_addresses_and_lists_give_the_same_j(row_major):
    from marquardt._backend.numpy.native_model import ModelCallback
    from marquardt._backend.numpy.native_numdiff import NativeDifferences

    nd = NativeDifferences(ModelCallback(exponential, 3, 50), "3-point", [0.5, -INF, -INF],
                           INF, row_major=row_major)
    x = np.array([[0.5, 1.0, -0.0]])
    r = exponential(x[0])[None]
    want = nd(x, r)
    assert nd([[0.5, 1.0, -0.0]], r.tolist()).tobytes() == want.tobytes()  # not arrays
    out = np.full(150, np.nan)
    nd.at(x.ctypes.data, r.ctypes.data, out.ctypes.data)  # a loop's buffers, no copies
    layout = (1, 50, 3) if row_major else (3, 1, 50)
    assert out.reshape(layout).tobytes() == (want if row_major else
                                             want.transpose(2, 0, 1)).tobytes()
    with pytest.raises(ValueError, match=r"expected x of 3 and r of 50 values. Received: "
                                         r"shapes \(1, 2\) and \(1, 50\)"):
        nd(x[:, :2], r)


def test_without_a_compiler_the_evaluator_keeps_pythons_differences(monkeypatch):
    from marquardt._backend.numpy import native_load, native_numdiff

    def unavailable():
        raise native_load.NativeUnavailable("no C compiler found")

    monkeypatch.setattr(native_numdiff, "jacobian_function", unavailable)
    lb, ub = np.full((1, 3), -INF), np.full((1, 3), INF)
    assert native_numdiff.evaluator_jacobian(exponential, "2-point", 3, 50, lb, ub, None, None,
                                             "f", None) is None
    expected = _fit(FITS["2-point"])
    with native_numdiff.enabled():
        _same(expected, _fit(FITS["2-point"]))


@pytest.mark.parametrize("at_call", [3, 12], ids=["in-a-jacobian", "at-a-candidate"])
def test_on_the_native_loop_the_models_exception_reaches_the_caller(at_call):
    import marquardt
    from marquardt._backend.numpy import native_loop, native_numdiff

    raised = ArithmeticError("model broke")
    calls = []

    def breaks(t, a, b, c):
        calls.append(1)
        if armed and len(calls) == at_call:
            raise raised
        return _exp3(t, a, b, c)

    armed = False
    with native_loop.enabled(), native_numdiff.enabled():
        for _ in range(2):  # on the trace, recording; then native
            marquardt.curve_fit(breaks, T, Y, p0=[1.0, 1.0, 0.0], jac="2-point")
        calls.clear()
        armed = True
        with pytest.raises(ArithmeticError) as info:
            marquardt.curve_fit(breaks, T, Y, p0=[1.0, 1.0, 0.0], jac="2-point")
    assert info.value is raised and len(calls) == at_call



@pytest.mark.parametrize("route", ["ModelCall", "ModelCallback"])
def test_the_model_keeps_the_points_it_was_given(route):
    """A function that keeps its x (a log of the points tried) keeps each point, not the
    buffer that C overwrites before the next call; on a whole fit too."""
    import ctypes

    import marquardt
    from marquardt._backend.numpy import native_loop, native_model, native_numdiff
    kept = []

    def fun(x):
        kept.append(x)
        return np.array([x[0] - 1.0, x[0] * x[1]])

    f = getattr(native_model, route)(fun, 2, 2)
    evaluate = native_numdiff.python_function("mq_evaluate", 4)
    nfev = ctypes.c_int(0)
    for point in ([3.0, 2.0], [5.0, 7.0]):
        x, r = np.array(point), np.zeros(2)
        evaluate(ctypes.addressof(f.record), x.ctypes.data, r.ctypes.data, ctypes.addressof(nfev))
    assert [k.tolist() for k in kept] == [[3.0, 2.0], [5.0, 7.0]]
    kept.clear()
    with native_numdiff.enabled(), native_loop.enabled():
        for _ in range(2):  # the second fit on the loop in C
            marquardt.least_squares(fun, [3.0, 2.0], jac="2-point")
    assert len({k.tobytes() for k in kept}) > 3
    assert not any(np.shares_memory(a, b) for i, a in enumerate(kept) for b in kept[:i])
