"""``residual_functions``: NumPy-in, NumPy-out residuals and exact Jacobians for SciPy.

The compiled TensorFlow side lives in ``marquardt._backend.tensorflow.bridge``; this module
validates at the front door, converts NumPy arrays, and speaks SciPy's two calling
conventions:

* ``scipy.optimize.least_squares`` calls ``fun(x)`` and ``jac(x)``, x of shape (n,);
* ``scipy.optimize.curve_fit`` calls ``f(xdata, *params)`` and ``jac(xdata, *params)``.

A call with one positional argument is the first form; with more, the second, where ``xdata``
takes the place of ``args[0]`` (it must have that array's shape) and the n parameters are
stacked into x. Nothing else is passed by SciPy: bind extra arguments here, with ``args``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

import sys

from marquardt import _checks, _probe

__all__ = ["residual_functions", "ResidualFunction", "JacobianFunction", "JAC_FORMS", "MODES",
           "BACKENDS"]

#: Ways to form the dense Jacobian (``auto`` picks ``forward`` or ``reverse``); the
#: TensorFlow bridge's ``MODES`` (``per_sample`` is TensorFlow's alone).
MODES = ("auto", "forward", "reverse", "per_sample")
#: What ``fun`` is written with: ``auto`` tells JAX from TensorFlow by a first call.
BACKENDS = ("auto", "tensorflow", "jax")
#: ``dense``: J as an (m, n) array; ``operator``: a ``scipy.sparse.linalg.LinearOperator``.
JAC_FORMS = ("dense", "operator")

#: Largest |r_full − r_rows| / max(1, max|r|) at x0 accepted as "rows are independent" in
#: ``per_sample`` mode. Row-by-row and whole-batch evaluation may round differently (a
#: reduction split otherwise); a function that really mixes rows differs at O(1).
ROWS_RTOL = 1e-6


class _Target(NamedTuple):
    """What the compiled functions are called with: the parameter vector and the data."""

    x: np.ndarray
    data: Sequence


class _Caller:
    """Shared state of ``f`` and ``jac``: the compiled functions and the bound data."""

    def __init__(self, compiled: bridge.CompiledResidual, layout: arguments.DataLayout,
                 shape: tuple):
        self.compiled = compiled
        self.layout = layout
        self.n, self.m = compiled.n, compiled.m
        self.shape = shape  # shape of x0 as given: () or (n,)
        self.xdata_slot = next((v for kind, v in layout.slots[:1] if kind == "tensor"), None)

    def target(self, call_args: tuple, who: str) -> _Target:
        """Parse SciPy's call: ``(x,)`` or ``(xdata, p1, ..., pn)``."""
        if len(call_args) == 1:
            return _Target(self._vector(call_args[0], "x", who), self.layout.data)
        if len(call_args) == 0:
            raise TypeError(f"{who}() needs the parameters: {who}(x) for least_squares or "
                            f"{who}(xdata, *params) for curve_fit. Received: no arguments")
        params = call_args[1:]
        if len(params) != self.n:
            raise TypeError(
                f"{who}(xdata, *params) (curve_fit's form) needs n={self.n} parameters. "
                f"Received: {len(params)} parameter(s)")
        if self.xdata_slot is None:
            raise TypeError(
                f"{who}(xdata, *params) (curve_fit's form) needs `args[0]` to be the xdata "
                "array: build the functions with residual_functions(fun, p0, args=(xdata, ...)). "
                f"Received: args[0] {self._arg0()}")
        x = self._vector(np.asarray(params), "params", who)
        expected = self.layout.data[self.xdata_slot]
        xdata = _checks.as_float_array(call_args[0], "xdata")
        if xdata.shape != tuple(expected.shape):
            raise ValueError(
                f"`xdata` must have the shape of args[0] given to residual_functions, "
                f"{tuple(expected.shape)}. Received: xdata with shape {xdata.shape}")
        data = list(self.layout.data)
        dtype = getattr(expected.dtype, "as_numpy_dtype", expected.dtype)  # TF or NumPy
        data[self.xdata_slot] = xdata.astype(dtype, copy=False)
        return _Target(x, data)

    def _arg0(self) -> str:
        slots = self.layout.slots
        return "missing" if not slots else f"is not an array: {_checks.short_repr(slots[0][1])}"

    def _vector(self, value, name: str, who: str) -> np.ndarray:
        if type(value) is np.ndarray and value.dtype == np.float64 and value.shape == (self.n,):
            return value  # SciPy's own calls: the fast path
        arr = np.asarray(value)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"`{name}` must hold real numbers (it is converted to float64). "
                            f"Received: {name} with dtype {arr.dtype} in {who}()")
        if arr.shape not in ((self.n,), self.shape):
            raise ValueError(f"`{name}` must have shape ({self.n},), the shape of x0. "
                             f"Received: {name} with shape {arr.shape} in {who}()")
        return arr.reshape(self.n).astype(np.float64)


