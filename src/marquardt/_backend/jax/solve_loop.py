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

The same shape as ``marquardt._backend.tensorflow.solve_loop``: ``run_loop`` runs a whole
solve, ``restart`` and ``resume_loop`` cut it into rounds for a caller that refills finished
slots (``curve_fit_batch``, ``marquardt._core.stream``). History rows of problem 0 go
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

__all__ = ["run_loop", "idle_state", "restart", "resume_loop"]


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


def idle_state(k: int, m: int, n: int, dtype) -> LoopState:
    """A state of K empty slots (status ``IMPROPER_INPUT``: never iterated), for
    ``resume_loop`` callers that fill slots as problems arrive."""
    from marquardt._status import Status

    z = lambda *shape: jnp.zeros(shape, dtype)  # noqa: E731
    i = jnp.zeros((k,), jnp.int32)
    return LoopState(x=z(k, n), f=z(k, m), j=z(k, m, n), cost=z(k), lam=z(k), nu=z(k),
                     d=jnp.ones((k, n), dtype), nfev=i, njev=i, nit=i,
                     status=i + int(Status.IMPROPER_INPUT), last_step=z(k), last_rho=z(k),
                     last_reduction=z(k), x_norm=z(k))


def restart(cfg: LoopConfig, residual_and_jacobian: Callable, state: LoopState, fresh,
            x0, lb, ub, d_fixed) -> LoopState:
    """``state`` with the problems marked ``fresh`` (K,) started anew at their ``x0``."""

    def fresh_start():
        f0, j0 = residual_and_jacobian(x0)
        new = core.start(cfg, jxp, x0, f0, j0, lb, ub, d_fixed)
        return jax.tree_util.tree_map(lambda a, b: core.select(jxp, fresh, a, b), new, state)

    return jax.lax.cond(jnp.any(fresh), fresh_start, lambda: state)


def resume_loop(cfg: LoopConfig, residual: Callable, residual_and_jacobian: Callable,
                state: LoopState, lb, ub, d_fixed, iterations, min_running=0) -> LoopState:
    """Up to ``iterations`` more outer iterations of the problems still running in ``state``,
    ending early once no more than ``min_running`` of them still run (after one iteration).

    The solve of ``run_loop`` cut into rounds: the state carries everything an iteration
    needs, so the rounds together take the steps one ``run_loop`` would. No history.
    """
    if cfg.record_history:
        raise ValueError("resume_loop records no history: cfg.record_history must be False")

    def cond(carry):
        s, it = carry
        running = jnp.sum(jnp.equal(s.status, RUNNING).astype(jnp.int32))
        floor = jnp.where(it > 0, min_running, 0)
        return jnp.logical_and(it < iterations, running > floor)

    def body(carry):
        s, it = carry
        s, _ = _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s)
        return s, it + 1

    return jax.lax.while_loop(cond, body, (state, jnp.asarray(0, jnp.int32)))[0]
