"""``marquardt.scipy.residual_functions`` for a function written with ``jax.numpy``: exact
J for ``scipy.optimize.least_squares`` and ``curve_fit``, J·v and Jᵀ·u, float64."""

import numpy as np
import pytest
import scipy.optimize

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402

from marquardt.scipy import residual_functions  # noqa: E402

T = np.linspace(0, 3, 30)
Y = 2.0 * np.exp(-1.3 * T)


def fun(p, t, y):
    return p[0] * jnp.exp(-p[1] * t) - y


def exact_jac(p):
    e = np.exp(-p[1] * T)
    return np.stack([e, -p[0] * T * e], axis=1)


@pytest.fixture(scope="module")
def dense():
    return residual_functions(fun, [1.0, 1.0], args=(T, Y))


def test_least_squares_with_the_exact_jacobian(dense):
    f, jac = dense
    x = np.array([1.5, 0.7])
    np.testing.assert_allclose(jac(x), exact_jac(x), rtol=1e-14)
    assert f(x).dtype == np.float64 and jac(x).dtype == np.float64
    res = scipy.optimize.least_squares(f, [1.0, 1.0], jac=jac, xtol=1e-14, ftol=1e-14)
    np.testing.assert_allclose(res.x, [2.0, 1.3], rtol=1e-12)


def test_curve_fit_form_takes_new_xdata(dense):
    f, jac = dense
    t2 = T * 0.5  # the curve_fit form: xdata in args[0]'s place, same shape
    np.testing.assert_allclose(f(t2, 1.5, 0.7), 1.5 * np.exp(-0.7 * t2) - Y, rtol=1e-14)
    with pytest.raises(ValueError, match=r"`xdata` must have the shape of args\[0\]"):
        f(T[:5], 1.0, 1.0)


def test_operator_form_and_modes():
    f, jop = residual_functions(fun, [1.0, 1.0], args=(T, Y), jac_form="operator",
                                mode="reverse")
    x, v, u = np.array([1.5, 0.7]), np.array([0.3, -1.0]), np.linspace(-1, 1, T.size)
    op = jop(x)
    np.testing.assert_allclose(op.matvec(v), exact_jac(x) @ v, rtol=1e-13)
    np.testing.assert_allclose(op.rmatvec(u), exact_jac(x).T @ u, rtol=1e-13)
    with pytest.raises(ValueError, match="per_sample is for TensorFlow"):
        residual_functions(fun, [1.0, 1.0], args=(T, Y), mode="per_sample", backend="jax")


def test_a_numpy_function_is_refused_on_jax():
    with pytest.raises(TypeError, match="`fun` must return a JAX array"):
        residual_functions(lambda p: np.asarray(p) - 1.0, [1.0], backend="jax")
    with pytest.raises(ValueError, match="`backend` must be one of"):
        residual_functions(fun, [1.0, 1.0], args=(T, Y), backend="torch")