class ResidualFunction:
    """``f(x) -> r`` (least_squares) or ``f(xdata, *params)`` (curve_fit); float64 NumPy out.

    Attributes:
        n, m: number of parameters and of residuals.
        compiled: the ``CompiledResidual`` behind it (its ``concrete_functions`` are the
            direct TensorFlow calls).
    """

    def __init__(self, caller: _Caller):
        self._caller = caller
        self.n, self.m = caller.n, caller.m
        self.compiled = caller.compiled

    def __call__(self, *call_args):
        t = self._caller.target(call_args, "f")
        return self.compiled.residual(t.x, t.data)

    def __repr__(self):
        return f"<ResidualFunction n={self.n} m={self.m}>"


class JacobianFunction:
    """``jac(x) -> J`` (least_squares) or ``jac(xdata, *params)`` (curve_fit).

    J is the exact (m, n) Jacobian as a float64 array, or, for ``jac_form="operator"``, a
    ``scipy.sparse.linalg.LinearOperator`` whose ``matvec`` and ``rmatvec`` are J·v and Jᵀ·u
    at the given x (J is never formed).
    """

    def __init__(self, caller: _Caller, jac_form: str):
        self._caller = caller
        self.n, self.m = caller.n, caller.m
        self.jac_form = jac_form
        self.compiled = caller.compiled

    def __call__(self, *call_args):
        t = self._caller.target(call_args, "jac")
        if self.jac_form == "dense":
            return self.compiled.jacobian(t.x, t.data)
        return _linear_operator(self.compiled, t.x.copy(), t.data)

    def __repr__(self):
        return f"<JacobianFunction n={self.n} m={self.m} jac_form={self.jac_form!r}>"


@functools.lru_cache(maxsize=None)
def _operator_class():
    """The ``LinearOperator`` subclass, defined on first use (SciPy imported only then)."""
    from scipy.sparse.linalg import LinearOperator

    class JacobianOperator(LinearOperator):
        """J at a fixed x: J·v by a forward-mode pass, Jᵀ·u by a backward pass."""

        def __init__(self, compiled: bridge.CompiledResidual, x: np.ndarray, data: Sequence):
            super().__init__(dtype=np.float64, shape=(compiled.m, compiled.n))
            self._compiled, self._x, self._data = compiled, x, data

        def _matvec(self, v):
            v = np.asarray(v, np.float64).reshape(self.shape[1])
            return self._compiled.jvp(self._x, v, self._data)

        def _rmatvec(self, u):
            u = np.asarray(u, np.float64).reshape(self.shape[0])
            return self._compiled.vjp(self._x, u, self._data)

    return JacobianOperator


def _linear_operator(compiled: bridge.CompiledResidual, x: np.ndarray, data: Sequence):
    return _operator_class()(compiled, x, data)


