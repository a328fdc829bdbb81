"""least_squares: SciPy parity catalogue, result fields, options, and every input error."""

import contextlib
import io

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

import marquardt
from marquardt import Status, _tiering
from marquardt._backend.tensorflow import driver

# ---------------------------------------------------------------- the problem catalogue
T = np.linspace(0.0, 4.0, 25)
Y_EXP = 2.5 * np.exp(-1.3 * T) + 0.4 + 0.01 * np.sin(7 * T)
A_LIN = np.vander(np.linspace(-1, 1, 15), 4)
B_LIN = np.cos(np.linspace(-1, 1, 15))
rng = np.random.default_rng(0)
T_OUT = np.linspace(0, 10, 60)
Y_OUT = 3.0 * np.exp(-0.4 * T_OUT) + 0.05 * rng.normal(size=60)
Y_OUT[::9] += 4.0  # outliers


def tf_exp(p):
    return p[0] * tf.exp(-p[1] * T) + p[2] - Y_EXP


def np_exp(p):
    return p[0] * np.exp(-p[1] * T) + p[2] - Y_EXP


def tf_rosen(p):
    return tf.stack([10.0 * (p[1] - p[0] ** 2), 1.0 - p[0]])


def np_rosen(p):
    return np.array([10.0 * (p[1] - p[0] ** 2), 1.0 - p[0]])


def tf_lin(p):
    return tf.linalg.matvec(tf.constant(A_LIN), p) - B_LIN


def np_lin(p):
    return A_LIN @ p - B_LIN


def tf_rankdef(p):  # only p0 + p1 is identifiable
    return tf.stack([p[0] + p[1] - 1.0, 2.0 * (p[0] + p[1]) - 2.5, p[2] - 3.0, p[0] + p[1] - 0.2])


def np_rankdef(p):
    return np.array([p[0] + p[1] - 1.0, 2.0 * (p[0] + p[1]) - 2.5, p[2] - 3.0, p[0] + p[1] - 0.2])


def tf_wide(p):  # m = 2 < n = 4, zero residual attainable
    return tf.stack([p[0] * p[1] + p[2] - 1.0, p[3] ** 2 + p[0] - 2.0])


def np_wide(p):
    return np.array([p[0] * p[1] + p[2] - 1.0, p[3] ** 2 + p[0] - 2.0])


def tf_out(p):
    return p[0] * tf.exp(-p[1] * T_OUT) - Y_OUT


def np_out(p):
    return p[0] * np.exp(-p[1] * T_OUT) - Y_OUT


# name: (tf fun, numpy fun, x0, our kwargs, scipy kwargs)
CATALOGUE = {
    "linear": (tf_lin, np_lin, np.zeros(4), {}, {}),
    "exponential": (tf_exp, np_exp, np.array([1.0, 1.0, 0.0]), {}, {}),
    "rosenbrock": (tf_rosen, np_rosen, np.array([-1.2, 1.0]), {}, {}),
    "rank_deficient": (tf_rankdef, np_rankdef, np.array([0.0, 0.0, 0.0]), {}, {}),
    "fewer_residuals": (tf_wide, np_wide, np.array([0.5, 0.5, 0.5, 0.5]), {}, {"method": "trf"}),
    "x_scale": (tf_exp, np_exp, np.array([1.0, 1.0, 0.0]), {"x_scale": [1.0, 0.1, 1.0]},
                {"x_scale": [1.0, 0.1, 1.0]}),
    "bounds": (tf_exp, np_exp, np.array([1.0, 1.0, 0.5]), {"bounds": ([0, 0, 0.45], [10, 10, 1])},
               {"bounds": ([0, 0, 0.45], [10, 10, 1])}),
    "bounds_lower_only": (tf_rosen, np_rosen, np.array([-1.2, 2.0]),
                          {"bounds": ([-np.inf, 1.5], np.inf)}, {"bounds": ([-np.inf, 1.5], np.inf)}),
}
for _loss in ("soft_l1", "huber", "cauchy", "arctan"):
    CATALOGUE[f"robust_{_loss}"] = (tf_out, np_out, np.array([1.0, 1.0]),
                                    {"loss": _loss, "f_scale": 0.1},
                                    {"loss": _loss, "f_scale": 0.1})


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_cost_at_most_scipy(name):
    fun, np_fun, x0, ours, theirs = CATALOGUE[name]
    res = marquardt.least_squares(fun, x0, **ours)
    ref = scipy.optimize.least_squares(np_fun, x0, **theirs)
    assert res.success, res.message
    assert res.cost <= ref.cost * (1 + 1e-9) + 1e-14, (res.cost, ref.cost)
    # SciPy's shapes and types
    m, n = ref.fun.size, x0.size
    assert res.x.shape == (n,) and res.x.dtype == np.float64
    assert res.fun.shape == (m,) and res.jac.shape == (m, n) and res.grad.shape == (n,)
    assert res.active_mask.shape == (n,) and res.active_mask.dtype.kind == "i"
    assert isinstance(res.nfev, int) and isinstance(res.njev, int) and isinstance(res.status, int)
    assert isinstance(res.message, str) and res.success is True
    np.testing.assert_allclose(res.fun, np_fun(res.x), rtol=1e-12, atol=1e-14)
    if "loss" not in ours:
        assert res.cost == pytest.approx(0.5 * np.sum(res.fun**2), rel=1e-12, abs=1e-30)
        np.testing.assert_allclose(res.grad, res.jac.T @ res.fun, rtol=1e-10, atol=1e-14)


