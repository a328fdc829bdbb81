"""``curve_fit_batch``'s JAX executor: the one-problem model vmapped over a chunk of problems,
the LM core in ``lax.while_loop`` (``solve_loop.run_loop``), one ``jax.jit`` per model.

The user's model ``f(x, *params)`` is written for one problem. Its weighted residual
r = where(w ≠ 0, w · (f(x, *p) − y), 0) and exact Jacobian (``jax.jacfwd`` when n ≤ m, else
``jacrev``; or the user's ``jac(x, *params)``) are formed for one problem and vectorised by
``jax.vmap``: no batch code in the model. ``w`` is 1/σ per point and 0 at a point marked
absent, whose residual and Jacobian row are then exactly 0.

Shapes and retracing: the problems run in chunks of ``slots`` problems, where ``slots`` is
K rounded up to a power of two (at least ``MIN_SLOTS``), capped at ``chunk_size``; the last
chunk is padded with copies of a real problem marked invalid (status ``IMPROPER_INPUT``, never
iterated). So calls with K = 5 and K = 7 share one compilation, and any K above
``chunk_size`` uses the ``chunk_size`` one. Chunks are dispatched asynchronously (JAX returns
before the computation ends) and collected afterwards; a chunk runs until its slowest
problem ends (no slot refills, unlike the TensorFlow stepper: docs/jax.md).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from marquardt._backend.jax import compile as jc
from marquardt._core.records import LoopConfig, LoopState

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
    key = ("curve_fit_batch", f, jac if isinstance(jac, str) else id(jac), shared_x, n, m,
           cfg, slots, x_shape, np.dtype(dtype).name)

    def build():
        from marquardt._backend.jax.solve_loop import run_loop

        one_r, one_rj = _one_problem(f, jac, n, m)
        x_axis = None if shared_x else 0

        def solve(p0, lb, ub, d_fixed, valid, x, y, w):
            jc.count_trace()
            residual = jax.vmap(one_r, in_axes=(0, x_axis, 0, 0))
            residual_and_jacobian = jax.vmap(one_rj, in_axes=(0, x_axis, 0, 0))
            state, _ = run_loop(cfg, lambda p: residual(p, x, y, w),
                                lambda p: residual_and_jacobian(p, x, y, w),
                                p0, lb, ub, d_fixed, valid=valid)
            return state

        return jax.jit(solve)

    return jc.cached(key, build)


def solve(f: Callable, jac, shared_x: bool, cfg: LoopConfig, todo: np.ndarray,
          chunk_size: int, arrays: tuple, store: Callable, dtype=np.float64) -> None:
    """Solve the problems ``todo`` (indices) of ``curve_fit_batch``.

    Args:
        f, jac, shared_x: the model, its ``jac`` (an autodiff mode or a callable) and whether
            x is shared.
        cfg: the core's configuration (no history, no callback).
        todo: the problems to solve; chunk_size: the most slots of one compiled solve.
        arrays: ``(x, y, present, inv_sigma, p0, lb, ub, d_fixed)`` of all problems.
        store: ``store(indices, state)`` keeps the final NumPy (float64) state of problems.
        dtype: the dtype of the solve: float64 (``curve_fit_batch``), or float32 for a
            caller that wants it (``benchmarks/jax_backend.py`` on a GPU; use tolerances
            above float32's ε ≈ 1.2e-7).
    """
    x, y, present, inv_sigma, p0, lb, ub, d_fixed = arrays
    m, n = y.shape[1], p0.shape[1]
    slots = slot_count(todo.size, chunk_size)
    x_shape = tuple(x.shape) if shared_x else tuple(x.shape[1:])
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)  # noqa: E731
    with jc.float64():
        compiled = _compiled(f, jac, shared_x, n, m, cfg, slots, x_shape, dtype)
        x_shared = jnp.asarray(cast(x)) if shared_x else None
        pending = []
        for start in range(0, todo.size, slots):
            idx = todo[start:start + slots]
            rows = np.concatenate([idx, np.full(slots - idx.size, idx[0])])
            valid = np.arange(slots) < idx.size
            w = present[rows].astype(np.float64)
            if inv_sigma is not None:
                w = w * (inv_sigma if inv_sigma.ndim == 1 else inv_sigma[rows])
            d = np.broadcast_to(d_fixed, (slots, n))
            state = compiled(cast(p0[rows]), cast(lb[rows]), cast(ub[rows]), cast(d),
                             valid, x_shared if shared_x else cast(x[rows]),
                             cast(np.where(present[rows], y[rows], 0.0)), cast(w))
            pending.append((idx, state))  # dispatched: runs while the next is prepared
        for idx, state in pending:
            host = LoopState(*(np.asarray(a)[: idx.size] for a in jax.device_get(state)))
            if dtype != np.float64:
                host = LoopState(*(a.astype(np.float64) if a.dtype.kind == "f" else a
                                   for a in host))
            store(idx, host)
