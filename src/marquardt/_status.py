"""Termination status of a solve: one enum, one message table.

The integer values follow `scipy.optimize.least_squares` where SciPy has a meaning for them
(-1 improper input, 0 max_nfev, 1 gtol, 2 ftol, 3 xtol, 4 ftol and xtol), so code written for
SciPy's ``status`` keeps working. Values SciPy does not define are ours and documented here.
"""

from __future__ import annotations

import enum

__all__ = ["Status", "status_message"]


class Status(enum.IntEnum):
    """Why a least-squares solve stopped.

    ``success`` in a result is ``status > 0``, as in SciPy.
    """

    #: Internal: the solve is still running (never returned to users).
    RUNNING = -100
    #: No step lowers the cost, at a point whose gradient is not small (gradient cosine above
    #: ``marquardt._termination.STATIONARY_COSINE``): the damping λ reached its upper limit, or
    #: the step rounded to nothing (x + p = x; ``marquardt._termination.rounded_away``, a cost
    #: flat to working precision along a vanished column of J). Not a minimum, a stall.
    STALLED = -4
    #: A residual or Jacobian became NaN or Inf at the current best point.
    NON_FINITE = -3
    #: The user's callback asked to stop (returned True or raised StopIteration).
    CALLBACK = -2
    #: Improper input (SciPy's -1); raised as an exception by the front doors instead.
    IMPROPER_INPUT = -1
    #: The number of function evaluations reached ``max_nfev`` (SciPy's 0).
    MAX_NFEV = 0
    #: First-order optimality reached ``gtol`` (SciPy's 1).
    GTOL = 1
    #: Relative reduction of the cost fell below ``ftol`` (SciPy's 2).
    FTOL = 2
    #: Relative step size fell below ``xtol`` (SciPy's 3).
    XTOL = 3
    #: Both ``ftol`` and ``xtol`` were satisfied (SciPy's 4).
    FTOL_XTOL = 4
    #: The damping λ reached its upper limit without any step lowering the cost, at a point
    #: whose gradient cosine is small: a minimum to working precision (MINPACK's info 6-8,
    #: Ceres' minimum trust region).
    DAMPING_LIMIT = 5
    #: The cost reached the requested goal (MATLAB ``trainlm``'s performance goal).
    GOAL = 6

    @property
    def success(self) -> bool:
        return int(self) > 0


_MESSAGES = {
    Status.RUNNING: "The solve is still running.",
    Status.STALLED: (
        "No step lowers the cost (the damping reached its upper limit or the step rounded to "
        "nothing), away from a stationary point{detail}."
    ),
    Status.NON_FINITE: "The residuals or the Jacobian became non-finite{detail}.",
    Status.CALLBACK: "Stopped by the callback{detail}.",
    Status.IMPROPER_INPUT: "Improper input parameters{detail}.",
    Status.MAX_NFEV: "The maximum number of function evaluations is exceeded{detail}.",
    Status.GTOL: "`gtol` termination condition is satisfied{detail}.",
    Status.FTOL: "`ftol` termination condition is satisfied{detail}.",
    Status.XTOL: "`xtol` termination condition is satisfied{detail}.",
    Status.FTOL_XTOL: "Both `ftol` and `xtol` termination conditions are satisfied{detail}.",
    Status.DAMPING_LIMIT: (
        "The damping reached its upper limit with no step lowering the cost: "
        "a minimum to working precision{detail}."
    ),
    Status.GOAL: "The cost reached the goal{detail}.",
}


def status_message(status: int | Status, detail: str = "") -> str:
    """The readable message for ``status``; ``detail`` carries the measured numbers.

    Example: ``status_message(Status.GTOL, "gradient 3.1e-11 <= gtol 1e-10")`` gives
    "`gtol` termination condition is satisfied (gradient 3.1e-11 <= gtol 1e-10)."
    """
    detail = f" ({detail})" if detail else ""
    return _MESSAGES[status if type(status) is Status else Status(int(status))].format(
        detail=detail)
