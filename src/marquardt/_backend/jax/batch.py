"""``curve_fit_batch``'s JAX executor: the one-problem model vmapped over a chunk of problems,
the LM core in ``lax.while_loop`` (``solve_loop.run_loop``), one ``jax.jit`` per model.

The user's model ``f(x, *params)`` is written for one problem. Its weighted residual
r = where(w ≠ 0, w · (f(x, *p) − y), 0) and exact Jacobian (``jax.jacfwd`` when n ≤ m, else
``jacrev``; or the user's ``jac(x, *params)``) are formed for one problem and vectorised by
``jax.vmap``: no batch code in the model. ``w`` is 1/σ per point and 0 at a point marked
absent, whose residual and Jacobian row are then exactly 0.

Shapes and retracing: the problems stream through ``slots`` slots, where ``slots`` is K
rounded up to a power of two (at least ``MIN_SLOTS``), capped at ``chunk_size``. So calls
with K = 5 and K = 7 share one compilation, and any K above ``chunk_size`` uses the
``chunk_size`` one. One jitted round (``solve_loop.restart`` then ``resume_loop``) runs up to
``ROUND_ITERATIONS`` iterations of every slot; between rounds finished problems leave and
their slots take the next waiting problems (``marquardt._core.stream``, the refill loop the
TensorFlow stepper uses too), so a slow problem holds one slot, not a chunk of finished ones.
Slots without a problem keep an idle or finished state and never iterate. Streams run side
by side in threads, one per core (XLA releases the GIL while a round runs).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from marquardt._backend.jax import compile as jc
from marquardt._core.records import LoopConfig, LoopState
from marquardt._core.stream import ROUND_ITERATIONS, stream, streams

__all__ = ["solve", "slot_count", "MIN_SLOTS"]

#: The fewest slots of a chunk: batches of up to 8 problems share one compilation.
MIN_SLOTS = 8


def slot_count(k: int, chunk_size: int) -> int:
    """Slots per chunk for K problems: the next power of two ≥ K (≥ ``MIN_SLOTS``), at most
    ``chunk_size``."""
    return int(min(chunk_size, max(MIN_SLOTS, 1 << max(0, int(k) - 1).bit_length())))


def _one_problem(f: Callable, jac, n: int, m: int):
    """``(r, J)(p, x, y, w)`` for one problem."""
    def residual(p, x, y, w):
        out = jnp.asarray(f(x, *p)).astype(p.dtype)
        if out.shape != y.shape:
            raise ValueError(f"`f(xdata, *p)` must return shape {tuple(y.shape)} for one "
                             f"problem. Received: shape {tuple(out.shape)}")
        return jnp.where(w != 0, (out - y) * w, 0.0)

    if callable(jac):
        def residual_and_jacobian(p, x, y, w):
            jm = jnp.asarray(jac(x, *p)).astype(p.dtype)
            if jm.shape != (m, n):
                raise ValueError(f"`jac(xdata, *p)` must return shape {(m, n)} for one "
                                 f"problem. Received: shape {tuple(jm.shape)}")
            return (residual(p, x, y, w),
                    jnp.where((w != 0)[:, None], jm * w[:, None], 0.0))
    else:
        def residual_and_jacobian(p, x, y, w):
            return jc.jacobian(lambda q: residual(q, x, y, w), n, m, jac)(p)

    return residual, residual_and_jacobian


def _compiled(f, jac, shared_x: bool, n: int, m: int, cfg: LoopConfig, slots: int,
              x_shape: tuple, dtype):
    """The jitted round ``step(state, fresh, p0, lb, ub, d, x, y, w, iterations,
    min_running) -> state`` (``solve_loop.restart`` then ``resume_loop``), cached."""
    key = ("curve_fit_batch", f, jac if isinstance(jac, str) else id(jac), shared_x, n, m,
           cfg, slots, x_shape, np.dtype(dtype).name)

    def build():
        from marquardt._backend.jax.solve_loop import restart, resume_loop

        one_r, one_rj = _one_problem(f, jac, n, m)
        x_axis = None if shared_x else 0

        def step(state, fresh, p0, lb, ub, d_fixed, x, y, w, iterations, min_running):
            jc.count_trace()
            residual = jax.vmap(one_r, in_axes=(0, x_axis, 0, 0))
            residual_and_jacobian = jax.vmap(one_rj, in_axes=(0, x_axis, 0, 0))
            r = lambda p: residual(p, x, y, w)  # noqa: E731
            rj = lambda p: residual_and_jacobian(p, x, y, w)  # noqa: E731
            state = restart(cfg, rj, state, fresh, p0, lb, ub, d_fixed)
            return resume_loop(cfg, r, rj, state, lb, ub, d_fixed, iterations, min_running)

        return jax.jit(step)

    return jc.cached(key, build)


def solve(f: Callable, jac, shared_x: bool, cfg: LoopConfig, todo: np.ndarray,
          chunk_size: int, arrays: tuple, store: Callable, dtype=np.float64) -> None:
    """Solve the problems ``todo`` (indices) of ``curve_fit_batch``.

    Args:
        f, jac, shared_x: the model, its ``jac`` (an autodiff mode or a callable) and whether
            x is shared.
        cfg: the core's configuration (no history, no callback).
        todo: the problems to solve; chunk_size: the most slots of one compiled step.
        arrays: ``(x, y, present, inv_sigma, p0, lb, ub, d_fixed)`` of all problems.
        store: ``store(indices, state)`` keeps the final NumPy (float64) state of problems.
        dtype: the dtype of the solve: float64 (``curve_fit_batch``), or float32 for a
            caller that wants it (``benchmarks/jax_backend.py`` on a GPU; use tolerances
            above float32's ε ≈ 1.2e-7).
    """
    from marquardt._backend.jax.solve_loop import idle_state

    x, y, present, inv_sigma, p0, lb, ub, d_fixed = arrays
    m, n = y.shape[1], p0.shape[1]
    slots = slot_count(todo.size, chunk_size)
    x_shape = tuple(x.shape) if shared_x else tuple(x.shape[1:])
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    with jc.float64():
        step = _compiled(f, jac, shared_x, n, m, cfg, slots, x_shape, dtype)
        x_shared = jnp.asarray(cast(x)) if shared_x else None
        d = cast(np.broadcast_to(d_fixed, (slots, n)))
        iterations = np.int32(ROUND_ITERATIONS)

        def run_round(state, fresh, rows, min_running):
            w = present[rows].astype(np.float64)
            if inv_sigma is not None:
                w = w * (inv_sigma if inv_sigma.ndim == 1 else inv_sigma[rows])
            with jc.float64():  # each stream runs in its own thread
                state = step(state, fresh, cast(p0[rows]), cast(lb[rows]), cast(ub[rows]), d,
                             x_shared if shared_x else cast(x[rows]),
                             cast(np.where(present[rows], y[rows], 0.0)), cast(w),
                             iterations, np.int32(min_running))
                return state, np.asarray(state.status)

        def keep(problems, state, at):
            host = LoopState(*(np.asarray(a)[at] for a in state))
            if dtype != np.float64:
                host = LoopState(*(a.astype(np.float64) if a.dtype.kind == "f" else a
                                   for a in host))
            store(problems, host)

        def run_stream(part):
            with jc.float64():
                idle = idle_state(slots, m, n, dtype)
            stream(run_round, idle, part, slots, keep)

        streams(run_stream, todo, slots)
