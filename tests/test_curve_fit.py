"""curve_fit: SciPy's meaning for popt and pcov, weights, bounds, and every input error."""

import math
import warnings

import numpy as np
import pytest
from scipy.optimize import OptimizeWarning
import scipy.optimize
import tensorflow as tf

import marquardt
from marquardt._errors import NoGradientError, NonFiniteJacobianError

rng = np.random.default_rng(42)
X = np.linspace(0, 4, 40)
SIG = 0.02 + 0.01 * X
Y = 2.5 * np.exp(-1.3 * X) + 0.5 + SIG * rng.normal(size=X.size)


def model(x, a, b, c):
    return a * tf.exp(-b * x) + c


def np_model(x, a, b, c):
    return a * np.exp(-b * x) + c


def np_jac(x, a, b, c):
    e = np.exp(-b * x)
    return np.stack([e, -a * x * e, np.ones_like(x)], axis=1)


@pytest.mark.parametrize("sigma, absolute", [(None, False), ("diag", False), ("diag", True),
                                             ("full", False), ("full", True)])
def test_matches_scipy(sigma, absolute):
    s = {None: None, "diag": SIG, "full": np.diag(SIG**2) + 1e-5 * np.exp(
        -np.abs(X[:, None] - X[None, :]))}[sigma]
    popt, pcov = marquardt.curve_fit(model, X, Y, p0=[1, 1, 0], sigma=s, absolute_sigma=absolute)
    ref_popt, ref_pcov = scipy.optimize.curve_fit(np_model, X, Y, p0=[1, 1, 0], sigma=s,
                                                  absolute_sigma=absolute, jac=np_jac,
                                                  ftol=1e-14, xtol=1e-14, gtol=1e-14)
    np.testing.assert_allclose(popt, ref_popt, rtol=1e-8)
    np.testing.assert_allclose(pcov, ref_pcov, rtol=1e-6)


def test_standard_errors_and_correlation():
    popt, pcov, info, mesg, ier = marquardt.curve_fit(model, X, Y, p0=[1, 1, 0],
                                                      full_output=True)
    res = info["result"]
    np.testing.assert_allclose(res.perr, np.sqrt(np.diag(pcov)))
    np.testing.assert_allclose(marquardt.standard_errors(pcov), res.perr)
    corr = marquardt.correlation_matrix(pcov)
    np.testing.assert_allclose(np.diag(corr), 1.0)
    np.testing.assert_allclose(corr, res.correlation)
    assert res.dof == 37 and res.redchi == pytest.approx(res.chisq / 37)
    assert res.chisq == pytest.approx(np.sum((np_model(X, *popt) - Y) ** 2))


def test_p0_from_signature_and_several_variables():
    x2 = np.stack([X, X**2])
    y2 = 1.5 * X - 0.25 * X**2 + 2.0

    def plane(x, a, b, c):
        return a * x[0] + b * x[1] + c

    popt, _ = marquardt.curve_fit(plane, x2, y2)  # p0 = ones(3), from the signature
    np.testing.assert_allclose(popt, [1.5, -0.25, 2.0], rtol=1e-10)


def test_bounds_and_callable_jacobian():
    def jac(x, a, b, c):
        e = tf.exp(-b * x)
        return tf.stack([e, -a * x * e, tf.ones_like(x)], axis=1)

    popt, _ = marquardt.curve_fit(model, X, Y, p0=[1, 1, 0], jac=jac, bounds=(0, [10, 10, 0.45]))
    ref, _ = scipy.optimize.curve_fit(np_model, X, Y, p0=[1, 1, 0.1], bounds=(0, [10, 10, 0.45]))
    assert popt[2] == 0.45
    np.testing.assert_allclose(popt, ref, rtol=1e-6)


def test_robust_loss_downweights_outliers():
    y = Y.copy()
    y[::7] += 3.0
    popt, _ = marquardt.curve_fit(model, X, y, p0=[1, 1, 0], loss="soft_l1", f_scale=0.05)
    ref = scipy.optimize.least_squares(lambda p: np_model(X, *p) - y, [1, 1, 0],
                                       loss="soft_l1", f_scale=0.05)
    np.testing.assert_allclose(popt, ref.x, rtol=1e-5)


