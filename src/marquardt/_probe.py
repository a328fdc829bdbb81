"""The front door's first call of a residual function: once at x0, eagerly, output checked.

``least_squares`` and ``curve_fit`` (the engine) and ``marquardt.scipy`` (the bridge) both call
the user's function once before anything is traced, so that an error names the function and
x0, and a wrong output (not floating point, not 1-D, empty, NaN or Inf) is reported in words
instead of as a failed trace. What a NumPy result means is left to each caller: the engine can
fall back on finite differences, the bridge cannot (``returns_numpy`` tells them apart).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from marquardt import _checks
from marquardt._errors import NoGradientError, NonFiniteJacobianError, OutputError
from marquardt._values import is_tensorflow_value, x64_if_jax

__all__ = ["call_at_x0", "first_call", "named_error", "is_float32_mix", "FLOAT32_DTYPE_FIX",
           "returns_numpy", "residual_vector", "check_zero_columns", "non_finite_jacobian"]

_SCALAR_HINT = (" A scalar is a loss, not residuals: least_squares squares and sums the "
                "residuals itself (see marquardt.scipy.check_residuals).")


def call_at_x0(call: Callable[[], Any], who: str, where: str = "at x0",
               float32_fix: str = "") -> Any:
    """``call()``, with an error it raises re-raised naming ``who`` and ``where``.

    The error keeps its type; its message is prefixed by "`who` raised at x0: " (``where``
    says at which point: ``curve_fit_batch`` probes problem 0 at its p0; TensorFlow's
    errors are rebuilt with their node and op, ``named_error``). Errors whose type cannot be
    rebuilt and ``NoGradientError`` and ``OutputError`` (already in our words: what the
    function returned, checked inside ``call``, not something it raised) are re-raised as
    they are. ``float32_fix``: a further remedy where a float32 tensor met the float64
    parameters (``FLOAT32_DTYPE_FIX`` for a front door that takes ``dtype``).
    """
    try:
        return call()
    except (NoGradientError, OutputError):
        raise
    except Exception as exc:
        wrapped = named_error(exc, who, where, float32_fix)
        if wrapped is exc:
            raise exc from None
        raise wrapped from exc


def named_error(exc: Exception, who: str, where: str = "at x0", float32_fix: str = ""
                ) -> Exception:
    """``exc`` of the same type with its message prefixed by "`who` raised at x0: ", or
    ``exc`` itself where its type cannot be rebuilt. A TensorFlow ``OpError`` (whose
    constructor takes the node and the op too) is rebuilt with them. Where a float32 tensor
    met the float64 parameters (eagerly TensorFlow's ``InvalidArgumentError``, when traced
    its ``TypeError``) the message ends with what to do (``float32_fix`` added to it)."""
    if hasattr(exc, "node_def") and hasattr(exc, "op") and hasattr(exc, "message"):
        wrapped = _tensorflow_error(exc, who, where, float32_fix)
        return exc if wrapped is None else wrapped
    try:
        return type(exc)(f"`{who}` raised {where}: {exc}{_float32_remedy(str(exc), float32_fix)}")
    except Exception:  # an exception type with another constructor
        return exc


#: What TensorFlow says when a float32 tensor meets the float64 parameters: run eagerly
#: (``InvalidArgumentError``), and traced (``TypeError``, from the op's construction).
_FLOAT32_MIX = ("was expected to be a double tensor but is a float tensor",
                "has type float32 that does not match type float64")

#: What to do about it.
_FLOAT32_REMEDY = ("a float32 tensor, such as tf.constant(0.5) or a float32 array made a "
                   "tensor, meets the float64 parameters: write tf.constant(0.5, tf.float64), "
                   "a Python number, or tf.cast(..., tf.float64)")

#: ``float32_fix`` for ``curve_fit_batch``, which can run the whole model in float32.
FLOAT32_DTYPE_FIX = "; or pass dtype='float32' to fit in single precision"


def is_float32_mix(message: str) -> bool:
    """Whether TensorFlow's error ``message`` says a float32 tensor met a float64 one."""
    return any(text in message for text in _FLOAT32_MIX)


def _float32_remedy(message: str, float32_fix: str) -> str:
    return f" ({_FLOAT32_REMEDY}{float32_fix})" if is_float32_mix(message) else ""


