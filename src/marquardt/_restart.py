"""A fit that stalls with Moré's scaling, fitted again with the parameters' own units and,
where that stalls too, continued from where it stalled.

``least_squares`` and ``curve_fit`` (``_least_squares.solve_problem``) call ``wanted`` on a
finished fit and, where it holds, ``fit_again``; ``curve_fit_batch`` and the Keras step do not
(a stalled member of a batch keeps its result).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from marquardt._core.verdicts import rounding_epsilon
from marquardt._gain import ROUNDING_CHANGE
from marquardt._result import OptimizeResult
from marquardt._status import Status

__all__ = ["wanted", "fit_again", "blind_column", "without_ceiling"]


def wanted(result: OptimizeResult, cfg, x0=None) -> bool:
    """Whether a finished fit is fitted again (``fit_again``): a fit with Moré's D
    (``x_scale='jac'``) that ends ``STALLED``, or in a success at a point where the model is
    blind to a parameter the fit has moved (``blind_column``), with evaluations left.

    Moré's D (``marquardt._scaling``) takes a parameter's column norm for its scale. A column
    that is small because its exponential is saturated, not because of the parameter's units,
    then gives the parameter a weight in the trust region that lets it step to where its
    column underflows: the parameter is lost, the rest of the fit is a fit of the others, and
    the fit ends ``STALLED`` away from a stationary point (MGH Box 3-D from 10·x0: x₂'s column
    is 5e-6 at x₂ = 100, its first accepted step goes to x₂ = 2.8e5, f ends at 0.0756 for 0;
    ``benchmarks/box3d.py``). ``STALLED`` is the fit's own certificate of that failure (a step
    that rounds to nothing where the residuals still point along a column,
    ``_termination.rounded_away``). Where the column underflows to exactly 0 the same end is a
    success (the gradient's component is 0, the cost flat in that parameter in floating
    point): MGH Box 3-D from 100·x0 sends x₂ from 1000 to 8.6e44 in its first accepted step
    and stops by ``ftol`` at f = 0.0756, a saddle at infinity (with x₁, x₃ refitted, f falls
    monotonically as x₂ comes back, to 0 at x₂ = 10). A zero gradient component there is the
    underflow of e^{−tx₂}, not a measurement, so such a success is fitted again as well;
    ``fit_again`` keeps it unless a later fit ends lower. A fit that ends in any other way, or
    with a user's ``x_scale``, is returned as it is."""
    if cfg.scaling != "marquardt" or not _room(cfg, result.nfev):
        return False
    if result.status == Status.STALLED:
        return True
    return bool(result.success and x0 is not None and blind_column(result, x0))


def blind_column(result: OptimizeResult, x0) -> bool:
    """A parameter that the fit moved from x0 has a column of the final J whose squared norm
    ‖Jⱼ‖² is exactly 0, as the iteration computes it (``_core.iteration``: D, the gradient
    cosine, ``_termination.lost_direction``): the model at the end is blind to it. The
    entries themselves may be as large as 1e-162 (MGH Box 3-D from 10·x0 with
    ``damping='nielsen'`` ends by ``ftol`` with x₂'s column (4.7e-282, 0, …, 0)).
    A parameter whose column is 0 at x0 as well (one the residuals do not depend on) is never
    moved by a step, and does not count."""
    j = np.asarray(result.jac, dtype=np.float64)
    if j.ndim != 2 or j.shape[1] != np.size(x0):
        return False
    squares = j * j
    if squares.size and squares.min() > 0.0:  # (no zero column: every successful fit asks)
        return False
    zero = squares.sum(axis=0) == 0.0
    if not zero.any():
        return False
    moved = np.asarray(result.x, dtype=np.float64) != np.asarray(x0, dtype=np.float64)
    return bool((zero & moved).any())


def _room(cfg, nfev: int) -> bool:
    """max_nfev leaves room for one more evaluation and the Jacobian that would follow."""
    return cfg.max_nfev - nfev > 1 + cfg.jac_nfev


def _lower(new: OptimizeResult, old: OptimizeResult, cfg) -> bool:
    """``new`` ends lower than ``old`` by more than the cost's rounding at the outputs'
    precision (``ROUNDING_CHANGE`` ε F): a fit that ends at the same minimum at infinity is
    no better answer."""
    rounding = ROUNDING_CHANGE * rounding_epsilon(cfg, np.float64) * old.cost
    return bool(new.cost < old.cost - rounding)


