"""Candidates in the box [lb, ub]: clipped onto a bound, or reflected at it after a
candidate whose residuals were not finite (``into_bounds``). The bound-frozen columns of J
are ``marquardt._core.iteration``'s (``_scaled_system``)."""

from __future__ import annotations

__all__ = ["into_bounds"]


def into_bounds(xp, x_try, lb, ub, cost_try_last):
    """A candidate that leaves [lb, ub] is clipped onto the bound it crosses (the projected
    step: a parameter that ends on its bound with the gradient pushing outward is frozen there
    next iteration, ``_scaled_system``). After a candidate whose residuals were not finite
    (``cost_try_last`` inf), it is reflected at that bound instead, as SciPy's ``trf`` reflects
    its steps: a model undefined on its bound (k/(k + x) with x = 0 among the data, log k,
    1/k for k ≥ 0) is never evaluated there again, and the step's length in that parameter
    points back into the box rather than into the bound. Parameters inside the box are
    unchanged either way."""
    clipped = xp.minimum(xp.maximum(x_try, lb), ub)
    reflected = xp.where(xp.less(x_try, lb), 2.0 * lb - x_try,
                         xp.where(xp.greater(x_try, ub), 2.0 * ub - x_try, x_try))
    reflected = xp.minimum(xp.maximum(reflected, lb), ub)
    after_bad = xp.expand_dims(xp.logical_not(xp.isfinite(cost_try_last)), -1)
    return xp.where(after_bad, reflected, clipped)