def test_covariance_infinite_when_not_overdetermined():
    with pytest.warns(OptimizeWarning, match="could not be estimated"):
        _, pcov = marquardt.curve_fit(lambda x, a, b: a * x + b, [1.0, 2.0], [3.0, 5.0], p0=[1, 1])
    assert np.all(np.isinf(pcov))


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"ydata": np.r_[Y[:-1], np.nan]}, ValueError, r"`ydata` must contain only finite values\. Received: ydata\[39\]=nan"),
    ({"xdata": np.r_[X[:-1], np.inf]}, ValueError, r"`xdata` must contain only finite values\. Received: xdata\[39\]=inf"),
    ({"sigma": np.r_[SIG[:-1], np.nan]}, ValueError, r"`sigma` must contain only finite values"),
    ({"sigma": -SIG}, ValueError, r"`sigma` must be positive\. Received: sigma with minimum -\d"),
    ({"sigma": SIG[:5]}, ValueError, r"`sigma` must be a scalar or have shape \(m,\) or \(m, m\) with m=40\. Received: sigma with shape \(5,\)"),
    ({"xdata": X[:30]}, ValueError, r"`f\(xdata, \*p0\)` must return shape \(40,\) like ydata\. Received: shape \(30,\) \(xdata has shape \(30,\), ydata \(40,\)\)"),
    ({"xdata": X[:30], "nan_policy": "omit"}, ValueError, r"`xdata` must have its last dimension equal to len\(ydata\)=40 for nan_policy='omit' to find the points to omit\. Received: xdata with shape \(30,\)"),
    ({"ydata": []}, ValueError, r"`ydata` must not be empty"),
    ({"p0": [1.0, 1.0]}, TypeError, r"`p0` must have one value per parameter of `f` \(3\)\. Received: p0 with length 2"),
    ({"p0": [1.0, np.nan, 0.0]}, ValueError, r"`p0` must contain only finite values"),
    ({"method": "trf"}, ValueError, r"`method` must be None or 'lm': marquardt fits with Levenberg-Marquardt, which takes `bounds` and robust `loss` itself .* Received: method='trf'"),
    ({"method": "bfgs"}, ValueError, r"`method` must be None or 'lm'\. Received: method='bfgs'"),
    ({"maxfev": 10, "max_nfev": 10}, TypeError, r"curve_fit\(\) got both `maxfev` and `max_nfev`, two names for one option"),
    ({"Dfun": None}, TypeError, r"curve_fit\(\) got unexpected keyword argument\(s\): Dfun"),
    ({"args": (1,)}, ValueError, r"'args' is not a supported keyword argument"),
    ({"nan_policy": "propagate"}, ValueError, r"`nan_policy='propagate'` is not supported by this function\."),
    ({"nan_policy": "drop", "check_finite": False}, ValueError, r"nan_policy must be one of \{None, 'raise', 'omit'\}\. Received: nan_policy='drop'"),
    ({"ydata": np.r_[Y[:3], np.nan, Y[4:]], "check_finite": False}, ValueError,
     r"`ydata` must contain only finite values\. Received: ydata\[3\]=nan \(1 non-finite"),
    ({"ydata": np.r_[Y[:3], np.nan, Y[4:]], "nan_policy": "omit", "check_finite": True},
     ValueError, r"`ydata` must contain only finite values\. Received: ydata\[3\]=nan .*\. "
                 r"check_finite=True checks before nan_policy='omit' acts \(SciPy's meaning\)"),
    ({"jac": "exact"}, ValueError, r"`jac` must be one of \['auto', 'forward', 'reverse', '2-point', '3-point', 'cs'\] or a callable"),
])
def test_rejects_bad_input(kwargs, error, pattern):
    args = {"f": model, "xdata": X, "ydata": Y, "p0": [1.0, 1.0, 0.0]}
    args.update(kwargs)
    with pytest.raises(error, match=pattern):
        marquardt.curve_fit(**args)


