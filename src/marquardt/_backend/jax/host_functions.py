"""A JAX residual function compiled for ``least_squares`` and ``curve_fit``.

Two ways to run a JAX model, both exact (``jax.jacfwd``/``jacrev``) and float64
(``compile.float64``):

* ``compiled_solver``: the whole solve, the LM core inside ``lax.while_loop``
  (``solve_loop.run_loop``), as one ``jax.jit`` function, compiled once per (function,
  options, shapes) and cached: a warm fit is one call of an XLA executable.
* ``compiled_evaluator``: r and J together as one jitted function, for the host executor
  (``marquardt._core.host``), which runs a fit with a ``callback`` or ``verbose=2`` (plain
  Python after each iteration, as for a NumPy function) or a callable ``loss``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp
import numpy as np

from marquardt import _tiering
from marquardt._backend.jax import compile as jc
from marquardt._core.functions import Evaluator
from marquardt._core.records import HISTORY_FIELDS, LoopConfig, LoopState

__all__ = ["least_squares_problem", "curve_fit_problem", "compiled_solver",
           "compiled_evaluator", "solver_paid_for"]


def tracing_errors() -> tuple[type[Exception], ...]:
    """What tracing raises for a function that converts a tracer to NumPy or a Python bool
    (``np.exp(p[0])``, ``if p[0] > 0``)."""
    return (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerIntegerConversionError)


def as_residual(r, dtype, who: str = "fun"):
    """Check (trace time) and cast the output of a residual function; a scalar is one
    residual, as in SciPy's ``least_squares``."""
    r = jnp.asarray(r)
    if not jnp.issubdtype(r.dtype, jnp.floating):
        raise TypeError(f"`{who}` must return floating-point residuals. "
                        f"Received: dtype {r.dtype}")
    if r.ndim == 0:
        r = jnp.reshape(r, (1,))
    if r.ndim != 1:
        raise ValueError(f"`{who}` must return a 1-D array of residuals, shape (m,). "
                         f"Received: shape {r.shape}")
    return r.astype(dtype)


def least_squares_problem(fun: Callable, args: tuple, kwargs: dict):
    """``(one, data, key)`` of ``least_squares``' ``fun(x, *args, **kwargs)``: ``one(x,
    *data) -> r`` for one problem, the float arrays among ``args`` as inputs ``data`` (new
    data of the same shapes reuses the compilation), ``key`` None when not cacheable."""
    layout = jc.split_args(args)

    def one(x, *data):
        return as_residual(fun(x, *layout.call_args(data), **kwargs), x.dtype)

    try:
        key = ("least_squares", fun, layout.key(), tuple(sorted(kwargs.items())))
        hash(key)
    except TypeError:
        key = None
    return one, layout.data, key


def curve_fit_problem(f: Callable, kind: str, x: np.ndarray, y: np.ndarray, w: np.ndarray):
    """``(one, data, key)`` of ``curve_fit``'s weighted residual r(p) = W (f(x, *p) − y),
    ``kind`` none / diag / full, with x, y and W as inputs."""

    def one(p, xt, yt, wt):
        out = jnp.asarray(f(xt, *p)).astype(p.dtype)
        if out.shape != yt.shape:
            raise ValueError(f"`f(xdata, *p)` must return shape {tuple(yt.shape)} like ydata. "
                             f"Received: shape {tuple(out.shape)}")
        r = out - yt
        if kind == "diag":
            r = r * wt
        elif kind == "full":
            r = wt @ r
        return r

    try:
        key = ("curve_fit", f, kind, x.shape, y.shape, w.shape)
        hash(key)
    except TypeError:
        key = None
    return one, (x, y, w), key


def _batch_functions(one: Callable, n: int, m: int, jac: str):
    """``residual(X, *data)``, ``residual_and_jacobian(X, *data)`` on (K, n) points."""
    def residual(xk, *data):
        return jax.vmap(lambda x: one(x, *data))(xk)

    def residual_and_jacobian(xk, *data):
        return jax.vmap(jc.jacobian(lambda x: one(x, *data), n, m, jac))(xk)

    return residual, residual_and_jacobian


def compiled_solver(one: Callable, data: tuple, n: int, m: int, jac: str, cfg: LoopConfig,
                    key: Hashable | None) -> Callable:
    """The whole solve as one compiled function: ``solve(x0, lb, ub, d_fixed) -> (state,
    rows)`` with NumPy (1, n) arrays in and NumPy out (``rows``: the history table)."""
    cfg = cfg._replace(callback=None)

    def build():
        from marquardt._backend.jax.solve_loop import run_loop

        residual, residual_and_jacobian = _batch_functions(one, n, m, jac)

        def solve(x0, lb, ub, d_fixed, *data_):
            jc.count_trace()
            state, (table, count) = run_loop(cfg, lambda x: residual(x, *data_),
                                             lambda x: residual_and_jacobian(x, *data_),
                                             x0, lb, ub, d_fixed)
            return _pack(state, table, count)

        return jax.jit(solve)

    full_key = None if key is None else ("solve", key, n, m, jac, cfg)
    compiled = jc.cached(full_key, build)

    def solve(x0, lb, ub, d_fixed):
        with jc.float64():
            try:
                packed = compiled(x0, lb, ub, d_fixed, *data)
            except Exception:
                jc.forget(full_key)
                raise
            return _unpack(np.asarray(packed[0]), np.asarray(packed[1]), 1, m, n)

    return solve


