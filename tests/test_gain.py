"""Gain ratio, its noise floor and its rounding level, with exact values."""

import math

import numpy as np
import pytest

import marquardt
from marquardt import nist
from marquardt._gain import gain_ratio, gain_ratio_at_rounding, gain_ratio_with_noise_floor

NOISE = 16 * 2.0**-23  # 16 ulps of float32


def _rho(fn, *args):
    return float(np.asarray(fn(*[np.float64(a) for a in args])))


@pytest.mark.parametrize("actual, predicted, expected", [
    (0.5, 1.0, 0.5), (-1.0, 2.0, -0.5), (1.0, 0.0, -math.inf), (1.0, -1.0, -math.inf),
    (math.nan, 1.0, -math.inf), (math.inf, 1.0, -math.inf)])
def test_gain_ratio_exact(actual, predicted, expected):
    assert _rho(gain_ratio, actual, predicted) == expected


def test_noise_floor_counts_changes_below_rounding_as_good():
    cost = 1.0
    tiny = 0.5 * NOISE * cost
    assert _rho(gain_ratio_with_noise_floor, -tiny, tiny, cost, NOISE) == 1.0
    assert _rho(gain_ratio_with_noise_floor, 0.0, tiny, cost, NOISE) == 1.0
    # the plain ratio of the same numbers would reject the step
    assert _rho(gain_ratio, -tiny, tiny) == -1.0


def test_noise_floor_leaves_resolvable_steps_alone():
    cost, big = 1.0, 4.0 * NOISE
    assert _rho(gain_ratio_with_noise_floor, 0.25 * big, big, cost, NOISE) == 0.25
    # actual change above the floor (a real increase) keeps its ratio even if predicted is tiny
    assert _rho(gain_ratio_with_noise_floor, -big, 0.5 * NOISE, cost, NOISE) == -big / (
        0.5 * NOISE)
    # a non-positive prediction or a non-finite actual change is still a failed step
    assert _rho(gain_ratio_with_noise_floor, 0.0, 0.0, cost, NOISE) == -math.inf
    assert _rho(gain_ratio_with_noise_floor, math.nan, 0.5 * NOISE, cost, NOISE) == -math.inf


def test_noise_floor_scales_with_the_cost():
    step = 0.5 * NOISE * 1e6
    assert _rho(gain_ratio_with_noise_floor, -step, step, 1e6, NOISE) == 1.0
    assert _rho(gain_ratio_with_noise_floor, -step, step, 1.0, NOISE) == -1.0


def test_rounding_level_takes_the_model_step_at_a_stationary_point_only():
    level = 1e-20
    rho = np.array([-71.9, -71.9, -71.9, -71.9, 0.5, -np.inf])
    actual = np.array([-7.19e-21, -7.19e-21, -2e-20, -7.19e-21, 5e-21, 0.0])
    predicted = np.array([1e-22, 1e-22, 1e-22, 2e-20, 1e-20, 0.0])
    stationary = np.array([True, False, True, True, True, True])
    out = np.asarray(gain_ratio_at_rounding(rho, actual, predicted, level, stationary))
    # both changes within the level at a stationary point: the model's step (ρ = 1); not
    # stationary, an actual change above the level, a prediction above it or not positive:
    # ρ as it was
    assert out.tolist() == [1.0, -71.9, -71.9, -71.9, 1.0, -np.inf]


def _lanczos3():
    p = nist.load(nist.files()[[f.stem for f in nist.files()].index("Lanczos3")])
    x, y = p.x, p.y

    def fun(b):
        return b[0] * np.exp(-b[1] * x) + b[2] * np.exp(-b[3] * x) + b[4] * np.exp(-b[5] * x) - y

    def jac(b):
        e = [np.exp(-b[k] * x) for k in (1, 3, 5)]
        return np.stack([e[0], -b[0] * x * e[0], e[1], -b[2] * x * e[1], e[2], -b[4] * x * e[2]],
                        axis=1)
    return p, fun, jac


def test_last_gauss_newton_step_is_taken_below_the_rounding_of_the_cost():
    """NIST Lanczos3 from start 2 (‖r‖ = 1.3e-4 on data of size 1): the last Gauss-Newton
    step's predicted reduction (~1e-22) is below the rounding of the cost's change (~1e-20),
    its measured ρ was noise (−72) and the trust radius shrank to the xtol stop one step
    short: LRE 6.4. Taken as the model's step, the fit ends by ftol with LRE 7.9."""
    p, fun, jac = _lanczos3()
    res = marquardt.least_squares(fun, p.starts[1], jac=jac, damping="trust-region")
    assert res.status == marquardt.Status.FTOL, res.message
    assert nist.lre(res.x, p.certified).min() > 7.5
