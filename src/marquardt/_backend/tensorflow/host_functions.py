"""A TensorFlow residual function compiled for the host executor (``marquardt._core.host``).

The model is traced once into one ``tf.function`` that returns r and J together (exact
autodiff, or finite differences vectorised over the n perturbed points) and one that returns
r alone; the host executor calls them with NumPy arrays and runs the LM algebra in NumPy.
The compiled functions are cached per (model, configuration, shapes) (``driver.cached``), so
a second fit of the same model, with new data of the same shapes, traces nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import numpy as np
import tensorflow as tf

from marquardt import _tiering
from marquardt._options import DIFFERENCE_MODES
from marquardt._backend.tensorflow import arguments, driver
from marquardt._backend.tensorflow.quiet_log import first_run
from marquardt._cache import CompiledCache
from marquardt._backend.tensorflow.jacobian import UNROLL_MAX, zero_gradient_parameters
from marquardt._core.functions import Evaluator

__all__ = ["call_with_tensors", "compiled_evaluator", "warm_solver", "least_squares_problem",
           "curve_fit_problem", "tracing_errors", "check_autodiff", "check_model_autodiff"]


def tracing_errors() -> tuple[type[Exception], ...]:
    """What tracing raises for a model that calls NumPy on a symbolic tensor, branches on one
    in Python, or returns NumPy."""
    return (NotImplementedError, tf.errors.OperatorNotAllowedInGraphError, _NumpyInGraph)


class _NumpyInGraph(TypeError):
    """The residual function returned a NumPy array while being traced."""


def as_residual(r, who: str = "fun"):
    """Check and cast the output of a residual function (trace time); a scalar is one
    residual, as in SciPy's ``least_squares``."""
    if isinstance(r, np.ndarray) and not tf.executing_eagerly():
        raise _NumpyInGraph(f"`{who}` returned a NumPy array inside a compiled function")
    r = tf.convert_to_tensor(r)
    if not r.dtype.is_floating:
        raise TypeError(f"`{who}` must return floating-point residuals. "
                        f"Received: dtype {r.dtype.name}")
    if r.shape.rank == 0:
        r = tf.reshape(r, [1])
    if r.shape.rank != 1:
        raise ValueError(f"`{who}` must return a 1-D tensor of residuals, shape (m,). "
                         f"Received: shape {tuple(r.shape)}")
    return tf.cast(r, tf.float64)


def least_squares_problem(fun: Callable, jac: Any, args: tuple, kwargs: dict):
    """``(residual_fn, data, jac, key)`` of ``least_squares``' ``fun(x, *args, **kwargs)``:
    the arrays among ``args`` become tensor inputs (``arguments.float_arrays``), so new data
    of the same shapes reuses the compiled functions."""
    layout = arguments.split_args(args, arguments.float_arrays)

    def residual_fn(x, *data_tensors):
        return as_residual(fun(x[0], *layout.call_args(data_tensors), **kwargs))[None]

    try:
        key = ("least_squares", fun, jac, layout.slots, tuple(sorted(kwargs.items())),
               tuple(tuple(d.shape) for d in layout.data))
        hash(key)
    except TypeError:
        key = None
    return residual_fn, layout.data, jac, key


def curve_fit_problem(f: Callable, kind: str, jac: str, x: np.ndarray, y: np.ndarray,
                      w: np.ndarray):
    """``(residual_fn, data, jac, key)`` of ``curve_fit``'s weighted residual
    r(p) = W (f(x, *p) − y), ``kind`` none / diag / full, with x, y and W as tensor inputs."""

    def residual_fn(p, xt, yt, wt):
        out = tf.cast(tf.convert_to_tensor(f(xt, *tf.unstack(p[0]))), tf.float64)
        # a shape unknown when traced (``tf.numpy_function``'s output) is checked when run
        if not out.shape.is_compatible_with(yt.shape):
            raise ValueError(f"`f(xdata, *p)` must return shape {tuple(yt.shape)} like ydata. "
                             f"Received: shape {out.shape}")
        if not out.shape.is_fully_defined():
            out = tf.ensure_shape(out, yt.shape)
        r = out - yt
        if kind == "diag":
            r = r * wt
        elif kind == "full":
            r = tf.linalg.matvec(wt, r)
        return r[None]

    try:
        key = ("curve_fit", f, kind, jac, x.shape, y.size)
        hash(key)
    except TypeError:
        key = None
    return residual_fn, (tf.constant(x), tf.constant(y), tf.constant(w)), jac, key