_INT_FIELDS = ("nfev", "njev", "nit", "status")


def _pack(state: LoopState, table, count):
    """The state and history as two arrays, floats and ints: one device-to-host copy each
    (15 arrays cost 1 ms of the 2 ms of a warm 3-parameter fit, measured)."""
    floats = [jnp.ravel(getattr(state, f)) for f in LoopState._fields if f not in _INT_FIELDS]
    ints = [jnp.ravel(getattr(state, f)) for f in _INT_FIELDS] + [jnp.reshape(count, (1,))]
    return jnp.concatenate(floats + [jnp.ravel(table)]), jnp.concatenate(ints)


@functools.lru_cache(maxsize=64)
def _layout(k: int, m: int, n: int):
    """Where each field of ``_pack``'s arrays lies: (name, start, stop, shape) per float
    field, the start of the history table, (name, start, stop) per int field."""
    shapes = {"x": (k, n), "f": (k, m), "j": (k, m, n), "d": (k, n)}
    floats, at = [], 0
    for f in LoopState._fields:
        if f in _INT_FIELDS:
            continue
        shape = shapes.get(f, (k,))
        size = math.prod(shape)
        floats.append((f, at, at + size, shape))
        at += size
    ints = tuple((f, i * k, (i + 1) * k) for i, f in enumerate(_INT_FIELDS))
    return tuple(floats), at, ints


def _unpack(floats: np.ndarray, ints: np.ndarray, k: int, m: int, n: int):
    """``(LoopState, rows)`` from ``_pack``'s arrays (K problems; rows of problem 0)."""
    float_fields, at, int_fields = _layout(k, m, n)
    fields = {f: floats[a:b].reshape(shape) for f, a, b, shape in float_fields}
    for f, a, b in int_fields:
        fields[f] = ints[a:b]
    count = int(ints[-1])
    table = floats[at:].reshape(-1, len(HISTORY_FIELDS))
    return LoopState(**fields), table[: count + 1]


def compiled_evaluator(one: Callable, data: tuple, n: int, m: int, jac: str,
                       key: Hashable | None, x0: np.ndarray,
                       config: Hashable = None) -> Evaluator:
    """The host executor's ``Evaluator`` of ``one``: r, and r with J, each one jitted call
    on (1, n) NumPy points (float64). Evaluated at ``x0`` at once (``Evaluator.first``).
    ``config``: the solve's configuration, under which the evaluations are counted for the
    ski-rental rule (``solver_paid_for``)."""

    def build():
        residual, residual_and_jacobian = _batch_functions(one, n, m, jac)
        return jax.jit(residual), jax.jit(residual_and_jacobian), _tiering.HostUse()

    full_key = None if key is None else ("evaluator", key, n, m, jac)
    compiled_r, compiled_rj, use = jc.cached(full_key, build)
    count = use.counter(config)

    def residual(x, problems=None):
        count()
        with jc.float64():
            return np.asarray(compiled_r(x, *data))

    def residual_and_jacobian(x, problems=None):
        count()
        with jc.float64():
            r, j = compiled_rj(x, *data)
            return np.asarray(r), np.asarray(j)

    try:
        first = residual_and_jacobian(x0)
    except Exception:
        jc.forget(full_key)
        raise
    return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian,
                     jacobian_with_residual=True, first=first)


def solver_paid_for(key: Hashable | None, n: int, m: int, jac: str, cfg: LoopConfig) -> bool:
    """Whether this fit runs as the compiled solve (``compiled_solver``): it is compiled
    already, or the model's host functions have made ``_tiering.JAX_EVALUATIONS``
    evaluations for fits with this ``cfg`` (the ski-rental rule of ``marquardt._tiering``).
    A model whose key cannot be cached stays on the host executor, which compiles less
    (0.1-0.4 s against 1.3-1.9 s)."""
    if key is None:
        return False
    cfg = cfg._replace(callback=None)
    return _tiering.compile_now(jc.peek(("solve", key, n, m, jac, cfg)),
                                jc.peek(("evaluator", key, n, m, jac)), cfg,
                                _tiering.JAX_EVALUATIONS)


def call_with_arrays(fun: Callable, *values, **kwargs) -> Any:
    """``fun`` called with each of ``values`` as a float64 JAX array (the front doors'
    second try of a function that rejected NumPy values)."""
    with jc.float64():
        return fun(*(jnp.asarray(v, jnp.float64) for v in values), **kwargs)
