"""The host executor's single-fit loop on the native steps (``native_steps``): the loop of
``_core.host._run_one``, each traced step a call into C on the shared buffers, the user's
model and its differences called from Python between them.

When a configuration moves here is a ski-rental decision (``native_tier``): its fits run on
the trace until they have made ``native_tier.LOAD_EVALUATIONS``; the next fit records each
step's first arguments, the steps are emitted and loaded where the disk cache holds their
object; where it does not, they are compiled once the fits have made
``native_tier.COMPILE_EVALUATIONS``, and every later fit of that configuration runs here. ``enabled()`` (a context manager) or
``enable(True)`` builds at a configuration's first fit (tests and benchmarks:
``benchmarks/native_fit.py``); ``MARQUARDT_NATIVE=0`` in the environment turns the native
executor off. Where anything is missing (no compiler, an operation without a C form, a step that
runs eagerly, a model that returns J with r, a callback, a problem too large for the steps'
stack arrays, another thread's fit on the same configuration) the Python trace runs, as
without it; a failure to build is kept in ``_FAILURES``, never raised.

The calls of the user's function are ``_run_one``'s, in the same order with the same
arguments (copies of the candidate points, as the trace hands fresh arrays), and the steps
are the trace's bit for bit (``tests/test_native_emit.py``), so a fit ends with the trace's
x, cost, nfev, status and Jacobian, and so the same covariance
(``tests/test_native_loop.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from typing import NamedTuple

import numpy as np

from marquardt import _covariance
from marquardt._backend.numpy import (native_cloop, native_covariance, native_load,
                                      native_numdiff, native_slots, native_steps, native_tier,
                                      native_views)
from marquardt._backend.numpy.native_slots import Unsupported
from marquardt._core import functions, host
from marquardt._core import iteration as core
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopState

__all__ = ["differences_in_c", "enable", "enabled", "run"]

_BUILT: dict = {}  # host's steps -> NativeSteps, or None where they cannot be native
_FAILURES: dict = {}  # host's steps -> why not (for tests and benchmarks)
_LOOPS: dict = {}  # NativeSteps -> its _Loop
_BUILT_MAX = 64
_UNCOMPILED: set = set()  # host's steps emitted, not on disk, not yet worth compiling
_FORCED = False  # ``enable``: build at a configuration's first fit
#: The loop in C where it was built (``native_cloop``); False: the loop in Python
#: (``_Loop.run``), for comparisons.
LOOP_IN_C = True


def differences_in_c() -> None:
    """The host evaluators made from now on can form their difference Jacobians in C on the
    native loop (``native_numdiff.lazy_jacobian``), and the covariance its scaled SVD
    (``native_covariance``)."""
    functions._lazy_differences = native_numdiff.lazy_jacobian
    _covariance._native_scaled_svd = native_covariance.scaled_svd


def enable(on: bool = True) -> None:
    """Run single NumPy fits on the native steps from a configuration's second fit (on:
    built at the first) or on the Python trace only (off)."""
    global _FORCED
    host._native = run if on else None
    functions._lazy_differences = native_numdiff.lazy_jacobian if on else None
    _covariance._native_scaled_svd = native_covariance.scaled_svd if on else None
    _FORCED = on


@contextlib.contextmanager
def enabled():
    """The native loop on inside the block, each configuration built at its first fit."""
    global _FORCED
    previous, forced, lazy = host._native, _FORCED, functions._lazy_differences
    svd = _covariance._native_scaled_svd
    host._native, _FORCED = run, True
    functions._lazy_differences = native_numdiff.lazy_jacobian
    _covariance._native_scaled_svd = native_covariance.scaled_svd
    try:
        yield
    finally:
        host._native, _FORCED = previous, forced
        functions._lazy_differences = lazy
        _covariance._native_scaled_svd = svd


class _Recording:
    """A host step that keeps its first call's arguments."""

    def __init__(self, step, name, calls):
        self.step, self.name, self.calls = step, name, calls

    def __call__(self, *args):
        self.calls.setdefault(self.name, args)
        return self.step(*args)


