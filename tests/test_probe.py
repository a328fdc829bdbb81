"""The shared first call of a residual function (``marquardt._probe``), alone and through the
two front doors that use it: ``marquardt.least_squares`` and ``marquardt.scipy``."""

import numpy as np
import pytest
import tensorflow as tf

import marquardt
from marquardt import _probe
from marquardt._probe import check_zero_columns
from marquardt._backend.tensorflow.jacobian import NoGradientError
from marquardt.scipy import residual_functions


def _raise(exc):
    def call():
        raise exc
    return call


def test_call_at_x0_names_the_function_and_keeps_the_type():
    assert _probe.call_at_x0(lambda: 3, "fun") == 3
    with pytest.raises(ZeroDivisionError, match=r"^`fun` raised at x0: boom$") as info:
        _probe.call_at_x0(_raise(ZeroDivisionError("boom")), "fun")
    assert str(info.value.__cause__) == "boom"
    with pytest.raises(KeyError, match=r"`model residuals` raised at x0"):
        _probe.call_at_x0(_raise(KeyError("w")), "model residuals")


def test_call_at_x0_rebuilds_tensorflow_errors_with_the_name():
    """TensorFlow's OpError takes the node and the op too: rebuilt with them, same type, the
    function named; float32 meeting the float64 parameters gets the remedy."""
    tf_error = tf.errors.InvalidArgumentError(None, None, "bad shape")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"^`fun` raised at x0: bad shape$"):
        _probe.call_at_x0(_raise(tf_error), "fun")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"^`f` raised at p0: cannot compute AddV2 .* was expected to be a "
                             r"double tensor but is a float tensor .*\(a float32 tensor, such as "
                             r"tf\.constant\(0\.5\) .* write tf\.constant\(0\.5, tf\.float64\)"):
        _probe.call_at_x0(lambda: tf.constant([1.0], tf.float64) + tf.constant([0.5]), "f",
                          "at p0")


def test_a_traced_float32_mix_is_named_with_the_remedy():
    """Traced, float32 meeting float64 is TensorFlow's TypeError (from the op's construction,
    not an OpError): it gets the name and the remedy too, and ``float32_fix`` is added to the
    remedy (``curve_fit_batch``'s dtype='float32')."""
    error = TypeError("Input 'y' of 'Mul' Op has type float32 that does not match type "
                      "float64 of argument 'x'.")
    with pytest.raises(TypeError, match=r"^`f` raised at p0: Input 'y' .* argument 'x'\. \(a "
                                        r"float32 tensor, .* tf\.cast\(\.\.\., tf\.float64\); "
                                        r"or pass dtype='float32' to fit in single precision\)$"):
        _probe.call_at_x0(_raise(error), "f", "at p0", _probe.FLOAT32_DTYPE_FIX)
    with pytest.raises(TypeError, match=r"^`f` raised at p0: no float here$"):
        _probe.call_at_x0(_raise(TypeError("no float here")), "f", "at p0",
                          _probe.FLOAT32_DTYPE_FIX)


def test_call_at_x0_reraises_what_it_cannot_rebuild():
    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}{b}")

    with pytest.raises(Odd, match=r"^12$"):
        _probe.call_at_x0(_raise(Odd(1, 2)), "fun")
    ours = NoGradientError("`fun` cannot be differentiated")
    with pytest.raises(NoGradientError, match=r"^`fun` cannot be differentiated$"):
        _probe.call_at_x0(_raise(ours), "fun")


def test_returns_numpy():
    assert _probe.returns_numpy(np.ones(2)) and _probe.returns_numpy(1.5)
    assert not _probe.returns_numpy(tf.ones(2))


@pytest.mark.parametrize("value, error, match", [
    (tf.constant([1, 2]), TypeError,
     r"^`fun` must return floating-point residuals\. Received: dtype int32 at x0$"),
    (np.ones((2, 2)), ValueError,
     r"^`fun` must return a 1-D array of residuals, shape \(m,\)\. Received: shape \(2, 2\) "
     r"at x0\.$"),
    (tf.constant(1.0), ValueError,
     r"Received: shape \(\) at x0\. A scalar is a loss, not residuals"),
    (np.zeros(0), ValueError,
     r"^`fun` must return at least one residual\. Received: shape \(0,\) at x0$"),
    (np.array([1.0, np.inf]), ValueError,
     r"^`fun\(x0\)` must contain only finite values\. Received: fun\(x0\)\[1\]=inf"),
])
def test_residual_vector_rejects(value, error, match):
    with pytest.raises(error, match=match):
        _probe.residual_vector(value, "fun")


