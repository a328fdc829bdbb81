"""The host executor of the LM core: one problem, NumPy arrays, a Python loop.

For a single small problem the iteration's dense algebra (an SVD of a 50 × 3 Jacobian) takes
microseconds in LAPACK, and what costs is the overhead around it: a compiled TensorFlow loop
pays tens of microseconds per graph op and a trace per new model. Here the core's functions
(``marquardt._core.iteration``) run eagerly on NumPy arrays of one problem (a leading axis of
size 1), and only the user's function is called per attempt: plain NumPy code as it is, a
TensorFlow model through one compiled function for r and J together.

Callbacks run as plain Python: an exception raised in one reaches the caller unchanged.
"""

from __future__ import annotations

import numpy as np

from marquardt._backend.numpy import xp
from marquardt._core import iteration as core
from marquardt._core.functions import Evaluator
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopConfig, LoopState
from marquardt._status import Status

__all__ = ["run"]


def run(cfg: LoopConfig, evaluator: Evaluator, x0, lb, ub, d_fixed
        ) -> tuple[LoopState, np.ndarray]:
    """Solve one problem from ``x0`` (1, n); returns the final state and the history rows.

    Args:
        cfg: the configuration.
        evaluator: the residual function and its Jacobian on NumPy arrays
            (``marquardt._core.functions.Evaluator``). With ``jacobian_with_residual`` J is
            evaluated with r at every candidate (one call of a compiled model instead of two
            when a step is accepted).
        x0, lb, ub, d_fixed: float64 arrays (1, n).
    """
    residual = evaluator.residual
    residual_and_jacobian = evaluator.residual_and_jacobian
    jacobian_with_residual = evaluator.jacobian_with_residual
    f0, j0 = evaluator.first if evaluator.first is not None else residual_and_jacobian(x0)
    with _quiet():
        state = core.start(cfg, xp, x0, f0, j0, lb, ub, d_fixed)
    rows = []
    if cfg.record_history:
        zero = np.zeros(1)
        row = core.history_row(cfg, xp, 0, state, state.cost, zero, zero, zero,
                               np.zeros(1, np.int32))
        rows.append(row)
        state = _callback(cfg, state, row)
    it = 0
    while state.status[0] == RUNNING:
        it += 1
        with _quiet():
            prep, c = core.prepare(cfg, xp, state, lb, ub, d_fixed)
        j_accepted = None
        while c.status[0] == RUNNING and not c.accepted[0]:
            with _quiet():
                x_try = core.propose(cfg, xp, prep, state, c, lb, ub)
            if jacobian_with_residual:
                f_try, j_try = residual_and_jacobian(x_try)
            else:
                f_try, j_try = residual(x_try), None
            with _quiet():
                c = core.judge(cfg, xp, prep, state, c, x_try, f_try)
            if c.accepted[0]:
                j_accepted = j_try
        if c.accepted[0]:
            if j_accepted is None:
                f_new, j_new = residual_and_jacobian(c.x_new)
            else:
                f_new, j_new = c.f_new, j_accepted
        else:
            f_new, j_new = state.f, state.j
        with _quiet():
            new = core.finish(cfg, xp, state, prep, c, f_new, j_new)
        if cfg.record_history:
            row = core.history_row(cfg, xp, it, new, state.cost, c.step, c.rho, c.accepted,
                                   c.attempts)
            rows.append(row)
            new = _callback(cfg, new, row)
        state = new
    table = np.stack(rows) if rows else np.zeros((0, len(HISTORY_FIELDS)))
    return state, table


def _quiet():
    """Overflow and NaN inside the core are handled (a non-finite trial is a failed step),
    not warned about, as in a compiled loop; the user's function is called outside."""
    return np.errstate(all="ignore")


def _callback(cfg: LoopConfig, s: LoopState, row) -> LoopState:
    if cfg.callback is None or not cfg.callback(row, s.x[0]):
        return s
    if s.status[0] != RUNNING:
        return s
    return s._replace(status=np.full_like(s.status, int(Status.CALLBACK)))