def run(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed
        ) -> tuple[LoopState, np.ndarray] | None:
    """The fit from the start point on the native steps: the final state (one problem's
    scalars, as ``_run_one`` returns them) and the history table (empty without
    ``cfg.record_history``); None where the Python trace must run it."""
    if evaluator.jacobian_with_residual or cfg.callback is not None:
        return None
    if steps in _BUILT:
        native = _BUILT[steps]
        if native is None:
            return None
        loop = _LOOPS.get(native)
        if loop is None:
            loop = _LOOPS[native] = _Loop(native)
        if not loop.busy.acquire(blocking=False):  # another thread's fit holds the buffers
            return None
        try:
            history = [] if cfg.record_history else None
            state = loop.run(evaluator, history, x0, f0, j0, lb, ub, d_fixed)
        finally:
            loop.busy.release()
        return state, _native_table(cfg, history)
    rent = native_tier.rent(steps)
    compile = _FORCED or rent >= native_tier.COMPILE_EVALUATIONS  # noqa: A001 - the verb
    if not (_FORCED or rent >= native_tier.LOAD_EVALUATIONS) or (steps in _UNCOMPILED
                                                                 and not compile):
        done = host.trace_fit(cfg, steps, evaluator, x0, f0, j0, lb, ub, d_fixed)
        native_tier.pay(steps, done[0].nfev)
        return done
    if j0 is None:  # (``host.run``: J at x0 left to the native loop)
        j0 = evaluator.jacobian(x0, f0, _EVERY)
    calls: dict = {}
    recording = host._Steps(*(None if s is None else _Recording(s, name, calls)
                              for name, s in zip(host._Steps._fields, steps)))
    with host._quiet():
        state = recording.start(x0, f0, j0, lb, ub, d_fixed)
    history = host._History(cfg, state) if cfg.record_history else None
    state = host._run_one(cfg, recording, evaluator, state, lb, ub, d_fixed, history)
    compiled = {name: s.compiled for name, s in zip(host._Steps._fields, steps)
                if s is not None and s.compiled is not None}
    try:
        if not {"start", "begin", "attempt", "judged", "end"} <= set(compiled) & set(calls):
            raise Unsupported("a step runs eagerly or was not called")
        # a step not traced yet (``refit`` after a fit without a rejection) runs as the
        # host's step, which traces it at its first call
        python = {name: s for name, s in zip(host._Steps._fields, steps) if s is not None}
        _BUILT[steps] = native_steps.build(compiled, calls, python, compile)
        _UNCOMPILED.discard(steps)
    except native_load.NotCompiled:  # not on disk: compiled when the rent reaches it
        _UNCOMPILED.add(steps)
        while len(_UNCOMPILED) > _BUILT_MAX:  # bounded as _BUILT is
            _UNCOMPILED.pop()
    except Exception as e:  # noqa: BLE001 — the fit is done; the configuration keeps
        # the trace (Unsupported, NativeUnavailable, or a fault of the emitter, kept here)
        _BUILT[steps] = None
        _FAILURES[steps] = e
    while len(_BUILT) > _BUILT_MAX:  # the oldest configurations go, as host._STEPS's do
        old = next(iter(_BUILT))
        _LOOPS.pop(_BUILT.pop(old), None)
        _FAILURES.pop(old, None)
    native_tier.pay(steps, state.nfev)
    return state, _table(history)


def _table(history) -> np.ndarray:
    if history is None:
        return np.zeros((0, len(HISTORY_FIELDS)))
    return history.table()


def _native_table(cfg, points) -> np.ndarray:
    """The history table of a native fit's records (``_Loop.point``), formed as the trace's
    (``host._History``) from the same values."""
    if points is None:
        return np.zeros((0, len(HISTORY_FIELDS)))
    records = []
    for it, f, j, fs, ints, old_cost in points:
        cost, lam, step, rho = fs.tolist()
        nfev, accepted, attempts = ints.tolist()
        point = _Point(f, j, cost, lam, nfev)
        if old_cost is None:
            records.append((it, point, cost, None))
        else:
            records.append((it, point, old_cost, _Done(step, rho, accepted, attempts)))
    table = host._History(cfg, records[0][1])
    table.records = records
    return table.table()


class _Point(NamedTuple):
    """What a history row reads of a state (``host._History._rows``)."""

    f: np.ndarray
    j: np.ndarray
    cost: float
    lam: float
    nfev: int


class _Done(NamedTuple):
    """What a history row reads of an iteration's attempt."""

    step: float
    rho: float
    accepted: bool
    attempts: int


_EVERY = np.arange(1)


