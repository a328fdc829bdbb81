"""SciPy behaviour of ``least_squares`` and ``curve_fit`` that users rely on, with exact
expectations (SciPy's own tests run in ``tests/scipy_suite``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse
from scipy.optimize import Bounds, OptimizeWarning

import marquardt

T = np.linspace(0.0, 4.0, 30)
Y = 2.5 * np.exp(-1.3 * T) + 0.5


def residuals(p):
    return p[0] * np.exp(-p[1] * T) + p[2] - Y


def jacobian(p):
    e = np.exp(-p[1] * T)
    return np.stack([e, -p[0] * T * e, np.ones_like(T)], axis=1)


class Counted:
    """``residuals`` counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, p):
        self.calls += 1
        return residuals(p)


@pytest.mark.parametrize("jac, per_jacobian", [("2-point", 3), ("3-point", 6), ("cs", 3),
                                               (jacobian, 0)])
def test_nfev_counts_every_call_of_fun(jac, per_jacobian):
    fun = Counted()
    res = marquardt.least_squares(fun, [1.0, 1.0, 0.0], jac=jac)
    assert res.success
    assert res.nfev == fun.calls
    # one call per attempt plus the Jacobian's calls at x0 and at each accepted point
    attempts = sum(h.attempts for h in res.history)
    assert res.nfev == 1 + attempts + per_jacobian * res.njev


@pytest.mark.parametrize("max_nfev", [1, 2, 4, 6])
@pytest.mark.parametrize("jac, per_jacobian", [("2-point", 3), (jacobian, 0)])
def test_max_nfev_is_a_hard_limit(max_nfev, jac, per_jacobian):
    """No call beyond max_nfev, except the Jacobian at x0 (the result needs it; MINPACK
    evaluates it too): with no room for a step, x0 is returned, as SciPy does. Every limit
    is below the 7 calls in which the default (trust-region) solves this problem with its
    Jacobian (Nielsen's rule took more, so the last limit was 7 before issue #14)."""
    fun = Counted()
    res = marquardt.least_squares(fun, [1.0, 1.0, 0.0], jac=jac, max_nfev=max_nfev)
    assert fun.calls == res.nfev <= max(max_nfev, 1 + per_jacobian)
    assert res.status == 0 and not res.success
    if max_nfev < 2 + 2 * per_jacobian:  # no room for a step and the Jacobian after it
        assert np.array_equal(res.x, [1.0, 1.0, 0.0]) and res.nit == 0


def test_complex_step_is_exact_to_rounding():
    res = marquardt.least_squares(residuals, [1.0, 1.0, 0.0], jac="cs", max_nfev=1)
    np.testing.assert_allclose(res.jac, jacobian(np.array([1.0, 1.0, 0.0])), rtol=1e-14,
                               atol=1e-15)


def test_float32_residuals_get_float32_steps():
    """SciPy gh-12991: float32 residuals differenced with float64 steps (1.5e-8) give a zero
    Jacobian; the step follows the residuals' precision."""
    x = np.linspace(0, 1, 100, dtype=np.float32)
    y = (0.3 + 2.0 * x).astype(np.float32)
    res = marquardt.least_squares(lambda p: (p[0] + p[1] * x).astype(np.float32) - y,
                                  [-1.0, -1.0])
    np.testing.assert_allclose(res.x, [0.3, 2.0], atol=1e-4)
    assert res.nfev > 3


def test_bounds_object_equals_pair():
    a = marquardt.least_squares(residuals, [1.0, 1.0, 0.7], bounds=([0, 0, 0.6], 10))
    b = marquardt.least_squares(residuals, [1.0, 1.0, 0.7], bounds=Bounds([0, 0, 0.6], 10))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.x[2] == 0.6 and a.active_mask[2] == -1


def test_callable_loss_equals_the_named_one():
    def cauchy(z):
        return np.vstack([np.log1p(z), 1 / (1 + z), -1 / (1 + z) ** 2])

    y = Y.copy()
    y[5] += 2.0

    def fun(p):
        return p[0] * np.exp(-p[1] * T) + p[2] - y

    named = marquardt.least_squares(fun, [1.0, 1.0, 0.0], loss="cauchy", f_scale=0.1)
    own = marquardt.least_squares(fun, [1.0, 1.0, 0.0], loss=cauchy, f_scale=0.1)
    np.testing.assert_allclose(own.x, named.x, rtol=1e-12)
    assert own.nfev == named.nfev