#: Models ``f`` (with the shapes of x and p) whose every parameter had a nonzero autodiff
#: gradient at a check: their graph connects every parameter, so a later call with other
#: data (``curve_fit_batch`` on the next image) skips the eager check (4-5 ms a call).
_CONNECTED = CompiledCache(64)


def check_model_autodiff(f: Callable, x: np.ndarray, p: np.ndarray, who: str = "f",
                         dtype: np.dtype = np.dtype(np.float64)) -> None:
    """``check_autodiff`` for a model ``f(x, *params)`` at the parameters ``p``, called with
    x and the parameters as tensors of ``dtype`` (the batch's working precision); skipped
    for a model whose earlier check found every parameter connected (``_CONNECTED``)."""
    from marquardt import _probe

    dtype = tf.as_dtype(np.dtype(dtype))
    try:
        key = (f, x.shape, x.dtype.str, np.shape(p), dtype.name)
        hash(key)
    except TypeError:
        key = None
    if key is not None and _CONNECTED.peek(key) is not None:
        return
    xt = tf.constant(x, dtype)

    def residual(q):  # (n,) -> (m,), float64 in and out
        return tf.cast(f(xt, *tf.unstack(tf.cast(q, dtype))), tf.float64)

    zero = zero_gradient_parameters(residual, p)
    _probe.check_zero_columns(zero, lambda q: residual(tf.constant(q)).numpy(), p, who)
    if key is not None and zero.size == 0:
        _CONNECTED.get(key, lambda: True)


def check_autodiff(residual_fn: Callable, data: tuple, x0: np.ndarray) -> None:
    """A missing gradient is an error, not a zero column (``_probe.check_zero_columns``)."""
    from marquardt import _probe

    def residual(x):  # (n,) -> (m,)
        return residual_fn(x[None], *data)[0]

    _probe.check_zero_columns(zero_gradient_parameters(residual, x0),
                              lambda x: residual(tf.constant(x)).numpy(), x0)


def compiled_evaluator(residual_fn: Callable, data: tuple, n: int, m: int, jac: Any,
                       lb: np.ndarray, ub: np.ndarray, diff_step: float | None,
                       key: Hashable | None, x0: np.ndarray,
                       on_build: Callable[[], None] | None = None,
                       config: Hashable = None) -> Evaluator:
    """The ``Evaluator`` of the batch residual function ``residual_fn(x, *data)`` (x (1, n)
    → r (1, m), TensorFlow ops), with J by ``jac`` (``auto``/``forward``/``reverse``,
    ``2-point``/``3-point``, a callable or ``driver.ResidualAndJacobian``).

    Traces and evaluates at ``x0`` (1, n) at once, so that a model TensorFlow cannot trace
    fails here, before the solve (``Evaluator.first`` keeps that evaluation). ``on_build``
    runs once after a new build (the check for missing gradients), not on a cache hit.
    ``config``: the solve's configuration, under which the evaluations are counted for the
    ski-rental rule (``warm_solver``, ``marquardt._tiering``).
    """
    built = []

    def build():
        def residual_and_jacobian(x, lb_, ub_, *data_):
            _, res_jac = driver.residual_functions(residual_fn, n, m, jac, data_, lb_, ub_,
                                                   diff_step, False)
            return res_jac(x)

        def residual(x, *data_):
            return residual_fn(x, *data_)

        built.append(True)
        return (tf.function(residual, autograph=False),
                tf.function(residual_and_jacobian, autograph=False), _tiering.HostUse())

    key = None if key is None else (key, n, m, _jac_key(jac), diff_step)
    compiled_r, compiled_rj, use = driver.cached(key, build)
    count = use.counter(config)
    lb_t, ub_t = tf.constant(lb), tf.constant(ub)
    # Concrete functions, looked up once per fit: calling a ``tf.function`` canonicalises its
    # arguments on every call (about half of a small model's call time, measured with
    # cProfile on the 3-parameter exponential of benchmarks/single_fit.py).
    concrete = {}

    def residual(x, problems=None):
        count()
        if "r" not in concrete:
            concrete["r"] = compiled_r.get_concrete_function(tf.constant(x), *data)
        return concrete["r"](tf.constant(x), *data).numpy()

    def residual_and_jacobian(x, problems=None):
        count()
        if "rj" not in concrete:
            concrete["rj"] = compiled_rj.get_concrete_function(tf.constant(x), lb_t, ub_t,
                                                               *data)
        r, j = concrete["rj"](tf.constant(x), lb_t, ub_t, *data)
        return r.numpy(), j.numpy()

    try:  # (the first run of a new build: without the C++ lines it prints, ``quiet_log``)
        first = first_run(compiled_rj, lambda: residual_and_jacobian(x0))
        if built and on_build is not None:
            on_build()
    except Exception:
        driver.forget(key)
        raise
    autodiff = not (isinstance(jac, str) and jac in DIFFERENCE_MODES)
    return Evaluator(residual=residual, residual_and_jacobian=residual_and_jacobian,
                     jacobian_with_residual=autodiff and n <= UNROLL_MAX, first=first)