#: The damping's ceiling in a continued fit (``without_ceiling``): the largest float, so that
#: only an overflow to inf passes it.
NO_CEILING = float(np.finfo(np.float64).max)


def without_ceiling(policy):
    """The damping policy with its ceiling on λ lifted (``NO_CEILING``): TrainLM's
    ``mu_max``, the others' ``lam_max``."""
    name = "mu_max" if hasattr(policy, "mu_max") else "lam_max"
    return dataclasses.replace(policy, **{name: NO_CEILING})


def fit_again(solve: Callable[..., OptimizeResult], result: OptimizeResult, cfg,
              verbose: int) -> OptimizeResult:
    """``result`` (configuration ``cfg``, ``wanted``) fitted again, with the evaluations left;
    ``solve(start=x0, **options)`` fits from ``start`` with the given options changed. The
    result with the lowest cost (by more than the cost's rounding) is returned; ``nfev`` and
    ``njev`` count every fit.

    1. From x0 with the parameters' own units as their scales (D = I, ``x_scale=1.0``,
       SciPy ``trf``'s default): D = I does not let a saturated parameter run off (MGH
       Box 3-D from 10·x0 reaches f = 0). It replaces a stalled fit where it ends lower, a
       successful one (``blind_column``) only where it ends lower in a success.
    2. Where a fit (the first, or this one) still ends ``STALLED``, it is continued from its
       end: a fit from there with Moré's D made afresh from the columns of J at that point
       (a lost parameter's column, now tiny, is its scale again), without the damping's
       ceiling (``without_ceiling``: the fit ends when its step rounds to nothing,
       ``_termination.rounded_away``, or at ``max_nfev``), and with the gain ratio's noise
       floor (``LoopConfig.noise`` = ``ROUNDING_CHANGE`` ε: a trial whose predicted and
       actual changes of F are both within F's rounding counts as ρ = 1; Conn, Gould &
       Toint's rule for a ratio of two rounding errors). A stall is a point where the cost
       still falls along a column that its model has lost; the linear model's step along it
       is far too long (MGH Box 3-D from 100·x0: from the stall at x₂ = 1000, where x₂'s
       column is 4e-45, the model's step is −8e43, and the cost falls only for x₂ in about
       [15, 330]), so the step must shrink by some 10⁴¹ (λ far beyond a ceiling of 1e32), and
       on the way it crosses lengths at which the cost does not change to working precision
       (x₂ in [330, 1000]): with the noise floor those steps are taken (the cost flat along
       them), not counted as failures that shrink the radius past the window where the cost
       falls. The continuation is kept only where it ends in a success lower than the
       others.
    """
    if verbose >= 1:
        print(f"{result.message}\nEnded with x_scale='jac' after {result.nfev} function "
              "evaluations: fitting again from x0 with x_scale=1.0 (D = I).")
    fits = [result]
    retry = solve(x_scale=1.0, max_nfev=cfg.max_nfev - result.nfev)
    fits.append(retry)
    # a success is given up only for a lower success
    best = retry if _lower(retry, result, cfg) and (retry.success or not result.success) \
        else result
    stalled = [f for f in (best, retry) if f.status == Status.STALLED]
    spent = result.nfev + retry.nfev
    if stalled and _room(cfg, spent):
        if verbose >= 1:
            print(f"{stalled[0].message}\nContinuing from where the fit stalled with "
                  "Moré's D afresh, no ceiling on the damping and the gain ratio's noise "
                  "floor.")
        rounding = rounding_epsilon(cfg, np.float64)
        onward = solve(start=np.asarray(stalled[0].x, dtype=np.float64), x_scale="jac",
                       damping=without_ceiling(cfg.damping), noise=ROUNDING_CHANGE * rounding,
                       max_nfev=cfg.max_nfev - spent)
        fits.append(onward)
        if onward.success and _lower(onward, best, cfg):
            best = onward
    return OptimizeResult(best, nfev=sum(f.nfev for f in fits), njev=sum(f.njev for f in fits))
