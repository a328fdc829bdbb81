"""The host executor of the LM core: NumPy arrays, a Python loop, one problem or many.

For a single small problem the iteration's dense algebra (an SVD of a 50 × 3 Jacobian) takes
microseconds in LAPACK, and what costs is the overhead around it: a compiled TensorFlow loop
pays tens of microseconds per graph op and a trace per new model. Here the core's functions
(``marquardt._core.iteration``) run eagerly on NumPy arrays of one problem (a leading axis of
size 1), and only the user's function is called per attempt: plain NumPy code as it is, a
TensorFlow model through one compiled function for r and J together.

For one problem the core's functions do not run layer by layer: each (``prepare`` with the
first ``live`` test, ``propose``, ``judge`` with the next, ``finish``) is traced at its first
call into one straight-line Python function of the same operations
(``marquardt._backend.numpy.trace``), cached per configuration and shapes, and the loop
``_run_one`` calls those; bit for bit the eager loop's results (``tests/test_host_overhead.py``).
A configuration that cannot be traced (a function branching on a value) runs eagerly.

Callbacks run as plain Python: an exception raised in one reaches the caller unchanged.
"""

from __future__ import annotations

import numpy as np

from typing import NamedTuple

from marquardt._backend.numpy import single, trace, xp
from marquardt._core import iteration as core
from marquardt._core.functions import Evaluator
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopConfig, LoopState, replaced
from marquardt._status import Status

__all__ = ["run"]


def run(cfg: LoopConfig, evaluator: Evaluator, x0, lb, ub, d_fixed, *, batched: bool = True
        ) -> tuple[LoopState, np.ndarray]:
    """Solve K problems from ``x0`` (K, n); returns the final state and the history rows
    (of problem 0, when ``cfg.record_history``).

    Each iteration works on the problems still running only: they are gathered into
    compact arrays, iterated, and scattered back (NumPy's dynamic shapes; a compiled loop
    keeps finished problems in place under masks instead).

    Args:
        cfg: the configuration.
        evaluator: the residual function and its Jacobian on NumPy arrays
            (``marquardt._core.functions.Evaluator``), called with the points and the indices
            of their problems. With ``jacobian_with_residual`` J is evaluated with r at every
            candidate (one call of a compiled model instead of two when a step is accepted).
        x0, lb, ub, d_fixed: float64 arrays (K, n).
        batched: every field of the state with its leading axis K; False: one problem's
            state as its single fit ends (``_backend.numpy.single``: its per-problem values
            scalars, its arrays with the axis), for a caller that reads problem 0 only
            (``_outcome.build_result``), without the (1,) arrays made and read back.
    """
    k = x0.shape[0]
    if k != 1 and (cfg.record_history or cfg.callback is not None):
        raise ValueError("the host executor records history and calls callbacks for one "
                         f"problem only. Received: {k} problems with record_history="
                         f"{cfg.record_history}, callback={cfg.callback!r}")
    every = np.arange(k)
    if evaluator.first is None:
        f0, j0 = evaluator.residual_and_jacobian(x0, every)
    elif evaluator.first[1] is None:  # r at x0 known (the front door's first call)
        f0 = evaluator.first[0]
        # differences the native loop forms in C (``lazy_jacobian``): J at x0 left to it
        pending = k == 1 and _native and hasattr(evaluator.jacobian, "native_spec")
        j0 = None if pending else evaluator.jacobian(x0, f0, every)
    else:
        f0, j0 = evaluator.first
    # one problem: its per-problem values as NumPy scalars (``_backend.numpy.single``), the
    # core's steps traced (``_steps``; None: run eagerly)
    ns = single if k == 1 else xp
    steps = _steps(cfg, x0, f0, j0, lb, ub, d_fixed) if k == 1 else None
    if steps is not None:
        # the native executor where it is wanted (``_native``: decides per configuration)
        done = _native(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed) if _native else None
        if done is None:
            done = trace_fit(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed)
        return (_batched(done[0]) if batched else done[0]), done[1]
    if j0 is None:
        j0 = evaluator.jacobian(x0, f0, every)
    with _quiet():
        state = core.start(cfg, ns, x0, f0, j0, lb, ub, d_fixed)
    history = _History(cfg, state) if cfg.record_history else None
    if history is not None and cfg.callback is not None:
        state = _callback(cfg, state, history.row(0, state, state.cost, None))
    it = 0
    while True:
        running = np.flatnonzero(state.status == RUNNING)
        if running.size == 0:
            break
        it += 1
        if running.size == k:
            new, c = _iteration(cfg, ns, evaluator, state, lb, ub, d_fixed, every)
        else:
            part = LoopState(*(a[running] for a in state))
            new, c = _iteration(cfg, ns, evaluator, part, lb[running], ub[running],
                                d_fixed[running], running)
            new = _scatter(state, running, new)
        if history is not None:
            if cfg.callback is not None:
                new = _callback(cfg, new, history.row(it, new, state.cost, c))
            else:
                history.record(it, new, state.cost, c)
        state = new
    table = history.table() if history is not None else np.zeros((0, len(HISTORY_FIELDS)))
    return (_batched(state) if batched or k != 1 else state), table


