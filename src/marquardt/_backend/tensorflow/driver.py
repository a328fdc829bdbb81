"""Compiling and caching: the batch stepper (``build_stepper``) and the compiled residual
functions of single fits (``host_functions``), one per (problem kind, configuration, shapes).

The compiled functions take the start point, the bounds, the fixed damping diagonal and the
problem's data arrays as *inputs* (not captured constants), so a second fit of the same shapes
with other data or another start reuses the trace instead of retracing.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, NamedTuple

import tensorflow as tf

from marquardt._cache import CompiledCache
from marquardt._options import DIFFERENCE_MODES
from marquardt._backend.tensorflow import quiet_log  # noqa: F401 (installs the filters)
from marquardt._backend.tensorflow.jacobian import autodiff_jacobian, finite_difference_jacobian
from marquardt._backend.tensorflow.solve_loop import LoopConfig, restart, resume_loop

__all__ = ["build_stepper", "residual_functions", "cached", "peek", "forget", "clear_cache", "CACHE_SIZE",
           "ResidualAndJacobian"]

#: Compiled solvers kept (least recently used are dropped first).
CACHE_SIZE = 64

_cache = CompiledCache(CACHE_SIZE)


def cached(key: Hashable | None, factory: Callable[[], Callable]) -> Callable:
    """The compiled solver for ``key``, built by ``factory()`` on a miss. ``key=None``: no cache."""
    return _cache.get(key, factory)


def peek(key: Hashable | None):
    """The cached entry for ``key``, or None; builds nothing."""
    return _cache.peek(key)


def keys() -> list:
    """The keys of the compiled functions cached now."""
    return _cache.keys()


def forget(key: Hashable | None) -> None:
    """Drop one compiled solver (after its tracing failed)."""
    _cache.forget(key)


def clear_cache() -> None:
    """Forget every compiled solver."""
    _cache.clear()


def cfg_jit(cfg: LoopConfig) -> bool:
    """XLA for the whole solve: off by default (see ``LoopConfig.jit_compile``)."""
    return bool(getattr(cfg, "jit_compile", False))


def build_stepper(residual_fn: Callable, n: int, m: int, jac: Any, cfg: LoopConfig, *,
                  diff_step: float | None = None) -> Callable:
    """A compiled ``step(state, fresh, x0, lb, ub, d_fixed, data, iterations, min_running)
    -> LoopState``.

    For a batch whose slots are refilled between calls: the problems marked ``fresh`` (K,)
    start at their ``x0`` (the others keep their ``state``), then all run up to
    ``iterations`` outer iterations, ending once no more than ``min_running`` problems still
    run (``resume_loop``). Arguments as for ``residual_functions``;
    ``cfg.record_history`` must be False.
    """

    def step(state, fresh, x0, lb, ub, d_fixed, data, iterations, min_running):
        residual, res_jac = residual_functions(residual_fn, n, m, jac, data, lb, ub,
                                                diff_step, False)

        state = restart(cfg, res_jac, state, fresh, x0, lb, ub, d_fixed)
        return resume_loop(cfg, residual, res_jac, state, lb, ub, d_fixed, iterations,
                           min_running)

    return tf.function(step, autograph=False, jit_compile=cfg_jit(cfg))


class ResidualAndJacobian(NamedTuple):
    """A ``jac`` whose ``fn(x, *data)`` returns ``(r, J)`` together: the model runs once for
    both, where a plain callable ``jac`` (J only) costs one more residual evaluation."""

    fn: Callable


def residual_functions(residual_fn, n, m, jac, data, lb, ub, diff_step, eager):
    """``residual(x)`` and ``residual_and_jacobian(x)`` of a batch, for the given data."""

    def residual(x):
        return residual_fn(x, *data)

    if isinstance(jac, ResidualAndJacobian):
        def res_jac(x):
            return jac.fn(x, *data)
    elif callable(jac):
        def res_jac(x):
            return residual(x), jac(x, *data)
    elif jac in DIFFERENCE_MODES:
        res_jac = finite_difference_jacobian(residual, n, jac, lb, ub, diff_step, eager)
    else:
        res_jac = autodiff_jacobian(residual, n, m, jac)
    return residual, res_jac
