"""Tests of the SciPy bridge (``marquardt.scipy``): exact Jacobians, SciPy integration, models.

Catalogue of smooth problems with closed-form derivatives checked against central finite
differences (1e-7 relative) and across Jacobian modes; matrix-free products against the dense
J (1e-12); compiled once (no retrace); every validation error by its message; Keras models
(needs ``marquardt.keras``, whose loss→residual mapping the bridge uses) against
``numpy.linalg.lstsq`` and against our own LM trainer.
"""

import concurrent.futures
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from marquardt._backend.tensorflow.jacobian import NoGradientError
from marquardt.scipy import (
    ResidualCheck, check_residuals, fit_model, model_functions, residual_functions)

try:  # The Keras residuals come from marquardt.keras (branch `keras`).
    import marquardt.keras._residuals  # noqa: F401
    HAVE_KERAS_RESIDUALS = True
except ImportError:
    HAVE_KERAS_RESIDUALS = False

needs_keras = pytest.mark.skipif(
    not HAVE_KERAS_RESIDUALS,
    reason="marquardt.keras residuals (marquardt.keras._residuals.model_residuals) are missing: "
           "model_functions/fit_model build on them; merge the `keras` branch to run these")

RNG = np.random.default_rng(0)
T = np.linspace(0.0, 3.0, 25)
Y = 2.0 * np.exp(-1.3 * T) + 0.5 + 0.01 * RNG.standard_normal(T.size)


# ---- problem catalogue: (fun, x0, args) with smooth residuals -------------------------------
def _decay(p, t, y):
    return p[0] * tf.exp(-p[1] * t) + p[2] - y


def _gauss(p, t, y):
    return p[0] * tf.exp(-((t - p[1]) ** 2) / (2.0 * p[2] ** 2)) - y


def _rosenbrock(p):
    return tf.stack([10.0 * (p[1] - p[0] ** 2), 1.0 - p[0]])


def _wide(p):  # n = 6 > m = 3: reverse mode under "auto"
    return tf.stack([tf.reduce_sum(tf.sin(p)), tf.reduce_prod(p[:3]) - 1.0, p[4] * tf.exp(p[5])])


def _mlp(p, t, y):  # 1-3-1 tanh network on the rows of t
    w1, b1, w2, b2 = p[0:3], p[3:6], p[6:9], p[9]
    h = tf.tanh(t[:, None] * w1[None, :] + b1[None, :])
    return tf.linalg.matvec(h, w2) + b2 - y


PROBLEMS = {
    "decay": (_decay, [1.5, 1.0, 0.2], (T, Y)),
    "gauss": (_gauss, [1.0, 1.2, 0.8], (T, Y)),
    "rosenbrock": (_rosenbrock, [-1.2, 1.0], ()),
    "wide": (_wide, [0.3, 0.5, 0.7, 0.9, 1.1, 0.2], ()),
    "mlp": (_mlp, list(np.linspace(-0.9, 0.8, 10)), (T, Y)),
}


def _central_differences(f, x):
    """Central differences, h = ε^(1/3)·max(1, |x|): error O(h²) ≈ 1e-11 relative."""
    x = np.asarray(x, np.float64)
    h = np.finfo(float).eps ** (1 / 3) * np.maximum(1.0, np.abs(x))
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h[i]
        cols.append((f(x + e) - f(x - e)) / (2 * h[i]))
    return np.stack(cols, axis=1)


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


# ---- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_jacobian_matches_central_differences(name):
    fun, x0, args = PROBLEMS[name]
    f, jac = residual_functions(fun, x0, args=args)
    x = np.asarray(x0) + 0.05
    j = jac(x)
    assert j.shape == (f.m, f.n) and j.dtype == np.float64
    assert _rel(j, _central_differences(f, x)) < 1e-7


