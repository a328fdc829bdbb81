"""The compiled JAX executor of the LM core: the core's iteration inside ``jax.lax.while_loop``.

The iteration (``marquardt._core.iteration``: step, gain ratio, acceptance, damping and
scaling, bounds, robust losses, termination) is shared with the host and TensorFlow
executors; this module only sequences it with ``lax.while_loop``, for K problems at once
(masks freeze the finished ones), to be traced once under ``jax.jit``::

    state ← start(r, J at x0)
    while any problem runs:                  # outer lax.while_loop
        prep, c ← prepare(state)
        while any attempt is live:           # inner lax.while_loop: only λ changes
            x_try ← propose(prep, c);  c ← judge(prep, c, x_try, r(x_try))
        state ← finish(state, prep, c, r and J at the accepted points)

The same shape as ``marquardt._backend.tensorflow.solve_loop``. History rows of problem 0 go
into a fixed (max_nfev + 1, 10) array (every iteration costs at least one evaluation, so
there are never more rows); callbacks are not called from here (the front door runs a fit
with a callback on the host executor, ``host_functions.compiled_evaluator``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from marquardt._backend.jax import xp as jxp
from marquardt._core import iteration as core
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopConfig, LoopState

__all__ = ["run_loop"]


def run_loop(cfg: LoopConfig, residual: Callable, residual_and_jacobian: Callable,
             x0, lb, ub, d_fixed, valid=None):
    """Run the LM solve from ``x0`` (K, n); returns ``(LoopState, (rows, count) or None)``.

    ``residual(x) -> r`` (K, m) and ``residual_and_jacobian(x) -> (r, J)`` act on the whole
    batch. ``valid`` (K,) bool: slots that hold a problem (the others, padding, never
    iterate: status ``IMPROPER_INPUT``). Traceable (call it under ``jax.jit``).
    """
    f0, j0 = residual_and_jacobian(x0)
    state = core.start(cfg, jxp, x0, f0, j0, lb, ub, d_fixed)
    if valid is not None:
        from marquardt._status import Status
        state = state._replace(status=jnp.where(valid, state.status,
                                                int(Status.IMPROPER_INPUT)))
    rows = None
    if cfg.record_history:
        zero = jnp.zeros_like(state.cost)
        row0 = core.history_row(cfg, jxp, 0, state, state.cost, zero, zero, zero,
                                jnp.zeros_like(state.nfev))
        rows = jnp.zeros((cfg.max_nfev + 1, len(HISTORY_FIELDS)), x0.dtype).at[0].set(row0)

    def outer_cond(carry):
        return jnp.any(jnp.equal(carry[0].status, RUNNING))

    def outer_body(carry):
        s, hist, it = carry
        it = it + 1
        new, c = _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s)
        if cfg.record_history:
            row = core.history_row(cfg, jxp, it, new, s.cost, c.step, c.rho, c.accepted,
                                   c.attempts)
            hist = hist.at[jnp.minimum(it, cfg.max_nfev)].set(row)
        return new, hist, it

    carry = (state, rows if rows is not None else jnp.zeros((0,), x0.dtype),
             jnp.asarray(0, jnp.int32))
    state, rows, iterations = jax.lax.while_loop(outer_cond, outer_body, carry)
    return state, ((rows, iterations) if cfg.record_history else None)


def _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s: LoopState):
    """One iteration of the core for every running problem; returns the new state and the
    iteration's last ``Attempt``."""
    prep, c0 = core.prepare(cfg, jxp, s, lb, ub, d_fixed)

    def inner_cond(c):
        return jnp.any(core.live(jxp, c))

    def inner_body(c):
        x_try = core.propose(cfg, jxp, prep, s, c, lb, ub)
        return core.judge(cfg, jxp, prep, s, c, x_try, residual(x_try))

    c = jax.lax.while_loop(inner_cond, inner_body, c0)
    f_new, j_new = jax.lax.cond(jnp.any(c.accepted), lambda: residual_and_jacobian(c.x_new),
                                lambda: (s.f, s.j))
    return core.finish(cfg, jxp, s, prep, c, f_new, j_new), c
