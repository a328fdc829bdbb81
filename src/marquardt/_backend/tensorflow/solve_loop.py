"""The compiled executor of the LM core: the core's iteration inside ``tf.while_loop``.

The iteration itself (``marquardt._core.iteration``: step, gain ratio, acceptance, damping and
scaling updates, bounds, robust losses, termination) is backend-neutral and shared with the
host executor; this module only sequences it in a TensorFlow graph, for K problems at once:
a finished problem is frozen by masks while the others go on, and a problem that turns
non-finite reports its own status without disturbing the rest::

    state ← start(r, J at x0)
    while any problem runs:                  # outer tf.while_loop
        prep, c ← prepare(state)
        while any attempt is live:           # inner tf.while_loop: only λ changes
            x_try ← propose(prep, c);  c ← judge(prep, c, x_try, r(x_try))
        state ← finish(state, prep, c, r and J at the accepted points)

``run_loop`` runs a whole solve (with history and callback), ``resume_loop`` cuts it into
rounds for a caller that refills finished slots (``curve_fit_batch``).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from marquardt._backend.tensorflow import xp as tfx
from marquardt._core import iteration as core
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopConfig, LoopState
from marquardt._status import Status

__all__ = ["LoopConfig", "LoopState", "initial_state", "run_loop", "idle_state", "restart",
           "resume_loop", "HISTORY_FIELDS"]



def initial_state(cfg: LoopConfig, residual_and_jacobian: Callable, x0, lb, ub, d_fixed
                  ) -> LoopState:
    """The loop state at the start points ``x0`` (K, n): residuals, Jacobian, cost, D, λ₀."""
    f0, j0 = residual_and_jacobian(x0)
    return core.start(cfg, tfx, x0, f0, j0, lb, ub, d_fixed)


def run_loop(cfg: LoopConfig, residual: Callable, residual_and_jacobian: Callable,
             x0, lb, ub, d_fixed):
    """Run the LM solve from ``x0`` (K, n); returns ``(LoopState, history or None)``.

    ``residual(x) -> r`` and ``residual_and_jacobian(x) -> (r, J)`` act on the whole batch.
    Runs eagerly or inside ``tf.function`` alike.
    """
    dtype = x0.dtype
    state = initial_state(cfg, residual_and_jacobian, x0, lb, ub, d_fixed)
    history = None
    if cfg.record_history:
        history = tf.TensorArray(dtype, size=cfg.max_nfev + 1, dynamic_size=False,
                                 clear_after_read=False, element_shape=[len(HISTORY_FIELDS)])
        zero = tf.zeros_like(state.cost)
        row0 = core.history_row(cfg, tfx, 0, state, state.cost, zero, zero,
                                tf.zeros_like(state.cost), tf.zeros_like(state.nfev))
        history = history.write(0, row0)
        state = _maybe_callback(cfg, state, row0)

    def outer_cond(s, hist, it):
        return tf.reduce_any(tf.equal(s.status, RUNNING))

    def outer_body(s, hist, it):
        s, hist = _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s, hist,
                             it + 1)
        return s, hist, it + 1

    loop_vars = (state, history if history is not None else tf.zeros([0], dtype),
                 tf.constant(0, tf.int32))
    state, history, iterations = tf.while_loop(outer_cond, outer_body, loop_vars)
    if cfg.record_history:
        return state, (history.stack(), iterations)
    return state, None


def idle_state(k: int, m: int, n: int, dtype=tf.float64) -> LoopState:
    """A state of K empty slots (status ``IMPROPER_INPUT``: never iterated), for
    ``resume_loop`` callers that fill slots as problems arrive."""
    z = lambda *shape: tf.zeros(shape, dtype)  # noqa: E731
    i = tf.zeros([k], tf.int32)
    return LoopState(x=z(k, n), f=z(k, m), j=z(k, m, n), cost=z(k), lam=z(k), nu=z(k),
                     d=tf.ones([k, n], dtype), nfev=i, njev=i, nit=i,
                     status=i + int(Status.IMPROPER_INPUT), last_step=z(k), last_rho=z(k),
                     last_reduction=z(k), x_norm=z(k))


def restart(cfg: LoopConfig, residual_and_jacobian: Callable, state: LoopState, fresh,
            x0, lb, ub, d_fixed) -> LoopState:
    """``state`` with the problems marked ``fresh`` (K,) started anew at their ``x0``."""

    def fresh_start():
        new = initial_state(cfg, residual_and_jacobian, x0, lb, ub, d_fixed)
        return tf.nest.map_structure(lambda a, b: core.select(tfx, fresh, a, b), new, state)

    return tf.cond(tf.reduce_any(fresh), fresh_start, lambda: state)


def resume_loop(cfg: LoopConfig, residual: Callable, residual_and_jacobian: Callable,
                state: LoopState, lb, ub, d_fixed, iterations, min_running=0) -> LoopState:
    """Up to ``iterations`` more outer iterations of the problems still running in ``state``,
    ending early once no more than ``min_running`` of them still run (after one iteration).

    The solve of ``run_loop`` cut into rounds, for a caller that swaps finished problems for
    new ones between rounds (``curve_fit_batch``); the state carries everything an iteration
    needs, so the rounds together take the steps one ``run_loop`` would. No history or
    callback (``cfg.record_history`` must be False).
    """
    if cfg.record_history:
        raise ValueError("resume_loop records no history: cfg.record_history must be False")
    none = tf.zeros([0], state.x.dtype)

    def cond(s, it):
        running = tf.reduce_sum(tf.cast(tf.equal(s.status, RUNNING), tf.int32))
        floor = tf.where(it > 0, min_running, 0)
        return tf.logical_and(it < iterations, running > floor)

    def body(s, it):
        s, _ = _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s, none,
                          it + 1)
        return s, it + 1

    return tf.while_loop(cond, body, (state, tf.constant(0, tf.int32)))[0]


def _maybe_callback(cfg: LoopConfig, s: LoopState, row):
    if cfg.callback is None:
        return s
    stop = tf.py_function(lambda r, x, f: bool(cfg.callback(r.numpy(), x.numpy(), f.numpy())),
                          [row, s.x[0], s.f[0]], tf.bool)
    stop = tf.reshape(stop, [])
    status = tf.where(tf.logical_and(stop, tf.equal(s.status, RUNNING)),
                      int(Status.CALLBACK), s.status)
    return s._replace(status=status)


def _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s: LoopState, hist, it):
    """One iteration of the core (``marquardt._core.iteration``) for every running problem."""
    prep, c0 = core.prepare(cfg, tfx, s, lb, ub, d_fixed)

    def inner_cond(c):
        return tf.reduce_any(core.live(tfx, c))

    def inner_body(c):
        x_try = core.propose(cfg, tfx, prep, s, c, lb, ub)
        return (core.judge(cfg, tfx, prep, s, c, x_try, residual(x_try)),)

    c = tf.while_loop(inner_cond, inner_body, (c0,))[0]
    f_new, j_new = tf.cond(tf.reduce_any(c.accepted),
                           lambda: residual_and_jacobian(c.x_new), lambda: (s.f, s.j))
    new = core.finish(cfg, tfx, s, prep, c, f_new, j_new)
    if cfg.record_history:
        row = core.history_row(cfg, tfx, it, new, s.cost, c.step, c.rho, c.accepted,
                               c.attempts)
        hist = hist.write(tf.minimum(it, cfg.max_nfev), row)
        new = _maybe_callback(cfg, new, row)
    return new, hist
