"""Robust losses: SciPy's values, exact derivatives, SciPy's Triggs rescaling (results)."""

import numpy as np
import pytest
import tensorflow as tf

from marquardt._robust import LOSSES, loss_terms, rescale, robust_cost

Z = np.array([0.0, 0.3, 1.0, 2.5, 40.0])


@pytest.mark.parametrize("name", list(LOSSES))
def test_derivatives_match_finite_differences(name):
    z = tf.constant(Z[1:] + 0.01)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(z)
        rho, d1, _ = LOSSES[name](z)
    np.testing.assert_allclose(tape.gradient(rho, z, unconnected_gradients='zero').numpy(), np.asarray(d1), rtol=1e-12)
    _, d1, d2 = LOSSES[name](z)
    with tf.GradientTape() as tape:
        tape.watch(z)
        _, d1b, _ = LOSSES[name](z)
    np.testing.assert_allclose(tape.gradient(d1b, z, unconnected_gradients='zero').numpy(), np.asarray(d2), rtol=1e-12,
                               atol=1e-15)


def test_values_match_scipy_definitions():
    z = Z
    np.testing.assert_allclose(np.asarray(LOSSES["soft_l1"](z)[0]), 2 * (np.sqrt(1 + z) - 1))
    np.testing.assert_allclose(np.asarray(LOSSES["huber"](z)[0]),
                               np.where(z <= 1, z, 2 * np.sqrt(z) - 1))
    np.testing.assert_allclose(np.asarray(LOSSES["cauchy"](z)[0]), np.log1p(z))
    np.testing.assert_allclose(np.asarray(LOSSES["arctan"](z)[0]), np.arctan(z))


@pytest.mark.parametrize("name", list(LOSSES))
def test_rescaled_gradient_is_exact(name):
    rng = np.random.default_rng(0)
    r = rng.normal(scale=2.0, size=7)
    j = rng.normal(size=(7, 3))
    rt, jt = rescale(name, tf.constant(r), tf.constant(j), 1.5)
    _, d1, _ = loss_terms(name, tf.constant(r), 1.5)
    # J̃ᵀr̃ = ρ′ Jᵀr, the gradient of F = ½ Σ f_scale² ρ((r/f_scale)²)
    np.testing.assert_allclose(np.asarray(jt).T @ np.asarray(rt), j.T @ (np.asarray(d1) * r),
                               rtol=1e-12)
    cost = float(robust_cost(name, tf.constant(r), 1.5))
    assert cost > 0