def test_jacobian_modes_agree():
    fun, x0, args = PROBLEMS["mlp"]  # n = 10 < m = 25: "auto" is forward mode
    x = np.asarray(x0) - 0.1
    jacs = {mode: residual_functions(fun, x0, args=args, mode=mode)[1](x)
            for mode in ("auto", "reverse", "per_sample")}
    for mode in ("reverse", "per_sample"):
        np.testing.assert_allclose(jacs[mode], jacs["auto"], rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", ["decay", "mlp"])
def test_linear_operator_products_equal_dense_products(name):
    fun, x0, args = PROBLEMS[name]
    _, jac = residual_functions(fun, x0, args=args)
    _, op_jac = residual_functions(fun, x0, args=args, jac_form="operator")
    x = np.asarray(x0) + 0.1
    j, op = jac(x), op_jac(x)
    assert op.shape == j.shape and op.dtype == np.float64
    v = RNG.standard_normal(j.shape[1])
    u = RNG.standard_normal(j.shape[0])
    assert _rel(op.matvec(v), j @ v) < 1e-12
    assert _rel(op.rmatvec(u), j.T @ u) < 1e-12
    assert _rel(op @ v[:, None], (j @ v)[:, None]) < 1e-12  # column input, as lsmr may give
    assert _rel(op.T @ u, j.T @ u) < 1e-12


def test_compiled_once_no_retrace():
    calls = []

    def fun(p, t, y):
        calls.append(1)  # runs when traced (or called eagerly), not when the graph runs
        return p[0] * tf.exp(-p[1] * t) + p[2] - y

    f, jac = residual_functions(fun, [1.0, 1.0, 0.0], args=(T, Y))
    _, op_jac = residual_functions(fun, [1.0, 1.0, 0.0], args=(T, Y), jac_form="operator")
    f(np.zeros(3)), jac(np.zeros(3)), op_jac(np.zeros(3)).matvec(np.ones(3))
    before = len(calls)
    for k in range(5):
        x = np.array([1.0 + k, 0.5, -k])
        f(x), jac(x), f(list(x)), f(x.astype(np.float32))
        op = op_jac(x)
        op.matvec(np.ones(3)), op.rmatvec(np.ones(T.size))
        f(T + k, *x)  # curve_fit's form with new xdata of the same shape
    assert len(calls) == before


def test_calls_from_several_threads_and_strided_inputs():
    f, jac = residual_functions(_decay, [1.0, 1.0, 0.0], args=(T, Y))
    points = [np.array([1.0 + k / 7, 0.5 + k / 11, -k / 5]) for k in range(16)]
    expected = [(f(x), jac(x)) for x in points]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda x: (f(x), jac(x)), points * 4))
    for (r, j), (r0, j0) in zip(got, expected * 4):
        np.testing.assert_array_equal(r, r0)
        np.testing.assert_array_equal(j, j0)
    strided = np.zeros(6)
    strided[::2] = points[3]
    np.testing.assert_array_equal(f(strided[::2]), expected[3][0])


# ---- SciPy integration ---------------------------------------------------------------------
def test_least_squares_with_exact_jacobian():
    f, jac = residual_functions(_decay, [1.0, 1.0, 0.0], args=(T, Y))
    ours = scipy.optimize.least_squares(f, [1.0, 1.0, 0.0], jac=jac, xtol=1e-14, ftol=1e-14)
    fd = scipy.optimize.least_squares(f, [1.0, 1.0, 0.0], xtol=1e-14, ftol=1e-14)
    assert ours.success
    np.testing.assert_allclose(ours.x, fd.x, rtol=1e-6)
    np.testing.assert_allclose(ours.x, [2.0, 1.3, 0.5], atol=0.05)


def test_least_squares_matrix_free_lsmr():
    f, jac = residual_functions(_decay, [1.0, 1.0, 0.0], args=(T, Y), jac_form="operator")
    res = scipy.optimize.least_squares(f, [1.0, 1.0, 0.0], jac=jac, tr_solver="lsmr",
                                       xtol=1e-14, ftol=1e-14)
    dense = scipy.optimize.least_squares(f, [1.0, 1.0, 0.0], jac=residual_functions(
        _decay, [1.0, 1.0, 0.0], args=(T, Y))[1], xtol=1e-14, ftol=1e-14)
    np.testing.assert_allclose(res.x, dense.x, rtol=1e-7)


def test_curve_fit_form():
    def model(p, t):
        return p[0] * tf.exp(-p[1] * t) + p[2]

    f, jac = residual_functions(model, [1.0, 1.0, 0.0], args=(T,))
    popt, _ = scipy.optimize.curve_fit(f, T, Y, p0=[1.0, 1.0, 0.0], jac=jac)
    ref, _ = scipy.optimize.curve_fit(lambda t, a, b, c: a * np.exp(-b * t) + c, T, Y,
                                      p0=[1.0, 1.0, 0.0])
    np.testing.assert_allclose(popt, ref, rtol=1e-6)
    np.testing.assert_allclose(f(T, *popt), f(popt))
    np.testing.assert_allclose(jac(T, *popt), jac(popt))


