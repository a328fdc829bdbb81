"""``curve_fit_batch``'s compiled executor: many problems streamed through the slots of one
compiled step (the LM core inside ``tf.while_loop``, optionally XLA; docs/batch.md).

The problems stream through ``chunk_size`` slots (memory bounded for any K): one compiled step
runs up to ``ROUND_ITERATIONS`` iterations of every slot, then finished problems leave and
their slots are restarted with the next problems (``solve_loop.restart``). A slow problem
holds one slot. Streams run side by side in threads (TensorFlow releases the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import tensorflow as tf

from marquardt._options import DIFFERENCE_MODES
from marquardt._backend.tensorflow import driver
from marquardt._backend.tensorflow.batch import batched_residual, batched_residual_and_jacobian
from marquardt._backend.tensorflow.solve_loop import idle_state
from marquardt._core.records import RUNNING, LoopConfig

__all__ = ["solve", "MAX_WORKERS", "ROUND_ITERATIONS", "REFILL_FRACTION"]

# The slot count is always ``chunk_size``: a batch of another K never recompiles (XLA compiles
# per shape: 6-9 s for the benchmark models). Small batches pay for idle slots instead:
# 16 2-D Gaussians took 27 ms warm in 1,024 slots against 8 ms in 16 (2026-12-03); a caller
# with many small batches can pass a smaller chunk_size.


def solve(f: Callable, jac, shared_x: bool, cfg: LoopConfig, diff_step, jit_compile: bool,
          todo: np.ndarray, chunk_size: int, arrays: tuple, store: Callable) -> None:
    """Solve the problems ``todo`` (indices) of ``curve_fit_batch``.

    Args:
        f, jac, shared_x: the model, its ``jac`` and whether x is shared (``curve_fit_batch``).
        cfg, diff_step: the core's configuration and the finite-difference step.
        jit_compile: compile the step with XLA.
        todo: the problems to solve.
        chunk_size: the most slots of one stream.
        arrays: ``(x, y, present, inv_sigma, p0, lb, ub, d_fixed)`` of all problems.
        store: ``store(indices, state)``: keep the final NumPy state of finished problems.
    """
    x, y, present, inv_sigma, p0, lb, ub, d_fixed = arrays
    m, n = y.shape[1], p0.shape[1]
    step = _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile)
    inputs = _Inputs(x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed)
    slots = chunk_size  # one compiled shape per model, whatever K (see ``curve_fit_batch``)
    parts = np.array_split(todo, max(1, min(_workers(), todo.size // slots)))
    if len(parts) == 1:
        _stream(step, jit_compile, todo, slots, inputs, store)
    else:  # TensorFlow releases the GIL while a step runs: one stream per core
        with ThreadPoolExecutor(len(parts)) as pool:
            for done in [pool.submit(_stream, step, jit_compile, part, slots, inputs, store)
                         for part in parts]:
                done.result()


#: Most streams of slots run side by side (threads; each holds ``chunk_size`` slots).
MAX_WORKERS = 4



def _workers() -> int:
    """Streams of slots run side by side: one per core (XLA runs most of a step on one)."""
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else (os.cpu_count() or 1), MAX_WORKERS))


def _t64(a) -> tf.Tensor:
    return tf.constant(np.ascontiguousarray(a, dtype=np.float64))





#: Outer iterations per call of the compiled step; between calls, finished problems leave
#: their slots to new ones. Fewer: slots idle less after their problem finishes; more: fewer
#: calls, each of which restarts the fresh slots (one Jacobian for all slots) and returns to
#: Python. 8 is as fast as one uninterrupted solve per chunk on clean data (most fits take
#: 5-10 iterations) and 2-4 times faster when 1% of the problems are pure noise (measured for
#: 10,000 2-D Gaussians, docs/batch.md). Passed to the step as a tensor: no recompilation.
ROUND_ITERATIONS = 8

#: While problems wait for a slot, a round also ends once no more than this fraction of the
#: slots still runs (each later iteration would cost every slot for a quarter of the work);
#: the last round, with no problem waiting, runs until all are done. A quarter against a
#: fixed 8 iterations, K = 10,000, 12 alternated runs each (docs/batch.md): double
#: exponential median 39,300 → 45,400 fits/s; 2-D Gaussian 44,400 → 45,300; refilling at
#: a half: 44,700 and 40,900.
REFILL_FRACTION = 0.25


def _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile):
    residual_fn = batched_residual(f, shared_x)
    jac_fn = (jac if jac in DIFFERENCE_MODES
              else batched_residual_and_jacobian(f, jac, shared_x))
    key = ("curve_fit_batch", f, jac, shared_x, n, m, cfg, diff_step, jit_compile)
    return driver.cached(key, lambda: driver.build_stepper(
        residual_fn, n, m, jac_fn, cfg._replace(jit_compile=jit_compile), diff_step=diff_step))


class _Inputs:
    """The compiled step's per-slot inputs for a given assignment of problems to slots."""

    def __init__(self, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed):
        self.x_shared = tf.constant(x) if shared_x else None
        self.x, self.y, self.present, self.inv_sigma = x, y, present, inv_sigma
        self.p0, self.lb, self.ub, self.d_fixed = p0, lb, ub, d_fixed

    def __call__(self, rows: np.ndarray):
        w = self.present[rows].astype(np.float64)
        if self.inv_sigma is not None:
            w *= self.inv_sigma if self.inv_sigma.ndim == 1 else self.inv_sigma[rows]
        data = (self.x_shared if self.x_shared is not None else _t64(self.x[rows]),
                _t64(np.where(self.present[rows], self.y[rows], 0.0)), _t64(w))
        d = np.broadcast_to(self.d_fixed, (rows.size, self.d_fixed.size))
        return _t64(self.p0[rows]), _t64(self.lb[rows]), _t64(self.ub[rows]), _t64(d), data