def test_workers_give_the_serial_result():
    serial = marquardt.least_squares(residuals, [1.0, 1.0, 0.0])
    mapped = marquardt.least_squares(residuals, [1.0, 1.0, 0.0], workers=map)
    np.testing.assert_array_equal(mapped.x, serial.x)
    assert mapped.nfev == serial.nfev


def test_jacobian_shapes_read_as_scipy_reads_them():
    res = marquardt.least_squares(lambda x: x**2 - 4.0, [1.0], jac=lambda x: 2 * x)  # 1-D J
    np.testing.assert_allclose(res.x, [2.0])
    with pytest.raises(ValueError, match=r"`jac` must return an array of shape \(m, n\) = "
                                         r"\(30, 3\)\. Received: shape \(3, 30\)"):
        marquardt.least_squares(residuals, [1.0, 1.0, 0.0], jac=lambda p: jacobian(p).T)
    with pytest.raises(ValueError, match=r"`jac` must return a dense array: .* Received: "
                                         r"csr_matrix"):
        marquardt.least_squares(residuals, [1.0, 1.0, 0.0],
                                jac=lambda p: scipy.sparse.csr_matrix(jacobian(p)))


def test_complex_x0_is_a_value_error():
    with pytest.raises(ValueError, match=r"`x0` must be real\. Received: x0=\[1j, 1\.0, 0\.0\]"):
        marquardt.least_squares(residuals, [1j, 1.0, 0.0])


def test_tolerance_below_eps_warns_and_all_below_raise():
    with pytest.warns(UserWarning, match=r"Setting `ftol` below the machine epsilon"):
        marquardt.least_squares(residuals, [1.0, 1.0, 0.0], ftol=1e-17)
    with pytest.raises(ValueError, match=r"At least one of the tolerances must be higher"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        marquardt.least_squares(residuals, [1.0, 1.0, 0.0], ftol=None, xtol=0.0, gtol=1e-20)
    assert [str(w.message)[:16] for w in caught] == ["Setting `xtol` b", "Setting `gtol` b"]


def test_negative_tolerance_warns_and_disables_its_test_as_scipy_default_method():
    """SciPy's least_squares (method 'trf', its default) warns for ftol=-1 and runs without the
    ftol test; so does marquardt, with the same message, and ends where ftol=None ends."""
    with pytest.warns(UserWarning, match=r"Setting `ftol` below the machine epsilon \(2\.22e-16\) "
                                         r"effectively disables"):
        res = marquardt.least_squares(residuals, [1.0, 1.0, 0.0], ftol=-1)
    ref = marquardt.least_squares(residuals, [1.0, 1.0, 0.0], ftol=None)
    with pytest.warns(UserWarning, match=r"Setting `ftol` below the machine epsilon"):
        scipy.optimize.least_squares(residuals, [1.0, 1.0, 0.0], ftol=-1)
    assert res.success and res.status == ref.status != 2
    np.testing.assert_array_equal(res.x, ref.x)
    assert res.nfev == ref.nfev


def test_ftol_off_ends_a_differenced_fit_by_xtol():
    """With ftol off (None, as in SciPy's trf) a fit by 2-point differences ends by xtol, as
    SciPy's trf does (status 3), instead of taking rounding-level steps ~1e-9 long, which the
    Jacobian's differencing noise keeps from shrinking, until max_nfev (it used to: status 0
    after 4,000 evaluations, a RuntimeError from curve_fit)."""
    rng = np.random.default_rng(1)
    t = np.linspace(0.0, 10.0, 40)
    y = 3.0 * np.exp(-0.5 * t) + 1.0 + 0.05 * rng.normal(size=t.size)

    def fun(p):
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    res = marquardt.least_squares(fun, [1.0, 1.0, 0.0], ftol=None)
    ref = scipy.optimize.least_squares(fun, [1.0, 1.0, 0.0], ftol=None, xtol=1e-12, gtol=1e-12)
    assert ref.status == 3
    assert res.status == 3 and res.nfev < 100, (res.status, res.nfev, res.message)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)
    popt, _ = marquardt.curve_fit(lambda x, a, b, c: a * np.exp(-b * x) + c, t, y,
                                  p0=[1.0, 1.0, 0.0], ftol=None)
    np.testing.assert_allclose(popt, res.x, rtol=1e-9)