def test_meshgrid_xdata_with_a_raveled_model_as_scipy():
    """SciPy passes xdata to the model whatever its shape: the usual 2-D Gaussian fit of an
    image gives (x, y) meshgrid arrays, shape (2, ny, nx), and a model that ravels its output to
    ydata's (ny·nx,). It used to be refused for xdata's last dimension (nx) != len(ydata)."""
    xx, yy = np.meshgrid(np.linspace(-1.0, 1.0, 7), np.linspace(-1.0, 1.0, 6))

    def gauss2d(xy, a, x0, y0, s):
        return (a * np.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s))).ravel()

    z = gauss2d((xx, yy), 2.0, 0.1, -0.2, 0.4) + 0.01 * rng.normal(size=42)
    popt, pcov = marquardt.curve_fit(gauss2d, (xx, yy), z, p0=[1.0, 0.0, 0.0, 0.5])
    ref, ref_cov = scipy.optimize.curve_fit(gauss2d, (xx, yy), z, p0=[1.0, 0.0, 0.0, 0.5])
    np.testing.assert_allclose(popt, ref, rtol=1e-6)
    np.testing.assert_allclose(pcov, ref_cov, rtol=1e-4, atol=1e-12)


def test_a_dataframe_xdata_reaches_the_model_as_scipy():
    """SciPy passes xdata that is not a list, tuple or ndarray to the model as it is: a pandas
    DataFrame whose columns the model reads by name. It used to be converted to a (rows, 2)
    array, refused for its shape and, once the shape check went, failed in the model."""
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame({"u": np.linspace(0.0, 1.0, 30), "v": np.cos(np.arange(30.0))})
    z = 1.0 + 2.0 * table["u"] + 3.0 * table["v"] ** 2 + 0.01 * rng.normal(size=30)

    def plane(d, a, b, c):
        return a + b * d["u"] + c * d["v"] ** 2

    popt, pcov = marquardt.curve_fit(plane, table, z)
    ref, ref_cov = scipy.optimize.curve_fit(plane, table, z)
    np.testing.assert_allclose(popt, ref, rtol=1e-7)
    np.testing.assert_allclose(pcov, ref_cov, rtol=1e-5)


def test_a_start_on_a_bound_where_the_model_is_undefined_moves_inside_as_scipy():
    """SciPy's trf starts strictly inside the bounds (make_strictly_feasible): Michaelis-Menten
    with km = 0 at its bound and S = 0 among the data (0/0 at p0) fits there. It used to stop at
    p0 with "must contain only finite values"; least_squares and curve_fit_batch likewise."""
    s = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    v = 10.0 * s / (2.5 + s) + 0.2 * np.sin(7.0 * s)

    def mm(s, vmax, km):
        return vmax * s / (km + s)

    bounds = ([0.0, 0.0], [np.inf, np.inf])
    ref, _ = scipy.optimize.curve_fit(mm, s, v, p0=[5.0, 0.0], bounds=bounds)
    with np.errstate(invalid="raise"):  # the model is never evaluated at km = 0
        popt, _ = marquardt.curve_fit(mm, s, v, p0=[5.0, 0.0], bounds=bounds)
        res = marquardt.least_squares(lambda p: mm(s, *p) - v, [5.0, 0.0], bounds=bounds)
    np.testing.assert_allclose(popt, ref, rtol=1e-6)
    np.testing.assert_allclose(res.x, ref, rtol=1e-6)
    batch = marquardt.curve_fit_batch(mm, s, np.stack([v, v]), p0=[5.0, 0.0], bounds=bounds)
    np.testing.assert_allclose(batch.x, [ref, ref], rtol=1e-6)


def test_errors_at_the_start_name_f_and_p0():
    """curve_fit's errors at the start name what its user passed, ``f`` and ``p0`` (they said
    "`fun` raised at x0" and "`x0` must lie within `bounds`", least_squares' names), and a
    wrong output shape is reported as such, not as something ``f`` raised."""
    def domain(x, a, b):
        return a * x + math.log(b - 1.0)

    with pytest.raises(ValueError, match=r"^`f` raised at p0: math domain error$"):
        marquardt.curve_fit(domain, X, Y, p0=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"^`f\(xdata, \*p0\)` must contain only finite values\. "
                                         r"Received: f\(xdata, \*p0\)\[0\]=-inf"), \
            np.errstate(divide="ignore"):
        marquardt.curve_fit(lambda x, a, b: a * x + np.log(b - 1.0), X, Y, p0=[1.0, 1.0])
    with pytest.raises(ValueError, match=r"^`f\(xdata, \*p0\)` must return shape \(40,\) like "
                                         r"ydata\. Received: None$"):
        marquardt.curve_fit(lambda x, a: None, X, Y, p0=[1.0])
    with pytest.raises(ValueError, match=r"^Initial guess is outside of provided bounds: `p0` "
                                         r"must lie within `bounds`\. Received: p0\[1\]=5\.0"):
        marquardt.curve_fit(model, X, Y, p0=[1.0, 5.0, 0.0], bounds=(0.0, 2.0))


