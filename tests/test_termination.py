"""Termination tests with SciPy's meanings, and the status messages."""

import numpy as np
import pytest

import marquardt
from marquardt._status import Status, status_message
from marquardt._termination import (EPSILON, ROUNDED_COSINE, ROUNDING_GRADIENT,
                                    ROUNDING_RESIDUAL, STATIONARY_COSINE, damping_limit_status,
                                    gradient_cosine, gradient_status, lost_direction,
                                    machine_epsilon, resolved_cosine, rounded_away,
                                    scaled_gradient_cosine, step_status)

R = int(Status.RUNNING)


def codes(*args, ftol=1e-8, xtol=1e-8):
    return np.asarray(step_status(*(np.asarray(a, dtype=np.float64) for a in args), ftol, xtol)).tolist()


def test_ftol_needs_small_reduction_and_model_agreement():
    # dF < ftol·F and ρ > 0.25 → FTOL; the same dF with ρ = 0.1 is not enough.
    assert codes([1e-9], [1.0], [1.0], [1.0], [0.9]) == [int(Status.FTOL)]
    assert codes([1e-9], [1.0], [1.0], [1.0], [0.1]) == [R]
    assert codes([1e-7], [1.0], [1.0], [1.0], [0.9]) == [R]


def test_xtol_and_both():
    assert codes([1.0], [1.0], [1e-9], [1.0], [0.9]) == [int(Status.XTOL)]
    assert codes([1e-9], [1.0], [1e-9], [1.0], [0.9]) == [int(Status.FTOL_XTOL)]
    # xtol + ‖x‖ lets x = 0 terminate: ‖p‖ < xtol·(xtol + 0)
    assert codes([1.0], [1.0], [1e-17], [0.0], [0.9]) == [int(Status.XTOL)]


def test_gradient_cosine_and_status():
    g = np.array([[3.0, 0.0]])
    cos = float(np.asarray(gradient_cosine(g, np.array([2.0]), np.array([[3.0, 1.0]])))[0])
    assert cos == 0.5  # |3| / (2·3)
    assert np.asarray(gradient_status(g, np.array([2.0]), np.array([[3.0, 1.0]]), 0.6)).tolist() == [1]
    assert np.asarray(gradient_status(g, np.array([2.0]), np.array([[3.0, 1.0]]), 0.4)).tolist() == [R]
    # r = 0: converged whatever the gradient test says
    assert np.asarray(gradient_status(g * 0, np.array([0.0]), np.array([[3.0, 1.0]]), 0.0)).tolist() == [1]


def test_status_messages_carry_numbers():
    msg = status_message(Status.GTOL, "gradient cosine 3.1e-11 <= gtol 1e-10")
    assert msg == ("`gtol` termination condition is satisfied "
                   "(gradient cosine 3.1e-11 <= gtol 1e-10).")
    assert Status(2) is Status.FTOL and Status.FTOL.success and not Status.MAX_NFEV.success
    assert int(Status.MAX_NFEV) == 0 and int(Status.IMPROPER_INPUT) == -1


def test_rounded_away():
    """A step of exactly zero stops the fit as a stall where the gradient cosine is large (or
    not a number); a nonzero step, or a zero one at a stationary point, is left to the step
    tests; with one residual the cosine says nothing and the step tests decide."""
    p = np.array([[0.0, 0.0], [0.0, 0.0], [1e-300, 0.0], [0.0, -0.0], [0.0, 0.0]])
    cos = np.array([0.5, ROUNDED_COSINE, 0.5, 2 * ROUNDED_COSINE, np.nan])
    assert rounded_away(p, cos, False).tolist() == [True, False, False, True, True]
    assert rounded_away(p, cos, True).tolist() == [False] * 5
    # residuals at their rounding level (‖r‖ ≤ 100 ε Σⱼ ‖Jⱼ‖ |xⱼ|): noise, whatever the cosine
    level = ROUNDING_RESIDUAL * EPSILON * 45.0
    stop = rounded_away(np.zeros((3, 2)), np.array([0.5, 0.5, 0.5]), False,
                        np.array([level, 1.01 * level, 1.0]), np.full(3, 45.0))
    assert stop.tolist() == [False, True, True]
    # ε of the fit's dtype: a float32 fit's rounding level is 2²⁹ times float64's
    assert machine_epsilon(np.dtype("float32")) == 2.0 ** -23
    assert machine_epsilon(np.dtype("float64")) == EPSILON == 2.0 ** -52
    stop = rounded_away(np.zeros((1, 2), np.float32), np.array([0.5]), False,
                        np.array([1e-6]), np.array([45.0]), epsilon=2.0 ** -23)
    assert stop.tolist() == [False]


