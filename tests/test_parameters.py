"""The parameter rules shared by least_squares, curve_fit and curve_fit_batch (``_parameters``):
each rule once for one problem (n,) and once with the batch's leading axis (K, n)."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt import curve_fit
from marquardt._parameters import (check_within_bounds, prepare_bounds, prepare_p0, start_values,
                                   strictly_feasible)


def two(x, a, k):
    return a * x + k


def star(x, *p):
    return x


# --- start values and the parameter count ---------------------------------------------------


def test_start_values_one_problem_and_batch():
    np.testing.assert_array_equal(start_values(2.0, "x0"), [2.0])
    np.testing.assert_array_equal(start_values([1, 2], "x0"), [1.0, 2.0])
    shared = start_values([1, 2], "p0", batch=3)
    assert shared.shape == (3, 2) and shared.dtype == np.float64 and shared.flags.c_contiguous
    np.testing.assert_array_equal(shared, [[1.0, 2.0]] * 3)
    rows = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(start_values(rows, "p0", batch=3), rows)


@pytest.mark.parametrize("value, batch, error, match", [
    ([1.0, np.nan], None, ValueError,
     r"`x0` must contain only finite values\. Received: x0\[1\]=nan"),
    ([[1.0, 1.0], [np.inf, 1.0]], 2, ValueError,
     r"`x0` must contain only finite values\. Received: x0\[1, 0\]=inf"),
    (np.ones((2, 2)), None, ValueError,
     r"`x0` must have 0 or 1 dimension\(s\)\. Received: x0 with shape \(2, 2\)"),
    (np.ones((2, 2)), 3, ValueError,
     r"`x0` must have shape \(n,\) or \(K, n\) with K=3 problems\. Received: x0 with shape "
     r"\(2, 2\)"),
    (np.ones((3, 2, 1)), 3, ValueError, r"`x0` must have 0 or 1 or 2 dimension\(s\)"),
    ([], None, ValueError, r"`x0` must not be empty"),
    ("ab", 3, ValueError, r"`x0` must hold real numbers.*could not convert string to float"),
])
def test_start_values_errors(value, batch, error, match):
    with pytest.raises(error, match=match):
        start_values(value, "x0", batch=batch)


def test_p0_default_is_ones_from_the_signature():
    np.testing.assert_array_equal(prepare_p0(None, two), [1.0, 1.0])
    np.testing.assert_array_equal(prepare_p0(None, two, batch=2), np.ones((2, 2)))
    np.testing.assert_array_equal(prepare_p0([1, 2, 3], star, batch=2), [[1, 2, 3]] * 2)


def _defaulted(x, a, b=1.0):
    return a * x + b


def test_p0_with_defaulted_parameters_follows_scipy():
    # p0=None fits every positional parameter (SciPy's count); a shorter p0 leaves b at its
    # default; a longer one fits no call of f
    np.testing.assert_array_equal(prepare_p0(None, _defaulted), [1.0, 1.0])
    np.testing.assert_array_equal(prepare_p0([3.0], _defaulted), [3.0])
    np.testing.assert_array_equal(prepare_p0([3.0], _defaulted, batch=2), [[3.0], [3.0]])
    with pytest.raises(TypeError, match=r"`p0` must have one value per parameter of `f` "
                       r"\(1 to 2: a parameter with a default is fitted when p0 covers it\)\. "
                       r"Received: p0 with length 3"):
        prepare_p0([1.0, 2.0, 3.0], _defaulted)


def test_curve_fit_with_a_defaulted_parameter_matches_scipy():
    import scipy.optimize
    import tensorflow as tf

    x = np.linspace(0.0, 3.0, 20)
    y = 2.0 * np.exp(-0.5 * x)
    ours = curve_fit(lambda t, a, k=1.0: a * tf.exp(-k * t), x, y)[0]
    theirs = scipy.optimize.curve_fit(lambda t, a, k=1.0: a * np.exp(-k * t), x, y)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    np.testing.assert_allclose(ours, [2.0, 0.5], rtol=1e-8)


@pytest.mark.parametrize("p0, f, batch, error, match", [
    (None, star, None, ValueError, r"`p0` is needed: `f` takes \*args or no parameters after "
                                   r"x\. Received: p0=None"),
    (None, lambda x: x, 4, ValueError, r"`p0` is needed: `f` takes \*args"),
    # a count that fits no call of f: SciPy's TypeError (from calling f with it)
    ([1.0, 1.0, 1.0], two, None, TypeError, r"`p0` must have one value per parameter of `f` "
                                            r"\(2\)\. Received: p0 with length 3"),
    ([1.0], two, None, TypeError, r"`p0` must have one value per parameter of `f` \(2\)\. "
                                  r"Received: p0 with length 1"),
    ([1.0, 1.0, 1.0], two, 4, TypeError, r"`p0` must have one value per parameter of `f` "
                                         r"\(2\)\. Received: p0 with length 3"),
    (np.ones((4, 3)), two, 4, TypeError, r"`p0` must have one value per parameter of `f` "
                                         r"\(2\)\. Received: p0 with shape \(4, 3\)"),
])
def test_p0_errors(p0, f, batch, error, match):
    with pytest.raises(error, match=match):
        prepare_p0(p0, f, batch=batch)


# --- bounds and the start inside them ------------------------------------------------------


def test_bounds_broadcast_one_problem_and_batch():
    lb, ub = prepare_bounds(None, 2)
    np.testing.assert_array_equal(lb, [-np.inf, -np.inf])
    np.testing.assert_array_equal(ub, [np.inf, np.inf])
    lb, ub = prepare_bounds([0, [1, 2]], 2)
    assert lb.dtype == ub.dtype == np.float64
    np.testing.assert_array_equal(lb, [0.0, 0.0])
    np.testing.assert_array_equal(ub, [1.0, 2.0])
    lb, ub = prepare_bounds((0, [1, 2]), 2, batch=3)
    assert lb.shape == ub.shape == (3, 2)
    np.testing.assert_array_equal(ub, [[1.0, 2.0]] * 3)
    rows = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    lb, ub = prepare_bounds((rows, 5.0), 2, batch=3)
    np.testing.assert_array_equal(lb, rows)
    np.testing.assert_array_equal(ub, np.full((3, 2), 5.0))


@pytest.mark.parametrize("bounds, batch, match", [
    (5, None, r"`bounds` must be a pair \(lb, ub\) of scalars or arrays of length n\. "
              r"Received: bounds=5"),
    ((0, 1, 2), 3, r"`bounds` must be a pair"),
    (([0, 0, 0], 1), None, r"`bounds` lb must be a scalar or have length n=2\. "
                           r"Received: lb with shape \(3,\)"),
    ((np.zeros((3, 2)), 1), None, r"`bounds` lb must be a scalar or have length n=2\. "
                                  r"Received: lb with shape \(3, 2\)"),
    (([0, 0, 0], 1), 3, r"`bounds` lb must be a scalar or have shape \(n,\) or \(K, n\) with "
                        r"K=3, n=2\. Received: lb with shape \(3,\)"),
    ((0, np.ones((2, 2))), 3, r"`bounds` ub must be a scalar or have shape \(n,\) or \(K, n\)"
                              r".*Received: ub with shape \(2, 2\)"),
    ((np.zeros((1, 3, 2)), np.ones((3, 2))), 3, r"`bounds` lb must be a scalar or have shape "
                                                r"\(n,\) or \(K, n\).*Received: lb with shape "
                                                r"\(1, 3, 2\)"),
    (([0, np.nan], 1), None, r"`bounds` lb must not contain NaN\. Received: lb\[1\]=nan "
                             r"\(1 NaN value\(s\) in all\)"),
    ((np.nan, 1), 3, r"`bounds` lb must not contain NaN\. Received: lb=nan"),
    ((0, [[1, 1], [1, np.nan], [1, 1]]), 3, r"`bounds` ub must not contain NaN\. Received: "
                                            r"ub\[1, 1\]=nan"),
    (([0, 2], [1, 1]), None, r"`bounds` must satisfy lb < ub for each parameter\. Received: "
                             r"lb\[1\]=2\.0 >= ub\[1\]=1\.0"),
    (([0, 2], [1, 1]), 3, r"lb < ub .*Received: lb\[1\]=2\.0 >= ub\[1\]=1\.0"),
    ((0, [[1, 1], [1, 1], [1, 0]]), 3, r"lb < ub .*Received: lb\[2, 1\]=0\.0 >= ub\[2, 1\]=0\.0"),
])
def test_bounds_errors(bounds, batch, match):
    with pytest.raises(ValueError, match=match):
        prepare_bounds(bounds, 2, batch=batch)


def test_start_within_bounds():
    lb, ub = prepare_bounds((0, [1, 2]), 2, batch=3)
    check_within_bounds(np.array([[0.0, 2.0]] * 3), lb, ub, "p0")  # the bounds themselves
    with pytest.raises(ValueError, match=r"`x0` must lie within `bounds`\. Received: "
                                         r"x0\[1\]=3\.0 outside \[0\.0, 2\.0\]"):
        check_within_bounds(np.array([0.5, 3.0]), lb[0], ub[0], "x0")
    with pytest.raises(ValueError, match=r"`p0` must lie within `bounds`\. Received: "
                                         r"p0\[2, 0\]=-1\.0 outside \[0\.0, 1\.0\]"):
        check_within_bounds(np.array([[0.5, 1], [0.5, 1], [-1, 1]]), lb, ub, "p0")


def test_strictly_feasible_moves_a_start_on_a_bound_inside_as_scipys_trf():
    """SciPy's make_strictly_feasible (rstep 1e-10, relative to max(1, |bound|)), which its
    trf applies to x0: on or within that distance of a finite bound, moved to it; bounds
    closer than that, the middle; everything else, and a (K, n) batch row by row, as it is."""
    lb = np.array([0.0, -np.inf, 5.0, -1e3, 1.0])
    ub = np.array([np.inf, 2.0, 5.0 + 1e-12, 1e3, 2.0])
    x = np.array([0.0, 2.0, 5.0, 1e3, 1.5])
    out = strictly_feasible(x, lb, ub)
    np.testing.assert_array_equal(out, [1e-10, 2.0 - 2e-10, 5.0 + 0.5e-12, 1e3 - 1e-7, 1.5])
    inside = np.array([1.0, 0.0, 0.0, 1.5])
    assert strictly_feasible(inside, lb[[0, 1, 3, 4]], ub[[0, 1, 3, 4]]) is inside
    inside = np.array([1.0, 0.0, out[2], 0.0, 1.5])
    batch = strictly_feasible(np.stack([x, inside]), lb, ub)
    np.testing.assert_array_equal(batch, np.stack([out, inside]))


def test_x0_none_is_named_as_none():
    """np.asarray(None, float) is nan: x0=None was reported as "Received: x0=nan"."""
    with pytest.raises(ValueError, match=r"^`x0` must be an array of starting values, one per "
                                         r"parameter\. Received: x0=None$"):
        start_values(None, "x0")