def test_a_model_tensorflow_cannot_differentiate_is_named_f():
    def branches(x, a, b, c):
        if a > 2:  # Python branch on a traced parameter
            return a * tf.exp(-b * x) + c
        return a * tf.exp(-b * x) + c + 0.0

    with pytest.raises(NoGradientError,
                       match=r"^`f` cannot be differentiated by TensorFlow"):
        marquardt.curve_fit(branches, X, Y, p0=[1.0, 1.0, 0.0])


def test_a_float32_tensor_meeting_the_parameters_is_named_with_the_remedy():
    """A float32 constant in a TensorFlow model meets the float64 parameters when the model is
    traced: TensorFlow's bare TypeError ("Input 'y' of 'Mul' Op has type float32 that does
    not match type float64") now names the function and says what to write."""
    def single(x, a, b, c):
        return a * tf.exp(-b * x * tf.constant(1.0)) + c

    remedy = (r"has type float32 that does not match type float64 of argument 'x'\. \(a "
              r"float32 tensor, such as tf\.constant\(0\.5\) .* tf\.cast\(\.\.\., "
              r"tf\.float64\)\)$")
    with pytest.raises(TypeError, match=r"^`f` raised at p0: Input 'y' of 'Mul' Op " + remedy):
        marquardt.curve_fit(single, X, Y, p0=[1.0, 1.0, 0.0])
    with pytest.raises(TypeError, match=r"^`fun` raised at x0: Input 'y' of 'Mul' Op " + remedy):
        marquardt.least_squares(lambda p: single(X, p[0], p[1], p[2]) - Y, [1.0, 1.0, 0.0])


def test_a_model_of_unknown_output_shape_is_fitted():
    """A TensorFlow model whose output shape is unknown when traced (``tf.numpy_function``)
    is checked when it runs: ``curve_fit`` raised "Cannot iterate over a shape with unknown
    rank" while formatting the shape check's message for it."""
    def via_numpy(x, a, b, c):
        decay = tf.numpy_function(lambda b: np.exp(-b * X), [b], tf.float64)
        return a * decay + c

    popt = marquardt.curve_fit(via_numpy, X, Y, p0=[1.0, 1.0, 0.0], jac="2-point")[0]
    ref = marquardt.curve_fit(np_model, X, Y, p0=[1.0, 1.0, 0.0])[0]
    np.testing.assert_allclose(popt, ref, rtol=1e-6)


def test_a_jacobian_not_finite_at_the_start_is_named_with_its_columns_and_remedy():
    """sqrt(b*x) with x = 0 among the data: the model is finite at p0, its autodiff Jacobian is
    not (0*inf). The error says so, where, and what to pass (it said "must return finite
    residuals and Jacobian ... Received: non-finite values at p0"); 2-point differences fit."""
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    y = 2.0 * np.sqrt(1.5 * x + 0.0) + 0.1 * x

    def model(x, a, b, c):
        return a * tf.sqrt(b * x) + c * x

    with pytest.raises(NonFiniteJacobianError,
                       match=r"^`f` must have a finite Jacobian at `p0`: its values there are "
                             r"finite, its Jacobian is not in column\(s\) \[0, 1, 2\] .* at "
                             r"residual\(s\) \[0\] of 6\. .* pass jac='2-point'"):
        marquardt.curve_fit(model, x, y, p0=[1.0, 1.0, 0.0])
    popt, _ = marquardt.curve_fit(model, x, y, p0=[1.0, 1.0, 0.0], jac="2-point",
                                  bounds=([0.0, 0.5, -1.0], [10.0, 10.0, 1.0]))
    np.testing.assert_allclose(popt[0] * np.sqrt(popt[1]), 2.0 * np.sqrt(1.5), rtol=1e-6)
    with pytest.raises(NonFiniteJacobianError, match=r"column\(s\) \[1\] .* The callable "
                                                     r"`jac` returned non-finite values"), \
            np.errstate(divide="ignore", invalid="ignore"):
        marquardt.curve_fit(lambda x, a, b: a * np.sqrt(b * x), x, y, p0=[1.0, 1.0],
                            jac=lambda x, a, b: np.stack([np.sqrt(b * x),
                                                          a * x / (2 * np.sqrt(b * x))], 1))


