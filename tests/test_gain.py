"""Gain ratio and its noise floor, with exact values."""

import math

import numpy as np
import pytest

from marquardt._gain import gain_ratio, gain_ratio_with_noise_floor

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