def residual_functions(fun: Callable, x0: Any, *, args: Sequence = (), kwargs: dict | None = None,
                       jac_form: str = "dense", mode: str = "auto",
                       jit_compile: bool = False,
                       backend: str = "auto") -> tuple[ResidualFunction, JacobianFunction]:
    """NumPy residuals and their exact autodiff Jacobian, for ``scipy.optimize``.

    The pair goes to ``scipy.optimize.least_squares(f, x0, jac=jac)`` — not the gradient of a
    loss: least_squares minimises ½‖f(x)‖² and needs the residual *vector* f (see
    ``check_residuals``) — or, when ``fun`` is a model and ``args[0]`` its xdata, to
    ``scipy.optimize.curve_fit(f, xdata, ydata, p0, jac=jac)``. Both are traced once here and
    never retrace; a call with another shape or a non-real dtype raises a clear error.

    Args:
        fun: ``fun(x, *args, **kwargs) -> r`` written with TensorFlow ops; x is a float64
            tensor of shape (n,), r a 1-D tensor (m,) of any float dtype (returned as float64).
        x0: a point where ``fun`` is defined (a scalar counts as n = 1); it fixes n and m.
        args, kwargs: extra arguments of ``fun``, bound here (do not pass them to SciPy).
            Arrays among ``args`` are inputs of the compiled functions (float arrays as
            float64); the rest are passed as they are.
        jac_form: ``"dense"`` (J as an (m, n) array) or ``"operator"`` (a
            ``scipy.sparse.linalg.LinearOperator`` from J·v and Jᵀ·u, for
            ``least_squares(..., tr_solver="lsmr")``: J is never formed).
        mode: how the dense J is formed: ``"auto"`` (forward mode when n < m, else reverse),
            ``"forward"``, ``"reverse"``, or ``"per_sample"``: residual block i depends on row i
            of every array in ``args`` alone (curve fitting with ``args=(t, y)``), J is built
            from one vectorised gradient per row — far faster for neural networks (checked
            once at x0 by evaluating the rows one by one).
        jit_compile: compile with XLA (slower to build, often faster to run; a JAX
            function is always compiled with XLA, by ``jax.jit``).
        backend: ``"tensorflow"``, ``"jax"`` (``fun`` written with ``jax.numpy``: J by
            ``jax.jacfwd``/``jacrev``, in float64 whatever ``jax_enable_x64`` says;
            ``mode="per_sample"`` is TensorFlow's alone), or ``"auto"`` (default): JAX when
            JAX is imported and ``fun`` called once at x0 with NumPy values returns a JAX
            array, else TensorFlow (docs/jax.md).

    Returns:
        ``(f, jac)``: a ``ResidualFunction`` and a ``JacobianFunction``.

    Raises:
        TypeError: ``fun`` not callable, non-real ``x0``, unknown types of options, or ``fun``
            returns NumPy (TensorFlow cannot differentiate it).
        ValueError: ``x0`` not 0-/1-D or not finite, ``fun(x0)`` not a non-empty 1-D finite
            vector, an unknown ``mode``/``jac_form``, or ``per_sample`` rows that are not
            independent.
        NoGradientError: ``fun`` uses an op TensorFlow cannot differentiate.

    Example:
        >>> import numpy as np, tensorflow as tf, scipy.optimize
        >>> from marquardt.scipy import residual_functions
        >>> t = np.linspace(0, 3, 30); y = 2.0 * np.exp(-1.3 * t)
        >>> f, jac = residual_functions(lambda p, t, y: p[0] * tf.exp(-p[1] * t) - y,
        ...                             [1.0, 1.0], args=(t, y))
        >>> res = scipy.optimize.least_squares(f, [1.0, 1.0], jac=jac)
        >>> np.round(res.x, 6).tolist()
        [2.0, 1.3]
    """
    if not callable(fun):
        raise TypeError(f"`fun` must be callable. Received: fun={_checks.short_repr(fun)}")
    x0_arr = _checks.as_float_array(x0, "x0", ndim=(0, 1))
    _checks.check_finite(x0_arr, "x0")
    shape = x0_arr.shape
    x0_arr = np.atleast_1d(x0_arr)
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"`kwargs` must be a dict. Received: kwargs={_checks.short_repr(kwargs)}")
    if not isinstance(args, (tuple, list)):
        raise TypeError(f"`args` must be a tuple. Received: args={_checks.short_repr(args)}")
    check_options(jac_form, mode, jit_compile)
    _check_choice(backend, "backend", BACKENDS)
    jax_value, numpy_error = (_returns_jax(fun, x0_arr, args, kwargs) if backend == "auto"
                              else (backend == "jax", None))
    if jax_value:
        return _jax_functions(fun, x0_arr, shape, args, kwargs, jac_form, mode)
    from marquardt._backend.tensorflow import arguments

    layout = arguments.split_args(args, arguments.row_arrays)

    def residual(x, *data):
        return fun(x, *layout.call_args(data), **kwargs)

    caller = build_caller(residual, x0_arr, layout, shape, who="fun", mode=mode,
                          jac_form=jac_form, jit_compile=jit_compile, first_error=numpy_error)
    return ResidualFunction(caller), JacobianFunction(caller, jac_form)


