"""A single fit of a TensorFlow or JAX model: one compiled loop, or the host executor.

The model's first fits run on the host executor (``marquardt._core.host``) with its residuals
and exact Jacobian compiled as one function; once its host functions have made enough
evaluations to pay for compiling the whole solve (the ski-rental rule of
``marquardt._tiering``), the solve runs as one compiled loop (``tf.while_loop`` or
``lax.while_loop``). A fit with a callback, ``verbose=2`` or a callable loss always runs on the
host. ``solve_problem`` (``marquardt._least_squares``) calls these two with the problem it
checked; they return ``(state, rows, None)`` for a compiled solve or ``(None, None,
evaluator)`` for the host executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from marquardt._core.records import LoopConfig
from marquardt._errors import NoGradientError
from marquardt._options import AUTODIFF_MODES, DIFFERENCE_MODES
from marquardt._probe import is_float32_mix, named_error

if TYPE_CHECKING:
    from marquardt._least_squares import Problem

__all__ = ["jax_fit", "tensorflow_fit"]


def jax_fit(problem: Problem, x0, lb, ub, d_fixed, m: int, cfg: LoopConfig):
    """A JAX function with an exact Jacobian: ``(state, rows, None)`` solved as one compiled
    loop (``_backend/jax/host_functions.compiled_solver``) once the model has been evaluated
    often enough on the host to pay for compiling it (``marquardt._tiering``), or
    ``(None, None, evaluator)`` for the host executor: the first fits of a model, and any fit
    with a callback or ``verbose=2`` (run after each iteration) or a callable loss (NumPy
    code)."""
    from marquardt._backend.jax import host_functions

    one, data, key = problem.jax()
    jac = "auto" if problem.jac == "cs" else problem.jac
    try:
        if cfg.callback is None and not callable(cfg.loss) and \
                host_functions.solver_paid_for(key, problem.n, m, jac, cfg):
            solve = host_functions.compiled_solver(one, data, problem.n, m, jac, cfg, key)
            state, rows = solve(x0, lb, ub, d_fixed)
            return state, rows, None
        return None, None, host_functions.compiled_evaluator(
            one, data, problem.n, m, jac, key, x0, config=cfg._replace(callback=None))
    except host_functions.tracing_errors() as exc:
        raise NoGradientError(
            f"`{problem.who}` cannot be differentiated by JAX: it converts a traced parameter "
            f"to NumPy or branches on one in Python ({type(exc).__name__}). Write it with "
            "jax.numpy "
            "(jnp.where for branches) for exact Jacobians, or pass jac='2-point' (or "
            "'3-point') to use finite differences.") from exc


def tensorflow_fit(problem: Problem, x0, lb, ub, d_fixed, m: int, cfg: LoopConfig, diff_step):
    """A TensorFlow model: ``(state, rows, None)`` solved as one compiled loop once the model
    has been evaluated often enough on the host to pay for compiling it
    (``host_functions.warm_solver``, ``marquardt._tiering``: evaluations counted per
    configuration, a callback's fits toward the same configuration without it; not with a
    callback or ``verbose=2``, which run as plain Python on the host), else ``(None, None,
    evaluator)`` for the host executor, or ``(None, None, None)`` when TensorFlow cannot trace the model and finite
    differences can run it eagerly instead. A missing gradient raises."""
    from marquardt._backend.tensorflow.host_functions import (check_autodiff,
                                                              compiled_evaluator,
                                                              tracing_errors, warm_solver)

    residual_fn, data, tf_jac, key = problem.tensorflow()
    if cfg.callback is None and not callable(cfg.loss):
        solve = warm_solver(residual_fn, data, problem.n, tf_jac, cfg, diff_step, key)
        if solve is not None:
            try:
                state, rows = solve(x0, lb, ub, d_fixed)
                return state, rows, None
            except Exception:  # noqa: BLE001 - the loop failed where the first fit ran:
                pass  # the host executor below runs (and reports) this fit

    def on_build():  # a missing gradient is an error (autodiff modes only)
        if problem.jac in AUTODIFF_MODES:
            check_autodiff(residual_fn, data, x0[0])
    try:
        return None, None, compiled_evaluator(residual_fn, data, problem.n, m, tf_jac, lb, ub,
                                              diff_step, key, x0, on_build,
                                              config=cfg._replace(callback=None))
    except TypeError as exc:
        if not is_float32_mix(str(exc)):  # (tracing_errors' _NumpyInGraph is a TypeError)
            if isinstance(exc, tracing_errors()):
                return _untraceable(problem, exc)
            raise
        # traced, a float32 tensor meeting the float64 parameters is TensorFlow's bare
        # TypeError: named, with the remedy, as the first (eager) call's errors are
        raise named_error(exc, problem.who, f"at {problem.start}") from exc
    except tracing_errors() as exc:
        return _untraceable(problem, exc)


def _untraceable(problem: Problem, exc: Exception):
    """A model TensorFlow cannot trace: ``(None, None, None)`` (finite differences run it
    eagerly) for a difference ``jac``, else ``NoGradientError``."""
    if problem.jac in DIFFERENCE_MODES:
        return None, None, None
    raise NoGradientError(
        f"`{problem.who}` cannot be differentiated by TensorFlow: it calls NumPy on its "
        f"input or branches in Python on a parameter ({exc}). Write it with TensorFlow ops "
        "for exact Jacobians, or pass jac='2-point' (or '3-point') to use finite "
        "differences."
    ) from None