def test_residual_vector_accepts():
    out = _probe.residual_vector(tf.constant([1.0, 2.0], tf.float32), "fun")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2,)


def test_both_front_doors_report_alike():
    """The same wrong function gives the same words in least_squares and residual_functions."""
    for fun, error, match in [
        (lambda p: 1 / 0, ZeroDivisionError, r"^`fun` raised at x0: division by zero$"),
        (lambda p: tf.constant([1, 2]), TypeError,
         r"^`fun` must return floating-point residuals\. Received: dtype int32 at x0$"),
        (lambda p: tf.reshape(tf.concat([p, p], 0), (2, 2)), ValueError,
         r"1-D array of residuals, shape \(m,\)\. Received: shape \(2, 2\) at x0"),
    ]:
        for front_door in (marquardt.least_squares, residual_functions):
            with pytest.raises(error, match=match):
                front_door(fun, [1.0, 2.0])


def test_a_scalar_is_one_residual_to_least_squares_and_a_loss_to_the_bridge():
    # SciPy's least_squares takes a scalar as one residual; the bridge, whose output is what
    # SciPy is handed, names a scalar as the loss it usually is (tests/test_scipy_bridge.py)
    res = marquardt.least_squares(lambda p: tf.reduce_sum(p ** 2) - 5.0, [1.0, 2.0])
    assert res.fun.shape == (1,) and abs(res.fun[0]) < 1e-12
    with pytest.raises(ValueError, match=r"Received: shape \(\) at x0\. A scalar is a loss"):
        residual_functions(lambda p: tf.reduce_sum(p ** 2), [1.0, 2.0])


def test_least_squares_numpy_with_finite_differences_still_runs():
    res = marquardt.least_squares(lambda p: np.asarray(p) - 1.0, [3.0, 0.0], jac="2-point")
    np.testing.assert_allclose(res.x, [1.0, 1.0], atol=1e-8)


def test_check_zero_columns_costs_three_evaluations_when_all_is_well():
    calls = []

    def residual_at(x):
        calls.append(1)
        return np.array([x[0] ** 2, 1.0])  # columns 1..999 have no effect at all

    check_zero_columns(np.arange(1, 1000), residual_at, np.zeros(1000))
    assert len(calls) == 3  # r(x0), then one joint central difference


def test_check_zero_columns_zero_first_derivative_is_not_a_missing_gradient():
    # b in a·exp(−(b·t)²) at b = 0: dr/db = 0 exactly, but the residuals move to second order
    t = np.linspace(0.0, 5.0, 30)
    check_zero_columns([1], lambda p: p[0] * np.exp(-(p[1] * t) ** 2), np.array([2.0, 0.0]))


def test_check_zero_columns_names_the_parameter_that_moves():
    t = np.linspace(0.0, 1.0, 5)
    with pytest.raises(NoGradientError, match=r"^`f` cannot be differentiated by TensorFlow with "
                       r"respect to parameter 2: autodiff gives a zero Jacobian column"):
        check_zero_columns([0, 2], lambda p: p[1] * t + p[2] * t ** 2, np.ones(3), "f")


def test_front_doors_accept_a_zero_first_derivative():
    t = np.linspace(0.0, 5.0, 30)
    y = 2.0 * np.exp(-(0.3 * t) ** 2)

    def model(tt, a, b):
        return a * tf.exp(-(b * tt) ** 2)

    marquardt.least_squares(lambda p: model(t, p[0], p[1]) - y, [2.0, 0.0], max_nfev=3)
    residual_functions(lambda p, tt: model(tt, p[0], p[1]) - y, [2.0, 0.0], args=(t,))
    marquardt.curve_fit_batch(model, t, np.stack([y, y]), [2.0, 0.0], max_nfev=3)
