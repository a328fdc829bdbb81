"""Termination tests with SciPy's meanings (``scipy.optimize.least_squares``).

* ``ftol``: dF < ftol · F, and the last step agreed with its model (ρ > 0.25); SciPy's
  ``check_termination`` in ``_lsq/common.py``, MINPACK's (Moré 1978) test on the actual and
  predicted relative reductions.
* ``xtol``: ‖S p‖ < xtol · (xtol + ‖S x‖) for the step p in the scaled variables S x, S = √D
  (MINPACK's ``delta <= xtol * xnorm`` on scaled norms; SciPy adds the ``xtol +`` so that
  x = 0 can terminate). The core passes an accepted step with the diagonal part of its damping
  undone (``_core.iteration._undamped_step``): a step that λD kept short is no sign of
  convergence.
* ``gtol``: the largest cosine between the residual vector and a column of J is below
  ``gtol`` (MINPACK's scale-invariant test and SciPy's meaning for ``method='lm'``), or the
  residual vector is zero.

All functions are batched over leading dimensions and return int32 status codes, with
``Status.RUNNING`` where no test fires.
"""

from __future__ import annotations

from marquardt._status import Status
from marquardt._xp import array_namespace

__all__ = ["step_status", "gradient_cosine", "gradient_status"]


def step_status(d_cost, cost, step_norm, x_norm, rho, ftol: float, xtol: float, xp=None):
    """Status after a step attempt: FTOL, XTOL, FTOL_XTOL or RUNNING (int32). A tolerance
    of 0 (SciPy's None) disables its test: with the gain ratio's noise floor a step may be
    accepted whose cost change is a rounding-level increase, which ``dF < 0·F`` would take
    for convergence."""
    xp = xp or array_namespace(d_cost, cost, step_norm)
    never = xp.less(cost, -1.0)  # False, shaped like the batch (costs are not negative)
    f_ok = (xp.logical_and(xp.less(d_cost, ftol * cost), xp.greater(rho, 0.25)) if ftol > 0
            else never)
    x_ok = xp.less(step_norm, xtol * (xtol + x_norm)) if xtol > 0 else never
    code = xp.where(
        xp.logical_and(f_ok, x_ok),
        int(Status.FTOL_XTOL),
        xp.where(f_ok, int(Status.FTOL), xp.where(x_ok, int(Status.XTOL), int(Status.RUNNING))),
    )
    return xp.cast(code, "int32")


def gradient_cosine(g, r_norm, col_norms, xp=None):
    """maxⱼ |gⱼ| / (‖r‖ ‖Jⱼ‖), MINPACK's gnorm; zero columns and r = 0 contribute 0."""
    xp = xp or array_namespace(g, r_norm, col_norms)
    denom = xp.expand_dims(r_norm, -1) * col_norms
    ok = xp.greater(denom, 0.0)
    cos = xp.where(ok, xp.abs(g) / xp.where(ok, denom, xp.ones_like(denom)), 0.0)
    return xp.max(cos, axis=-1)


def gradient_status(g, r_norm, col_norms, gtol: float, xp=None):
    """GTOL where the gradient cosine is at most ``gtol`` or r = 0, else RUNNING (int32)."""
    xp = xp or array_namespace(g, r_norm, col_norms)
    done = xp.logical_or(xp.less_equal(gradient_cosine(g, r_norm, col_norms, xp), gtol),
                         xp.equal(r_norm, 0.0))
    return xp.cast(xp.where(done, int(Status.GTOL), int(Status.RUNNING)), "int32")