def trace_fit(cfg: LoopConfig, steps: _Steps, evaluator: Evaluator, x0, f0, j0, lb, ub,
              d_fixed) -> tuple[LoopState, np.ndarray]:
    """One problem's fit on its traced steps (``_run_one``): the final state (one problem's
    scalars) and the history table (no rows without ``cfg.record_history``).

    History: without a callback to show them to, the rows are formed at the end, all in one
    batched call (records: the problem-0 slices of each iteration's arrays). ``j0`` None:
    J at x0 not formed yet (``run``), formed here."""
    if j0 is None:
        j0 = evaluator.jacobian(x0, f0, _EVERY)
    with _quiet():
        state = steps.start(x0, f0, j0, lb, ub, d_fixed)
    history = _History(cfg, state) if cfg.record_history else None
    if history is not None and cfg.callback is not None:
        state = _callback(cfg, state, history.row(0, state, state.cost, None))
    state = _run_one(cfg, steps, evaluator, state, lb, ub, d_fixed, history)
    table = history.table() if history is not None else np.zeros((0, len(HISTORY_FIELDS)))
    return state, table


def _batched(s: LoopState) -> LoopState:
    """Per-problem scalars (one problem, ``single``) as (1,) arrays again."""
    return LoopState(*(np.asarray(v)[None] if np.ndim(v) == 0 else v for v in s))


class _History:
    """The history table of problem 0: rows formed one at a time (for a callback) or from
    records at the end (``core.history_rows`` on all iterations at once). A record keeps the
    iteration's state and attempt as they are (the core never writes into its arrays); its
    problem-0 slices are taken when the rows are formed."""

    def __init__(self, cfg: LoopConfig, state: LoopState):
        self.cfg = cfg
        self.rows = []
        self.records = [(0, state, state.cost, None)]

    def record(self, it, new: LoopState, old_cost, c) -> None:
        self.records.append((it, new, old_cost, c))

    def row(self, it, new: LoopState, old_cost, c) -> np.ndarray:
        """Problem 0's row now (``c`` None: the start point)."""
        if c is not None:
            self.record(it, new, old_cost, c)
        (row,) = self._rows(self.records)
        self.records = []
        self.rows.append(row)
        return row

    def _rows(self, records):
        its, fs, js, cols = [], [], [], []
        for it, new, old_cost, c in records:
            its.append(it)
            fs.append(new.f[:1])
            js.append(new.j[:1])
            if c is None:  # the start point
                cols.append((new.cost, old_cost, 0.0, 0.0, new.lam, 0.0, 0, new.nfev))
            else:
                cols.append((new.cost, old_cost, c.step, c.rho, new.lam, c.accepted,
                             c.attempts, new.nfev))
        try:  # one problem's values: NumPy scalars (``single``), one array of them all
            table = np.array(cols, dtype=np.float64)
        except (TypeError, ValueError):  # (K,) arrays: problem 0's
            table = None
        if table is None or table.shape != (len(cols), 8):
            table = np.array([[np.ravel(v)[0] for v in row] for row in cols], dtype=np.float64)
        with _quiet():
            if self.cfg.loss == "linear":  # every recorded iteration's g in one product
                g = core.gradient(self.cfg, xp, np.concatenate(fs), np.concatenate(js))
            else:  # a robust loss's vectorised ufuncs may round an element by its position
                g = np.concatenate([core.gradient(self.cfg, xp, f, j)
                                    for f, j in zip(fs, js)])
            # the columns in float64, as ``history_rows`` casts them (exact: counts and flags)
            return core.history_rows(xp, np.array(its), g, *table.T)

    def table(self) -> np.ndarray:
        if self.records:
            self.rows.extend(self._rows(self.records))
            self.records = []
        return np.stack(self.rows) if self.rows else np.zeros((0, len(HISTORY_FIELDS)))