# ---- front-door validation ---------------------------------------------------------------------
def test_mismatched_shape_and_dtype_are_clear_errors():
    f, jac = residual_functions(_decay, [1.0, 1.0, 0.0], args=(T, Y))
    with pytest.raises(ValueError, match=r"`x` must have shape \(3,\).*Received: x with shape \(2"):
        f(np.zeros(2))
    with pytest.raises(ValueError, match=r"`x` must have shape \(3,\).*shape \(3, 1\) in jac"):
        jac(np.zeros((3, 1)))
    with pytest.raises(TypeError, match=r"`x` must hold real numbers.*complex128"):
        f(np.zeros(3, complex))
    with pytest.raises(TypeError, match=r"needs n=3 parameters\. Received: 2"):
        f(T, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"`xdata` must have the shape of args\[0\].*\(25,\)"):
        f(T[:5], 1.0, 2.0, 3.0)
    with pytest.raises(TypeError, match=r"Received: no arguments"):
        f()


def test_curve_fit_form_needs_xdata_in_args():
    f, _ = residual_functions(_rosenbrock, [1.0, 1.0])
    with pytest.raises(TypeError, match=r"needs `args\[0\]` to be the xdata array"):
        f(T, 1.0, 2.0)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(fun=3), TypeError, r"`fun` must be callable\. Received: fun=3"),
    (dict(x0=[[1.0]]), ValueError, r"`x0` must have 0 or 1 dimension"),
    (dict(x0=[np.nan, 1.0]), ValueError, r"`x0` must contain only finite values"),
    (dict(x0=["a"]), ValueError, r"`x0` must hold real numbers"),
    (dict(mode="central"), ValueError, r"`mode` must be one of .*Received: mode='central'"),
    (dict(jac_form="sparse"), ValueError, r"`jac_form` must be one of .*jac_form='sparse'"),
    (dict(kwargs=[1]), TypeError, r"`kwargs` must be a dict"),
    (dict(jit_compile="yes"), TypeError, r"`jit_compile` must be True or False"),
])
def test_invalid_arguments(kwargs, error, match):
    call = dict(fun=_rosenbrock, x0=[1.0, 1.0])
    call.update(kwargs)
    with pytest.raises(error, match=match):
        residual_functions(call.pop("fun"), call.pop("x0"), **call)