def _tensorflow_error(exc: Exception, who: str, where: str, float32_fix: str
                      ) -> Exception | None:
    """A TensorFlow ``OpError`` (its constructor takes the node and op too) rebuilt with
    ``who`` and ``where`` in its message, and the remedy when float32 met float64; None when
    it cannot be rebuilt."""
    message = f"`{who}` raised {where}: {exc.message}"
    message += _float32_remedy(message, float32_fix)
    try:
        return type(exc)(exc.node_def, exc.op, message)
    except Exception:  # noqa: BLE001 - another constructor: the original is raised
        return None


def returns_numpy(value: Any) -> bool:
    """The function returned NumPy (or a Python number): TensorFlow cannot differentiate it."""
    return isinstance(value, np.ndarray) or np.isscalar(value)


def residual_vector(value: Any, who: str, call: str | None = None,
                    scalar_ok: bool = False) -> np.ndarray:
    """``value`` (what ``who`` returned at x0) as a NumPy array, checked to be residuals.
    ``call``: how a non-finite value's message names the call (default ``who(x0)``).
    ``scalar_ok``: a scalar is one residual, shape (1,) (SciPy's ``least_squares``: "a 1-D
    array_like of shape (m,) or a scalar"); otherwise it is refused as a loss.

    Raises:
        TypeError: not floating point.
        ValueError: not 1-D (a scalar is named as a loss), empty, or not finite.
    """
    arr = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    if scalar_ok and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.dtype.kind != "f":
        raise TypeError(f"`{who}` must return floating-point residuals. "
                        f"Received: dtype {arr.dtype} at x0")
    if arr.ndim != 1:
        hint = _SCALAR_HINT if arr.ndim == 0 else ""
        raise ValueError(f"`{who}` must return a 1-D array of residuals, shape (m,). "
                         f"Received: shape {arr.shape} at x0.{hint}")
    if arr.size == 0:
        raise ValueError(f"`{who}` must return at least one residual. Received: shape (0,) at x0")
    _checks.check_finite(arr, call or f"{who}(x0)")
    return arr


#: What a solver's user can do about a missing gradient (``check_zero_columns``).
FINITE_DIFFERENCES = "Pass jac='2-point' (or '3-point', or a callable) to use finite differences."


def check_zero_columns(columns: Sequence[int], residual_at: Callable[[np.ndarray], np.ndarray],
                       x0: np.ndarray, who: str = "fun", remedy: str = FINITE_DIFFERENCES
                       ) -> None:
    """A missing gradient is an error, not a zero Jacobian column.

    TensorFlow returns no gradient (None, which autodiff turns into zeros) for some inputs of
    some ops (``tf.math.betainc`` with respect to a and b, ``tf.round``, ``tf.argmax``): the
    optimizer would then see a parameter that does nothing and never move it. The parameters
    whose autodiff column is exactly zero at x0 are moved together by steps hᵢ = ±sᵢ·1e-6·
    max(1, |x0ᵢ|) (random signs, sᵢ in [0.5, 1.5], so that true columns cannot cancel), and
    the first-order change of the residuals is measured by a central difference,
    (r(x0 + h) − r(x0 − h)) / 2, in which second-order terms cancel: a parameter whose first
    derivative really is zero at x0 (b in a·exp(−(b·t)²) at b = 0) shows no change, one
    whose gradient is missing moves the residuals by about J·h. If the joint step moves them
    beyond 1e-12 relative, the parameters are tried one at a time and ``NoGradientError``
    names the first culprit. Two evaluations when all is well, whatever the number of zero
    columns (a network's dead units or unused inputs can give thousands).

    Args:
        columns: indices of the parameters whose Jacobian column is zero at x0.
        residual_at: ``x -> r`` as a NumPy vector.
        x0: the point, float64 (n,).
        who: the user's function, for the message.
        remedy: the message's last sentence, what to do (the front doors' ``jac`` options;
            the SciPy bridge, which has none, says what it needs instead).
    """
    columns = np.asarray(columns, dtype=int)
    if columns.size == 0:
        return
    x0 = np.asarray(x0, dtype=np.float64)
    rng = np.random.default_rng(0)
    size = rng.uniform(0.5, 1.5, columns.size) * rng.choice([-1.0, 1.0], columns.size)
    step = size * 1e-6 * np.maximum(1.0, np.abs(x0[columns]))
    scale = 1e-12 * (1.0 + np.abs(residual_at(x0)))

    def moves(idx, h):
        xp, xm = x0.copy(), x0.copy()
        xp[idx] += h
        xm[idx] -= h
        with np.errstate(invalid="ignore", over="ignore"):  # inf − inf: no move, no warning
            return np.any(np.abs(residual_at(xp) - residual_at(xm)) / 2.0 > scale)

    if not moves(columns, step):
        return
    for i, h in zip(columns, step):
        if moves(np.array([i]), np.array([h])):
            raise NoGradientError(
                f"`{who}` cannot be differentiated by TensorFlow with respect to parameter "
                f"{int(i)}: autodiff gives a zero Jacobian column, but the residuals change "
                f"when it moves (an op without a gradient for that input?). {remedy}")