def test_linear_is_exact():
    res = marquardt.least_squares(tf_lin, np.zeros(4))
    np.testing.assert_allclose(res.x, np.linalg.lstsq(A_LIN, B_LIN, rcond=None)[0], rtol=1e-12,
                               atol=1e-14)


def test_bounds_active_mask_and_optimality():
    res = marquardt.least_squares(tf_rosen, [-1.2, 2.0], bounds=([-np.inf, 1.5], np.inf))
    ref = scipy.optimize.least_squares(np_rosen, [-1.2, 2.0], bounds=([-np.inf, 1.5], np.inf))
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)
    assert res.x[1] == 1.5 and res.active_mask.tolist() == [0, -1]
    assert res.optimality < 1e-8


def test_rosenbrock_reaches_minimum():
    res = marquardt.least_squares(tf_rosen, [-1.2, 1.0])
    np.testing.assert_allclose(res.x, [1.0, 1.0], rtol=1e-12)
    assert res.status in (1, 2, 3, 4) and res.nit == len(res.history) - 1 or res.nit < len(res.history)


@pytest.mark.parametrize("jac", ["2-point", "3-point", "forward", "reverse"])
def test_jacobian_modes_agree(jac):
    exact = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0])
    res = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0], jac=jac)
    np.testing.assert_allclose(res.x, exact.x, rtol=1e-6)


def test_callable_jacobian():
    def jac(p):
        e = tf.exp(-p[1] * T)
        return tf.stack([e, -p[0] * T * e, tf.ones_like(e)], axis=1)

    res = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0], jac=jac)
    np.testing.assert_allclose(res.x, marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0]).x,
                               rtol=1e-10)


def test_numpy_function_with_finite_differences():
    res = marquardt.least_squares(np_exp, [1.0, 1.0, 0.0], jac="2-point")
    ref = scipy.optimize.least_squares(np_exp, [1.0, 1.0, 0.0])
    assert res.cost <= ref.cost * (1 + 1e-8)


def test_args_kwargs_and_no_retrace():
    def fun(p, t, y, *, scale):
        return scale * (p[0] * tf.exp(-p[1] * t) - y)

    kw = {"scale": 2.0}
    res1 = marquardt.least_squares(fun, [1.0, 1.0], args=(T, 3 * np.exp(-0.5 * T)), kwargs=kw)
    key = next(k for k in driver._cache if k[0][1] is fun)

    def traces():  # the compiled residual and residual-with-Jacobian functions
        return [f.experimental_get_tracing_count() for f in driver._cache[key][:2]]

    before = traces()
    assert before[1] == 1
    res2 = marquardt.least_squares(fun, [2.0, 0.3], args=(T, 1.5 * np.exp(-2.0 * T)), kwargs=kw)
    assert traces() == before
    np.testing.assert_allclose(res1.x, [3.0, 0.5], rtol=1e-10)
    np.testing.assert_allclose(res2.x, [1.5, 2.0], rtol=1e-10)


def test_float64_whatever_floatx():
    import keras
    old = keras.config.floatx()
    keras.config.set_floatx("float16")
    try:
        res = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0])
    finally:
        keras.config.set_floatx(old)
    assert res.x.dtype == np.float64 and res.cost < 1e-2


