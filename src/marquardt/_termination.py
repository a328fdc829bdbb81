"""Termination tests with SciPy's meanings (``scipy.optimize.least_squares``).

* ``ftol``: dF < ftol · F, and the last step agreed with its model (ρ > 0.25); SciPy's
  ``check_termination`` in ``_lsq/common.py``, MINPACK's (Moré 1978) test on the actual and
  predicted relative reductions.
* ``xtol``: ‖S p‖ < xtol · (xtol + ‖S x‖) for the step p in the scaled variables S x, S = √D
  (MINPACK's ``delta <= xtol * xnorm`` on scaled norms; SciPy adds the ``xtol +`` so that
  x = 0 can terminate).
* ``gtol``: the largest cosine between the residual vector and a column of J is below
  ``gtol`` (MINPACK's scale-invariant test and SciPy's meaning for ``method='lm'``), or the
  residual vector is zero.

All functions are batched over leading dimensions and return int32 status codes, with
``Status.RUNNING`` where no test fires.
"""

from __future__ import annotations

from keras import ops

from marquardt._status import Status

__all__ = ["step_status", "gradient_cosine", "gradient_status"]


def step_status(d_cost, cost, step_norm, x_norm, rho, ftol: float, xtol: float):
    """Status after a step attempt: FTOL, XTOL, FTOL_XTOL or RUNNING (int32)."""
    f_ok = ops.logical_and(ops.less(d_cost, ftol * cost), ops.greater(rho, 0.25))
    x_ok = ops.less(step_norm, xtol * (xtol + x_norm))
    code = ops.where(
        ops.logical_and(f_ok, x_ok),
        int(Status.FTOL_XTOL),
        ops.where(f_ok, int(Status.FTOL), ops.where(x_ok, int(Status.XTOL), int(Status.RUNNING))),
    )
    return ops.cast(code, "int32")


def gradient_cosine(g, r_norm, col_norms):
    """maxⱼ |gⱼ| / (‖r‖ ‖Jⱼ‖), MINPACK's gnorm; zero columns and r = 0 contribute 0."""
    denom = ops.expand_dims(r_norm, -1) * col_norms
    ok = ops.greater(denom, 0.0)
    cos = ops.where(ok, ops.abs(g) / ops.where(ok, denom, ops.ones_like(denom)), 0.0)
    return ops.max(cos, axis=-1)


def gradient_status(g, r_norm, col_norms, gtol: float):
    """GTOL where the gradient cosine is at most ``gtol`` or r = 0, else RUNNING (int32)."""
    done = ops.logical_or(ops.less_equal(gradient_cosine(g, r_norm, col_norms), gtol),
                          ops.equal(r_norm, 0.0))
    return ops.cast(ops.where(done, int(Status.GTOL), int(Status.RUNNING)), "int32")