class _Loop:
    """The loop on one compiled configuration: the slots it reads, as views of the buffers
    (made once per configuration)."""

    def __init__(self, native):
        self.native = native
        self.busy = threading.Lock()  # one fit at a time on these buffers
        self.readers: dict = {}  # step -> the final state's field readers
        f_buf, i_buf = native.f_buf, native.i_buf
        self.f_buf, self.i_buf = f_buf, i_buf
        slots = native.layout.slots

        def at(var, field=None, record=LoopState):
            path = () if field is None else (record._fields.index(field),)
            return slots[(var, path)]

        def view(*key):
            return native_slots.view(at(*key), f_buf, i_buf)
        attempt = core.Attempt
        self.status = at("s", "status").offset
        self.lv = at("lv").offset
        self.accepted = at("c", "accepted", attempt).offset
        self.x_try = view("x_try")
        self.f_try = view("f_try")
        self.s_f = view("s", "f")
        self.x_new = view("c", "x_new", attempt)
        self.c_f_new = view("c", "f_new", attempt)
        self.f_new = view("f_new")
        self.s_j = native_views.MatrixView(at("s", "j"), f_buf, i_buf)
        self.j_new = native_views.MatrixView(at("j_new"), f_buf, i_buf)
        # what a history row reads: float scalars, integer scalars
        self.row_f = [at("s", "cost"), at("s", "lam"), at("c", "step", attempt),
                      at("c", "rho", attempt)]
        self.row_i = [at("s", "nfev"), at("c", "accepted", attempt),
                      at("c", "attempts", attempt)]
        for slot in self.row_f + self.row_i:
            if slot.shape or slot.buffer != ("F" if slot in self.row_f else "I"):
                raise Unsupported("a history field of another kind")
        self.f_ptr = ctypes.c_void_p(f_buf.ctypes.data)
        self.i_ptr = ctypes.c_void_p(i_buf.ctypes.data)
        self.callback = None
        self.inputs = [(var, native_views.input_writer(slots.get((var, ())), f_buf, i_buf))
                       for var in ("x0", "f0", "j0", "lb", "ub", "d_fixed")]
        self.differences: dict = {}  # (method, n, m, name) -> NativeDifferences, rebound
        self.f_index = np.array([s.offset for s in self.row_f])
        self.i_index = np.array([s.offset for s in self.row_i])
        # the loop in C forms J at x0 itself where the start's slots allow it
        self.first_jacobian = native_cloop.first_jacobian_slots(native.layout) is not None

    def point(self, it, old_cost):
        """One history record: the state's residuals and J, and the row's scalars."""
        return (it, self.s_f.copy(), self.s_j.get().copy(order="K"),
                self.f_buf.take(self.f_index), self.i_buf.take(self.i_index), old_cost)

    def run(self, evaluator, history, x0, f0, j0, lb, ub, d_fixed) -> LoopState:
        """The fit; ``history``: None, or a list to which each iteration's record is
        appended (``point``). ``j0`` None: J at x0 not formed yet (``host.run``), formed
        here: in C by the loop itself where it can (``run_c``), else by the evaluator."""
        nat = self.native
        in_c = nat.fit is not None and LOOP_IN_C
        if j0 is None and not in_c:
            j0 = evaluator.jacobian(x0, f0, _EVERY)
        for (var, writer), value in zip(self.inputs, (x0, f0, j0, lb, ub, d_fixed)):
            if value is None:  # j0, for run_c
                continue
            if writer is None or type(value) is not np.ndarray:
                nat.write(var, value)
            else:
                writer(value)
        if in_c:
            return self.run_c(evaluator, history, None if j0 is not None else (x0, f0))
        fns = nat.fns
        start, begin, attempt, judged, end = (fns["start"], fns["begin"], fns["attempt"],
                                              fns["judged"], fns["end"])
        refit = fns.get("refit")
        needs_refit = nat.python.get("refit") is not None  # the policy has a trust radius
        i_buf, f_buf = self.i_buf, self.f_buf
        residual, both, jacobian = (evaluator.residual, evaluator.residual_and_jacobian,
                                    evaluator.jacobian)
        every = _EVERY
        status, lv, accepted = self.status, self.lv, self.accepted
        x_try, f_try, x_new, c_f_new = self.x_try, self.f_try, self.x_new, self.c_f_new
        s_f, f_new, s_j, j_new = self.s_f, self.f_new, self.s_j, self.j_new
        cost = self.row_f[0].offset
        def next_iteration() -> bool:  # False: the fit has ended
            if i_buf[status] != RUNNING:
                return False
            if begin():
                raise np.linalg.LinAlgError("SVD did not converge")
            if i_buf[lv]:
                attempt()
            return True

        last = "start"
        start()
        if history is not None:
            history.append(self.point(0, None))
        if not next_iteration():
            return self.state(last)
        it = 0
        while True:
            it += 1
            while i_buf[lv]:
                f_try[...] = residual(x_try.copy(), every)
                judged()
                if needs_refit and i_buf[lv]:
                    if refit is not None:
                        refit()
                    else:
                        self.python_refit()
                if i_buf[lv]:
                    attempt()
            if not i_buf[accepted]:  # the trace's s.f.copy(), s.j.copy(): row-major
                f_new[...] = s_f
                j_new.put(np.ascontiguousarray(s_j.get()))
            elif jacobian is not None:
                f_new[...] = c_f_new
                j_new.put(jacobian(x_new.copy(), c_f_new.copy(), every))
            else:
                f, j = both(x_new.copy(), every)
                f_new[...] = f
                j_new.put(j)
            if history is not None:
                old_cost = f_buf[cost]
            end()
            last = "end"
            if history is not None:
                history.append(self.point(it, old_cost))
            if not next_iteration():
                return self.state(last)

    def run_c(self, evaluator, history, start=None) -> LoopState:
        """The fit on the loop in C (``native_cloop``), the user's code called back.
        ``start``: (x0, f0) where J at x0 is still to be formed (its slot not written): by
        the loop in C with the fit's differences where it has them, else here."""
        self.evaluator, self.history, self.error = evaluator, history, None
        if self.callback is None:
            self.callback = native_cloop.CALLBACK(self.called_back)
        # the differences and the model in C where the evaluator has them (native_numdiff):
        # this loop's own records, rebound to the fit's model, or the evaluator's
        jac = evaluator.jacobian
        nd = getattr(jac, "native", None)
        reused = None
        if nd is None and hasattr(jac, "native_spec"):
            fun, method, n, m, lb, ub, rel_step, typical, who = jac.native_spec
            key = (method, n, m, who)
            reused = self.differences.get(key)
            if reused is not None:
                reused.rebind(fun, lb, ub, rel_step, typical)
                nd = reused
            else:
                nd = jac.native_differences()
                if nd is not None and len(self.differences) < 8:
                    self.differences[key] = reused = nd
        elif nd is None and hasattr(jac, "native_differences"):
            nd = jac.native_differences()
        in_c = (None, None, None) if nd is None else nd.pointers()
        first = start is not None and nd is not None and self.first_jacobian
        try:
            if start is not None and not first:  # J at x0 by the evaluator, as the trace's
                self.native.write("j0", jac(start[0], start[1], _EVERY))
            done = self.native.fit(self.f_ptr, self.i_ptr, self.callback,
                                   int(jac is not None), int(history is not None), *in_c,
                                   int(first))
        finally:
            self.evaluator = self.history = None
            if reused is not None:
                reused.rebind(None)  # the user's model and data not kept past the fit
        if done == 1:
            error, self.error = self.error, None
            raise error
        if done == 2:
            raise np.linalg.LinAlgError("SVD did not converge")
        return self.state("start" if done == 3 else "end")

    def called_back(self, what: int, it: int, old_cost: float) -> int:
        """The C loop's call for the user's code (``native_cloop``): 0 on success, 1 where
        Python raised (kept in ``error``)."""
        try:
            ev = self.evaluator
            if what == 0:
                self.f_try[...] = ev.residual(self.x_try.copy(), _EVERY)
            elif what == 1:
                self.j_new.put(ev.jacobian(self.x_new.copy(), self.c_f_new.copy(), _EVERY))
            elif what == 2:
                f, j = ev.residual_and_jacobian(self.x_new.copy(), _EVERY)
                self.f_new[...] = f
                self.j_new.put(j)
            elif what == 3:
                self.python_refit()
            else:
                self.history.append(self.point(it, old_cost if it else None))
            return 0
        except BaseException as e:  # noqa: BLE001 — raised again once C has returned
            self.error = e
            return 1

    def python_refit(self) -> None:
        """The trust radius's ``refit``, never traced for this configuration: the Python
        step on records read from the buffers, its result written back."""
        nat = self.native
        nat.call("refit", nat.read("prep"), nat.read("s"), nat.read("c"))

    def state(self, step: str) -> LoopState:
        """The final state, its leaves' types those of ``step``'s result."""
        readers = self.readers.get(step)
        if readers is None:
            readers = self.readers[step] = native_views.state_readers(
                self.native.emitted[step].templates["s"], self.f_buf, self.i_buf)
        if readers is False:  # not a flat record of leaves: the general reader
            nat = self.native
            return nat._read(nat.emitted[step].templates["s"], None)
        return LoopState(*[read() for read in readers])
