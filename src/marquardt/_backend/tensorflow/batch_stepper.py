"""``curve_fit_batch``'s compiled executor: many problems streamed through the slots of one
compiled step (the LM core inside ``tf.while_loop``, optionally XLA; docs/batch.md).

The problems stream through ``chunk_size`` slots (memory bounded for any K): one compiled step
(``solve_loop.restart`` then ``resume_loop``) runs a round of up to ``ROUND_ITERATIONS``
iterations of every slot, then finished problems leave and their slots are restarted with
the next problems (the refill loop ``marquardt._core.stream``, shared with the JAX executor).
A slow problem holds one slot. Streams run side by side in threads (TensorFlow releases the
GIL).
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np
import tensorflow as tf

from marquardt._options import DIFFERENCE_MODES
from marquardt._backend.tensorflow import driver
from marquardt._backend.tensorflow.quiet_log import first_run
from marquardt._backend.tensorflow.batch import batched_residual, batched_residual_and_jacobian
from marquardt._backend.tensorflow.solve_loop import idle_state
from marquardt._core.records import LoopConfig
from marquardt._core.stream import ROUND_ITERATIONS, stream, streams

__all__ = ["solve", "sees_gpu"]

# The slot count is always ``chunk_size``: a batch of another K never recompiles (XLA compiles
# per shape: 6-9 s for the benchmark models). Small batches pay for idle slots instead:
# 16 2-D Gaussians took 27 ms warm in 1,024 slots against 8 ms in 16 (2026-12-03); a caller
# with many small batches can pass a smaller chunk_size.


def solve(f: Callable, jac, shared_x: bool, cfg: LoopConfig, diff_step, jit_compile: bool,
          todo: np.ndarray, chunk_size: int, arrays: tuple, store: Callable,
          dtype: np.dtype = np.dtype(np.float64)) -> None:
    """Solve the problems ``todo`` (indices) of ``curve_fit_batch``.

    Args:
        f, jac, shared_x: the model, its ``jac`` and whether x is shared (``curve_fit_batch``).
        cfg, diff_step: the core's configuration and the finite-difference step.
        jit_compile: compile the step with XLA.
        todo: the problems to solve.
        chunk_size: the most slots of one stream.
        arrays: ``(x, y, present, inv_sigma, p0, lb, ub, d_fixed)`` of all problems.
        store: ``store(indices, state)``: keep the final NumPy state of finished problems
            (float64 whatever ``dtype``).
        dtype: the working precision of the compiled solve (float64 or float32).
    """
    x, y, present, inv_sigma, p0, lb, ub, d_fixed = arrays
    m, n = y.shape[1], p0.shape[1]
    step = _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile, dtype)
    inputs = _Inputs(x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed, dtype)
    slots = chunk_size  # one compiled shape per model, whatever K (see ``curve_fit_batch``)
    iterations = tf.constant(ROUND_ITERATIONS, tf.int32)

    def run_round(state, fresh, rows, min_running):
        state = _run(step, jit_compile, state, tf.constant(fresh), *inputs(rows), iterations,
                     tf.constant(min_running, tf.int32))
        return state, state.status.numpy()

    def keep(problems, state, at):
        store(problems, type(state)(*(_float64(t.numpy()[at]) for t in state)))

    empty = _idle_state(slots, m, n, dtype.name)
    # the step's first solve traces and compiles it: without the C++ lines that prints
    # (XLA's start-up INFO lines where TensorFlow was imported first; ``quiet_log``)
    first_run(step, lambda: streams(lambda part: stream(run_round, empty, part, slots, keep),
                                    todo, slots))


@functools.lru_cache(maxsize=8)
def _idle_state(slots: int, m: int, n: int, dtype: str):
    """The empty slots' state, made once per shape (its tensors are immutable; 15 eager
    ``tf.zeros`` took 1.6 ms of each warm call)."""
    return idle_state(slots, m, n, tf.as_dtype(dtype))


def _float64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if a.dtype.kind == "f" and a.dtype != np.float64 else a


def _compiled_stepper(f, jac, shared_x, n, m, cfg, diff_step, jit_compile, dtype):
    residual_fn = batched_residual(f, shared_x)
    jac_fn = (jac if jac in DIFFERENCE_MODES
              else batched_residual_and_jacobian(f, jac, shared_x))
    key = ("curve_fit_batch", f, jac, shared_x, n, m, cfg, diff_step, jit_compile, dtype.name)
    return driver.cached(key, lambda: driver.build_stepper(
        residual_fn, n, m, jac_fn, cfg._replace(jit_compile=jit_compile), diff_step=diff_step))


class _Inputs:
    """The compiled step's per-slot inputs for a given assignment of problems to slots."""

    def __init__(self, x, shared_x, y, present, inv_sigma, p0, lb, ub, d_fixed, dtype):
        self.dtype = dtype
        self.x_shared = self._tensor(x) if shared_x else None
        self.x, self.y, self.present, self.inv_sigma = x, y, present, inv_sigma
        self.p0, self.lb, self.ub, self.d_fixed = p0, lb, ub, d_fixed

    def _tensor(self, a) -> tf.Tensor:
        return tf.constant(np.ascontiguousarray(a, dtype=self.dtype))

    def __call__(self, rows: np.ndarray):
        t = self._tensor
        w = self.present[rows].astype(np.float64)
        if self.inv_sigma is not None:
            w *= self.inv_sigma if self.inv_sigma.ndim == 1 else self.inv_sigma[rows]
        data = (self.x_shared if self.x_shared is not None else t(self.x[rows]),
                t(np.where(self.present[rows], self.y[rows], 0.0)), t(w))
        d = np.broadcast_to(self.d_fixed, (rows.size, self.d_fixed.size))
        return t(self.p0[rows]), t(self.lb[rows]), t(self.ub[rows]), t(d), data


def _run(step, jit_compile: bool, *args):
    try:
        return step(*args)
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
        if not jit_compile:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError("the batched solve could not be compiled with XLA "
                         f"({first}). Pass jit_compile=False to run it without XLA.") from exc


def sees_gpu() -> bool:
    """Whether TensorFlow sees a GPU: a closed-form model's batch then runs here, compiled for
    it, rather than on the CPU's per-problem kernel (``marquardt._batch_kernel``)."""
    try:
        return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # noqa: BLE001 - no device query: the CPU's kernel is fine
        return False