def test_history_and_verbose_table():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        res = marquardt.least_squares(tf_rosen, [-1.2, 1.0], verbose=2)
    text = out.getvalue()
    assert text.splitlines()[0].split()[:4] == ["Iter", "nfev", "Cost", "Cost"]
    assert "termination condition" in text or "damping" in text
    costs = [h.cost for h in res.history]
    assert res.history[0].iteration == 0 and costs[0] == pytest.approx(0.5 * (4.4**2 + 2.2**2))
    assert all(b <= a for a, b in zip(costs, costs[1:]))
    assert res.history[-1].nfev == res.nfev
    assert sum(h.attempts for h in res.history) == res.nfev - 1


def test_callback_stops_the_solve():
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.iteration)
        return intermediate_result.iteration == 2

    res = marquardt.least_squares(tf_rosen, [-1.2, 1.0], callback=callback)
    assert seen == [1, 2] and res.status == Status.CALLBACK and not res.success
    assert res.nit == 2 and "callback" in res.message

    def raiser(intermediate_result):
        raise StopIteration

    assert marquardt.least_squares(tf_rosen, [-1.2, 1.0], callback=raiser).nit == 1


def test_max_nfev_status():
    res = marquardt.least_squares(tf_rosen, [-1.2, 1.0], max_nfev=3)
    assert res.status == Status.MAX_NFEV and res.nfev == 3 and not res.success
    assert res.message == "The maximum number of function evaluations is exceeded (nfev 3 >= max_nfev 3)."


def test_a_stop_at_the_start_of_an_iteration_is_no_iteration():
    """An iteration whose start ends the fit (the gradient test at an exact minimum, or no room
    in max_nfev for a step and the Jacobian after it) makes no attempt: no history row, no
    progress row, no callback; SciPy's nit and ours stay 0. The message says why max_nfev
    stopped a fit that has not used it up."""
    import contextlib
    import io

    t = np.linspace(0.0, 1.0, 10)
    y = 2.0 * t + 1.0
    seen = []
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        res = marquardt.least_squares(lambda p: p[0] * t + p[1] - y, [2.0, 1.0], jac="2-point",
                                      verbose=2, callback=seen.append)
    assert res.status == Status.GTOL and res.nit == 0 and res.nfev == 3
    assert [h.iteration for h in res.history] == [0] and seen == []
    rows = [line.split()[0] for line in printed.getvalue().splitlines()[1:]
            if line.strip()[:1].isdigit()]
    assert rows == ["0"]
    res = marquardt.least_squares(lambda p: np.array([10 * (p[1] - p[0] ** 2), 1 - p[0]]),
                                  [-1.2, 1.0], max_nfev=5)
    assert res.status == Status.MAX_NFEV and res.nfev == 3 and res.nit == 0
    assert [h.iteration for h in res.history] == [0]
    assert res.message == (
        "The maximum number of function evaluations is exceeded (nfev 3: one more step needs 3 "
        "evaluations (1 for its residuals, 2 for the Jacobian after it), past max_nfev 5).")


def test_trainlm_damping_with_identity():
    res = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0], damping="trainlm", x_scale=1.0)
    assert res.success and res.cost < 1e-2


@pytest.mark.parametrize("solver", ["svd", "eigen", "cholesky"])
def test_solvers_agree(solver):
    res = marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0], solver=solver)
    np.testing.assert_allclose(res.x, marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0]).x,
                               rtol=1e-8)


# ---------------------------------------------------------------- bad input
def test_rejects_nan_x0():
    with pytest.raises(ValueError, match=r"`x0` must contain only finite values\. Received: x0\[1\]=nan"):
        marquardt.least_squares(tf_exp, [1.0, np.nan, 0.0])


def test_rejects_non_numeric_and_bad_shapes():
    with pytest.raises(ValueError, match=r"`x0` must hold real numbers\. Received: x0 with dtype "
                                         r"<U1 \(\['a', 'b'\]\): could not convert string to "
                                         r"float"):
        marquardt.least_squares(tf_exp, ["a", "b"])
    with pytest.raises(TypeError, match=r"`x0` must hold real numbers\. Received: x0 with dtype "
                                        r"object \(array\(\[\{\}, 1\.0, 0\.0\], dtype=object\)\): float\(\) "
                                        r"argument must be a string or a real number, not 'dict'"):
        marquardt.least_squares(tf_exp, np.array([{}, 1.0, 0.0], dtype=object))
    with pytest.raises(ValueError, match=r"`x0` must have 0 or 1 dimension\(s\)\. Received: x0 with shape \(2, 2\)"):
        marquardt.least_squares(tf_exp, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"`x0` must not be empty"):
        marquardt.least_squares(tf_exp, [])
    with pytest.raises(TypeError, match=r"`fun` must be callable"):
        marquardt.least_squares("f", [1.0])