@pytest.mark.parametrize("x0, error", [("abc", ValueError), ([{}, 1.0, 0.0], TypeError)])
def test_text_and_object_x0_raise_what_scipy_raises(x0, error):
    with pytest.raises(error):
        scipy.optimize.least_squares(residuals, np.asarray(x0, dtype=object))
    with pytest.raises(error, match=r"`x0` must hold real numbers"):
        marquardt.least_squares(residuals, np.asarray(x0, dtype=object))


def test_numeric_text_x0_is_converted_as_scipy_converts_it():
    res = marquardt.least_squares(residuals, ["1", "1", "0"])
    ref = marquardt.least_squares(residuals, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(res.x, ref.x)


def test_callback_receives_scipys_intermediate_result_fields():
    """SciPy's least_squares passes ``intermediate_result`` with x, fun, nit, nfev and cost;
    a callback written for it reads the same fields here (with our iteration summary)."""
    ours, theirs = [], []

    def recorder(into):
        def callback(intermediate_result):
            r = intermediate_result
            into.append((r.nit, r.nfev, r.cost, r.x.copy(), np.array(r.fun)))
        return callback

    scipy.optimize.least_squares(residuals, [1.0, 1.0, 0.0], callback=recorder(theirs))
    marquardt.least_squares(residuals, [1.0, 1.0, 0.0], callback=recorder(ours))
    assert theirs and ours
    assert [nit for nit, *_ in ours] == list(range(1, len(ours) + 1))
    for nit, nfev, cost, x, fun in ours:
        np.testing.assert_allclose(fun, residuals(x), rtol=0, atol=1e-15)
        assert cost == pytest.approx(0.5 * fun @ fun, rel=1e-12)
    np.testing.assert_allclose(ours[-1][3], theirs[-1][3], rtol=1e-6)


def test_callback_of_x_receives_x_as_scipys():
    """SciPy's second signature, ``callback(x)`` (any callback whose only parameter is not
    named ``intermediate_result``): it is passed a copy of x, an ndarray. It used to get the
    OptimizeResult (a dict), so that ``path.append(x.copy())`` silently stored dicts."""
    ours, theirs = [], []
    scipy.optimize.least_squares(residuals, [1.0, 1.0, 0.0], callback=lambda x: theirs.append(x))
    marquardt.least_squares(residuals, [1.0, 1.0, 0.0], callback=lambda x: ours.append(x))
    assert theirs and ours
    assert {type(x) for x in ours} == {type(x) for x in theirs} == {np.ndarray}
    assert len({id(x) for x in ours}) == len(ours)  # copies, not one array updated in place
    np.testing.assert_allclose(ours[-1], theirs[-1], rtol=1e-6)
    popt, _ = marquardt.curve_fit(lambda t, a, b, c: a * np.exp(-b * t) + c, T, Y,
                                  p0=[1.0, 1.0, 0.0], callback=ours.append)
    assert type(ours[-1]) is np.ndarray and ours[-1].shape == (3,)


def test_a_float32_numpy_model_gets_float32_sized_difference_steps():
    """As SciPy's ``approx_derivative`` (its step from the function's output dtype): a model
    that returns float32 is differenced with steps of √ε₃₂, not √ε₆₄, whose differences would
    be float32 rounding. It used to end in RuntimeError ("No step lowers the cost"); it now
    lands on the float64 model's answer to float32's resolution."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4, 50).astype(np.float32)
    y = (2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * rng.standard_normal(50)).astype(np.float32)

    def model32(x, a, b, c):
        return (a * np.exp(-b * x) + c).astype(np.float32)

    def model64(x, a, b, c):
        return a * np.exp(-b * x) + c

    popt, pcov = marquardt.curve_fit(model32, t, y, p0=[1, 1, 0])
    ref, ref_cov = marquardt.curve_fit(model64, t.astype(float), y.astype(float), p0=[1, 1, 0])
    off = np.abs(popt - ref) / np.sqrt(np.diag(ref_cov))  # in standard errors
    assert np.all(off < 0.05), off


def test_a_float32_tensorflow_model_with_differences_is_stepped_and_judged_as_numpys():
    """A TensorFlow model that returns float32, with ``jac='2-point'``, is differenced on the
    compiled route: its steps and its end are now sized for float32 as a NumPy model's are
    (√ε₃₂ steps, ``LoopConfig.output_epsilon``). With float64's 1.5e-8 steps its differences
    were float32 rounding and every fit ended in RuntimeError ("No step lowers the cost")."""
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    t = np.linspace(0, 4, 50).astype(np.float32)
    y = (2.5 * np.exp(-1.3 * t) + 0.5 + 0.01 * rng.standard_normal(50)).astype(np.float32)

    def model_tf(x, a, b, c):
        return tf.cast(a * tf.exp(-b * x) + c, tf.float32)

    def model_np(x, a, b, c):
        return (a * np.exp(-b * x) + c).astype(np.float32)

    popt, _, info, _, ier = marquardt.curve_fit(model_tf, t, y, p0=[1, 1, 0], jac="2-point",
                                                full_output=True)
    ref, ref_cov, ref_info, _, ref_ier = marquardt.curve_fit(model_np, t, y, p0=[1, 1, 0],
                                                             jac="2-point", full_output=True)
    off = np.abs(popt - ref) / np.sqrt(np.diag(ref_cov))  # in standard errors
    assert np.all(off < 0.01), off
    assert ier in (1, 2, 3, 4) and ref_ier in (1, 2, 3, 4)


def _float32_exponential(x, a, b):
    return (a * np.exp(-b * x)).astype(np.float32)


def test_a_float32_numpy_model_fits_noise_free_data():
    """Data that a float32 model fits exactly leave residuals of float32 rounding, whose
    direction (gradient cosine 0.06) said "away from a minimum" to tests made for float64
    residuals: curve_fit raised RuntimeError ("No step lowers the cost") at the solution. The
    core now judges the residuals' rounding at the model's ε (``LoopConfig.output_epsilon``):
    the fit ends by xtol at (2.5, 1.3), as SciPy's lm does on the same float32 residuals."""
    t = np.linspace(0, 4, 50).astype(np.float32)
    y = _float32_exponential(t, 2.5, 1.3)
    popt, _, info, _, ier = marquardt.curve_fit(_float32_exponential, t, y, p0=[1, 1],
                                                full_output=True)
    np.testing.assert_allclose(popt, [2.5, 1.3], rtol=1e-6)
    assert ier == 2  # xtol
    ours = marquardt.least_squares(lambda p: _float32_exponential(t, *p) - y, [1.0, 1.0])
    theirs = scipy.optimize.least_squares(lambda p: _float32_exponential(t, *p) - y,
                                          [1.0, 1.0], method="lm")
    assert theirs.success and theirs.status == 3
    assert ours.success and ours.status == theirs.status
    np.testing.assert_allclose(ours.x, theirs.x, rtol=1e-6)


@pytest.mark.parametrize("name, seed", [("exponential", 5), ("line", 1)])
def test_a_float32_numpy_model_fits_noisy_data(name, seed):
    """Noise 1e-3: such fits (4 of 10 seeds for each model) used to end in a stall at their
    minimum, whose gradient cosine (1e-4 to 1e-3) is float32 rounding; they now succeed at the
    float64 model's answer to float32's resolution."""
    t = np.linspace(0, 4, 50)
    models = {"exponential": lambda x, a, b: a * np.exp(-b * x),
              "line": lambda x, a, b: a * x + b}
    model = models[name]
    y = model(t, 2.5, 1.3) + 1e-3 * np.random.default_rng(seed).standard_normal(t.size)
    t32, y32 = t.astype(np.float32), y.astype(np.float32)
    ours = marquardt.least_squares(
        lambda p: model(t32, *p).astype(np.float32) - y32, [1.0, 1.0])
    ref = marquardt.least_squares(lambda p: model(t, *p) - y32.astype(float), [1.0, 1.0])
    assert ours.success, ours.message
    np.testing.assert_allclose(ours.x, ref.x, rtol=1e-5)


def test_a_float32_model_stalled_away_from_a_minimum_still_fails():
    """The float32 rounding level must not excuse a minimum at infinity: MGH Jennrich-Sampson
    from 10·x₀ (f = 259.6, against f* = 124.4 at the minimum) still ends as STALLED, not
    as a success (its gradient's projection is 1,000 times the residuals' rounding)."""
    from mgh_problems import BY_NAME

    p = BY_NAME["jennrich_sampson"]
    with np.errstate(all="ignore"):
        res = marquardt.least_squares(lambda x: p.fun(x).astype(np.float32),
                                      10 * np.asarray(p.x0, float))
    assert not res.success
    assert res.status == marquardt.Status.STALLED
    assert 2 * res.cost > 259


@pytest.mark.parametrize("p0, received", [([1.0, 2.0, 3.0], 3), ([1.0], 1)])
def test_p0_of_the_wrong_length_raises_scipys_type_error(p0, received):
    """SciPy calls ``f(x, *p0)`` and the call raises TypeError ("f() takes 3 positional
    arguments but 4 were given", "missing 1 required positional argument"); marquardt reads
    the count from f's signature first and raised ValueError. Now the same type, naming p0
    and both counts."""
    def f(x, a, b):
        return a * np.exp(-b * x)

    with pytest.raises(TypeError):
        scipy.optimize.curve_fit(f, T, Y, p0=p0)
    with pytest.raises(TypeError, match=r"`p0` must have one value per parameter of `f` "
                       rf"\(2\)\. Received: p0 with length {received}$"):
        marquardt.curve_fit(f, T, Y, p0=p0)


def test_x0_shorter_than_fun_indexes_raises_scipys_index_error():
    """least_squares has no signature to read: ``fun`` itself fails at x0, with the error
    SciPy lets through (IndexError), here naming ``fun``."""
    def fun(p):
        return p[0] * np.exp(-p[1] * T) + p[2] - Y

    with pytest.raises(IndexError):
        scipy.optimize.least_squares(fun, [1.0, 1.0], method="lm")
    with pytest.raises(IndexError, match=r"`fun` raised at x0: index 2 is out of bounds"):
        marquardt.least_squares(fun, [1.0, 1.0])


def test_positional_arguments_in_scipy_order():
    """SciPy's order: ... diff_step, tr_solver, tr_options, jac_sparsity, max_nfev ..."""
    res = marquardt.least_squares(residuals, [1.0, 1.0, 0.0], "2-point", (-np.inf, np.inf),
                                  "lm", 1e-8, 1e-8, 1e-8, "jac", "linear", 1.0, None, None,
                                  None, None, 5)
    assert res.nfev <= 5 and res.status == 0


def model(x, a, b, c):
    return a * np.exp(-b * x) + c


def test_curve_fit_ier_is_minpacks_info():
    """SciPy's curve_fit (lm) returns leastsq's ``ier``: MINPACK's numbering (1 ftol, 2 xtol,
    3 both, 4 gtol), not least_squares' status; a callback's stop keeps its own code."""
    from marquardt._curve_fit import minpack_ier
    from marquardt._status import Status

    assert [minpack_ier(s) for s in (Status.FTOL, Status.XTOL, Status.FTOL_XTOL, Status.GTOL,
                                     Status.DAMPING_LIMIT, Status.CALLBACK)] == [1, 2, 3, 4, 1, -2]
    *_, info, mesg, ier = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], full_output=True,
                                              xtol=1e-6)
    assert (info["result"].status, ier) == (Status.XTOL, 2), mesg