def warm_solver(residual_fn: Callable, data: tuple, n: int, jac: Any, cfg, diff_step,
                key: Hashable | None) -> Callable | None:
    """For a model whose host functions have made ``_tiering.TENSORFLOW_EVALUATIONS``
    evaluations for fits with this ``cfg`` (the ski-rental rule of ``marquardt._tiering``;
    ``cfg`` without a callback, which this path never has): the whole solve as one
    compiled loop (the core in ``tf.while_loop``, ``solve_loop.run_loop``),
    ``solve(x0, lb, ub, d_fixed) -> (state, rows)`` with NumPy (1, n) arrays in and out; None
    while the host executor is the cheaper choice (it traces less: 0.2 s against 0.7-2.5 s),
    or for a key that cannot be cached.

    Later fits of a model pay no Python per iteration this way: warm, a TensorFlow model on
    the host executor pays about 1 ms of call overhead per evaluation (NIST median 16.8 ms
    per fit against 9.5 ms as one compiled loop, 2026-12-03).
    """
    if key is None:
        return None
    m_key = [k for k in driver.keys() if isinstance(k, tuple) and len(k) == 5 and k[0] == key
             and k[1] == n and k[3] == _jac_key(jac) and k[4] == diff_step]
    if not m_key:
        return None
    warm_key = ("warm", m_key[0], cfg)
    if not _tiering.compile_now(driver.peek(warm_key), driver.peek(m_key[0]), cfg,
                                _tiering.TENSORFLOW_EVALUATIONS):
        return None
    m = m_key[0][2]

    def build():
        from marquardt._backend.tensorflow.solve_loop import run_loop

        def solve(x0, lb, ub, d_fixed, *data_):
            residual, res_jac = driver.residual_functions(residual_fn, n, m, jac, data_, lb, ub,
                                                          diff_step, False)
            return run_loop(cfg, residual, res_jac, x0, lb, ub, d_fixed)

        return WarmLoop(solve)

    compiled = driver.cached(warm_key, build)

    def solve(x0, lb, ub, d_fixed):
        try:
            state, (table, count) = compiled(tf.constant(x0), tf.constant(lb),
                                             tf.constant(ub), tf.constant(d_fixed), *data)
        except Exception:  # the caller falls back on the host executor
            driver.forget(warm_key)
            raise
        rows = table.numpy()[: int(count) + 1]
        return type(state)(*(t.numpy() for t in state)), rows

    return solve


class WarmLoop:
    """A warm solver's compiled loop: compiled with XLA, or, where XLA cannot compile the model
    (an op it lacks, ``tf.numpy_function``), as a plain TensorFlow graph from then on.

    With XLA the whole solve is fused into a few kernels: a warm fit of ``single_fit.py``'s
    exponential took 2 ms against 6-7 ms as a plain graph, NIST's median 3.4 ms against 8.4 ms
    (2026-12-05, docs/benchmarks.md), for a compilation of 3-5 s instead of 1-2 s, which
    ``_tiering.TENSORFLOW_EVALUATIONS`` accounts for."""

    __slots__ = ("function", "xla", "failed")

    def __init__(self, solve: Callable):
        self.function = tf.function(solve, autograph=False, jit_compile=True)
        self.xla = True
        self.failed: BaseException | None = None

    def __call__(self, *args):
        if self.xla:
            try:  # (its first run without the C++ lines XLA prints, ``quiet_log``)
                return first_run(self.function, lambda: self.function(*args))
            except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as exc:
                # XLA could not compile it (or the model failed at run time: then the plain
                # graph fails too, and the caller runs the host executor)
                self.failed = exc
                self.xla = False
                self.function = tf.function(self.function.python_function, autograph=False)
        return self.function(*args)

    def experimental_get_tracing_count(self) -> int:
        """Traces of the loop now in use (``tf.function``'s count)."""
        return self.function.experimental_get_tracing_count()


def _jac_key(jac):
    return jac if isinstance(jac, str) else id(jac)


def call_with_tensors(fun: Callable, *values, **kwargs):
    """``fun`` called with each of ``values`` as a float64 tensor (and ``kwargs`` as they
    are): the front doors' second try of a user's function that rejected NumPy values."""
    return fun(*(tf.constant(v) for v in values), **kwargs)
