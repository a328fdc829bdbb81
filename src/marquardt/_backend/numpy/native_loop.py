"""The host executor's single-fit loop on the native steps (``native_steps``): the loop of
``_core.host._run_one``, each traced step a call into C on the shared buffers, the user's
model and its differences called from Python between them.

Not the default path: ``enabled()`` (a context manager) or ``enable(True)`` turns it on for
tests and benchmarks (``benchmarks/native_fit.py``). With it on, a configuration's first fit
runs on the Python trace and records each step's first arguments; the steps are then emitted
as C, compiled (``native_load``: cached on disk) and every later fit of that configuration runs
here. Where anything is missing (no compiler, an operation without a C form, a model that
returns J with r, history or a callback requested) the Python trace runs, as without it.

The calls of the user's function are ``_run_one``'s, in the same order with the same
arguments (copies of the candidate points, as the trace hands fresh arrays), and the steps
are the trace's bit for bit (``tests/test_native_emit.py``), so a fit ends with the trace's
x, cost, nfev, status and Jacobian, and so the same covariance
(``tests/test_native_loop.py``).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import numpy as np

from marquardt._backend.numpy import native_load, native_slots, native_steps
from marquardt._backend.numpy.native_slots import Unsupported
from marquardt._core import host
from marquardt._core import iteration as core
from marquardt._core.records import HISTORY_FIELDS, RUNNING, LoopState

__all__ = ["enable", "enabled", "run"]

_BUILT: dict = {}  # host's steps -> NativeSteps, or None where they cannot be native
_FAILURES: dict = {}  # host's steps -> why not (for tests and benchmarks)


def enable(on: bool = True) -> None:
    """Run single NumPy fits on the native steps (on) or on the Python trace (off)."""
    host._native = run if on else None


@contextlib.contextmanager
def enabled():
    """The native loop on inside the block."""
    previous = host._native
    host._native = run
    try:
        yield
    finally:
        host._native = previous


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
        history = _history(cfg)
        state = _Loop(native, evaluator, history).run(x0, f0, j0, lb, ub, d_fixed)
        return state, _table(history)
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
        _BUILT[steps] = native_steps.build(compiled, calls, python)
    except (Unsupported, native_load.NativeUnavailable) as e:
        _BUILT[steps] = None
        _FAILURES[steps] = e
    return state, _table(history)


def _history(cfg):
    """A history for the rows (``host._History``, started at the first state), or None."""
    return [cfg] if cfg.record_history else None


def _table(history) -> np.ndarray:
    if history is None:
        return np.zeros((0, len(HISTORY_FIELDS)))
    if isinstance(history, list):  # a native fit's: (cfg, its records)
        cfg, records = history[0], history[1:]
        table = host._History(cfg, records[0][1])
        table.records = records
        history = table
    return history.table()


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
    """One fit on the native steps: the slots the loop reads, as views of the buffers;
    ``history``: None, or a list (the configuration, then the rows' records) to fill."""

    def __init__(self, native, evaluator, history):
        self.native = native
        self.evaluator = evaluator
        self.history = history
        f_buf, i_buf = native.f_buf, native.i_buf
        self.f_buf, self.i_buf = f_buf, i_buf
        slots = native.layout.slots

        def view(var, *path):
            return native_slots.view(slots[(var, path)], f_buf, i_buf)

        def at(var, field=None, record=LoopState):
            path = () if field is None else (record._fields.index(field),)
            return slots[(var, path)]
        self.status = at("s", "status").offset
        self.lv = at("lv").offset
        self.accepted = at("c", "accepted", core.Attempt).offset
        self.x_try = view("x_try")
        self.f_try = view("f_try")
        self.s_f = view("s", LoopState._fields.index("f"))
        self.x_new = view("c", core.Attempt._fields.index("x_new"))
        self.c_f_new = view("c", core.Attempt._fields.index("f_new"))
        self.f_new = view("f_new")
        # matrices: their order varies (a tag), so read and written through their slots
        self.s_j = at("s", "j")
        self.j_new = at("j_new")
        if history is not None:  # the slots a history row reads
            self.row_slots = (at("s", "cost"), at("s", "lam"), at("s", "nfev"))
            self.done_slots = tuple(at("c", name, core.Attempt)
                                    for name in ("step", "rho", "accepted", "attempts"))

    def value(self, slot):
        return native_slots.read(slot, self.f_buf, self.i_buf)

    def point(self) -> _Point:
        cost, lam, nfev = (self.value(s) for s in self.row_slots)
        return _Point(self.s_f.copy(), self.value(self.s_j), cost, lam, nfev)

    def run(self, x0, f0, j0, lb, ub, d_fixed) -> LoopState:
        nat = self.native
        for var, value in (("x0", x0), ("f0", f0), ("j0", j0), ("lb", lb), ("ub", ub),
                           ("d_fixed", d_fixed)):
            nat.write(var, value)
        fns = nat.fns
        start, begin, attempt, judged, end = (fns["start"], fns["begin"], fns["attempt"],
                                              fns["judged"], fns["end"])
        refit = fns.get("refit")
        needs_refit = nat.python.get("refit") is not None  # the policy has a trust radius
        i_buf = self.i_buf
        ev = self.evaluator
        residual, both, jacobian = ev.residual, ev.residual_and_jacobian, ev.jacobian
        every = _EVERY
        history = self.history
        f_buf = self.f_buf

        def put(slot, value):
            native_slots.write(slot, f_buf, i_buf, value)

        def matrix(slot):
            return native_slots.view(slot, f_buf, i_buf)
        last = "start"
        start()
        if history is not None:
            point = self.point()
            history.append((0, point, point.cost, None))
        if i_buf[self.status] != RUNNING:
            return self.state(last)
        if begin():
            raise np.linalg.LinAlgError("SVD did not converge")
        if i_buf[self.lv]:
            attempt()
        it = 0
        while True:
            it += 1
            while i_buf[self.lv]:
                self.f_try[...] = residual(self.x_try.copy(), every)
                judged()
                if i_buf[self.lv] and needs_refit:
                    if refit is not None:
                        refit()
                    else:
                        self.python_refit()
                if i_buf[self.lv]:
                    attempt()
            if not i_buf[self.accepted]:  # the trace's s.f.copy(), s.j.copy(): row-major
                self.f_new[...] = self.s_f
                put(self.j_new, np.ascontiguousarray(matrix(self.s_j)))
            elif jacobian is not None:
                self.f_new[...] = self.c_f_new
                put(self.j_new, jacobian(self.x_new.copy(), self.c_f_new.copy(), every))
            else:
                f, j = both(self.x_new.copy(), every)
                self.f_new[...] = f
                put(self.j_new, j)
            if history is not None:
                old_cost = self.value(self.row_slots[0])
            end()
            last = "end"
            if history is not None:
                done = _Done(*(self.value(s) for s in self.done_slots))
                history.append((it, self.point(), old_cost, done))
            if i_buf[self.status] != RUNNING:
                return self.state(last)
            if begin():
                raise np.linalg.LinAlgError("SVD did not converge")
            if i_buf[self.lv]:
                attempt()

    def python_refit(self) -> None:
        """The trust radius's ``refit``, never traced for this configuration: the Python
        step on records read from the buffers, its result written back."""
        nat = self.native
        nat.call("refit", nat.read("prep"), nat.read("s"), nat.read("c"))

    def state(self, step: str) -> LoopState:
        """The final state, its leaves' types those of ``step``'s result."""
        nat = self.native
        return nat._read(nat.emitted[step].templates["s"], None)