def test_resolved_cosine():
    """A gradient whose projections maxⱼ |gⱼ| / ‖Jⱼ‖ = cosine · ‖r‖ are at most
    ``ROUNDING_GRADIENT`` ε Σⱼ ‖Jⱼ‖ |xⱼ| is rounding: its cosine reads 0; above, or not a
    number, it is kept."""
    eps = 2.0 ** -23
    level = ROUNDING_GRADIENT * eps * 45.0  # the largest projection that is rounding
    cos = np.array([0.5, 0.5, 0.5, np.nan])
    r_norm = np.array([level / 0.5, 1.01 * level / 0.5, 1.0, 1.0])
    out = resolved_cosine(cos, r_norm, np.full(4, 45.0), eps)
    assert out[:3].tolist() == [0.0, 0.5, 0.5]
    assert np.isnan(out[3])


@pytest.mark.parametrize("damping", ["nielsen", "trust-region"])
def test_exact_fit_ends_in_success(damping):
    """A zero-residual fit at its solution: r is rounding noise (‖r‖ = 1e-15, gradient
    cosine 0.12) and the trust-region step rounds to nothing there; that is convergence."""
    t = np.linspace(0, 4, 30)
    res = marquardt.least_squares(lambda p: p[0] * t + p[1] - 3 * t - 1, [1.0, 1.0],
                                  damping=damping)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, [3.0, 1.0], rtol=1e-14)


@pytest.mark.parametrize("damping", ["nielsen", "trust-region"])
@pytest.mark.parametrize("jac", ["2-point", lambda x: 2.0 * x[None, :]])
def test_one_residual_minimum_is_a_success(damping, jac):
    """x² + 5 (SciPy's ``fun_trivial``): at its minimum J = 2x rounds to ~1e-8, not 0, so the
    gradient cosine |J r| / (|r| |J|) stays 1; the zero step there is the xtol stop (or gtol
    where J is exactly 0), a success, as in MINPACK and SciPy (``TestLM.test_workers``)."""
    res = marquardt.least_squares(lambda x: x**2 + 5.0, 2.0, jac=jac, damping=damping)
    assert res.success, res.message
    assert res.status in (Status.XTOL, Status.GTOL)
    assert abs(res.x[0]) < 1e-7 and res.cost == 12.5


