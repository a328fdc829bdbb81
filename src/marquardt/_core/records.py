"""The records every surface of the LM core shares: configuration, state, history fields.

Backend-neutral: the fields hold NumPy arrays in the host executor and tensors in a compiled
one. Every per-problem field has a leading axis of K problems (K = 1 for a single fit).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from marquardt._status import Status

__all__ = ["LoopConfig", "LoopState", "HISTORY_FIELDS", "RUNNING", "replaced"]

RUNNING = int(Status.RUNNING)

#: The columns of a solve's history table, one row per iteration (row 0: the start point);
#: the fields of ``IterationSummary``.
HISTORY_FIELDS = ("iteration", "cost", "cost_change", "gradient_norm", "step_norm",
                  "gain_ratio", "damping", "accepted", "attempts", "nfev")


class LoopConfig(NamedTuple):
    """Static configuration of the LM iteration (fixed at trace time in a compiled loop).

    Attributes:
        damping: the damping policy (``marquardt._damping``).
        solver: the damped linear solver (``marquardt._solvers``).
        scaling: the damping matrix D: ``"marquardt"`` (running max of diag(JᵀJ)),
            ``"identity"`` or ``"fixed"`` (from ``x_scale``); ``marquardt._scaling``.
        loss, f_scale: the robust loss and its soft margin (``marquardt._robust``).
        ftol, xtol, gtol: SciPy's termination tolerances (``marquardt._termination``).
        max_nfev: the most calls of the residual function, a hard limit: an attempt is made
            only while its evaluation and, should it be accepted, the Jacobian's fit in it.
        jac_nfev: calls of the residual function per Jacobian (n for 2-point differences, 2n
            for 3-point, 0 for autodiff or a callable ``jac``), counted in ``nfev`` as SciPy's
            ``lm`` (MINPACK) counts them.
        bounded: the problem has finite bounds (steps are projected, active columns frozen).
        record_history: keep one ``HISTORY_FIELDS`` row per iteration.
        callback: ``callback(row, x, f) -> bool`` after each iteration (f: the residuals at x);
            True stops the solve.
        jit_compile: compile a TensorFlow solve with XLA (``benchmarks/nist.py``).
        noise: relative rounding level of the cost below which a step's predicted and actual
            reductions are both noise, and the step counts as good (ρ = 1;
            ``_gain.gain_ratio_with_noise_floor``). 0 disables the floor.
        min_grad: stop (GTOL) once ‖g‖₂ ≤ min_grad (MATLAB trainlm's ``min_grad``); 0 disables.
        goal: stop (GOAL) once the cost is at or below ``goal`` (trainlm's ``goal``);
            −∞ disables.
        output_epsilon: machine epsilon of the user's function's outputs where they are
            coarser than the state's dtype (a NumPy model that returns float32, solved in
            float64 on the host: 2⁻²³); 0: the state's own. The residuals carry only that
            precision, so the residuals' noise level and a cost change's rounding take the
            coarser of the two (``verdicts.rounding_epsilon``), and a fit that can go no
            further (a step rounded to nothing, the damping at its ceiling) is judged
            stationary where its gradient is within that rounding
            (``_termination.resolved_cosine``).
    """

    damping: Any
    solver: Any
    scaling: str
    loss: str
    f_scale: float
    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    bounded: bool
    record_history: bool = False
    callback: Callable | None = None
    #: Compile the whole solve with XLA. Off by default: on CPU, XLA's SVD is slow and its
    #: compile time is seconds per problem; measured by ``benchmarks/nist.py``.
    jit_compile: bool = False
    noise: float = 0.0
    min_grad: float = 0.0
    goal: float = float("-inf")
    jac_nfev: int = 0
    output_epsilon: float = 0.0


#: ``replaced``'s answers: (id of a configuration, its changes) -> (it, the changed one).
_REPLACED: dict = {}
_REPLACED_MAX = 256


def replaced(cfg: LoopConfig, **changes) -> LoopConfig:
    """``cfg._replace(**changes)``, the same object for the same ``cfg`` object and changes:
    a warm fit derives its configuration from ``loop_config``'s cached one by a few such
    changes, each a dictionary look-up instead of a new record (and the host's caches
    keyed on the configuration then see one object). Only plain values are remembered (a
    callback, made per fit, is not); ``changes`` equal to ``cfg``'s values give ``cfg``."""
    for name, value in changes.items():
        if callable(value) or getattr(cfg, name) != value or \
                type(getattr(cfg, name)) is not type(value):
            break
    else:  # nothing changes
        return cfg
    key = (id(cfg), *changes.items())
    try:
        hit = _REPLACED.get(key)
    except TypeError:  # an unhashable value
        return cfg._replace(**changes)
    if hit is not None and hit[0] is cfg:  # (the entry holds cfg: its id is not reused)
        return hit[1]
    new = cfg._replace(**changes)
    if not any(callable(v) for v in changes.values()):
        if len(_REPLACED) >= _REPLACED_MAX:
            _REPLACED.clear()
        _REPLACED[key] = (cfg, new)
    return new


class LoopState(NamedTuple):
    """The state of K problems between iterations (leading axis K on every field)."""

    x: Any  # (K, n)
    f: Any  # (K, m) residuals at x
    j: Any  # (K, m, n) Jacobian at x
    cost: Any  # (K,)
    lam: Any  # (K,)
    nu: Any  # (K,)
    d: Any  # (K, n) damping diagonal
    nfev: Any  # (K,) int32
    njev: Any  # (K,) int32
    nit: Any  # (K,) int32
    status: Any  # (K,) int32
    last_step: Any  # (K,) scaled norm of the last attempted step
    last_rho: Any  # (K,) its gain ratio
    last_reduction: Any  # (K,) its actual cost reduction
    x_norm: Any  # (K,) scaled norm of x at the last iteration