def test_invalid_residual_functions():
    with pytest.raises(TypeError, match=r"must return a TensorFlow tensor.*ndarray"):
        residual_functions(lambda p: np.array([1.0, 2.0]), [1.0])
    with pytest.raises(ValueError, match=r"1-D array of residuals.*\(\).*A scalar is a loss"):
        residual_functions(lambda p: tf.reduce_sum(p ** 2), [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`fun\(x0\)` must contain only finite values"):
        residual_functions(lambda p: tf.math.log(p), [-1.0, 2.0])
    with pytest.raises(TypeError, match=r"floating-point residuals.*int32"):
        residual_functions(lambda p: tf.constant([1, 2]), [1.0])
    with pytest.raises(ZeroDivisionError, match=r"`fun` raised at x0"):
        residual_functions(lambda p: 1 / 0, [1.0])


def test_per_sample_checks_rows():
    def centred(p, t, y):  # mixes rows: the mean of the whole batch
        r = p[0] * t - y
        return r - tf.reduce_mean(r)

    with pytest.raises(ValueError, match=r"residual block i to depend on row i.*mode='auto'"):
        residual_functions(centred, [1.0], args=(T, Y), mode="per_sample")
    with pytest.raises(ValueError, match=r"needs array arguments in `args`"):
        residual_functions(_rosenbrock, [1.0, 1.0], mode="per_sample")
    with pytest.raises(ValueError, match=r"same number of rows.*\[5, 25\]"):
        residual_functions(lambda p, t, w: p[0] * t - tf.reduce_sum(w), [1.0], args=(T, np.ones(5)),
                           mode="per_sample")


def test_per_sample_gives_zero_columns_for_unused_parameters():
    """A parameter the residuals ignore is a zero column, not an error (bridge.py says why the
    Keras trainer's per-sample Jacobian, which refuses such a weight, is not reused)."""
    for fun in (lambda p, t, y: p[0] * t - y, lambda p, t, y: t - y):
        _, jac = residual_functions(fun, [1.0, 2.0], args=(T, Y), mode="per_sample")
        j = jac(np.array([1.0, 2.0]))
        assert j.shape == (T.size, 2) and not j[:, 1].any()



def test_per_sample_jacobian_of_a_gather_of_the_parameters():
    """``tf.gather`` of x has a sparse (IndexedSlices) gradient; the Jacobian is still dense."""
    def fun(p, t, y):
        return tf.gather(p, 0) * tf.exp(-tf.gather(p, 1) * t) - y

    _, jac = residual_functions(fun, [2.0, 1.3], args=(T, Y), mode="per_sample")
    j = jac(np.array([2.0, 1.3]))
    e = np.exp(-1.3 * T)
    np.testing.assert_allclose(j, np.stack([e, -2.0 * T * e], axis=1), rtol=1e-12)


@pytest.mark.parametrize("options", [{}, {"jac_form": "operator"}, {"mode": "per_sample"}])
def test_op_without_gradient_is_an_error_not_a_zero_column(options):
    """tf.math.betainc has no gradient in a: SciPy would see a parameter that does nothing."""
    def fun(p, t):
        return tf.math.betainc(p[0] + 0 * t, 2.0 + 0 * t, 0.3 + 0 * t) + p[1] * t - 0.5

    with pytest.raises(NoGradientError, match=r"^`fun` cannot be differentiated by TensorFlow "
                       r"with respect to parameter 0: autodiff gives a zero Jacobian column"):
        residual_functions(fun, [1.5, 1.0], args=(T,), **options)


def test_a_parameter_without_effect_is_not_an_error():
    f, jac = residual_functions(lambda p, t: p[0] * t - 1.0 + 0 * p[1], [1.0, 2.0], args=(T,))
    assert not jac(np.array([1.0, 2.0]))[:, 1].any()

# ---- check_residuals ---------------------------------------------------------------------------
def _line(p):
    return p[0] * T + p[1] - Y


@pytest.mark.parametrize("loss, scale, words", [
    (lambda p: 0.5 * tf.reduce_sum(_line(p) ** 2), 1.0, "loss = ½Σr²"),
    (lambda p: tf.reduce_sum(_line(p) ** 2), 2.0, "loss = Σr²"),
    (lambda p: tf.reduce_mean(_line(p) ** 2), 2.0 / T.size, "mean(r²)"),
])
def test_check_residuals_consistent(loss, scale, words):
    check = check_residuals(_line, [1.0, 0.0], loss)
    assert isinstance(check, ResidualCheck)
    assert check.consistent and not check.looks_like_gradient
    assert check.scale == pytest.approx(scale, rel=1e-12)
    assert words in check.relation and "Consistent" in str(check)
    assert check.gradient_error < 1e-12


def test_check_residuals_catches_a_gradient():
    def gradient(p):  # ∇ of Σr², what tf.GradientTape would give
        r = _line(p)
        return tf.stack([tf.reduce_sum(2.0 * r * T), tf.reduce_sum(2.0 * r)])

    check = check_residuals(gradient, [1.0, 0.0], lambda p: tf.reduce_sum(_line(p) ** 2))
    assert not check.consistent and check.looks_like_gradient
    assert "returns the gradient of the loss" in check.message
    assert "least_squares minimises ½‖fun(x)‖²" in check.message


def test_check_residuals_other_mismatches():
    loss = lambda p: tf.reduce_sum(_line(p) ** 2)  # noqa: E731
    scalar = check_residuals(lambda p: tf.reshape(loss(p), [1]), [1.0, 0.0], loss)
    assert not scalar.consistent and "returns one value" in scalar.message
    absolute = check_residuals(_line, [1.0, 0.0], lambda p: tf.reduce_sum(tf.abs(_line(p))))
    assert not absolute.consistent and "is not one constant" in absolute.message
    assert absolute.max_relative_error > 1e-3
    numpy_fun = check_residuals(lambda p: np.asarray(_line(p)), [1.0, 0.0], loss)
    assert numpy_fun.consistent and numpy_fun.gradient_error is None
    with pytest.raises(ValueError, match=r"`loss_fn` must return one number"):
        check_residuals(_line, [1.0, 0.0], _line)
    with pytest.raises(TypeError, match=r"`loss_fn` must be callable"):
        check_residuals(_line, [1.0, 0.0], "mse")


class _Counted:
    """Counts the calls of a function; check_residuals runs it eagerly, so each is one call."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def _gradient_of_sum_of_squares(p):
    r = _line(p)
    return tf.stack([tf.reduce_sum(2.0 * r * T), tf.reduce_sum(2.0 * r)])


@pytest.mark.parametrize("fun", [_line, _gradient_of_sum_of_squares],
                         ids=["residuals", "gradient"])
def test_check_residuals_evaluates_each_function_once_per_point(fun):
    """x0 and N_POINTS points around it: one call of the loss and of fun at each (the gradient
    case, m = n, needs ∇L at every point too: it comes from the same call)."""
    from marquardt.scipy._check import N_POINTS

    counted_fun = _Counted(fun)
    counted_loss = _Counted(lambda p: tf.reduce_sum(_line(p) ** 2))
    check = check_residuals(counted_fun, [1.0, 0.0], counted_loss)
    assert check.looks_like_gradient == (fun is _gradient_of_sum_of_squares)
    assert counted_loss.calls == 1 + N_POINTS
    assert counted_fun.calls == 1 + N_POINTS


# ---- SciPy imported lazily -------------------------------------------------------------------
_BLOCK_SCIPY = """
import sys
class _NoSciPy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy" or name.startswith("scipy."):
            raise ImportError("scipy blocked for this test")
sys.meta_path.insert(0, _NoSciPy())
"""


def _python(code):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    src = os.path.join(os.path.dirname(__file__), os.pardir, "src")
    env["PYTHONPATH"] = os.pathsep.join([os.path.abspath(src), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_import_marquardt_does_not_import_scipy_literally():
    # The brief's check, as it stands. It holds because `import marquardt` imports nothing
    # heavy until a name is used (marquardt/__init__.py, PEP 562).
    out = _python("import marquardt, sys; assert 'scipy' not in sys.modules; print('ok')")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_import_marquardt_scipy_does_not_import_scipy():
    # Once TensorFlow is imported, 'scipy' is in sys.modules whatever marquardt does:
    # TensorFlow imports SciPy when it can (tensorflow/python/keras/engine/
    # training_arrays_v1.py, inside try/except ImportError). So SciPy is made unimportable
    # first: an import of SciPy by marquardt or the bridge would then fail loudly instead of
    # being hidden. The bridge's parts that need no SciPy must work too.
    out = _python(_BLOCK_SCIPY + """
import marquardt, sys; assert 'scipy' not in sys.modules
import marquardt.scipy, tensorflow as tf
assert "scipy" not in sys.modules
f, jac = marquardt.scipy.residual_functions(lambda p: tf.stack([p[0] - 1.0]), [0.0])
assert jac([2.0]).tolist() == [[1.0]]
assert "scipy" not in sys.modules
print("ok")
""")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


# ---- Keras models (need marquardt.keras) -----------------------------------------------------
@pytest.fixture
def float64():
    """Float64 Keras layers. floatx alone is not enough: Keras caches a global dtype policy
    from floatx when the first layer is made, and later layers follow the cached policy."""
    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_floatx(old_floatx)
    keras.config.set_dtype_policy(old_policy)
    keras.backend.clear_session(free_memory=False)


X3 = RNG.standard_normal((40, 3))
Y3 = (X3 @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.01 * RNG.standard_normal(40))[:, None]


def _linear_model():
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    assert net.layers[0].kernel.dtype == "float64", "the float64 fixture did not take effect"
    return net


@needs_keras
@pytest.mark.parametrize("method", ["lm", "trf", "dogbox"])
def test_fit_model_linear_equals_lstsq(float64, method):
    net = _linear_model()
    res = fit_model(net, X3, Y3, loss="mse", method=method, ftol=1e-15, xtol=1e-15, gtol=1e-15)
    ref = np.linalg.lstsq(np.c_[X3, np.ones(len(X3))], Y3[:, 0], rcond=None)[0]
    got = np.r_[net.layers[0].kernel.numpy().ravel(), net.layers[0].bias.numpy()]
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)  # written back into the model
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=1e-10)
    resid = np.c_[X3, np.ones(len(X3))] @ ref - Y3[:, 0]
    assert res.cost == pytest.approx(np.mean(resid**2), rel=1e-10)  # cost = Keras' mse


@needs_keras
def test_model_residuals_reproduce_keras_loss(float64):
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                            keras.layers.Dense(2)])
    y = np.c_[Y3, Y3**2]
    sw = RNG.uniform(0.5, 2.0, len(X3))
    fns = model_functions(net, X3, y, loss="mse", sample_weight=sw)
    w = fns.get_weights_vector()
    r = fns.fun(w)
    loss = keras.losses.MeanSquaredError()(y, net(X3), sample_weight=sw)
    assert 0.5 * r @ r == pytest.approx(float(loss), rel=1e-12)
    j = fns.jac(w)
    assert j.shape == (2 * len(X3), w.size)
    assert _rel(j, _central_differences(fns.fun, w)) < 1e-7
    other = model_functions(net, X3, y, loss="mse", sample_weight=sw, mode="reverse")
    np.testing.assert_allclose(other.jac(w), j, rtol=0, atol=1e-13)
    op = model_functions(net, X3, y, loss="mse", sample_weight=sw, jac_form="operator").jac(w)
    v, u = RNG.standard_normal(w.size), RNG.standard_normal(2 * len(X3))
    assert _rel(op.matvec(v), j @ v) < 1e-12 and _rel(op.rmatvec(u), j.T @ u) < 1e-12


@needs_keras
def test_float64_layers_in_a_float32_model_see_unrounded_data():
    # floatx stays float32: only the layer is float64, and the data must reach it unrounded.
    net = keras.Sequential([keras.Input((3,), dtype="float64"),
                            keras.layers.Dense(1, dtype="float64")])
    res = fit_model(net, X3, Y3, loss="mse", method="lm", ftol=1e-15, xtol=1e-15, gtol=1e-15)
    ref = np.linalg.lstsq(np.c_[X3, np.ones(len(X3))], Y3[:, 0], rcond=None)[0]
    np.testing.assert_allclose(res.x, ref, rtol=0, atol=1e-10)


@needs_keras
def test_model_weights_vector_roundtrip(float64):
    net = _linear_model()
    net.compile(loss="mae")  # loss=None takes the compiled loss
    fns = model_functions(net, X3, Y3)
    w = fns.get_weights_vector()
    fns.set_weights_vector(w + 1.0)
    np.testing.assert_array_equal(fns.get_weights_vector(), w + 1.0)
    np.testing.assert_allclose(net.layers[0].bias.numpy(), w[-1:] + 1.0)
    with pytest.raises(ValueError, match=r"`w` must have shape \(4,\).*shape \(3,\)"):
        fns.set_weights_vector(w[:3])
    r = fns.fun(w + 1.0)
    assert np.mean(np.abs(net(X3).numpy() - Y3)) == pytest.approx(0.5 * r @ r, rel=1e-10)


@needs_keras
def test_fit_model_bounds_robust_loss_and_lsmr(float64):
    net = _linear_model()
    res = fit_model(net, X3, Y3, loss="mse", robust_loss="soft_l1", f_scale=0.1,
                    bounds=(-1.5, 1.5), jac_form="operator", tr_solver="lsmr")
    assert res.success and np.all(res.x >= -1.5) and np.all(res.x <= 1.5)
    assert res.x[1] == pytest.approx(-1.5)  # the weight -2 is held at its bound
    np.testing.assert_array_equal(np.r_[net.layers[0].kernel.numpy().ravel(),
                                        net.layers[0].bias.numpy()], res.x)


@needs_keras
def test_fit_model_errors(float64):
    net = _linear_model()
    with pytest.raises(ValueError, match=r"`method` must be one of .*Received: method='bfgs'"):
        fit_model(net, X3, Y3, loss="mse", method="bfgs")
    with pytest.raises(TypeError, match=r"supplies jac, x0 itself"):
        fit_model(net, X3, Y3, loss="mse", jac="2-point", x0=np.zeros(4))
    with pytest.raises(ValueError, match=r"`method='lm'` needs a dense Jacobian"):
        fit_model(net, X3, Y3, loss="mse", method="lm", jac_form="operator")
    with pytest.raises(ValueError, match=r"`method='lm'` needs at least as many residuals"):
        fit_model(net, X3[:2], Y3[:2], loss="mse", method="lm")
    with pytest.raises(ValueError, match=r"`loss` must be given when `model` was not compiled"):
        model_functions(net, X3, Y3)
    with pytest.raises(ValueError,
                       match=r"same number of samples\. Received: x sizes 40, y sizes 39"):
        model_functions(net, X3, Y3[:39], loss="mse")
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model"):
        model_functions(lambda x: x, X3, Y3, loss="mse")
    with pytest.raises(ValueError, match=r"least-squares form"):
        model_functions(net, X3, Y3, loss="cosine_similarity")
    bad = X3.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"`x` must contain only finite values. Received: x\[3, 1\]=nan"):
        model_functions(net, bad, Y3, loss="mse")
    with pytest.raises(ValueError, match=r"`sample_weight` must be non-negative.*-1\.0"):
        model_functions(net, X3, Y3, loss="mse", sample_weight=np.r_[-1.0, np.ones(39)])
    frozen = _linear_model()
    frozen.trainable = False
    with pytest.raises(ValueError, match=r"`model` must have trainable weights"):
        model_functions(frozen, X3, Y3, loss="mse")
    # a penalty the residuals cannot carry is refused, not silently dropped from the cost
    penalised = keras.Sequential([keras.Input((3,)),
                                  keras.layers.Dense(1, kernel_regularizer="l2")])
    with pytest.raises(ValueError, match=r"must not add regularisation losses"):
        model_functions(penalised, X3, Y3, loss="mse")


@needs_keras
def test_y_that_only_broadcasts_against_the_outputs_is_refused(float64):
    """y of shape (40, 2) for a model with one output: Keras broadcasts the (40, 1)
    predictions against it and its loss averages over the two columns, but the residuals had
    twice as many entries at the one-output scale, so ½Σr² was twice Keras' loss (and the
    cost fit_model reports). It is refused as marquardt.keras refuses it; a y of (40,) or
    (40, 1, 1) (the same entries) is taken."""
    net = _linear_model()
    with pytest.raises(ValueError, match=r"^`y` must match the model's outputs for the "
                                         r"mean_squared_error loss\. Received: y with shape "
                                         r"\(40, 2\) for outputs of shape \(40, 1\)$"):
        model_functions(net, X3, np.hstack([Y3, 2 * Y3]), loss="mse")
    expected = float(keras.losses.MeanSquaredError()(Y3, net(X3)))
    for y in (Y3[:, 0], Y3[:, :, None]):
        fns = model_functions(net, X3, y, loss="mse")
        assert 0.5 * np.sum(fns.fun(fns.get_weights_vector()) ** 2) == pytest.approx(expected)


@needs_keras
def test_fit_model_cost_equals_our_lm_trainer(float64):
    import marquardt.keras

    if not hasattr(marquardt.keras, "fit"):
        pytest.skip("marquardt.keras.fit (our LM trainer) is missing: merge the `keras` branch")
    t = np.linspace(0.0, 2.0, 40)[:, None]
    y = 2.0 * np.exp(-1.3 * t) + 0.02 * RNG.standard_normal((40, 1))

    def model():  # y = exp(w t + b): nonlinear in w
        net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, "exponential")])
        net.set_weights([np.zeros((1, 1)), np.zeros(1)])
        return net

    trained = model()
    marquardt.keras.fit(trained, t, y, loss="mse", epochs=50, verbose=0, shuffle=False)
    fns = model_functions(trained, t, y, loss="mse")
    r = fns.fun(fns.get_weights_vector())
    lm_cost = 0.5 * r @ r
    res = fit_model(model(), t, y, loss="mse", method="trf", ftol=1e-15, xtol=1e-15,
                    gtol=1e-15)
    assert abs(res.cost - lm_cost) <= 1e-8 * lm_cost


def test_check_residuals_names_a_scalar_loss_passed_as_fun():
    """The mistake check_residuals is for: the loss itself given as ``fun`` (one value). It
    used to fail inside NumPy (a 0-d r); it now says what is wrong, with no relation."""
    t = np.linspace(0.0, 4.0, 20)
    y = 2.0 * np.exp(-t) + 0.3

    def loss(p, t, y):
        return tf.reduce_sum((p[0] * tf.exp(-p[1] * t) + p[2] - y) ** 2)

    check = check_residuals(loss, [1.0, 1.0, 0.0], loss, args=(t, y))
    assert not check.consistent and check.relation == "none"
    assert str(check).startswith("Mismatch: `fun` returns one value; if it is the loss, "
                                 "least_squares minimises its square.")


def test_a_numpy_function_given_to_the_bridge_is_told_what_the_bridge_needs():
    t = np.linspace(0.0, 4.0, 20)
    y = 2.0 * np.exp(-t) + 0.3
    with pytest.raises(NoGradientError, match=r"The bridge differentiates TensorFlow \(or JAX\) "
                                              r"ops only: a NumPy call on the parameters"):
        residual_functions(lambda p: p[0] * np.exp(-p[1] * t) + p[2] - y,
                                           [1.0, 1.0, 0.0])


def test_fitting_several_keras_models_prints_no_retracing_warning(tmp_path):
    """The bridge traces its vectorised Jacobian (TensorFlow's pfor) once per model, by
    design; TensorFlow's "triggered tf.function retracing" warning about it, printed from the
    fifth model on, is dropped (``_backend/tensorflow/quiet_log.py``)."""
    script = tmp_path / "models.py"
    script.write_text(textwrap.dedent("""
        import numpy as np, keras, marquardt.scipy as ms
        x = np.random.default_rng(0).normal(size=(50, 2)); y = x[:, :1] ** 2
        for _ in range(6):
            net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(4, "tanh"),
                                    keras.layers.Dense(1)])
            ms.fit_model(net, x, y, loss="mse", max_nfev=2)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "retracing" not in proc.stderr