def test_lost_direction():
    """A column of J/√D at the rounding of the largest (‖Jⱼ‖²/dⱼ ≤ ε maxₖ) along which the
    residual still points (cosine > ROUNDED_COSINE) is a lost direction; a column that is
    exactly zero (flat cost), one above the rounding, one with a small cosine, or residuals at
    their rounding level are not."""
    r_norm = np.ones(6)
    d = np.ones((6, 2))
    colsq = np.array([[1.0, 1e-20], [1.0, 0.0], [1.0, 1e-14], [1.0, 1e-20], [1.0, 1e-20],
                      [1.0, 1e-20]])
    g_small = 0.5 * ROUNDED_COSINE * 1e-10  # |g₂| for cosine ROUNDED_COSINE / 2 at ‖J₂‖ 1e-10
    g = np.array([[0.0, 0.5e-10], [0.0, 0.0], [0.0, 0.5e-7], [0.0, g_small], [0.0, 0.5e-10],
                  [0.0, 0.5e-10]])
    lost = lost_direction(g, r_norm, colsq, d).tolist()
    assert lost == [True, False, False, False, True, True]
    # the scale is J's against D: the same column is not lost when D weighs it as small
    assert lost_direction(g[:1], r_norm[:1], colsq[:1], np.array([[1.0, 1e-20]])).tolist() == [
        False]
    noise = np.array([2.0, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert lost_direction(g, r_norm, colsq, d, r_noise=noise).tolist() == [
        False, False, False, False, True, True]


def test_scaled_gradient_cosine():
    g = np.array([[3.0, -1e-8], [3.0, 0.0]])
    sqrt_d = np.array([[4.0, 2.0], [0.0, 1.0]])
    out = np.asarray(scaled_gradient_cosine(g, np.array([5.0, 5.0]), sqrt_d)).tolist()
    assert out == [3.0 / 20.0, 0.0]  # maxⱼ |gⱼ| / (‖r‖ √dⱼ); a zero scale contributes 0
    assert np.asarray(scaled_gradient_cosine(g[:1], np.array([0.0]), sqrt_d[:1])).tolist() == [0.0]


@pytest.mark.parametrize("damping", ["nielsen", "trust-region"])
def test_one_residual_damping_limit_at_the_minimum_is_a_success(damping):
    """x² + 5 with ``xtol=None`` and 3-point differences: no step lowers the cost at
    x ≈ −1e-8, λ climbs to its ceiling. The cosine is 1 there (one residual), so the measure is
    the gradient against D, 4e-9: a minimum (``DAMPING_LIMIT``), not a stall."""
    res = marquardt.least_squares(lambda x: x**2 + 5.0, 2.0, jac="3-point", xtol=None,
                                  damping=damping)
    assert res.status == Status.DAMPING_LIMIT and res.success, res.message
    assert abs(res.x[0]) < 1e-7 and res.cost == 12.5
    # the same point judged by its cosine would be a stall
    assert damping_limit_status(np.array([1.0])).tolist() == [int(Status.STALLED)]
    assert STATIONARY_COSINE < 1.0


def test_a_noise_floor_step_away_from_a_stationary_point_stops_nothing():
    """With the gain ratio's noise floor (``LoopConfig.noise``) a step whose predicted and
    actual changes of F are both below noise · F counts as ρ = 1 and is taken; away from a
    stationary point (gradient cosine above ``STATIONARY_COSINE``) it ends nothing: the cost
    is flat along it, not at a minimum. Without the check in ``_core.iteration.judge`` this
    candidate, 1e-12 of the gradient from x0 (gradient cosine 0.9), met ``ftol`` and
    ``xtol``: a success at x0."""
    from marquardt._backend.numpy import xp
    from marquardt._core import iteration as core
    from marquardt._core.records import LoopConfig
    from marquardt._damping import Nielsen
    from marquardt._solvers import SVDSolver

    t = np.linspace(0.0, 4.0, 30)
    y = 2.5 * np.exp(-1.3 * t) + 0.5

    def residual(x):
        return x[:, :1] * np.exp(-x[:, 1:2] * t) + x[:, 2:] - y

    def jacobian(x):
        e = np.exp(-x[0, 1] * t)
        return np.stack([e, -x[0, 0] * t * e, np.ones_like(t)], axis=1)[None]

    x0 = np.array([[1.0, 1.0, 0.0]])
    free = (np.full((1, 3), -np.inf), np.full((1, 3), np.inf))
    cfg = LoopConfig(Nielsen(), SVDSolver(), "marquardt", "linear", 1.0, 1e-8, 1e-8, 1e-12,
                     500, False, noise=1e-9)
    s = core.start(cfg, xp, x0, residual(x0), jacobian(x0), *free, None)
    prep, c = core.prepare(cfg, xp, s, *free, None)
    assert prep.cosine[0] > STATIONARY_COSINE
    x_try = x0 - 1e-12 * prep.g
    c = core.judge(cfg, xp, prep, s, c, x_try, residual(x_try))
    assert bool(c.accepted[0]) and float(c.rho[0]) == 1.0
    assert int(c.status[0]) == R