def _returns_jax(fun: Callable, x0: np.ndarray, args, kwargs
                 ) -> tuple[bool, Exception | None]:
    """Whether JAX is imported and ``fun`` returns a JAX array for NumPy values at x0 (one
    call, in float64), and the error that call raised, if any (reported should TensorFlow's
    call fail too: ``probe``). Without JAX in ``sys.modules`` nothing is called."""
    jax = sys.modules.get("jax")
    if jax is None:
        return False, None
    try:
        with jax.enable_x64(True):
            value = fun(x0.copy(), *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - a TensorFlow function that wants tensors
        return False, exc
    return isinstance(value, jax.Array), None


def _jax_functions(fun, x0, shape, args, kwargs, jac_form, mode):
    """``residual_functions`` for a function written with ``jax.numpy``."""
    from marquardt._backend.jax import bridge as jax_bridge
    from marquardt._backend.jax.compile import split_args

    if mode not in jax_bridge.MODES:
        raise ValueError(f"`mode` must be one of {list(jax_bridge.MODES)} for a JAX function "
                         f"(per_sample is for TensorFlow). Received: mode={mode!r}")
    layout = split_args(args, rows_only=True)

    def residual(x, *data):
        return fun(x, *layout.call_args(data), **kwargs)

    r = _probe.call_at_x0(lambda: jax_bridge.eager_residual(residual, x0, layout.data), "fun")
    from marquardt._values import is_tensorflow_value

    if is_tensorflow_value(r):
        raise TypeError(
            "`fun` must return a JAX array with backend='jax'. Received: a TensorFlow "
            f"{type(r).__name__} at x0: `fun` is written with TensorFlow ops; leave `backend` "
            "out (or pass backend='tensorflow') to differentiate it with TensorFlow.")
    if _probe.returns_numpy(r):
        raise TypeError(
            "`fun` must return a JAX array, so that its Jacobian is exact. Received: a "
            f"{type(r).__name__} at x0. Write `fun` with jax.numpy, or pass jac='2-point' to "
            "SciPy for finite differences.")
    m = int(_probe.residual_vector(np.asarray(r), "fun").size)
    compiled = jax_bridge.CompiledResidual(residual, x0.size, m, layout.data, mode=mode)
    caller = _Caller(compiled, layout, shape)
    return ResidualFunction(caller), JacobianFunction(caller, jac_form)


def _check_choice(value, name: str, choices: tuple) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}. Received: {name}={value!r}")


def check_options(jac_form, mode, jit_compile) -> None:
    """The options ``residual_functions`` and ``model_functions`` share, in that order."""
    _check_choice(jac_form, "jac_form", JAC_FORMS)
    _check_choice(mode, "mode", MODES)
    if not isinstance(jit_compile, bool):
        raise TypeError("`jit_compile` must be True or False. "
                        f"Received: jit_compile={jit_compile!r}")