def test_curve_fit_full_output_is_scipys_five_values():
    popt, pcov, info, mesg, ier = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0],
                                                      full_output=True)
    ref = scipy.optimize.curve_fit(model, T, Y, p0=[1, 1, 0], full_output=True)
    assert set(ref[2]) <= set(info)
    assert isinstance(mesg, str) and ier in (1, 2, 3, 4)
    # MINPACK's info, as SciPy's lm returns it: 1 ftol, 2 xtol, 3 both, 4 gtol
    assert ier == {1: 4, 2: 1, 3: 2, 4: 3, 5: 1}[info["result"].status]
    assert info["nfev"] == info["result"].nfev
    np.testing.assert_array_equal(info["fvec"], info["result"].fun)
    # MINPACK's layout: R from fjac and ipvt gives JᵀJ = P RᵀR Pᵀ; ipvt counted as the
    # installed SciPy counts it (1.17's C MINPACK from 0, the Fortran one from 1)
    base = int(ref[2]["ipvt"].min())
    assert sorted(info["ipvt"]) == list(range(base, base + 3))
    n = popt.size
    r = np.triu(info["fjac"].T[:n, :])
    perm = info["ipvt"] - base
    jtj = np.empty((n, n))
    jtj[np.ix_(perm, perm)] = r.T @ r
    jac = info["result"].jac
    np.testing.assert_allclose(jtj, jac.T @ jac, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(info["qtf"], (np.linalg.qr(jac[:, perm])[0].T
                                             @ info["fvec"]) * np.sign(np.diag(r)) *
                               np.sign(np.diag(np.linalg.qr(jac[:, perm])[1])), atol=1e-12)
    # SciPy's own recipe for the covariance from fjac and ipvt (leastsq's) works on ours
    inv_r = np.linalg.inv(r)
    cov = np.empty((n, n))
    cov[np.ix_(perm, perm)] = inv_r @ inv_r.T
    np.testing.assert_allclose(cov, np.linalg.inv(jac.T @ jac), rtol=1e-8)


def test_curve_fit_raises_runtime_error_when_not_converged():
    with pytest.raises(RuntimeError, match=r"Optimal parameters not found: .*max_nfev"):
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], maxfev=3)


