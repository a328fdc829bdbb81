"""The engine's autodiff Jacobians against analytic ones (``_backend/tensorflow/jacobian``)."""

import numpy as np
import pytest
import tensorflow as tf

from marquardt._backend.tensorflow.jacobian import (
    autodiff_jacobian, resolved_mode, scalar_forward_jacobian)

XY = tf.constant(np.mgrid[0:5, 0:5].reshape(2, -1).astype(np.float64))


def gauss2d(xy, a, x0, y0, s, b):
    return a * tf.exp(-((xy[0] - x0) ** 2 + (xy[1] - y0) ** 2) / (2 * s * s)) + b


def gauss2d_jacobian(xy, a, x0, y0, s, b):
    dx, dy, s2 = xy[0] - x0, xy[1] - y0, s * s
    e = np.exp(-(dx * dx + dy * dy) / (2 * s2))
    return np.stack([e, a * e * dx / s2, a * e * dy / s2, a * e * (dx * dx + dy * dy) / (s2 * s),
                     np.ones_like(e)], axis=1)


P = [10.0, 2.2, 1.8, 1.1, 0.7]


def test_scalar_forward_jacobian_is_the_analytic_one():
    params = [tf.constant(v, tf.float64) for v in P]
    r, j = scalar_forward_jacobian(lambda ps: gauss2d(XY, *ps), params)
    np.testing.assert_allclose(r.numpy(), gauss2d(XY, *P).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(j.numpy(), gauss2d_jacobian(XY.numpy(), *P), rtol=1e-14,
                               atol=1e-15)


def test_scalar_forward_jacobian_equals_the_vector_forward_mode():
    params = [tf.constant(v, tf.float64) for v in P]
    _, j_scalar = scalar_forward_jacobian(lambda ps: gauss2d(XY, *ps), params)
    _, j_vector = autodiff_jacobian(lambda x: gauss2d(XY, *tf.unstack(x[0]))[None], 5, 25,
                                    "forward")(tf.constant([P], tf.float64))
    np.testing.assert_allclose(j_scalar.numpy(), j_vector.numpy()[0], rtol=1e-15, atol=1e-15)


def test_scalar_forward_jacobian_unused_parameter_is_a_zero_column():
    params = [tf.constant(2.0, tf.float64), tf.constant(3.0, tf.float64)]
    _, j = scalar_forward_jacobian(lambda ps: ps[0] * XY[0], params)
    np.testing.assert_array_equal(j.numpy()[:, 1], 0.0)
    np.testing.assert_array_equal(j.numpy()[:, 0], XY.numpy()[0])


def test_scalar_forward_jacobian_op_without_gradient_gives_a_zero_column():
    # forward mode raises nothing for an op without a gradient: the column is zero, which the
    # front doors catch (``_probe.check_zero_columns``; tests in test_batch and
    # test_least_squares)
    params = [tf.constant(1.5, tf.float64), tf.constant(2.0, tf.float64)]
    _, j = scalar_forward_jacobian(
        lambda ps: tf.math.betainc(ps[0] + 0 * XY[0], 2.0 + 0 * XY[0], 0.3 + 0 * XY[0])
        + ps[1] * XY[0], params)
    np.testing.assert_array_equal(j.numpy()[:, 0], 0.0)
    np.testing.assert_array_equal(j.numpy()[:, 1], XY.numpy()[0])


@pytest.mark.parametrize("n, m, mode, want", [
    (5, 25, "auto", "forward"), (20, 10, "auto", "reverse"), (16, 10, "auto", "forward"),
    (5, 25, "reverse", "reverse"), (20, 10, "forward", "forward")])
def test_resolved_mode(n, m, mode, want):
    assert resolved_mode(n, m, mode) == want


@pytest.mark.parametrize("n, m, jac, want", [
    (5, 25, "auto", True), (16, 40, "forward", True), (17, 40, "auto", False),
    (32, 200, "forward", False), (5, 3, "reverse", False), (5, 25, "reverse", False)])
def test_batch_uses_scalar_tangents_for_few_parameters_in_forward_mode(n, m, jac, want):
    from marquardt._backend.tensorflow.batch import scalar_tangents

    assert scalar_tangents(n, m, jac) is want
