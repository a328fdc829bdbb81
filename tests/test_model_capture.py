"""Capturing NumPy curve models as formula trees (``_model_capture``) and compiling them with
their exact Jacobians to C (``_backend/numpy/native_formula``)."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt._backend.numpy import native_load
from marquardt._formula import parse_formula
from marquardt._model_capture import capture_model

needs_cc = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

_G = np.arange(5.0)
XY = np.stack([a.ravel() for a in np.meshgrid(_G, _G)])  # a 5 x 5 image: (2, 25)
T = np.linspace(0.0, 3.0, 11)
P_GAUSS = np.array([10.0, 2.1, 1.9, 1.1, 0.7])


def gauss2d(xdata, a, x0, y0, s, b):
    x, y = xdata
    return a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * s**2)) + b


def gauss2d_jac(xdata, a, x0, y0, s, b):
    x, y = xdata
    dx, dy, s2 = x - x0, y - y0, s * s
    e = np.exp(-(dx * dx + dy * dy) / (2 * s2))
    return np.stack([e, a * e * dx / s2, a * e * dy / s2, a * e * (dx * dx + dy * dy) / (s2 * s),
                     np.ones_like(e)], axis=1)


def exponential(t, a, b, c):
    return a * np.exp(-b * t) + c


def every_function(t, a, b, c):
    """One use of each emitted operation: the C translation of each is exercised."""
    u = np.sin(a * t) + np.cos(b * t) + np.tan(0.3 * t + c) + np.arctan2(t - 1.0, b)
    v = np.arcsin(0.1 * t / a) + np.arccos(0.2 * t / a) + np.arctan(b * t) + np.log10(a + t)
    w = np.sinh(0.2 * c * t) + np.cosh(0.1 * b * t) + np.tanh(c - t) + abs(t - b) + np.log(b + t)
    return u + v * w + np.sqrt(a + t) ** 1.5 + (a + t) ** b + 2.0 ** (c * t) - np.square(b - t)


def differences(f, x, p, h=1e-4):
    """4th-order central differences of f in each parameter, scaled steps."""
    out = []
    for j in range(len(p)):
        step = h * max(1.0, abs(p[j]))
        def at(k):
            q = np.array(p, dtype=float)
            q[j] += k * step
            return f(x, *q)
        out.append((8 * (at(1) - at(-1)) - (at(2) - at(-2))) / (12 * step))
    return np.stack(out, axis=1)


def test_gaussian_captured_with_exact_partials():
    model = capture_model(gauss2d, XY, P_GAUSS)
    assert model is not None and model.variables == ("x0", "x1") and len(model.parameters) == 5
    np.testing.assert_array_equal(model.values(XY, P_GAUSS), gauss2d(XY, *P_GAUSS))
    np.testing.assert_allclose(model.jacobian(XY, P_GAUSS), gauss2d_jac(XY, *P_GAUSS),
                               rtol=1e-13, atol=1e-15)


def test_exponential_and_formula_captured():
    model = capture_model(exponential, T, [[2.0, 1.0, 0.5], [1.0, 3.0, 0.0]])
    p = [2.0, 1.3, 0.5]
    e = np.exp(-1.3 * T)
    np.testing.assert_array_equal(model.jacobian(T, p), np.stack([e, -2.0 * T * e, 1.0 + 0 * T], 1))
    formula = parse_formula("a*exp(-b*t) + c", variables=["t"])
    taken = capture_model(formula, T, p)
    assert taken.parameters == ("a", "b", "c") and taken.variables == ("t",)
    np.testing.assert_array_equal(taken.values(T, p), exponential(T, *p))
    reordered = capture_model(formula, T, p, parameter_names=["c", "a", "b"])
    assert reordered.parameters == ("c", "a", "b")
    assert capture_model(formula, T, p, parameter_names=["a", "b"]) is None


def test_indexing_rows_and_numpy_constants_captured():
    def f(xy, a, b):
        return np.float64(2.0) * a * xy[0] + np.array(3.0) * b * xy[1, :] + np.pi

    model = capture_model(f, XY, [1.0, 2.0])
    np.testing.assert_array_equal(model.values(XY, [1.5, -2.0]), f(XY, 1.5, -2.0))


def _branch(t, a, b):
    if a > 0:
        return a * t
    return b * t


@pytest.mark.parametrize("f", [
    _branch,                                          # a Python branch on a parameter
    lambda t, a, b: a * t if a == 1 else b * t,       # == on a value
    lambda t, a, b: np.where(t > a, t, b),            # np.where
    lambda t, a, b: np.sum(a * t) + b * t,            # a reduction
    lambda t, a, b: np.expm1(a * t) + b,              # a ufunc outside the whitelist
    lambda t, a, b: np.exp(a * t, out=np.empty(11)) + b,  # a ufunc keyword
    lambda t, a, b: a + b,                            # no point dependence: shape ()
    lambda t, a, b: np.stack([a * t, b * t]),         # a result of the wrong shape
    lambda t, a, b: np.asarray(a * t + b),            # a conversion to an array
    lambda t, a, b: a * t[0] + b,                     # a point indexed
    lambda t, a, b: float(a) * t + b,                 # a value made a number
    lambda t, a, b: a * t + b * np.ones(11),          # an array constant (closure data)
    lambda t, a, b: (a * t).clip(0) + b,              # an array method
    lambda t, a, b: 1 / 0,                            # an exception
], ids=["branch", "eq", "where", "sum", "expm1", "out", "scalar", "stack", "asarray", "index",
        "float", "array-constant", "method", "raises"])
def test_refused(f):
    assert capture_model(f, T, [1.0, 2.0]) is None


def test_refused_when_values_differ_from_f():
    calls = []

    def stateful(t, a):  # symbolic on the first call, then another model
        calls.append(1)
        return a * t if len(calls) == 1 else a * t + 1e-9

    assert capture_model(stateful, T, [1.0]) is None
    assert capture_model(lambda xy, a: a * xy[2], XY, [1.0]) is None  # no such row


@needs_cc
def test_compiled_gaussian_matches_numpy_and_the_analytic_jacobian():
    from marquardt._backend.numpy.native_formula import load_cmodel

    model = capture_model(gauss2d, XY, P_GAUSS)
    compiled = load_cmodel(model)
    y = gauss2d(XY, *P_GAUSS) + np.random.default_rng(0).standard_normal(25)
    r, J = compiled(P_GAUSS, XY, y)
    np.testing.assert_allclose(r, gauss2d(XY, *P_GAUSS) - y, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(J, gauss2d_jac(XY, *P_GAUSS), rtol=1e-12, atol=1e-15)
    w = np.linspace(0.5, 2.0, 25)
    rw, Jw = compiled(P_GAUSS, XY, y, w)
    np.testing.assert_allclose(rw, r * w, rtol=1e-15)
    np.testing.assert_allclose(Jw, J * w[:, None], rtol=1e-15)
    r0, J0 = compiled(P_GAUSS, XY, y, jacobian=False)
    assert J0 is None and np.array_equal(r0, r)
    rw0, _ = compiled(P_GAUSS, XY, y, w, jacobian=False)
    assert np.array_equal(rw0, rw)


@needs_cc
def test_compiled_functions_match_numpy_and_differences():
    from marquardt._backend.numpy.native_formula import load_cmodel

    p = np.array([1.7, 0.8, 0.4])
    model = capture_model(every_function, T, p)
    assert model is not None
    compiled = load_cmodel(model)
    y = np.cos(T)
    r, J = compiled(p, T, y, np.full(11, 2.0))
    np.testing.assert_allclose(r, 2.0 * (every_function(T, *p) - y), rtol=1e-12)
    np.testing.assert_allclose(J, 2.0 * model.jacobian(T, p), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(J, 2.0 * differences(every_function, T, p), rtol=1e-8, atol=1e-9)


@needs_cc
def test_compiled_formula_with_constants():
    from marquardt._backend.numpy.native_formula import cmodel_source, load_cmodel

    formula = parse_formula("a*sin(2*pi*x/b) + c*x - e", variables=["x"])
    p = [1.5, 2.5, -0.25]
    model = capture_model(formula, T, p)
    source = cmodel_source(model)
    assert "0x1.921fb54442d18p+1" in source  # pi, exactly
    r, J = load_cmodel(model)(p, T, np.zeros(11))
    f = formula.as_numpy_model(["x"], ["a", "b", "c"])
    np.testing.assert_allclose(r, f(T, *p), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(J, differences(f, T, p), rtol=1e-9, atol=1e-10)
    assert np.array_equal(J[:, 2], T)  # a partial that is a variable: w * x exactly


@needs_cc
def test_two_models_in_one_translation_unit():
    """The driver's view: several sources (each with the guarded record) side by side, each
    function under its own name; a partial that depends on parameters only is hoisted."""
    import ctypes

    from marquardt._backend.numpy.native_formula import cmodel_source

    gauss = capture_model(gauss2d, XY, P_GAUSS)
    affine = capture_model(lambda t, a, b, c: a * t + b * c, T, [1.0, 2.0, 3.0])
    source = cmodel_source(gauss, "gauss") + cmodel_source(affine, "affine") + r"""