def test_keras_steps_retracing_is_dropped_only_inside_our_keras_fit():
    """Keras traces its train and test steps once per network, and TensorFlow warns from the
    fifth; during a ``marquardt.keras`` fit (``quiet_log.keras_fitting``) the warning about
    those steps is dropped, outside it kept (a user's own ``model.fit`` loop)."""
    import logging

    import tensorflow as tf

    from marquardt._backend.tensorflow import quiet_log

    seen = []

    class Catch(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    message = ("5 out of the last 208 calls to <function TensorFlowTrainer._make_function."
               "<locals>.multi_step_on_iterator at 0x7f> triggered tf.function retracing.")
    other = ("5 out of the last 9 calls to <function user_step at 0x7f> triggered tf.function "
             "retracing.")
    handler = Catch()
    tf.get_logger().addHandler(handler)
    try:
        with quiet_log.keras_fitting():
            tf.get_logger().warning(message)
            tf.get_logger().warning(other)
        tf.get_logger().warning(message)
    finally:
        tf.get_logger().removeHandler(handler)
    assert seen == [other, message]


def test_a_tensorflow_function_with_backend_jax_is_named():
    pytest.importorskip("jax")
    t = np.linspace(0.0, 4.0, 20)
    y = 2.0 * np.exp(-t)
    with pytest.raises(TypeError, match=r"`fun` must return a JAX array with backend='jax'. "
                                        r"Received: a TensorFlow EagerTensor at x0"):
        residual_functions(lambda p: p[0] * tf.exp(-p[1] * t) - y, [1.0, 1.0], backend="jax")


def test_an_error_of_fun_at_x0_is_the_one_numpy_values_raise():
    """With ``backend='auto'`` the bridge calls ``fun`` with NumPy values (the JAX probe),
    then with tensors. When both fail, the first error is reported, as ``least_squares``
    and SciPy report it: an x0 one entry short is an IndexError naming ``fun`` for a JAX
    function (it was JAX refusing a TensorFlow tensor, as if the function were TensorFlow's)
    and for a TensorFlow one (it was TensorFlow's StridedSlice InvalidArgumentError)."""
    jnp = pytest.importorskip("jax.numpy")
    t = np.linspace(0.0, 4.0, 20)
    y = 2.0 * np.exp(-t) + 0.5
    short = r"^`fun` raised at x0: index 3 is out of bounds for axis 0 with size 3$"
    with pytest.raises(IndexError, match=short):
        residual_functions(lambda p, t, y: p[0] * jnp.exp(-p[1] * t) + p[3] - y,
                           [1.0, 1.0, 0.0], args=(t, y))
    with pytest.raises(IndexError, match=short):
        residual_functions(lambda p, t, y: p[0] * tf.exp(-p[1] * t) + p[3] - y,
                           [1.0, 1.0, 0.0], args=(t, y))