def test_rejects_bad_residuals():
    with pytest.raises(ValueError, match=r"`fun` must return a 1-D array of residuals, shape \(m,\)\. Received: shape \(2, 2\)"):
        marquardt.least_squares(lambda p: tf.reshape(tf.tile(p, [2]), (2, 2)), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`fun\(x0\)` must contain only finite values\. Received: fun\(x0\)\[0\]=inf"):
        marquardt.least_squares(lambda p: tf.stack([1.0 / (p[0] - 1.0), p[0]]), [1.0])


def test_numpy_function_runs_as_in_scipy():
    """A NumPy function gets a NumPy x (``.reshape``, item assignment) and, at jac='auto',
    finite differences as SciPy's default '2-point'; autodiff modes are refused by name."""
    seen = []

    def fun(p):
        seen.append(type(p))
        q = p.reshape(3).astype(np.float64)
        q[2] = q[2] + 0.0
        return np_exp(q)

    res = marquardt.least_squares(fun, [1.0, 1.0, 0.0])
    ref = scipy.optimize.least_squares(fun, [1.0, 1.0, 0.0], method="lm", xtol=1e-12,
                                       ftol=1e-15, gtol=1e-12)
    assert set(seen) == {np.ndarray}
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-7)
    assert res.success
    with pytest.raises(ValueError, match=r"cannot be differentiated by TensorFlow.*jac='2-point'"):
        marquardt.least_squares(np_exp, [1.0, 1.0, 0.0], jac="forward")


def test_a_difference_step_per_parameter_as_scipy_takes_it():
    """``diff_step`` array_like (SciPy: "x * diff_step"): parameter i is moved by its own
    relative step, hᵢ = diff_stepᵢ · max(|xᵢ|, |x0ᵢ|), and the fit ends where SciPy's does."""
    t = np.linspace(0.0, 4.0, 30)
    y = 2.0 * np.exp(-1.3 * t) + 0.5
    points = []

    def fun(p):
        points.append(np.array(p, dtype=float))
        return p[0] * np.exp(-p[1] * t) + p[2] - y

    x0, steps = [1.0, 2.0, 0.25], [1e-4, 1e-7, 1e-2]
    res = marquardt.least_squares(fun, x0, diff_step=steps, max_nfev=4)
    moved = np.array(points[1:4]) - points[0]  # the first Jacobian's three points
    np.testing.assert_allclose(np.abs(np.diagonal(moved)), [1e-4, 2e-7, 2.5e-3], rtol=1e-9)
    assert np.count_nonzero(moved) == 3
    res = marquardt.least_squares(fun, x0, diff_step=np.array(steps))
    ref = scipy.optimize.least_squares(fun, x0, diff_step=steps, method="trf", ftol=1e-15,
                                       xtol=1e-15, gtol=1e-15)
    np.testing.assert_allclose(res.x, ref.x, rtol=1e-6)
    assert res.success


