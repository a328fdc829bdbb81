"""A fit that stalls with Moré's scaling, fitted again with the parameters' own units.

``least_squares`` and ``curve_fit`` (``_least_squares.solve_problem``) call ``wanted`` on a
finished fit and, where it holds, ``fit_again_unscaled``; ``curve_fit_batch`` and the Keras
step do not (a stalled member of a batch keeps its result).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from marquardt._core.verdicts import rounding_epsilon
from marquardt._gain import ROUNDING_CHANGE
from marquardt._result import OptimizeResult
from marquardt._status import Status

__all__ = ["wanted", "fit_again_unscaled"]


def wanted(result: OptimizeResult, cfg) -> bool:
    """Whether a finished fit is fitted again from x0 with Levenberg's D = I.

    Moré's D (``x_scale='jac'``, ``marquardt._scaling``) takes a parameter's column norm for
    its scale. A column that is small because its exponential is saturated, not because of
    the parameter's units, then gives the parameter a weight in the trust region that lets it
    step to where its column underflows: the parameter is lost for good, the rest of the fit
    is a fit of the others, and the fit ends ``STALLED`` away from a stationary point (MGH
    Box 3-D from 10·x0: x₂'s column is 5e-6 at x₂ = 100, its first accepted step goes to
    x₂ = 2.8e5, f ends at 0.0756 for 0; ``benchmarks/box3d.py``). ``STALLED`` is the fit's
    own certificate of that failure (a step that rounds to nothing where the residuals still
    point along a column, ``_termination.rounded_away``), so the remedy is paid only there:
    the start is fitted again with the parameters' own units as their scales (D = I, SciPy
    ``trf``'s default), with the evaluations left, and the second fit is kept where its cost
    is lower by more than the cost's rounding (``ROUNDING_CHANGE`` ε F, ε the outputs'
    precision: a float32 model's second fit of MGH Jennrich-Sampson from 10·x0 ends at the
    same minimum at infinity, 1e-6 lower, and D = I's step tests call that a success). A fit that
    ends in any other way, or with a user's ``x_scale``, is returned as it is."""
    return (result.status == Status.STALLED and cfg.scaling == "marquardt"
            and cfg.max_nfev - result.nfev > 1 + cfg.jac_nfev)


def fit_again_unscaled(solve: Callable[..., OptimizeResult], result: OptimizeResult, cfg,
                       verbose: int) -> OptimizeResult:
    """The stalled ``result`` (configuration ``cfg``) fitted again from x0 with
    ``x_scale=1.0`` and the evaluations left (``solve(x_scale=, max_nfev=)`` fits from x0
    with the other options unchanged): the second fit where its cost is lower by more than
    the cost's rounding at the outputs' precision (a second fit that ends at the same minimum
    at infinity is no better answer), else the first; ``nfev`` and ``njev`` count both."""
    if verbose >= 1:
        print(f"{result.message}\nStalled with x_scale='jac' after {result.nfev} "
              "function evaluations: fitting again from x0 with x_scale=1.0 (D = I).")
    retry = solve(x_scale=1.0, max_nfev=cfg.max_nfev - result.nfev)
    rounding = ROUNDING_CHANGE * rounding_epsilon(cfg, np.float64) * result.cost
    better = retry if retry.cost < result.cost - rounding else result
    return OptimizeResult(better, nfev=result.nfev + retry.nfev, njev=result.njev + retry.njev)