def _scatter(state: LoopState, idx, part: LoopState) -> LoopState:
    out = []
    for whole, sub in zip(state, part):
        whole = whole.copy()
        whole[idx] = sub
        out.append(whole)
    return LoopState(*out)


def _iteration(cfg: LoopConfig, ns, evaluator: Evaluator, s: LoopState, lb, ub, d_fixed,
               problems) -> tuple[LoopState, "core.Attempt"]:
    """One core iteration of the problems in ``s`` (all running); ``problems`` are their
    indices for the evaluator. The core's functions run without masks (``all_live``) where
    every problem takes part, which for a single problem is always."""
    with_jacobian = evaluator.jacobian_with_residual
    j_accepted = s.j.copy() if with_jacobian else None
    with _quiet():
        prep, c = core.prepare(cfg, ns, s, lb, ub, d_fixed, all_live=True)
        x_try, idx, every = _next_candidate(cfg, ns, prep, s, c, lb, ub)
    while idx.size:
        if every:
            if with_jacobian:
                f_try, j_try = evaluator.residual_and_jacobian(x_try, problems)
            else:
                f_try = evaluator.residual(x_try, problems)
        else:  # the others keep their residuals: judge ignores them (masks)
            f_try = s.f.copy()
            j_try = s.j.copy() if with_jacobian else None
            if with_jacobian:
                f_try[idx], j_try[idx] = evaluator.residual_and_jacobian(x_try[idx],
                                                                         problems[idx])
            else:
                f_try[idx] = evaluator.residual(x_try[idx], problems[idx])
        was = c.accepted
        with _quiet():
            c = core.judge(cfg, ns, prep, s, c, x_try, f_try, all_live=every)
            x_try, idx, every = _next_candidate(cfg, ns, prep, s, c, lb, ub)
        if with_jacobian:
            now = c.accepted & ~was
            j_accepted[now] = j_try[now]
    acc = np.flatnonzero(c.accepted)
    if with_jacobian:
        f_new, j_new = c.f_new, j_accepted
    elif evaluator.jacobian is not None:  # J from the residuals the candidate already has
        f_new, j_new = c.f_new, s.j.copy()
        if acc.size == c.accepted.size:
            j_new = evaluator.jacobian(c.x_new, c.f_new, problems)
        elif acc.size:
            j_new[acc] = evaluator.jacobian(c.x_new[acc], c.f_new[acc], problems[acc])
    elif acc.size == c.accepted.size:
        f_new, j_new = evaluator.residual_and_jacobian(c.x_new, problems)
    else:
        f_new, j_new = s.f.copy(), s.j.copy()
        if acc.size:
            f_new[acc], j_new[acc] = evaluator.residual_and_jacobian(c.x_new[acc],
                                                                     problems[acc])
    with _quiet():
        new = core.finish(cfg, ns, s, prep, c, f_new, j_new)
    return new, c


# One problem: the core's functions traced once per configuration and shapes into straight-line
# Python (``marquardt._backend.numpy.trace``), the same operations without the layers.

def _start(ns, cfg, x0, f0, j0, lb, ub, d_fixed):
    return core.start(cfg, ns, x0, f0, j0, lb, ub, d_fixed)


