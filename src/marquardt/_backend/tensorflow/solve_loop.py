"""The LM iteration as one compiled ``tf.while_loop``, batched over independent problems.

All state has a leading batch dimension K (``least_squares`` uses K = 1; ``curve_fit_batch``
K problems). Each problem has its own λ, acceptance and termination: a finished problem is
frozen by masks while the others go on, and a problem that turns non-finite reports its own
status without disturbing the rest.

One outer iteration (symbols as in ``marquardt._gain``)::

    r̃, J̃ ← robust rescaling of r, J;  g ← J̃ᵀr̃   (active bounds: columns frozen)
    gtol test;  D ← scaling rule;  factor J̃ (solver)
    repeat                               # inner tf.while_loop over λ, no J evaluations
        δ ← solve(λ);  p ← clip(x + δ) − x;  evaluate r(x + p)
        ρ ← (F(x) − F(x + p)) / (L(0) − L(p));  λ ← policy(λ, ρ)
        ftol / xtol / max_nfev / λ-ceiling tests
    until accepted or terminated
    x ← x + p;  r, J ← at the new x

The damping policy, the scaling, the solver and the tests are passed in; this module only
sequences them.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import tensorflow as tf

from marquardt import _gain, _robust, _scaling, _termination
from marquardt._damping import DampingState
from marquardt._status import Status

__all__ = ["LoopConfig", "LoopState", "initial_state", "run_loop", "idle_state", "restart",
           "resume_loop", "HISTORY_FIELDS"]

RUNNING = int(Status.RUNNING)

HISTORY_FIELDS = ("iteration", "cost", "cost_change", "gradient_norm", "step_norm",
                  "gain_ratio", "damping", "accepted", "attempts", "nfev")


class LoopConfig(NamedTuple):
    """Static (trace-time) configuration of the loop."""

    damping: Any  # a policy from marquardt._damping
    solver: Any  # a solver from marquardt._solvers
    scaling: str  # "marquardt" | "identity" | "fixed"
    loss: str
    f_scale: float
    ftol: float
    xtol: float
    gtol: float
    max_nfev: int
    bounded: bool
    record_history: bool = False
    callback: Callable | None = None  # python callable(summary_row, x) -> bool stop
    #: Compile the whole solve with XLA. Off by default: on CPU, XLA's SVD is slow and its
    #: compile time is seconds per problem; measured by ``benchmarks/nist.py``.
    jit_compile: bool = False


class LoopState(NamedTuple):
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


def _select(mask, new, old):
    """Per-problem ``where`` for tensors with a leading batch dimension."""
    shape = tf.concat([tf.shape(mask), tf.ones([tf.rank(new) - 1], tf.int32)], 0)
    return tf.where(tf.reshape(mask, shape), new, old)



def _all_finite_rows(t):
    axes = list(range(1, len(t.shape)))
    return tf.reduce_all(tf.math.is_finite(t), axis=axes)


def _scaled_system(cfg: LoopConfig, x, f, j, lb, ub):
    """Robust rescaling, gradient and the bound-frozen Jacobian."""
    rt, jt = _robust.rescale(cfg.loss, f, j, cfg.f_scale)
    g = tf.linalg.matvec(jt, rt, transpose_a=True)
    if cfg.bounded:
        frozen = tf.logical_or(tf.logical_and(x <= lb, g > 0), tf.logical_and(x >= ub, g < 0))
        free = tf.cast(tf.logical_not(frozen), x.dtype)
        jt = jt * free[:, None, :]
        g = g * free
    return rt, jt, g


def _diagonal(cfg: LoopConfig, d_prev, colsq, d_fixed):
    if cfg.scaling == "marquardt":
        return _scaling.marquardt_diagonal(d_prev, colsq)
    if cfg.scaling == "identity":
        return tf.ones_like(colsq)
    return d_fixed


def initial_state(cfg: LoopConfig, residual_and_jacobian: Callable, x0, lb, ub, d_fixed
                  ) -> LoopState:
    """The loop state at the start points ``x0`` (K, n): residuals, Jacobian, cost, D, λ₀."""
    k = tf.shape(x0)[0]
    f0, j0 = residual_and_jacobian(x0)
    cost0 = _robust.robust_cost(cfg.loss, f0, cfg.f_scale)
    finite0 = tf.logical_and(_all_finite_rows(f0), _all_finite_rows(j0))
    _, jt0, _ = _scaled_system(cfg, x0, f0, j0, lb, ub)
    colsq0 = tf.reduce_sum(jt0 * jt0, axis=-2)
    d0 = _diagonal(cfg, None, colsq0, d_fixed)
    damp0 = cfg.damping.init(tf.reduce_max(colsq0 / d0, axis=-1))
    ones = tf.ones([k], tf.int32)
    return LoopState(
        x=x0, f=f0, j=j0, cost=cost0, lam=damp0.lam, nu=damp0.nu, d=d0,
        nfev=ones, njev=ones, nit=0 * ones,
        status=tf.where(finite0, RUNNING, int(Status.NON_FINITE)) * ones,
        last_step=0.0 * cost0, last_rho=0.0 * cost0, last_reduction=0.0 * cost0,
        x_norm=0.0 * cost0,
    )


def run_loop(cfg: LoopConfig, residual: Callable, residual_and_jacobian: Callable,
             x0, lb, ub, d_fixed):
    """Run the LM solve from ``x0`` (K, n); returns ``(LoopState, history or None)``.

    ``residual(x) -> r`` and ``residual_and_jacobian(x) -> (r, J)`` act on the whole batch.
    Runs eagerly or inside ``tf.function`` alike.
    """
    dtype = x0.dtype
    state = initial_state(cfg, residual_and_jacobian, x0, lb, ub, d_fixed)
    f0, j0, cost0 = state.f, state.j, state.cost
    history = None
    if cfg.record_history:
        history = tf.TensorArray(dtype, size=cfg.max_nfev + 1, dynamic_size=False,
                                 clear_after_read=False, element_shape=[len(HISTORY_FIELDS)])
        g0 = tf.linalg.matvec(*_robust.rescale(cfg.loss, f0, j0, cfg.f_scale)[::-1],
                              transpose_a=True)
        row0 = _row(0, cost0, 0.0 * cost0, g0, 0.0 * cost0, 0.0 * cost0, state.lam,
                    tf.zeros_like(cost0), tf.zeros_like(cost0), state.nfev)
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
        return tf.nest.map_structure(lambda a, b: _select(fresh, a, b), new, state)

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


def _row(it, cost, dcost, g, step, rho, lam, accepted, attempts, nfev):
    """History row of problem 0, in ``HISTORY_FIELDS`` order."""
    dt = cost.dtype
    vals = [tf.cast(it, dt), cost[0], dcost[0], tf.reduce_max(tf.abs(g[0])), step[0], rho[0],
            lam[0], tf.cast(accepted[0], dt), tf.cast(attempts[0], dt), tf.cast(nfev[0], dt)]
    return tf.stack(vals)


def _maybe_callback(cfg: LoopConfig, s: LoopState, row):
    if cfg.callback is None:
        return s
    stop = tf.py_function(lambda r, x: bool(cfg.callback(r.numpy(), x.numpy())),
                          [row, s.x[0]], tf.bool)
    stop = tf.reshape(stop, [])
    status = tf.where(tf.logical_and(stop, tf.equal(s.status, RUNNING)),
                      int(Status.CALLBACK), s.status)
    return s._replace(status=status)


def _iteration(cfg, residual, residual_and_jacobian, lb, ub, d_fixed, s: LoopState, hist, it):
    dtype = s.x.dtype
    active = tf.equal(s.status, RUNNING)
    rt, jt, g = _scaled_system(cfg, s.x, s.f, s.j, lb, ub)
    colsq = tf.reduce_sum(jt * jt, axis=-2)
    gstat = _termination.gradient_status(g, tf.norm(rt, axis=-1), tf.sqrt(colsq), cfg.gtol)
    status = tf.where(active, gstat, s.status)
    d = _select(active, _diagonal(cfg, s.d, colsq, d_fixed), s.d)
    # Problems that no longer run still pass through the batched solve (their steps are
    # discarded). Give them the trivial system J = 0, D = I, λ = 1: a stopped problem with a
    # singular or non-finite Jacobian must not send the whole batch down a solver's fallback
    # route (the eigen-decomposition behind the Cholesky solvers) at every attempt.
    fac = cfg.solver.factor(_select(active, jt, tf.zeros_like(jt)),
                            _select(active, rt, tf.zeros_like(rt)),
                            _select(active, d, tf.ones_like(d)))
    sqrt_d = tf.sqrt(d)
    x_norm = tf.norm(sqrt_d * s.x, axis=-1)

    class Inner(NamedTuple):
        lam: Any
        nu: Any
        nfev: Any
        status: Any
        accepted: Any
        x_new: Any
        f_new: Any
        cost_new: Any
        step: Any
        rho: Any
        attempts: Any
        cost_try_last: Any

    zero = tf.zeros_like(s.cost)
    inner0 = Inner(lam=s.lam, nu=s.nu, nfev=s.nfev, status=status,
                   accepted=tf.zeros_like(active), x_new=s.x, f_new=s.f, cost_new=s.cost,
                   step=zero, rho=zero, attempts=tf.zeros_like(s.nfev), cost_try_last=s.cost)

    def live_of(c: Inner):
        return tf.logical_and(tf.equal(c.status, RUNNING), tf.logical_not(c.accepted))

    def inner_cond(c: Inner):
        return tf.reduce_any(live_of(c))

    def inner_body(c: Inner):
        live = live_of(c)
        delta = cfg.solver.solve(fac, tf.where(live, c.lam, tf.ones_like(c.lam)))
        x_try = s.x + delta
        if cfg.bounded:
            x_try = tf.clip_by_value(x_try, lb, ub)
        x_try = _select(live, x_try, s.x)
        p = x_try - s.x
        pred = _gain.model_reduction(g, tf.linalg.matvec(jt, p), p)
        f_try = residual(x_try)
        cost_try = _robust.robust_cost(cfg.loss, f_try, cfg.f_scale)
        cost_try = tf.where(_all_finite_rows(f_try), cost_try, tf.cast(np.inf, dtype))
        actual = s.cost - cost_try
        rho = _gain.gain_ratio(actual, pred)
        ok = tf.logical_and(live, cfg.damping.accept(rho))
        new_damp = cfg.damping.update(DampingState(c.lam, c.nu), rho)
        step = tf.norm(sqrt_d * p, axis=-1)
        nfev = c.nfev + tf.cast(live, tf.int32)
        tstat = _termination.step_status(actual, s.cost, step, x_norm, rho, cfg.ftol, cfg.xtol)
        tstat = tf.where(tf.logical_and(tf.equal(tstat, RUNNING), nfev >= cfg.max_nfev),
                         int(Status.MAX_NFEV), tstat)
        exhausted = tf.logical_and(cfg.damping.exhausted(new_damp), tf.logical_not(ok))
        tstat = tf.where(tf.logical_and(tf.equal(tstat, RUNNING), exhausted),
                         int(Status.DAMPING_LIMIT), tstat)
        return (Inner(
            lam=tf.where(live, new_damp.lam, c.lam),
            nu=tf.where(live, new_damp.nu, c.nu),
            nfev=nfev,
            status=tf.where(live, tstat, c.status),
            accepted=tf.logical_or(c.accepted, ok),
            x_new=_select(ok, x_try, c.x_new),
            f_new=_select(ok, f_try, c.f_new),
            cost_new=tf.where(ok, cost_try, c.cost_new),
            step=tf.where(live, step, c.step),
            rho=tf.where(live, rho, c.rho),
            attempts=c.attempts + tf.cast(live, tf.int32),
            cost_try_last=tf.where(live, cost_try, c.cost_try_last),
        ),)

    c = tf.while_loop(inner_cond, inner_body, (inner0,))[0]
    acc = c.accepted

    def new_jacobian():
        return residual_and_jacobian(c.x_new)

    f_new, j_new = tf.cond(tf.reduce_any(acc), new_jacobian, lambda: (s.f, s.j))
    j_ok = _all_finite_rows(j_new)
    status = tf.where(tf.logical_and(acc, tf.logical_not(j_ok)), int(Status.NON_FINITE),
                      c.status)
    new = LoopState(
        x=_select(acc, c.x_new, s.x),
        f=_select(acc, f_new, s.f),
        j=_select(tf.logical_and(acc, j_ok), j_new, s.j),
        cost=tf.where(acc, c.cost_new, s.cost),
        lam=c.lam, nu=c.nu, d=d,
        nfev=c.nfev,
        njev=s.njev + tf.cast(acc, tf.int32),
        nit=s.nit + tf.cast(acc, tf.int32),
        status=status,
        last_step=tf.where(active, c.step, s.last_step),
        last_rho=tf.where(active, c.rho, s.last_rho),
        last_reduction=tf.where(active, s.cost - c.cost_try_last, s.last_reduction),
        x_norm=tf.where(active, x_norm, s.x_norm),
    )
    if cfg.record_history:
        g_new = tf.linalg.matvec(*_robust.rescale(cfg.loss, new.f, new.j, cfg.f_scale)[::-1],
                                 transpose_a=True)
        row = _row(it, new.cost, s.cost - new.cost, g_new, c.step,
                   c.rho, new.lam, acc, c.attempts, new.nfev)
        hist = hist.write(tf.minimum(it, cfg.max_nfev), row)
        new = _maybe_callback(cfg, new, row)
    return new, hist
