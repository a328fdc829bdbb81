"""TensorFlow side of the SciPy bridge: residuals, Jacobians and J·v, Jᵀ·u, each compiled once.

Glossary: x the parameters (n,), r(x) the residuals (m,), J = ∂r/∂x (m × n), v a direction in
parameter space (n,), u one in residual space (m,). ``data`` are the array arguments of the
residual function; they are *inputs* of the compiled functions (not captured constants), so the
``curve_fit`` form can pass its ``xdata`` at call time without a retrace.

Every function is traced once, at construction, with a fixed input signature
(``tf.TensorSpec((n,), float64)`` and the specs of ``data``), and called afterwards through
its ``ConcreteFunction``: a later call can never retrace, and a call with another shape fails
(the public layer checks shapes first and says so in words).

How J is formed (``mode``):

* ``forward`` — n Jacobian-vector products (``tf.autodiff.ForwardAccumulator``), the engine's
  ``autodiff_jacobian``: cheapest when n < m and the model is small.
* ``reverse`` — m vector-Jacobian products (``GradientTape.batch_jacobian``): when n ≥ m.
* ``per_sample`` — when residual block i depends on row i of the data arrays alone (curve
  fitting with ``args=(t, y)``, every Keras loss on a network without cross-sample layers),
  block i of J is the gradient of the residuals of a one-row batch. ``tf.vectorized_map`` runs
  those m small backward passes as one batched pass. Both dense modes above cost O(n·m·w) for a
  network of width w (a JVP or VJP of the *whole* batch per column or row); this one costs
  O(m·n). For a 1-20-20-1 MLP on 2,000 points: 35 ms against 4 s for ``forward``, measured on a
  loaded 2-core machine. Whether the rows really are independent is checked once, on the
  residual values at x0 (``rows_consistent``). The Keras trainer's
  ``keras_jacobian.per_sample_chunk`` does the same computation but is not reused here: it
  refuses a weight the residuals do not depend on, with Keras advice (``layer.trainable =
  False``), where a SciPy parameter must get a zero column; and built on it this mode was no faster
  (same MLP, both versions in one process, alternating: +0.09 ms on ~3 ms per J in 4 of 6
  runs, the rest within noise).

The matrix-free form never builds J: J·v is one forward-mode pass (a JVP), Jᵀ·u one backward
pass with output gradient u (a VJP), each O(cost of r).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

from marquardt._backend.tensorflow.quiet_log import vectorized_map
from marquardt._backend.tensorflow.arguments import DataLayout
from marquardt._backend.tensorflow.jacobian import NoGradientError, as_float64, autodiff_jacobian

__all__ = ["MODES", "CompiledResidual", "eager_residual",
           "evaluate", "rows_consistent", "value_and_gradient", "residual_and_gradient",
           "model_residual", "get_weights", "set_weights"]

#: Ways to form the dense Jacobian (``auto`` picks ``forward`` or ``reverse``).
MODES = ("auto", "forward", "reverse", "per_sample")

_ZERO = tf.UnconnectedGradients.ZERO


def eager_residual(residual: Callable, x0: np.ndarray, data: Sequence):
    """``residual(x0, *data)`` run once eagerly (the front door's probe), as given."""
    return residual(tf.constant(x0, tf.float64), *data)


def evaluate(fn: Callable, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` at a float64 tensor x, as a flat float64 NumPy array (eager)."""
    value = fn(tf.constant(x, tf.float64))
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value,
                      dtype=np.float64).ravel()


def rows_consistent(residual: Callable, x0: np.ndarray, data: Sequence) -> float:
    """Largest |r_full − r_rows| / max(1, max|r|) at x0, where r_rows stacks one-row batches.

    Used to confirm, once, that the residuals of row i depend on row i of the data alone, which
    the ``per_sample`` Jacobian assumes (inf when the row residuals do not even add up to m).
    """
    x = tf.constant(x0, tf.float64)
    full = as_float64(residual(x, *data))
    rows = vectorized_map(
        lambda row: as_float64(residual(x, *[t[None] for t in row])), tuple(data))
    rows = tf.reshape(rows, [-1])
    if rows.shape[0] != full.shape[0]:
        return float("inf")
    scale = max(1.0, float(tf.reduce_max(tf.abs(full))))
    return float(tf.reduce_max(tf.abs(full - rows))) / scale


_from_dlpack = getattr(getattr(tf.experimental, "dlpack", None), "from_dlpack", None)

#: Alignment TensorFlow's CPU kernels check on a buffer they are handed (Eigen's largest).
_ALIGN = 64


class _Staging(threading.local):
    """Per-thread, 64-byte aligned float64 buffers that become input tensors without a copy.

    ``tf.constant(x)`` costs ~60 µs of CPU per call on the loaded 2-core development machine
    (fresh tensor included); copying x into a staging buffer and wrapping that in a DLPack
    view ~30 µs less. The buffer must be aligned (TensorFlow aborts on a misaligned one, as
    NumPy's own 16-byte aligned arrays often are) and may be reused at the next call, which
    is safe: the compiled function runs synchronously, its outputs are copied out with
    ``.numpy()`` before this thread calls it again, and each thread has its own buffers.
    """

    def __init__(self):
        self.buffers = {}

    def tensor(self, slot: str, a: np.ndarray) -> tf.Tensor:
        if _from_dlpack is None:
            return tf.constant(a)
        buf = self.buffers.get(slot)
        if buf is None or buf.size != a.size:
            raw = np.empty(a.size + _ALIGN // 8)
            start = (-raw.ctypes.data % _ALIGN) // 8
            buf = self.buffers[slot] = raw[start:start + a.size]
        np.copyto(buf, a.reshape(-1))
        return _from_dlpack(buf.__dlpack__())


def _per_sample_jacobian(residual: Callable, n: int, k: int) -> Callable:
    """``jac(x, *data) -> J`` (N·k, n) by vectorised gradients of one-row batches."""

    def jac(x, *data):
        def row_jacobian(row):
            with tf.GradientTape() as tape:
                tape.watch(x)
                r = tf.reshape(as_float64(residual(x, *[t[None] for t in row])), [k])
            if k == 1:
                # dense: a gather of x (`tf.gather(x, i)`) has a sparse IndexedSlices gradient
                return tf.convert_to_tensor(
                    tape.gradient(r, x, unconnected_gradients=_ZERO))[None]
            return tape.jacobian(r, x, unconnected_gradients=_ZERO)

        blocks = vectorized_map(row_jacobian, tuple(data))  # (N, k, n)
        return tf.reshape(blocks, [-1, n])

    return jac


def _dense_jacobian(residual: Callable, n: int, m: int, mode: str) -> Callable:
    """``jac(x, *data) -> J`` (m, n) by the engine's forward or reverse autodiff."""

    def jac(x, *data):
        batched = autodiff_jacobian(lambda xb: as_float64(residual(xb[0], *data))[None],
                                    n, m, mode)
        return batched(x[None])[1][0]

    return jac


class CompiledResidual:
    """Residuals, Jacobian and products of one residual function, traced once.

    Args:
        residual: ``residual(x, *data) -> r``, TensorFlow ops, r of shape (m,) (any float dtype;
            cast to float64).
        n, m: number of parameters and of residuals.
        data: example tensors for the ``data`` inputs (their shapes and dtypes are the
            signature).
        mode: one of ``MODES``.
        jac_form: ``"dense"`` traces the Jacobian, ``"operator"`` the two products.
        jit_compile: compile with XLA.

    Raises:
        NoGradientError: TensorFlow cannot differentiate ``residual``.
    """

    def __init__(self, residual: Callable, n: int, m: int, data: Sequence, *, mode: str,
                 jac_form: str, jit_compile: bool):
        self.n, self.m = n, m
        self._staging = _Staging()
        x_spec = tf.TensorSpec([n], tf.float64, name="x")
        data_specs = [tf.TensorSpec(t.shape, t.dtype) for t in data]

        def compile_(fn, *extra):
            f = tf.function(fn, input_signature=[x_spec, *extra, *data_specs], autograph=False,
                            jit_compile=jit_compile)
            try:
                return f.get_concrete_function()
            except LookupError as exc:  # "No gradient defined for operation ..."
                raise NoGradientError(
                    "`fun` cannot be differentiated by TensorFlow: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
                    "Write it with differentiable TensorFlow ops.") from None

        self._residual = compile_(lambda x, *d: as_float64(residual(x, *d)))
        self._jacobian = self._jvp = self._vjp = None
        if jac_form == "dense":
            if mode == "per_sample":
                jac = _per_sample_jacobian(residual, n, m // int(data[0].shape[0]))
            else:
                jac = _dense_jacobian(residual, n, m, mode)
            self._jacobian = compile_(jac)
        else:
            def jvp(x, v, *d):
                with tf.autodiff.ForwardAccumulator(x, v) as acc:
                    r = as_float64(residual(x, *d))
                return acc.jvp(r, unconnected_gradients=_ZERO)

            def vjp(x, u, *d):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    r = as_float64(residual(x, *d))
                return tape.gradient(r, x, output_gradients=u, unconnected_gradients=_ZERO)

            self._jvp = compile_(jvp, tf.TensorSpec([n], tf.float64, name="v"))
            self._vjp = compile_(vjp, tf.TensorSpec([m], tf.float64, name="u"))

    # NumPy in, NumPy out; the caller has checked shapes and converted to float64. ``.numpy()``
    # copies: SciPy scales J and f in place for robust losses, so they must be writable.
    def residual(self, x: np.ndarray, data: Sequence) -> np.ndarray:
        return self._residual(self._staging.tensor("x", x), *data).numpy()

    def jacobian(self, x: np.ndarray, data: Sequence) -> np.ndarray:
        return self._jacobian(self._staging.tensor("x", x), *data).numpy()

    def jvp(self, x: np.ndarray, v: np.ndarray, data: Sequence) -> np.ndarray:
        stage = self._staging
        return self._jvp(stage.tensor("x", x), stage.tensor("v", v), *data).numpy()

    def vjp(self, x: np.ndarray, u: np.ndarray, data: Sequence) -> np.ndarray:
        stage = self._staging
        return self._vjp(stage.tensor("x", x), stage.tensor("u", u), *data).numpy()

    @property
    def concrete_functions(self) -> dict:
        """The traced functions by name (for benchmarks: a direct TensorFlow call)."""
        return {k: v for k, v in (("residual", self._residual), ("jacobian", self._jacobian),
                                  ("jvp", self._jvp), ("vjp", self._vjp)) if v is not None}


def value_and_gradient(fn: Callable, x0: np.ndarray) -> tuple[float, np.ndarray]:
    """A scalar ``fn(x)`` and its gradient at x0 by reverse-mode autodiff (eager).

    Returns ``(value, None)`` when ``fn`` cannot be differentiated (it returns NumPy or uses
    an op without a gradient).
    """
    x = tf.constant(x0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = fn(x)
    scalar = float(np.asarray(value.numpy() if hasattr(value, "numpy") else value).sum())
    if not isinstance(value, tf.Tensor):
        return scalar, None
    try:
        grad = tape.gradient(as_float64(value), x, unconnected_gradients=_ZERO)
    except LookupError:
        return scalar, None
    return scalar, grad.numpy()


def model_residual(model, residual_fn: Callable, scale: float,
                   structure: Any) -> tuple[Callable, DataLayout]:
    """The loss residuals of a Keras model as ``residual(w, *data) -> r``, and the data.

    ``w`` is the flattened trainable weights (float64); each variable's slice is reshaped and
    cast to the variable's dtype, and the model is run with ``stateless_call`` in inference
    mode (no variable is assigned; the non-trainable variables are read at call time).
    ``structure`` is ``(inputs, y)`` or ``(inputs, y, sample_weight)`` with NumPy leaves
    (floating ones as float64: Keras casts inputs to each layer's dtype, so a float64 layer
    sees the data unrounded). ``residual_fn(y_true, y_pred,
    sample_weight)`` is the loss→residual mapping of ``marquardt.keras``; the flattened
    residuals are multiplied by ``scale``.
    """
    variables = list(model.trainable_variables)
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(s)) for s in shapes]
    dtypes = [tf.as_dtype(v.dtype) for v in variables]
    def leaf(a):
        a = np.asarray(a)
        return tf.constant(a.astype(np.float64) if a.dtype.kind == "f" else a)

    tensors = tf.nest.map_structure(leaf, tuple(structure))
    data = tuple(tf.nest.flatten(tensors))

    def residual(w, *leaves):
        inputs, y, *more = tf.nest.pack_sequence_as(tensors, list(leaves))
        sample_weight = more[0] if more else None
        parts = tf.split(w, sizes) if len(sizes) > 1 else [w]
        weights = [tf.cast(tf.reshape(p, s), d) for p, s, d in zip(parts, shapes, dtypes)]
        frozen = [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables]
        y_pred, _ = model.stateless_call(weights, frozen, inputs, training=False)
        r = residual_fn(y, y_pred, sample_weight)
        return tf.reshape(as_float64(r), [-1]) * scale

    layout = DataLayout(tuple(("tensor", i) for i in range(len(data))), data)
    return residual, layout


def get_weights(model) -> np.ndarray:
    """The trainable weights of ``model`` flattened into one float64 vector."""
    parts = [np.asarray(v.numpy() if hasattr(v, "numpy") else v, np.float64).ravel()
             for v in model.trainable_variables]
    return np.concatenate(parts) if parts else np.zeros(0)


def set_weights(model, w: np.ndarray) -> None:
    """Assign the flat vector ``w`` to the trainable weights of ``model`` (in their dtypes)."""
    start = 0
    for v in model.trainable_variables:
        size = int(np.prod(v.shape))
        v.assign(w[start:start + size].reshape(tuple(v.shape)).astype(v.dtype))
        start += size


def residual_and_gradient(residual: Callable, x0: np.ndarray):
    """r(x0) and g = J(x0)ᵀ r(x0), the gradient of ½‖r‖², by one backward pass (eager).

    Returns ``(r, None)`` when the residual function cannot be differentiated (it returns
    NumPy or uses an op without a gradient).
    """
    x = tf.constant(x0, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        r = residual(x)
    values = np.asarray(r.numpy() if hasattr(r, "numpy") else r, dtype=np.float64)
    if not isinstance(r, tf.Tensor):
        return values, None
    try:
        grad = tape.gradient(r, x, output_gradients=tf.cast(r, r.dtype),
                             unconnected_gradients=_ZERO)
    except LookupError:
        return values, None
    return values, tf.cast(grad, tf.float64).numpy()