def test_curve_fit_rank_deficient_covariance_is_inf_with_optimize_warning():
    with pytest.warns(OptimizeWarning, match=r"Covariance of the parameters could not be "
                                             r"estimated: the Jacobian at the solution has "
                                             r"rank 1 < n = 2"):
        _, pcov = marquardt.curve_fit(lambda x, a, b: a * x, T, 2 * T)
    assert np.all(np.isinf(pcov))


def test_curve_fit_nan_policy_omit_equals_dropping_the_points():
    y = Y.copy()
    y[[3, 7]] = np.nan
    keep = np.isfinite(y)
    a, _ = marquardt.curve_fit(model, T, y, p0=[1, 1, 0], nan_policy="omit")
    b, _ = marquardt.curve_fit(model, T[keep], y[keep], p0=[1, 1, 0])
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"The input contains nan values"):
        marquardt.curve_fit(model, T, y, p0=[1, 1, 0], nan_policy="raise")


def test_curve_fit_scalar_sigma_scalar_ydata_and_opaque_xdata():
    _, pcov1 = marquardt.curve_fit(model, T, Y + 0.01 * np.sin(9 * T), p0=[1, 1, 0], sigma=2.0,
                                   absolute_sigma=True)
    _, pcov2 = marquardt.curve_fit(model, T, Y + 0.01 * np.sin(9 * T), p0=[1, 1, 0],
                                   sigma=np.full(T.size, 2.0), absolute_sigma=True)
    np.testing.assert_array_equal(pcov1, pcov2)
    popt, _ = marquardt.curve_fit(lambda x, a, b: a * T + b - 3 * T - 1, T, 0)
    np.testing.assert_allclose(popt, [3.0, 1.0])
    popt, _ = marquardt.curve_fit(lambda _, a: a * np.arange(10.0), None, 2 * np.arange(10.0))
    np.testing.assert_allclose(popt, [2.0])