def test_rejects_too_few_points_and_bad_model_output():
    with pytest.raises(TypeError, match=r"The number of func parameters=3 must not exceed the "
                                        r"number of data points=2: `ydata` needs at least one "
                                        r"point per parameter\. Received: 2 data points for 3 "
                                        r"parameters"):
        marquardt.curve_fit(model, [1.0, 2.0], [1.0, 2.0], p0=[1, 1, 1])
    with pytest.raises(ValueError, match=r"`f\(xdata, \*p0\)` must return shape \(40,\) like "
                                         r"ydata\. Received: shape \(\)"):
        marquardt.curve_fit(lambda x, a: a, X, Y, p0=[1.0])


def test_numpy_model_differenced_relative_to_its_parameters_sizes():
    # NIST Hahn1, a rational function of x up to 900 whose cubic coefficients are ~1e-7: a
    # difference step of ε^½·max(1, |b|) (SciPy least_squares' rule) moved them by 10 % of
    # their value and the fit ended with 2 correct digits after about 2,000 calls; steps
    # relative to the parameters' start magnitudes (MINPACK's, SciPy's curve_fit) give the
    # certified values to 5+ digits in about 130
    from marquardt import nist
    from nist_models import numpy_problem
    p, f = numpy_problem("Hahn1")

    for start in p.starts:
        popt, _, info, _, _ = marquardt.curve_fit(f, p.x, p.target(), p0=start,
                                                  full_output=True)
        assert nist.lre(popt, p.certified).min() >= 5.0
        assert info["nfev"] < 300
        # least_squares, the same rule (SciPy documents its step as x * diff_step)
        res = marquardt.least_squares(lambda b: f(p.x, *b) - p.target(), start)
        assert res.success and nist.lre(res.x, p.certified).min() >= 5.0
        assert res.nfev < 300


def test_p0_of_any_shape_is_flattened_as_scipy_flattens_it():
    # SciPy's curve_fit (method 'lm', leastsq: x0 = asarray(x0).flatten()) fits p0 = [[1, 1]]
    t = np.linspace(0.0, 1.0, 10)
    y = 2.0 * t + 1.0
    line = lambda x, a, b: a * x + b  # noqa: E731
    for p0 in (np.array([[1.0, 1.0]]), [[1.0], [1.0]]):
        popt, _ = marquardt.curve_fit(line, t, y, p0=p0)
        reference, _ = scipy.optimize.curve_fit(line, t, y, p0=p0)
        np.testing.assert_allclose(popt, reference, rtol=1e-10)
        np.testing.assert_allclose(popt, [2.0, 1.0], rtol=1e-12)
    with pytest.raises(TypeError, match=r"`p0` must have one value per parameter of `f` \(2\)\. "
                                        r"Received: p0 with length 4"):
        marquardt.curve_fit(line, t, y, p0=[[1.0, 1.0], [1.0, 1.0]])


def test_a_frequency_at_unix_times_gets_scipy_lm_standard_errors():
    # benchmarks/zoo.py sine_unix_time: t ≈ 1.7e9 s makes the frequency's column 1e10 times the
    # others; the rank cut-off on the unscaled J called the fit rank-deficient (pcov inf and an
    # OptimizeWarning) where SciPy's lm, from MINPACK's pivoted R, gives finite errors
    rng = np.random.default_rng(0)
    t = 1.7e9 + np.linspace(0, 3 * 86400, 200)

    def f(t, a, fr, ph, c):
        return a * np.sin(2 * np.pi * fr * t + ph) + c

    y = f(t, 1.0, 1 / 86400, 0.3, 0.2) + 0.1 * rng.standard_normal(t.size)
    p0 = (1.0, (1 + 2e-6) / 86400, 0.0, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        popt, pcov = marquardt.curve_fit(f, t, y, p0=p0)
    ref, ref_cov = scipy.optimize.curve_fit(f, t, y, p0=p0)
    np.testing.assert_allclose(np.sqrt(np.diag(pcov)), np.sqrt(np.diag(ref_cov)), rtol=2e-3)
