"""The one-problem finite differences (``numdiff.one_problem_jacobian``, the host executor's)
against the batched ones (``finite_difference_jacobian``): the same J, bit for bit and in the
same memory order, with steps turned back at an upper bound and one-sided at a lower one."""

import numpy as np
import pytest

from marquardt._backend.numpy import xp
from marquardt._core import numdiff

T = np.linspace(0.0, 3.0, 7)


def residual(x):  # (1, n) -> (1, m)
    a, b, c = x[0]
    return (a * np.exp(-b * T) + c * np.sin(T) - 1.0)[None]


def many(xs):  # (B, 1, n) -> (B, 1, m)
    return np.array([residual(xs[i]) for i in range(xs.shape[0])])


def many_rows(xs):  # (B, n) -> (B, m): ``one_problem_jacobian``'s form
    return many(xs[:, None])[:, 0]


@pytest.mark.parametrize("method", ["2-point", "3-point"])
@pytest.mark.parametrize("x, lb, ub", [
    ([1.0, -2.5, 0.0], [-np.inf] * 3, [np.inf] * 3),
    ([3e5, 1e-9, -7.0], [-np.inf] * 3, [np.inf] * 3),
    # at the upper bound (the step turns back) and at the lower one (one-sided 3-point)
    ([1.0, 2.0, 0.5], [1.0, -np.inf, 0.5], [np.inf, 2.0, 0.5]),
    # signed zeros, a tiny negative value, a step turned back just below an upper bound, NaN
    ([-0.0, -1e-300, 5.0], [-np.inf] * 3, [np.inf, np.inf, 5.0 + 1e-9]),
    ([np.nan, 0.0, -3.0], [-np.inf] * 3, [np.inf] * 3),
], ids=["free", "scales", "at-bounds", "zeros", "nan"])
@pytest.mark.parametrize("typical", [None, [2.0, 1e-7, 1.0]], ids=["scipy", "typical"])
@pytest.mark.parametrize("rel_step", [None, (1e-6, 1e-8, 3e-5)], ids=["default", "per-parameter"])
def test_one_problem_jacobian_is_the_batched_one_bit_for_bit(method, x, lb, ub, typical,
                                                             rel_step):
    x, lb, ub = (np.array([v], dtype=np.float64) for v in (x, lb, ub))
    typical = None if typical is None else np.array([typical])
    r0 = residual(x)
    want = numdiff.finite_difference_jacobian(xp, residual, many, 3, method, lb, ub,
                                              rel_step, typical)(x, r0)
    got = numdiff.one_problem_jacobian(residual, many_rows, 3, method, lb, ub, rel_step,
                                       typical)(x, r0)
    assert got[0] is r0
    np.testing.assert_array_equal(got[1], want[1], strict=True)
    assert got[1].strides == want[1].strides
    # the residuals at x are computed when not given
    np.testing.assert_array_equal(
        numdiff.one_problem_jacobian(residual, many_rows, 3, method, lb, ub, rel_step,
                                     typical)(x)[1],
        want[1])


@pytest.mark.parametrize("route", ["batched", "one problem", "complex step"])
def test_a_relative_step_per_parameter_moves_each_parameter_by_its_own(route):
    """``diff_step`` array_like, as SciPy's ``least_squares`` takes it: hᵢ = stepᵢ · max(|xᵢ|, 1)."""
    seen = []
    x = np.array([[0.5, -4.0, 2e-3]])
    rel = (1e-4, 1e-6, 1e-2)
    inf = np.full((1, 3), np.inf)
    if route == "complex step":
        def complex_residual(xc):
            seen.append(xc.imag.copy())
            return residual(xc.real[None])[0] + 0j * xc.sum()
        numdiff.complex_step_jacobian(complex_residual, 3, rel)(x)
        steps = [row.max() for row in seen]
    else:
        def record(xs):
            seen.append(np.array(xs).reshape(-1, 3).copy())
            return many_rows(xs.reshape(-1, 3)).reshape(xs.shape[:-1] + (-1,))
        if route == "batched":
            numdiff.finite_difference_jacobian(xp, residual, record, 3, "2-point", -inf, inf,
                                               rel)(x)
        else:
            numdiff.one_problem_jacobian(residual, record, 3, "2-point", -inf, inf, rel)(x)
        steps = np.diagonal(seen[0] - x)
    np.testing.assert_allclose(np.abs(steps), [1e-4, 4e-6, 1e-2], rtol=1e-9)


def test_typical_magnitudes_set_the_step_floor():
    # hᵢ = rel_step · sign(xᵢ) · max(|xᵢ|, typicalᵢ): SciPy's rule with typical = 1; curve_fit's
    # typical is the start's magnitude, 1 where it is 0
    typical = numdiff.typical_magnitudes([[3.0, -2e-7, 0.0]])
    np.testing.assert_array_equal(typical, [[3.0, 2e-7, 1.0]])
    # a batch's starts take the array route: the same sizes, non-finite ones 1 too
    starts = np.tile([3.0, -2e-7, 0.0, np.nan, -np.inf, -0.0], (20, 1))
    np.testing.assert_array_equal(numdiff.typical_magnitudes(starts),
                                  np.tile([3.0, 2e-7, 1.0, 1.0, 1.0, 1.0], (20, 1)))
    seen = []

    def record(xs):
        seen.append(xs.copy())
        return many_rows(xs)
    x = np.array([[0.5, -1e-7, 4.0]])
    inf = np.full((1, 3), np.inf)
    numdiff.one_problem_jacobian(residual, record, 3, "2-point", -inf, inf, rel_step=1e-8,
                                 typical=typical)(x)
    steps = np.diagonal(seen[0] - x)
    np.testing.assert_allclose(steps, [3e-8, -2e-15, 4e-8], rtol=1e-6)