def test_curve_fit_leastsq_option_names():
    a, _ = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], maxfev=500, epsfcn=1e-10)
    b, _ = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], max_nfev=500, diff_step=1e-5)
    np.testing.assert_array_equal(a, b)
    # leastsq's maxfev=0 is its default, not a limit of no evaluation
    *_, info, _, _ = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], maxfev=0, full_output=True)
    _, _, ref, _, _ = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], full_output=True)
    assert info["result"].success and info["nfev"] == ref["nfev"] > 3


def test_numpy_function_called_with_distinct_parameters_each_time():
    """SciPy gh-13670: no two consecutive calls of f (or of jac) with the same parameters."""
    last = {"f": None, "jac": None}

    def line(x, *p):
        assert last["f"] is None or not np.array_equal(last["f"], p)
        last["f"] = np.array(p)
        return x * p[0] + p[1]

    def jac(x, *p):
        assert last["jac"] is None or not np.array_equal(last["jac"], p)
        last["jac"] = np.array(p)
        return np.stack([x, np.ones_like(x)], axis=1)

    marquardt.curve_fit(line, T, 2 * T + 1 + 0.1 * np.sin(7 * T), [1.0, 5.0], jac=jac)


def test_warnings_point_at_the_callers_line():
    import inspect

    line = inspect.currentframe().f_lineno + 2
    with pytest.warns(OptimizeWarning) as caught:
        marquardt.curve_fit(lambda x, a, b: a * x, T, 2 * T)
    assert caught[0].filename == __file__ and caught[0].lineno == line
    with pytest.warns(UserWarning, match="below the machine epsilon") as caught:
        marquardt.least_squares(residuals, [1.0, 1.0, 0.0], ftol=1e-17)
    assert caught[0].filename == __file__ and caught[0].lineno == line + 3


