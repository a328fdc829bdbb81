"""A ``curve_fit`` model compiled once its fits have paid for it (``compiled_curve``): the
native loop calls the compiled residuals instead of the model, each fit's start checks them
against the model's own call, and the results agree with the model's fits to rounding."""

from __future__ import annotations

import numpy as np
import pytest

import marquardt
from marquardt._backend.numpy import compiled_curve, native_load, native_loop

pytestmark = pytest.mark.skipif(native_load.compiler() is None, reason="no C compiler")

T = np.linspace(0.0, 4.0, 50)
Y = 2.5 * np.exp(-1.3 * T) + 0.5 + 0.01 * np.random.default_rng(0).standard_normal(50)
SIGMA = 0.01 + 0.02 * np.abs(np.sin(T))


class Counted:
    """``a·exp(−b·t) + c`` with ``exp`` NumPy's (or TensorFlow's), counting its calls in a
    list it appends to (a model that stores into its attributes is not captured:
    ``marquardt._stateful.keeps_state``)."""

    def __init__(self, exp=np.exp):
        self.log, self.exp = [], exp

    @property
    def calls(self) -> int:
        return len(self.log)

    def __call__(self, t, a, b, c):
        self.log.append(None)
        return a * self.exp(-b * t) + c


@pytest.fixture
def due(monkeypatch, tmp_path):
    """Every model compiled at its second fit (an empty disk cache: compiled, not loaded)."""
    monkeypatch.setenv("MARQUARDT_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native_load, "_LOADED", {})
    for name in ("LOAD_EVALUATIONS", "COMPILE_EVALUATIONS", "EXACT_LOAD_EVALUATIONS",
                 "EXACT_COMPILE_EVALUATIONS"):
        monkeypatch.setattr(compiled_curve, name, 1)
    with native_loop.enabled():
        yield


def _fit(f, **kw):
    popt, pcov, info, _, ier = marquardt.curve_fit(f, T, Y, p0=[1.0, 1.0, 0.0],
                                                   full_output=True, **kw)
    return popt, pcov, info["nfev"], ier, float(np.sum(info["fvec"] ** 2))


@pytest.mark.parametrize("jac", ["2-point", "3-point", None])
@pytest.mark.parametrize("sigma", [None, SIGMA])
def test_compiled_fits_agree_with_the_models_and_call_it_once(due, jac, sigma):
    reference = Counted()
    expected = _fit(reference, jac=jac, sigma=sigma)  # its first fit: the model called
    assert reference.calls == expected[2] and compiled_curve.STATS["builds"] == 0
    model = Counted()
    _fit(model, jac=jac, sigma=sigma)  # pays the rent
    _fit(model, jac=jac, sigma=sigma)  # captures (the symbolic call, its check) and compiles
    model.log.clear()
    popt, pcov, nfev, ier, chisq = _fit(model, jac=jac, sigma=sigma)
    assert compiled_curve.STATS["builds"] == 1 and compiled_curve.STATS["fits"] == 2
    assert model.calls == 1  # the fit's start: the check's reference
    # the C library's exp may differ from NumPy's in the last bit, and a differenced J
    # carries that at ~1e-8 relative: the same minimum to the differences' accuracy, and
    # the stopping test (ftol 1e-15, rounding level) may fall an iteration apart
    np.testing.assert_allclose(popt, expected[0], rtol=1e-8)
    np.testing.assert_allclose(pcov, expected[1], rtol=1e-5)
    np.testing.assert_allclose(chisq, expected[4], rtol=1e-12)
    assert ier in (1, 2, 3, 4) and expected[3] in (1, 2, 3, 4)
    assert abs(nfev - expected[2]) <= 2 * (1 + 3 * (2 if jac == "3-point" else 1))


def test_a_changed_closure_is_caught_at_the_start_and_the_model_called(due):
    rate = [1.3]

    def model(t, a, c):
        return a * np.exp(-rate[0] * t) + c

    fit = lambda y: marquardt.curve_fit(model, T, y, p0=[1.0, 0.0])  # noqa: E731
    fit(Y)
    fit(Y)
    assert compiled_curve.STATS["fits"] == 1
    rate[0] = 0.7  # the compiled form holds 1.3
    y = 2.0 * np.exp(-0.7 * T) + 0.25
    popt, _ = fit(y)
    assert compiled_curve.STATS["dropped"] == 1 and compiled_curve.STATS["fits"] == 1
    np.testing.assert_allclose(popt, [2.0, 0.25], rtol=1e-12)


def test_another_xdata_of_the_same_shape_is_read_from_its_own_data(due):
    model = Counted()
    t2 = T[::-1] * 0.5
    y2 = 1.5 * np.exp(-0.8 * t2) + 0.1
    for _ in range(2):
        marquardt.curve_fit(model, T, Y, p0=[1.0, 1.0, 0.0])
    popt, _ = marquardt.curve_fit(model, t2, y2, p0=[1.0, 1.0, 0.0])
    assert compiled_curve.STATS["fits"] == 2 and compiled_curve.STATS["dropped"] == 0
    np.testing.assert_allclose(popt, [1.5, 0.8, 0.1], rtol=1e-9)


def test_a_model_that_is_not_one_expression_is_called(due):
    import math

    calls = []

    def model(t, a, b, c):  # math.exp of a parameter: not a NumPy operation on a symbol
        calls.append(1)
        return a * np.exp(-b * t) * math.exp(0.0 * c) + c

    for _ in range(3):
        calls.clear()
        popt, _, info, _, _ = marquardt.curve_fit(model, T, Y, p0=[1.0, 1.0, 0.0],
                                                  full_output=True)
    assert len(calls) == info["nfev"] > 1
    assert compiled_curve.STATS["builds"] == 0


def test_the_rent_loads_from_disk_first_and_compiles_later(monkeypatch, tmp_path):
    """``LOAD_EVALUATIONS`` only loads what is on disk; the compilation waits for
    ``COMPILE_EVALUATIONS``."""
    monkeypatch.setenv("MARQUARDT_NATIVE_CACHE", str(tmp_path))
    monkeypatch.setattr(native_load, "_LOADED", {})
    model = Counted()
    with native_loop.enabled():
        nfev = _fit(model)[2]
        monkeypatch.setattr(compiled_curve, "LOAD_EVALUATIONS", nfev)
        monkeypatch.setattr(compiled_curve, "COMPILE_EVALUATIONS", 3 * nfev)
        built = []
        for _ in range(4):
            _fit(model)
            built.append(compiled_curve.STATS["builds"])
    assert built == [0, 0, 1, 1]  # the 2nd and 3rd fits find nothing on disk
    assert compiled_curve.STATS["fits"] == 2


def test_off_with_the_native_executor(due, monkeypatch):
    monkeypatch.setenv("MARQUARDT_NATIVE", "0")
    model = Counted()
    for _ in range(3):
        _fit(model)
    assert compiled_curve.STATS["builds"] == 0


@pytest.mark.parametrize("sigma", [None, SIGMA])
@pytest.mark.parametrize("bounds", [None, ([0.0, 0.0, -1.0], [10.0, 10.0, 1.0])])
def test_a_tensorflow_model_runs_on_its_compiled_form_with_exact_partials(due, sigma,
                                                                          bounds):
    """A TensorFlow model's fits, once compiled: no call of the model (its graph holds what
    it read from Python, as a ``tf.function``'s), exact partials (no evaluation counted for
    J), the autodiff fit's minimum to rounding."""
    tf = pytest.importorskip("tensorflow")
    kw = {"sigma": sigma} if bounds is None else {"sigma": sigma, "bounds": bounds}
    reference = Counted(tf.exp)
    expected = _fit(reference, **kw)  # autodiff on the host executor
    model = Counted(tf.exp)
    _fit(model, **kw)  # pays the rent
    _fit(model, **kw)  # captures its graph and compiles
    assert compiled_curve.STATS["builds"] == 1
    for _ in range(2):  # on the trace, then on the native loop
        model.log.clear()
        popt, pcov, nfev, ier, chisq = _fit(model, **kw)
        assert model.calls == 0 and ier in (1, 2, 3, 4)
        np.testing.assert_allclose(popt, expected[0], rtol=1e-10)
        np.testing.assert_allclose(pcov, expected[1], rtol=1e-8)
        np.testing.assert_allclose(chisq, expected[4], rtol=1e-13)
        assert abs(nfev - expected[2]) <= 2
    assert compiled_curve.STATS["fits"] >= 1  # the native loop's fit took the C form


def test_a_tensorflow_model_the_capture_cannot_follow_keeps_autodiff(due):
    tf = pytest.importorskip("tensorflow")

    def model(t, a, b, c):  # a reduction over the points: not one expression per point
        return a * tf.exp(-b * t) + c + 0.0 * tf.reduce_sum(t)

    for _ in range(3):
        popt, _ = marquardt.curve_fit(model, T, Y, p0=[1.0, 1.0, 0.0])
    assert compiled_curve.STATS["builds"] == 0
    np.testing.assert_allclose(popt, [2.5, 1.3, 0.5], rtol=0.02)


def test_a_model_that_keeps_what_it_is_given_is_called(due):
    """SciPy's gh-13670 pattern: a model that remembers its last parameters is never called
    on symbolic values (they would stay in its memo and meet its next real call)."""
    last = {"p": None}

    def model(t, a, b, c):
        assert last["p"] is None or not np.array_equal(last["p"], [a, b, c])
        last["p"] = np.array([a, b, c])
        return a * np.exp(-b * t) + c

    for _ in range(3):
        popt, _ = marquardt.curve_fit(model, T, Y, p0=[1.0, 1.0, 0.0])
        last["p"] = None
    assert compiled_curve.STATS["builds"] == 0
    np.testing.assert_allclose(popt, [2.5, 1.3, 0.5], rtol=0.02)