def non_finite_jacobian(jac: Any, who: str, start: str, mode: str) -> str:
    """The message for a fit that cannot start because its Jacobian at the start is not finite
    (the residuals there are, ``residual_vector`` checked them): which parameters (columns) and
    residuals (rows), and what to do for the way J was formed (``mode``: 'autodiff', 'callable'
    or a difference rule).

    The usual cause is a derivative undefined where the model is finite: ∂/∂b √(b·x) = x/(2√(b·x))
    is 0/0 at x = 0, which autodiff evaluates as 0·∞ = NaN where differences give 0."""
    where = ""
    if jac is not None:
        bad = ~np.isfinite(np.asarray(jac, dtype=np.float64))
        if bad.ndim == 2 and bad.any():
            rows, cols = np.flatnonzero(bad.any(axis=1)), np.flatnonzero(bad.any(axis=0))
            where = (f" in column(s) {_checks.short_repr(cols.tolist())} (parameter index) at "
                     f"residual(s) {_checks.short_repr(rows.tolist())} of {bad.shape[0]}")
    head = (f"`{who}` must have a finite Jacobian at `{start}`: its values there are finite, "
            f"its Jacobian is not{where}.")
    if mode == "autodiff":
        return (f"{head} A derivative undefined where the model is finite does this "
                "(sqrt(b*x) at x = 0: autodiff gives 0*inf = nan); pass jac='2-point' for "
                "finite differences, or write the model so that its derivative is finite there.")
    if mode == "callable":
        return f"{head} The callable `jac` returned non-finite values there."
    return (f"{head} The model is not finite at the difference points next to `{start}` "
            f"(jac={mode!r}); start further from where it is undefined.")


def first_call(probe: Callable, tensor_probe: Callable | None, jac, who: str = "fun",
               where: str = "at x0", float32_fix: str = ""):
    """The user's function at x0, called with NumPy values first, as SciPy calls it.

    TensorFlow values are tried too (``tensor_probe``) when the NumPy call raises and
    TensorFlow is already in use (a model that only accepts tensors: ``x.shape.rank``), and
    when it returned NumPy but ``jac`` is an explicit ``'forward'`` or ``'reverse'``
    (TensorFlow is imported for it): a function of plain arithmetic (``p[0] * t + p[1] - y``)
    is then differentiated exactly. ``jac='auto'`` keeps SciPy's meaning for a function that
    returns NumPy (2-point differences): NumPy code that mixes in tensors when given them
    (``a * np.exp(-k * t)`` returns a tensor without a gradient for ``k``) must not be taken for
    TensorFlow code. The first error is the one reported, naming ``who``, unless the tensors'
    error is a float32 tensor meeting the float64 ones (the NumPy error of a model that wants
    tensors says less: ``x.shape.rank`` on a tuple), reported with its remedy
    (``float32_fix``: ``call_at_x0``'s)."""
    try:
        with x64_if_jax():
            value = call_at_x0(probe, who, where, float32_fix)
    except Exception:
        if tensor_probe is None or "tensorflow" not in sys.modules:
            raise
        try:
            return tensor_probe()
        except Exception as tensor_error:  # noqa: BLE001 - the first error is reported
            if is_float32_mix(str(tensor_error)):
                raise named_error(tensor_error, who, where, float32_fix) from None
        raise
    if tensor_probe is not None and not is_tensorflow_value(value) and jac in ("forward",
                                                                                "reverse"):
        try:
            tensor_value = tensor_probe()
        except Exception:  # noqa: BLE001 - NumPy code that does not accept tensors
            return value
        if is_tensorflow_value(tensor_value):
            return tensor_value
    return value