def test_curve_fit_without_p0_starts_inside_the_bounds_as_scipy_does():
    from marquardt._parameters import feasible_start

    lb = np.array([2.0, -np.inf, 0.0, -np.inf])
    ub = np.array([4.0, np.inf, np.inf, 5.0])
    # SciPy's _initialize_feasible: the middle, 1, lb + 1, ub - 1
    np.testing.assert_array_equal(feasible_start(lb, ub), [3.0, 1.0, 1.0, 4.0])
    x = np.linspace(0.0, 4.0, 40)
    y = 3.0 * np.exp(-0.7 * x) + 0.4
    bounds = ([2.0, 0.5, 0.0], [4.0, 1.0, 1.0])  # the ones SciPy's default p0 would be outside
    popt, _, info, _, _ = marquardt.curve_fit(model, x, y, bounds=bounds, full_output=True)
    np.testing.assert_allclose(popt, scipy.optimize.curve_fit(model, x, y, bounds=bounds)[0],
                               rtol=1e-7)
    np.testing.assert_allclose(popt, [3.0, 0.7, 0.4], rtol=1e-9)
    start = 0.5 * (np.array(bounds[0]) + np.array(bounds[1]))
    np.testing.assert_allclose(info["result"].history[0].cost,
                               0.5 * np.sum((model(x, *start) - y) ** 2), rtol=1e-12)
    batch = marquardt.curve_fit_batch(model, x, np.stack([y, y]), bounds=bounds)
    np.testing.assert_allclose(batch.x, [[3.0, 0.7, 0.4]] * 2, rtol=1e-7)


def test_curve_fit_takes_leastsqs_factor_and_col_deriv():
    """SciPy's curve_fit hands ``factor`` and ``col_deriv`` to leastsq: ``factor`` is the
    trust region's initial radius factor (ours, ``TrustRegion.factor``); ``col_deriv=True``
    reads a callable jac's (n, m) as its columns. ``Dfun`` is refused, as SciPy refuses it
    (it is ``jac``)."""
    from marquardt._damping import TrustRegion

    def jac(t, a, b, c):
        e = np.exp(-b * t)
        return np.stack([e, -a * t * e, np.ones_like(t)], axis=1)

    def columns(t, a, b, c):
        return jac(t, a, b, c).T.copy()

    rows = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac=jac, full_output=True)
    by_columns = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], jac=columns, col_deriv=True,
                                     full_output=True)
    assert rows[0].tobytes() == by_columns[0].tobytes()
    assert rows[2]["nfev"] == by_columns[2]["nfev"]
    plain = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], col_deriv=False)
    assert plain[0].tobytes() == marquardt.curve_fit(model, T, Y, p0=[1, 1, 0])[0].tobytes()
    wide = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], factor=100.0, full_output=True)
    same = marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], damping=TrustRegion(factor=100.0),
                               full_output=True)
    assert wide[0].tobytes() == same[0].tobytes() and wide[2]["nfev"] == same[2]["nfev"]
    with pytest.raises(ValueError, match=r"`factor` must be a positive number\. "
                                         r"Received: factor=-1"):
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], factor=-1)
    with pytest.raises(ValueError, match=r"the damping given has none\. Received: factor=10, "
                                         r"damping='nielsen'"):
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], factor=10, damping="nielsen")
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\): Dfun"):
        marquardt.curve_fit(model, T, Y, p0=[1, 1, 0], Dfun=None)