def _stream(step, jit_compile: bool, todo: np.ndarray, slots: int, inputs: _Inputs,
            store: Callable) -> None:
    """Solve the problems ``todo`` through ``slots`` slots: each call of ``step`` runs up to
    ``ROUND_ITERATIONS`` iterations, or fewer once only ``REFILL_FRACTION`` of the slots
    still run while problems wait; then finished problems are stored and their slots given
    to the next problems. A slow problem (pure noise running to ``max_nfev``) thus holds
    one slot, not a whole chunk of finished ones."""
    m, n = inputs.y.shape[1], inputs.p0.shape[1]
    owner = np.full(slots, -1)  # the problem in each slot; -1: none
    state = idle_state(slots, m, n)
    iterations = tf.constant(ROUND_ITERATIONS, tf.int32)
    refill_at = tf.constant(int(REFILL_FRACTION * slots), tf.int32)
    drain = tf.constant(0, tf.int32)
    queued = 0
    while True:
        free = np.flatnonzero(owner < 0)
        new = todo[queued:queued + free.size]
        queued += new.size
        fresh = np.zeros(slots, bool)
        fresh[free[:new.size]] = True
        owner[free[:new.size]] = new
        if not fresh.any() and not (owner >= 0).any():
            return
        rows = np.where(owner >= 0, owner, todo[0])  # empty slots: any valid data, frozen
        state = _run(step, jit_compile, state, tf.constant(fresh), *inputs(rows), iterations,
                     refill_at if queued < todo.size else drain)
        done = np.flatnonzero((owner >= 0) & (state.status.numpy() != RUNNING))
        if done.size:
            store(owner[done], type(state)(*(t.numpy()[done] for t in state)))
            owner[done] = -1


def _run(step, jit_compile: bool, *args):
    try:
        return step(*args)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        if not jit_compile:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError("the batched solve could not be compiled with XLA "
                         f"({first}). Pass jit_compile=False to run it without XLA.") from exc