def build_caller(residual: Callable, x0: np.ndarray, layout: arguments.DataLayout,
                 shape: tuple, *, who: str, mode: str, jac_form: str,
                 jit_compile: bool, first_error: Exception | None = None) -> _Caller:
    """Probe ``residual`` at x0, check the rows for ``per_sample`` and that no parameter lacks
    a gradient (``_probe.check_zero_columns``), trace the functions once."""
    from marquardt._backend.tensorflow import bridge
    from marquardt._backend.tensorflow.jacobian import zero_gradient_parameters

    m = probe(residual, x0, layout.data, who=who, first_error=first_error)
    if mode == "per_sample" and jac_form == "dense":  # the operator form uses JVPs/VJPs
        check_rows(residual, x0, layout.data, m)
    at = lambda t: residual(t, *layout.data)  # noqa: E731
    _probe.check_zero_columns(
        zero_gradient_parameters(at, x0), lambda x: bridge.evaluate(at, x), x0, who,
        remedy="The bridge differentiates TensorFlow (or JAX) ops only: a NumPy call on the "
               "parameters (np.exp of a tensor) is a constant to autodiff. Write the function "
               "with TensorFlow ops, or give it to scipy.optimize.least_squares with "
               "jac='2-point' for finite differences.")
    compiled = bridge.CompiledResidual(residual, x0.size, m, layout.data, mode=mode,
                                       jac_form=jac_form, jit_compile=jit_compile)
    return _Caller(compiled, layout, shape)


def probe(residual: Callable, x0: np.ndarray, data: Sequence, who: str = "fun",
          first_error: Exception | None = None) -> int:
    """Call ``residual`` once at x0 (eagerly) and check its output; returns m.

    ``first_error``: what the call with NumPy values raised (``backend='auto'``'s JAX
    probe). Should the call with tensors fail too, that first error is the one raised, as
    ``least_squares`` reports it (``_probe.first_call``) and SciPy would: a JAX
    function's own error instead of JAX refusing a TensorFlow tensor, an IndexError for an
    x0 too short instead of TensorFlow's StridedSlice error."""
    from marquardt._backend.tensorflow import bridge

    try:
        r = _probe.call_at_x0(lambda: bridge.eager_residual(residual, x0, data), who)
    except Exception as exc:
        if first_error is None:
            raise
        raise _probe.named_error(first_error, who) from exc
    if _probe.returns_numpy(r):
        raise TypeError(
            f"`{who}` must return a TensorFlow tensor, so that its Jacobian is exact. "
            f"Received: a {type(r).__name__} at x0. Write `{who}` with TensorFlow ops "
            "(tf.exp, tf.matmul, ...), or pass jac='2-point' to SciPy for finite differences.")
    return int(_probe.residual_vector(r, who).size)


def check_rows(residual: Callable, x0: np.ndarray, data: Sequence, m: int) -> None:
    """``per_sample`` needs array data with a common leading axis whose rows are independent."""
    if not data:
        raise ValueError("`mode='per_sample'` needs array arguments in `args` (the data, one "
                         "row per sample). Received: no array arguments")
    lengths = {int(t.shape[0]) for t in data}
    if len(lengths) != 1:
        raise ValueError("`mode='per_sample'` needs every array argument to have the same "
                         f"number of rows. Received: leading sizes {sorted(lengths)}")
    rows = lengths.pop()
    if m % rows:
        raise ValueError(f"`mode='per_sample'` needs the same number of residuals per row. "
                         f"Received: m={m} residuals for {rows} rows")
    from marquardt._backend.tensorflow import bridge

    gap = bridge.rows_consistent(residual, x0, data)
    if not gap <= ROWS_RTOL:
        raise ValueError(
            "`mode='per_sample'` needs residual block i to depend on row i of the data alone, "
            "but evaluating the rows one by one changes the residuals at x0 (relative "
            f"difference {gap:.3g} > {ROWS_RTOL:g}). Use mode='auto'. Received: mode='per_sample'")
