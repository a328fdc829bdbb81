"""The parameter rules shared by least_squares, curve_fit and curve_fit_batch (``_parameters``):
each rule once for one problem (n,) and once with the batch's leading axis (K, n)."""

from __future__ import annotations

import numpy as np
import pytest

from marquardt._parameters import prepare_p0, start_values


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
    ("ab", 3, TypeError, r"`x0` must hold real numbers"),
])
def test_start_values_errors(value, batch, error, match):
    with pytest.raises(error, match=match):
        start_values(value, "x0", batch=batch)


def test_p0_default_is_ones_from_the_signature():
    np.testing.assert_array_equal(prepare_p0(None, two), [1.0, 1.0])
    np.testing.assert_array_equal(prepare_p0(None, two, batch=2), np.ones((2, 2)))
    np.testing.assert_array_equal(prepare_p0([1, 2, 3], star, batch=2), [[1, 2, 3]] * 2)


@pytest.mark.parametrize("p0, f, batch, match", [
    (None, star, None, r"`p0` is needed: `f` takes \*args or no parameters after x\. "
                       r"Received: p0=None"),
    (None, lambda x: x, 4, r"`p0` is needed: `f` takes \*args"),
    ([1.0, 1.0, 1.0], two, None, r"`p0` must have one value per parameter of `f` \(2\)\. "
                                 r"Received: p0 with length 3"),
    ([1.0, 1.0, 1.0], two, 4, r"`p0` must have one value per parameter of `f` \(2\)\. "
                              r"Received: p0 with length 3"),
    (np.ones((4, 3)), two, 4, r"`p0` must have one value per parameter of `f` \(2\)\. "
                              r"Received: p0 with shape \(4, 3\)"),
])
def test_p0_errors(p0, f, batch, match):
    with pytest.raises(ValueError, match=match):
        prepare_p0(p0, f, batch=batch)