def _begin(ns, cfg, s, lb, ub, d_fixed):
    prep, c = core.prepare(cfg, ns, s, lb, ub, d_fixed, all_live=True)
    return prep, c, core.live(ns, c)


def _attempt(ns, cfg, prep, s, c, lb, ub):
    return core.propose(cfg, ns, prep, s, c, lb, ub, all_live=True)


def _judged(ns, cfg, prep, s, c, x_try, f_try):
    # a trust radius's next λ only after a rejection (``_refit``): most attempts are accepted
    c = core.judge(cfg, ns, prep, s, c, x_try, f_try, all_live=True, refit=False)
    return c, core.live(ns, c)


def _refit(ns, cfg, prep, s, c):
    c = core.refit_damping(cfg, ns, prep, s, c, all_live=True)
    return c, core.live(ns, c)


def _end(ns, cfg, s, prep, c, f_new, j_new):
    return core.finish(cfg, ns, s, prep, c, f_new, j_new)


class _Step:
    """One of the core's functions for one configuration: traced at its first call, then the
    compiled code; eager (``single``) where it cannot be traced."""

    __slots__ = ("fn", "cfg", "compiled", "signature", "eager")

    def __init__(self, fn, cfg):
        self.fn = fn
        self.cfg = cfg
        self.compiled = None
        self.eager = False

    def __call__(self, *args):
        compiled = self.compiled
        if compiled is not None:
            return compiled.fn(*args)
        if self.eager:
            return self.fn(single, self.cfg, *args)
        try:
            compiled, out = trace.compile_function(
                lambda ns, *a: self.fn(ns, self.cfg, *a), args)
        except trace.Untraceable:
            self.eager = True
            return self.fn(single, self.cfg, *args)
        self.compiled = compiled
        return out


class _Steps(NamedTuple):
    start: _Step
    begin: _Step
    attempt: _Step
    judged: _Step
    end: _Step
    refit: _Step | None  # None: the policy has no trust radius to refit


_STEPS: dict = {}
_STEPS_MAX = 64
_F64_STR = np.dtype(np.float64).str


def _steps(cfg: LoopConfig, x0, f0, j0, lb, ub, d_fixed):
    """The compiled steps for this configuration and these shapes (None: run eagerly: a
    callable loss is the user's code, not to be called on tracers); ``j0`` None: a
    difference Jacobian still to be formed, numdiff's float64 ndarray (1, m, n)."""
    if callable(cfg.loss):
        return None
    try:
        cfg = replaced(cfg, callback=None, record_history=False)  # the host's business only
        jac = ((j0.shape, j0.dtype.str, type(j0)) if j0 is not None else  # numdiff's, to come
               ((1, f0.shape[-1], x0.shape[-1]), _F64_STR, np.ndarray))
        key = (cfg, x0.shape, f0.shape, jac[0], f0.dtype.str, jac[1], type(f0), jac[2])
        steps = _STEPS.get(key)  # (the key hashed once: a tuple does not keep its hash)
    except TypeError:  # an unhashable option (a callable loss's object, say): eager
        return None
    if steps is None:
        if len(_STEPS) >= _STEPS_MAX:  # the oldest goes (another thread may have taken it)
            try:
                _STEPS.pop(next(iter(_STEPS)), None)
            except (StopIteration, RuntimeError):
                pass
        steps = _STEPS[key] = _Steps(_Step(_start, cfg), _Step(_begin, cfg),
                                     _Step(_attempt, cfg),
                                     _Step(_judged, cfg), _Step(_end, cfg),
                                     _Step(_refit, cfg) if cfg.damping.needs_spectrum else None)
    return steps