def test_op_without_gradient_is_reported():
    def fun(p):
        return tf.math.betainc(p[0] + 0 * T, 2.0 + 0 * T, 0.3 + 0 * T) - 0.5

    with pytest.raises(ValueError, match=r"with respect to parameter 0.*jac='2-point'"):
        marquardt.least_squares(fun, [1.5])


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"loss": "l2"}, ValueError, r"`loss` must be one of \['linear', 'soft_l1', 'huber', 'cauchy', 'arctan'\] or a callable\. Received: loss='l2'"),
    ({"method": "trf"}, ValueError, r"`method` must be 'lm': marquardt implements Levenberg-Marquardt, with bounds and robust losses .* Received: method='trf'"),
    ({"f_scale": 0.0}, ValueError, r"`f_scale` must be a positive number\. Received: f_scale=0\.0"),
    ({"f_scale": -1}, ValueError, r"`f_scale` must be a positive number\. Received: f_scale=-1"),
    ({"bounds": ([0, 2, 0], [1, 1, 1])}, ValueError, r"lb < ub .*Received: lb\[1\]=2\.0 >= ub\[1\]=1\.0"),
    ({"bounds": ([2, 0, -1], 10)}, ValueError, r"`x0` must lie within `bounds`\. Received: x0\[0\]=1\.0 outside \[2\.0, 10\.0\]"),
    ({"bounds": ([0, 0], 1)}, ValueError, r"`bounds` lb must be a scalar or have length n=3"),
    ({"bounds": 5}, ValueError, r"`bounds` must be a pair"),
    ({"max_nfev": 0}, ValueError, r"`max_nfev` must be a positive integer or None"),
    ({"verbose": 3}, ValueError, r"`verbose` must be 0, 1 or 2"),
    ({"jac": "5-point"}, ValueError, r"`jac` must be one of .*Received: jac='5-point'"),
    ({"ftol": np.nan}, ValueError, r"`ftol` must be a finite number or None\. Received: ftol=nan"),
    ({"ftol": "tight"}, TypeError, r"`ftol` must be a number or None\. Received: ftol='tight'"),
    ({"x_scale": [1.0, -1.0, 1.0]}, ValueError, r"`x_scale` must be 'jac', or a positive"),
    ({"x_scale": "auto"}, ValueError, r"`x_scale` must be 'jac' or positive numbers"),
    ({"callback": 3}, TypeError, r"`callback` must be callable or None"),
    ({"tr_solver": "qr"}, ValueError, r"`tr_solver` must be None, 'exact' or 'lsmr'\. Received: tr_solver='qr'"),
    ({"tr_options": 3}, TypeError, r"`tr_options` must be a dict or None\. Received: tr_options=3"),
    ({"jac_sparsity": [[1]]}, ValueError, r"`jac_sparsity` must be None: marquardt's LM works with dense Jacobians"),
    ({"workers": 0}, ValueError, r"`workers` must be None, a positive int, -1 or a map-like callable\. Received: workers=0"),
    ({"ftol": None, "xtol": None, "gtol": None}, ValueError, r"At least one of the tolerances must be higher than machine epsilon"),
    ({"damping": "fast"}, ValueError, r"`damping` must be one of"),
    ({"diff_step": [1e-6, 1e-6]}, ValueError, r"`diff_step` must be a positive number or n=3 positive numbers \(one per parameter\)\. Received: diff_step with shape \(2,\)"),
    ({"diff_step": [1e-6, 0.0, 1e-6]}, ValueError, r"`diff_step` must be a positive number or n=3 positive numbers"),
    ({"diff_step": -1e-6}, ValueError, r"`diff_step` must be a positive number\. Received: diff_step=-1e-06"),
])
def test_rejects_bad_options(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        marquardt.least_squares(tf_exp, [1.0, 1.0, 0.0], **kwargs)


def test_a_model_compiles_its_solve_once_the_host_has_paid_for_it(monkeypatch):
    """The ski-rental rule (``marquardt._tiering``): a TensorFlow model's fits run on the host
    executor until its host functions have made ``TENSORFLOW_EVALUATIONS`` evaluations (each
    fit's nfev: J comes with r from one call); the next fit traces
    the whole solve into one compiled loop, once, and later fits run it; a fit with a
    callback stays on the host (the callback runs as plain Python)."""
    monkeypatch.setattr(_tiering, "TENSORFLOW_EVALUATIONS", 40)

    def fun(p, t, y):
        return p[0] * tf.exp(-p[1] * t) - y

    t = np.linspace(0.0, 3.0, 25)
    y = 2.0 * np.exp(-0.7 * t)

    def warm_keys():
        return [k for k in driver._cache if k[0] == "warm" and k[1][0][1] is fun]

    def host_use():
        (key,) = [k for k in driver._cache if k[0][1] is fun]
        return driver._cache[key][2].evaluations()

    host_fits = [marquardt.least_squares(fun, [1.0, 1.0], args=(t, y))]
    counted = [host_use()]
    while counted[-1] < 40:
        assert warm_keys() == []
        host_fits.append(marquardt.least_squares(fun, [1.5, 0.5], args=(t, y)))
        counted.append(host_use())
    assert len(host_fits) > 2  # a fit of ~10 evaluations: compiling at the second fit is gone
    assert counted == list(np.cumsum([r.nfev for r in host_fits]))
    assert warm_keys() == []
    second = marquardt.least_squares(fun, [1.5, 0.5], args=(t, y))
    third = marquardt.least_squares(fun, [1.0, 1.0], args=(t, 3.0 * np.exp(-0.2 * t)))
    (key,) = warm_keys()
    assert host_use() == counted[-1]  # the compiled loop runs without the host functions
    assert driver._cache[key].experimental_get_tracing_count() == 1
    for res in host_fits + [second]:
        np.testing.assert_allclose(res.x, [2.0, 0.7], rtol=1e-10)
    np.testing.assert_allclose(third.x, [3.0, 0.2], rtol=1e-10)
    assert [r.iteration for r in second.history] == list(range(len(second.history)))
    # the rent is counted per configuration: a fit with another option (ftol) runs on the
    # host, counted apart, and compiles nothing until its own count is paid
    other = marquardt.least_squares(fun, [1.0, 1.0], args=(t, y), ftol=1e-10)
    (before_key,) = warm_keys()
    assert host_use() == counted[-1] + other.nfev and before_key == key
    np.testing.assert_allclose(other.x, [2.0, 0.7], rtol=1e-8)
    seen = []
    marquardt.least_squares(fun, [1.0, 1.0], args=(t, 2.0 * np.exp(-0.7 * t)),
                            callback=lambda intermediate_result: seen.append(
                                type(intermediate_result.x)))
    assert seen and set(seen) == {np.ndarray}
    assert driver._cache[key].experimental_get_tracing_count() == 1


def test_max_nfev_is_a_hard_limit():
    """As in SciPy: max_nfev=1 spends the one evaluation at x0 and takes no step; a larger
    limit stops once reached, never beyond."""
    res = marquardt.least_squares(tf_rosen, [-1.2, 1.0], max_nfev=1)
    assert (res.status, res.nfev, res.nit) == (int(Status.MAX_NFEV), 1, 0)
    np.testing.assert_array_equal(res.x, [-1.2, 1.0])
    res = marquardt.least_squares(tf_rosen, [-1.2, 1.0], max_nfev=3)
    assert res.status == int(Status.MAX_NFEV) and res.nfev == 3


def test_one_function_fitted_with_different_parameter_counts(monkeypatch):
    """The compiled functions and loops of a model are kept per parameter count: a
    polynomial of any degree written once is fitted as 3, 4 and again 3 parameters (each
    count's loop compiled at its second fit here)."""
    monkeypatch.setattr(_tiering, "TENSORFLOW_EVALUATIONS", 0)
    t = np.linspace(-1.0, 1.0, 30)

    def poly(p, y):
        return tf.math.polyval(tf.unstack(p)[::-1], t) - y

    for coef in ([1.0, -2.0, 0.5], [0.3, 1.0, -2.0, 0.5], [2.0, 0.0, 1.0], [1.0, 1.0, 1.0],
                 [0.0, 1.0, 0.0, -1.0]):
        y = np.polyval(coef[::-1], t)
        res = marquardt.least_squares(poly, np.zeros(len(coef)), args=(y,))
        np.testing.assert_allclose(res.x, coef, atol=1e-10)
    warm = [k for k in driver._cache if k[0] == "warm" and k[1][0][1] is poly]
    assert sorted(k[1][1] for k in warm) == [3, 4]  # one compiled loop per n, each used
    assert all(driver._cache[k].experimental_get_tracing_count() == 1 for k in warm)


def test_plain_arithmetic_with_an_autodiff_jac_is_differentiated_exactly():
    """A function of plain arithmetic returns NumPy for NumPy input: at ``jac='auto'`` it
    gets SciPy's 2-point differences, with an explicit ``'forward'`` or ``'reverse'`` its
    exact Jacobian (it is called with tensors), never a refusal."""
    t = np.linspace(0.0, 2.0, 15)
    y = 0.5 * t**2 - t + 3.0

    def fun(p):
        return p[0] * t * t + p[1] * t + p[2] - y

    exact = np.stack([t * t, t, np.ones_like(t)], axis=1)
    for jac in ("forward", "reverse"):
        res = marquardt.least_squares(fun, [1.0, 1.0, 1.0], jac=jac)
        np.testing.assert_allclose(res.x, [0.5, -1.0, 3.0], atol=1e-12)
        np.testing.assert_allclose(res.jac, exact, rtol=1e-14, atol=1e-14)
    res = marquardt.least_squares(fun, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(res.x, [0.5, -1.0, 3.0], atol=1e-8)
    assert np.max(np.abs(res.jac - exact)) > 1e-12  # 2-point differences, as SciPy


def test_a_function_defined_in_a_loop_gets_one_recompile_warning(monkeypatch):
    """Each new function object is compiled anew (its key holds the object): the fifth
    distinct one of the same code and closure gets one ``RecompileWarning`` pointing at the
    caller's line; the same function object fitted again, a NumPy model in a loop, or a
    factory's models (one code, different closures) get none."""
    import warnings

    from marquardt import _recompile

    assert _recompile.RECOMPILE_WARN_AFTER == 5  # TensorFlow's count; 2 here, for time
    monkeypatch.setattr(_recompile, "RECOMPILE_WARN_AFTER", 2)
    t = np.linspace(0.0, 3.0, 20)
    y = 2.0 * np.exp(-0.7 * t)

    def fits(make, count):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(count):
                res = marquardt.curve_fit(make(), t, y, p0=[1.0, 1.0])
                np.testing.assert_allclose(res[0], [2.0, 0.7], rtol=1e-8)
        return [w for w in caught if issubclass(w.category, marquardt.RecompileWarning)]

    once = lambda t, a, b: a * tf.exp(-b * t)  # noqa: E731
    assert fits(lambda: once, _recompile.RECOMPILE_WARN_AFTER + 1) == []
    assert fits(lambda: (lambda t, a, b: a * np.exp(-b * t)), 6) == []  # NumPy: not compiled
    assert fits(lambda: (lambda t, a, b: a * tf.exp(-b * t)), _recompile.RECOMPILE_WARN_AFTER - 1) == []
    caught = fits(lambda: (lambda t, a, b: a * tf.exp(-b * t)), _recompile.RECOMPILE_WARN_AFTER + 2)
    assert len(caught) == 1
    assert caught[0].filename == __file__
    assert "2 different function objects of the same code and closure (<lambda> at " in str(
        caught[0].message)
    # a factory of models (one code, each closing over another object) makes different models
    scales = [np.float64(1.0), np.float64(2.0), np.float64(0.5)]
    made = iter([(lambda s: lambda t, a, b: s * a * tf.exp(-b * t) / s)(s) for s in scales])
    assert fits(lambda: next(made), 3) == []
    assert "Define it once, outside the loop" in str(caught[0].message)


def test_a_model_undefined_on_its_bound_is_reflected_back_into_the_box(monkeypatch):
    """Michaelis-Menten v = vmax·x/(km + x) with x = 0 among the data and km ≥ 0: at km = 0
    the first residual is 0/0. The first step leaves the box through km = 0; clipped onto it,
    its residuals were NaN and every later, shorter step was clipped there too, so the fit
    crept along km → 0 and ended away from a minimum. After a non-finite candidate the step is
    reflected at the bound (as SciPy's trf reflects), and the fit lands where SciPy's does, on
    the host and in the compiled loop alike."""
    x = np.linspace(0.0, 10.0, 30)
    y = 5.0 * x / (2.0 + x) + 0.05 * np.cos(3.0 * x)
    bounds = ([-np.inf, 0.0], [np.inf, np.inf])

    def fun_np(p):
        with np.errstate(invalid="ignore", divide="ignore"):
            return p[0] * x / (p[1] + x) - y

    ref = scipy.optimize.least_squares(fun_np, [1.0, 1.0], bounds=bounds, method="trf",
                                       ftol=1e-15, xtol=1e-15, gtol=1e-15)
    host = marquardt.least_squares(fun_np, [1.0, 1.0], bounds=bounds, jac="2-point")
    assert host.success and host.x[1] > 1.0
    np.testing.assert_allclose(host.x, ref.x, rtol=1e-6)
    assert host.history[1].attempts >= 2  # the first, clipped candidate was NaN
    monkeypatch.setattr(_tiering, "TENSORFLOW_EVALUATIONS", 0)

    xt = tf.constant(x)

    def fun_tf(p):
        return p[0] * xt / (p[1] + xt) - y

    fits = [marquardt.least_squares(fun_tf, [1.0, 1.0], bounds=bounds) for _ in range(2)]
    assert any(k[0] == "warm" and k[1][0][1] is fun_tf for k in driver._cache)  # compiled
    for res in fits:
        assert res.success
        np.testing.assert_allclose(res.x, ref.x, rtol=1e-6)


@pytest.mark.parametrize("form", ["numpy", "numpy-jac", "tensorflow", "jax"])
def test_a_scalar_residual_is_one_residual_as_in_scipy(form):
    # SciPy: fun "must allocate and return a 1-D array_like of shape (m,) or a scalar"; one
    # equation in two unknowns (m < n, which SciPy's lm refuses and ours solves) and one in one
    if form == "jax":
        jnp = pytest.importorskip("jax.numpy")
        fun = lambda x: jnp.sum(x ** 2) - 2.0  # noqa: E731
    elif form == "tensorflow":
        fun = lambda x: tf.reduce_sum(x ** 2) - 2.0  # noqa: E731
    else:
        fun = lambda x: np.sum(x ** 2) - 2.0  # noqa: E731
    jac = (lambda x: 2.0 * x) if form == "numpy-jac" else "auto"  # (n,): one row, as SciPy
    res = marquardt.least_squares(fun, [1.0, 0.5], jac=jac)
    assert res.success and res.fun.shape == (1,) and res.jac.shape == (1, 2)
    np.testing.assert_allclose(np.sum(res.x ** 2), 2.0, rtol=1e-12)
    one = marquardt.least_squares(lambda x: x[0] ** 2 - 2.0, [1.0])
    reference = scipy.optimize.least_squares(lambda x: x[0] ** 2 - 2.0, [1.0], method="lm")
    np.testing.assert_allclose(one.x, reference.x, rtol=1e-12)
    np.testing.assert_allclose(one.x, [np.sqrt(2.0)], rtol=1e-14)


def test_gtol_success_on_a_zero_jacobian_says_that_the_jacobian_is_zero():
    # benchmarks/zoo.py, Eyring from a 10x start: the model underflows (1e-145 against data of
    # 0.1), r = -y exactly, the differenced J is 0 and gtol's cosine 0 is 0/0; SciPy reports
    # the same success at x0, we also say what it means
    t = np.linspace(300.0, 360.0, 5)
    res = marquardt.least_squares(lambda p: p[0] * np.exp(-p[1] / t) - 0.1, [1.0, 1e5])
    assert res.success and res.status == 1
    np.testing.assert_array_equal(res.x, [1.0, 1e5])
    assert "the Jacobian is zero: no parameter changes the residuals" in res.message
    fit = marquardt.least_squares(lambda p: p[0] * np.exp(-p[1] / t) - 0.1, [1.0, 10.0])
    assert "Jacobian is zero" not in fit.message


def test_a_jacobian_non_finite_after_a_step_is_named_in_the_message():
    # benchmarks/zoo.py, Richards from 2x off: the fit reaches the edge of the model's domain
    # and a difference step crosses it; the message said "residuals or the Jacobian"
    with np.errstate(invalid="ignore"):
        res = marquardt.least_squares(lambda p: np.sqrt(1.0 - p[0]) + np.array([1.0, 2.0]),
                                      [0.5])
    assert res.status == -3 and not res.success and res.nit > 0
    assert np.all(np.isfinite(res.fun)) and 1.0 - 1.5e-8 < res.x[0] < 1.0
    assert "(the Jacobian at x, the last accepted point, whose residuals are finite" in \
        res.message


def test_the_compiled_loop_runs_under_xla_or_as_a_plain_graph_where_xla_cannot(monkeypatch):
    """A warm TensorFlow model's solve is compiled with XLA (``host_functions.WarmLoop``); a
    model XLA cannot compile (``tf.numpy_function``) runs the same loop as a plain graph,
    with the answer the host executor gives."""
    monkeypatch.setattr(_tiering, "TENSORFLOW_EVALUATIONS", 0)
    t = np.linspace(0.0, 3.0, 25)
    y = 2.0 * np.exp(-0.7 * t)

    def fused(p):
        return p[0] * tf.exp(-p[1] * t) - y

    def through_numpy(p):
        e = tf.numpy_function(lambda b: np.exp(-b * t), [p[1]], tf.float64)
        return p[0] * tf.reshape(e, [25]) - y

    def loop_of(fun):
        (key,) = [k for k in driver._cache if k[0] == "warm" and k[1][0][1] is fun]
        return driver._cache[key]

    for fun, jac, xla in ((fused, "auto", True), (through_numpy, "2-point", False)):
        host = marquardt.least_squares(fun, [1.0, 1.0], jac=jac)
        warm = marquardt.least_squares(fun, [1.0, 1.0], jac=jac)
        loop = loop_of(fun)
        assert loop.xla is xla and (loop.failed is None) is xla
        np.testing.assert_allclose(warm.x, [2.0, 0.7], rtol=1e-9)
        np.testing.assert_allclose(warm.x, host.x, rtol=1e-9)
        assert warm.success and loop.experimental_get_tracing_count() == 1
