"""Many problems through the slots of one compiled step: the refill loop of the compiled
``curve_fit_batch`` executors (TensorFlow's ``batch_stepper``, JAX's ``batch``).

A compiled step works on a fixed number of *slots* (one compilation per model, whatever K).
Each call of it (a *round*) first starts the slots marked fresh at their problem's start
point, then runs up to ``ROUND_ITERATIONS`` outer iterations of every slot still running; on
the host, between rounds, finished problems are stored and leave, and their slots are given
to the next waiting problems. A slow problem (pure noise running to ``max_nfev``) holds one
slot, not a chunk of finished ones::

    owner ← no problem in any slot
    repeat:
        give free slots to waiting problems (fresh)
        state ← round(state, fresh, problems of the slots)   # compiled: restart + iterate
        store the problems that ended; free their slots
    until no problem waits and none runs

Backend-neutral: the executor supplies the round and how to read a state; this module only
sequences them, with NumPy bookkeeping.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from marquardt._core.records import RUNNING

__all__ = ["stream", "streams", "workers", "ROUND_ITERATIONS", "REFILL_FRACTION", "MAX_WORKERS"]

#: Outer iterations per round; between rounds, finished problems leave their slots to new
#: ones. Fewer: slots idle less after their problem finishes; more: fewer calls, each of
#: which restarts the fresh slots (one Jacobian for all slots) and returns to Python. 8 is as
#: fast as one uninterrupted solve per chunk on clean data (most fits take 5-10 iterations)
#: and 2-4 times faster when 1% of the problems are pure noise (measured for 10,000 2-D
#: Gaussians with the TensorFlow executor, docs/batch.md). Passed to the compiled step as an
#: input: no recompilation.
ROUND_ITERATIONS = 8

#: While problems wait for a slot, a round also ends once no more than this fraction of the
#: slots still runs (each later iteration would cost every slot for a quarter of the work);
#: the last round, with no problem waiting, runs until all are done. A quarter against a
#: fixed 8 iterations, K = 10,000, 12 alternated runs each (docs/batch.md): double
#: exponential median 39,300 → 45,400 fits/s; 2-D Gaussian 44,400 → 45,300; refilling at
#: a half: 44,700 and 40,900.
REFILL_FRACTION = 0.25

#: Most streams of slots run side by side (threads; each holds its own slots).
MAX_WORKERS = 4

#: ``run_round(state, fresh, rows, min_running) -> (state, status)``: one compiled round on
#: the slots' problems ``rows`` (slots,), restarting the ``fresh`` ones (slots,) bool, up to
#: ``ROUND_ITERATIONS`` iterations or until at most ``min_running`` slots still run;
#: ``status`` is the new state's status as a NumPy array (slots,).
Round = Callable[[Any, np.ndarray, np.ndarray, int], tuple[Any, np.ndarray]]


def stream(run_round: Round, state: Any, todo: np.ndarray, slots: int,
           store: Callable[[np.ndarray, Any, np.ndarray], None]) -> None:
    """Solve the problems ``todo`` (indices) through ``slots`` slots.

    Args:
        run_round: the executor's compiled round (``Round``).
        state: the initial state of ``slots`` idle slots (none running).
        todo: the problems, in the order they get slots.
        slots: the slot count of the compiled step.
        store: ``store(problems, state, slot_indices)``: keep the final state of the
            problems that ended, read from ``state`` at ``slot_indices``.
    """
    owner = np.full(slots, -1)  # the problem in each slot; -1: none
    refill_at = int(REFILL_FRACTION * slots)
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
        state, status = run_round(state, fresh, rows,
                                  refill_at if queued < todo.size else 0)
        done = np.flatnonzero((owner >= 0) & (status != RUNNING))
        if done.size:
            store(owner[done], state, done)
            owner[done] = -1


def workers() -> int:
    """Streams of slots run side by side: one per core this process may use (a compiled
    step runs mostly on one core), at most ``MAX_WORKERS``."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else (os.cpu_count() or 1))
    return max(1, min(cores, MAX_WORKERS))


def streams(run_stream: Callable[[np.ndarray], None], todo: np.ndarray, slots: int) -> None:
    """Split ``todo`` over up to ``workers()`` streams of ``slots`` slots each (no more
    streams than full ones) and run ``run_stream(part)`` for each, in threads when there are
    several (TensorFlow and XLA release the GIL while a step runs)."""
    parts = np.array_split(todo, max(1, min(workers(), todo.size // slots)))
    if len(parts) == 1:
        run_stream(todo)
        return
    with ThreadPoolExecutor(len(parts)) as pool:
        for done in [pool.submit(run_stream, part) for part in parts]:
            done.result()