def _run_one(cfg, steps: _Steps, evaluator: Evaluator, state: LoopState, lb, ub, d_fixed,
             history):
    """The loop of ``run`` for one problem, on the compiled steps; the same calls of the
    user's function in the same order as ``_iteration``. The core's steps between two calls
    of the user's function run under one ``_quiet`` (the end of an iteration and the start of
    the next: one, where no callback sees the state between them)."""
    every = _EVERY
    with_jacobian = evaluator.jacobian_with_residual
    residual, both, jacobian = (evaluator.residual, evaluator.residual_and_jacobian,
                                evaluator.jacobian)
    _, begin, attempt, judged, end, refit = steps
    callback = cfg.callback if history is not None else None
    it = 0
    s = state
    if s.status != RUNNING:
        return s
    with _quiet():
        prep, c, lv = begin(s, lb, ub, d_fixed)
        if lv:
            x_try = attempt(prep, s, c, lb, ub)
    while True:
        it += 1
        j_accepted = s.j
        while lv:
            if with_jacobian:
                f_try, j_try = both(x_try, every)
            else:
                f_try = residual(x_try, every)
            with _quiet():
                c, lv = judged(prep, s, c, x_try, f_try)
                if lv and refit is not None:
                    c, lv = refit(prep, s, c)
                if lv:
                    x_try = attempt(prep, s, c, lb, ub)
            if with_jacobian and c.accepted:
                j_accepted = j_try
        # copies where ``_iteration`` makes them: the memory order of J reaches the last
        # bits of BLAS products (``np.where`` keeps a non-contiguous J's order)
        if not c.accepted:
            f_new, j_new = s.f.copy(), s.j.copy()
        elif with_jacobian:
            f_new, j_new = c.f_new, np.ascontiguousarray(j_accepted)
        elif jacobian is not None:
            f_new, j_new = c.f_new, jacobian(c.x_new, c.f_new, every)
        else:
            f_new, j_new = both(c.x_new, every)
        if callback is not None:
            with _quiet():
                state = end(s, prep, c, f_new, j_new)
            state = _callback(cfg, state, history.row(it, state, s.cost, c))
            if state.status != RUNNING:
                return state
            with _quiet():
                prep, c, lv = begin(state, lb, ub, d_fixed)
                if lv:
                    x_try = attempt(prep, state, c, lb, ub)
        else:
            done = c
            with _quiet():
                state = end(s, prep, c, f_new, j_new)
                running = state.status == RUNNING
                if running:
                    prep, c, lv = begin(state, lb, ub, d_fixed)
                    if lv:
                        x_try = attempt(prep, state, c, lb, ub)
            if history is not None:
                history.record(it, state, s.cost, done)
            if not running:
                return state
        s = state


_EVERY = np.arange(1)

def _native_first(*args):
    """The first single fit's look-up of the native executor (imported here, not at the top:
    it imports this module): ``native_tier.run`` from then on, or None where the environment
    turns it off (``MARQUARDT_NATIVE=0``)."""
    global _native
    from marquardt._backend.numpy import native_tier
    _native = native_tier.run if native_tier.wanted() else None
    return _native(*args) if _native is not None else None


#: The native executor (``_backend/numpy/native_tier.run``, then ``native_loop.run``): given a
#: configuration's traced steps, it fits on the trace until the configuration has paid for
#: building them, then on them in C, or returns None (the Python trace then runs,
#: ``trace_fit``). None: never.
_native = _native_first


def _next_candidate(cfg: LoopConfig, ns, prep, s: LoopState, c, lb, ub):
    """(x_try, indices of the problems that attempt, whether all do); x_try None when none
    does (they all accepted a step or stopped)."""
    live = core.live(ns, c)
    idx = np.flatnonzero(live)
    if not idx.size:
        return None, idx, False
    every = idx.size == live.size
    return core.propose(cfg, ns, prep, s, c, lb, ub, all_live=every), idx, every


def _quiet():
    """Overflow and NaN inside the core are handled (a non-finite trial is a failed step),
    not warned about, as in a compiled loop; the user's function is called outside."""
    return np.errstate(all="ignore")


def _callback(cfg: LoopConfig, s: LoopState, row) -> LoopState:
    if cfg.callback is None or not cfg.callback(row, s.x[0], s.f[0]):
        return s
    if np.ravel(s.status)[0] != RUNNING:
        return s
    status = np.full_like(s.status, int(Status.CALLBACK))  # a scalar of ``single`` stays one
    return s._replace(status=status[()] if np.ndim(s.status) == 0 else status)