int both(const double *pg, const double *xy, const double *pa, const double *t,
         const double *y, double *rg, double *Jg, double *ra, double *Ja) {
    const mq_data dg = {xy, 25, y, 0, 25}, da = {t, 11, y, 0, 11};
    return gauss(pg, &dg, rg, Jg) + affine(pa, &da, ra, Ja);
}
"""
    assert source.count("typedef struct") == 2 and "const double t" in source
    both = native_load.load(source).both
    both.argtypes = [ctypes.c_void_p] * 9
    y = np.zeros(25)
    p_affine = np.array([1.5, 2.0, -3.0])
    rg, Jg, ra, Ja = np.empty(25), np.empty((25, 5)), np.empty(11), np.empty((11, 3))
    arrays = (P_GAUSS, XY, p_affine, T, y, rg, Jg, ra, Ja)
    assert both(*(a.ctypes.data for a in arrays)) == 0
    np.testing.assert_allclose(rg, gauss2d(XY, *P_GAUSS), rtol=1e-13)
    np.testing.assert_allclose(Jg, gauss2d_jac(XY, *P_GAUSS), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(ra, 1.5 * T + 2.0 * -3.0)
    np.testing.assert_array_equal(Ja, np.stack([T, np.full(11, -3.0), np.full(11, 2.0)], 1))


_CALLS = 0


def test_a_model_that_stores_outside_its_call_is_not_called_symbolically():
    """``marquardt._stateful.keeps_state``: a global, a nonlocal, an attribute or an item
    written by the model's own code (or a function defined in it) refuses the capture before
    any symbolic call; a model whose inner function only reads is captured."""
    t = np.linspace(0.0, 1.0, 5)
    memo: dict = {}

    def item(x, a, b):
        memo["p"] = a
        return a * x + b

    def global_count(x, a, b):
        global _CALLS
        _CALLS += 1
        return a * x + b

    def outer():
        k = 0

        def model(x, a, b):
            nonlocal k
            k += 1
            return a * x + b
        return model

    class Attribute:
        def __call__(self, x, a, b):
            self.last = a
            return a * x + b

    def inner_store(x, a, b):
        def helper(u):
            memo["u"] = u
            return u
        return helper(a) * x + b

    def reads_only(x, a, b):
        scale = lambda u: a * u  # noqa: E731 - a cell of its own: not outside state
        return scale(x) + b

    from marquardt._model_capture import _Sym

    for model in (item, global_count, outer(), Attribute(), inner_store):
        assert capture_model(model, t, [1.0, 2.0]) is None
    # never called with symbols (with numbers, where TensorFlow is imported: is it a
    # TensorFlow model?)
    assert not any(isinstance(v, _Sym) for v in memo.values())
    assert capture_model(reads_only, t, [1.0, 2.0]) is not None
