"""A TensorFlow curve model captured as a formula tree, read from the graph of one trace.

``marquardt._model_capture.capture_model`` records a NumPy model by calling it on symbolic
objects. A model written with TensorFlow (``a * tf.exp(-k * t) + b``) cannot take those, but
TensorFlow records it itself: :func:`capture_tensorflow` traces ``f`` once with
``tf.function(f, autograph=False).get_concrete_function(...)`` on float64 placeholders
(``xdata`` of the problem's shape (m,) or (k, m), each parameter a scalar) and walks the
graph back from the output, copying each operation into the nodes of
``marquardt._formula_syntax`` (``_Number``, ``_Symbol``, ``_Unary``, ``_Binary``, ``_Call``),
with the names ``capture_model`` gives (``x0, x1, ...`` for xdata's rows, ``p0, p1, ...`` for
the parameters). The partials are ``_formula_jacobian.derivative`` of the tree, as for NumPy.

What is read (every tensor on the way must be float64 of shape () or (m,)):

* the placeholders: a parameter is its ``_Symbol``; an (m,) xdata is the variable ``x0``;
* a row of a (k, m) xdata: ``tf.unstack(xdata)`` (``Unpack`` on axis 0), ``xdata[i]`` and
  ``xdata[i, :]`` (``StridedSlice`` shrinking the first axis, the second whole),
  ``tf.gather(xdata, i)`` (``GatherV2`` on axis 0), i a constant (negative counts from the end);
* ``Const`` scalars as ``_Number`` (a scalar eager tensor the closure holds is one too);
  ``Identity`` and a float64 ``Cast`` are transparent, a ``Cast`` of a scalar constant is its
  value in float64;
* ``AddV2 Add Sub Mul RealDiv Div Pow`` as ``+ - * / **``, ``AddN`` as a chain of ``+``,
  ``Neg`` as unary minus, and the functions of the formula whitelist
  (``_formula_syntax.FUNCTIONS``): ``Exp Log Sqrt Sin Cos Tan Asin Acos Atan Sinh Cosh Tanh
  Abs Atan2``; rewritten into it: ``Square`` u**2, ``SquaredDifference`` (u - v)**2,
  ``Reciprocal``/``Inv`` 1/u, ``Rsqrt`` 1/sqrt(u), ``Sigmoid`` 1/(1 + exp(-u)) (Eigen's
  double logistic; the check below confirms it).

Everything else makes the capture fail (None), so that the caller keeps its general path:
control flow (a Python ``if`` on a tensor raises while tracing; ``tf.cond``, ``tf.where``,
loops are ops not in the list), reductions, reshapes, broadcasts to (k, m), non-scalar
constants (data in the closure), integer or float32 arithmetic, ``Expm1``/``Log1p``/
``Softplus`` (the whitelist can only write them as ``exp(u) - 1``, ``log(1 + u)``,
``log(1 + exp(u))``, which lose the precision those functions exist for), a call of another
``tf.function`` inside ``f`` (``PartitionedCall``), variables and any stateful operation in the
graph (``tf.random``, ``tf.print``, ``tf.py_function``), an op this module does not know, a
result that is not one float64 tensor of shape (m,), and any exception while tracing. A model
that is itself a ``tf.function`` is traced through its Python function.

As for NumPy, nothing read is trusted: the tree is evaluated with NumPy and compared with
``f`` called eagerly on tensors at up to ``_model_capture.CHECKS`` starts, to rtol
``_model_capture.RTOL`` (NaN where f gives NaN), by ``_model_capture.checked_model``. TensorFlow's
kernels (Eigen's) and NumPy's may differ in the last bits of ``exp`` or ``pow``: the tolerance
allows that, and the compiled kernel's results are compared to rounding, not bit for bit.
Where f's value cancels (a difference of near-equal terms at a point), one last-bit difference
can exceed ``RTOL`` relative to the small result, and a model rightly read is refused: for
``a*tf.exp(-k*t) - b`` crossing zero on a 200-point grid, 2 of 200 random starts (each start a
check: 1 of 20 captures with 4 starts each was refused). Such a model keeps the general path.

Limits: the graph of one trace at the problem's shapes, so a model that branches on
``xdata.shape`` is captured for that shape only (the batch's problems share it); tree depth at
most ``_formula_syntax.MAX_DEPTH`` and, with its partials, ``MAX_NODES`` distinct nodes. Cost:
one trace and one eager call per checked start; for ``benchmarks/batch.py``'s 2-D Gaussian
about 90 ms for the first capture in a process and 20 to 30 ms after it, the trace 16 to 20 ms
of that (``benchmarks/capture_time.py``; a NumPy capture of the same model takes 0.4 ms).
TensorFlow is imported only by this module, which is imported only for a model that returned
a tensor.

Example:
    >>> import numpy as np, tensorflow as tf
    >>> def f(t, a, k):
    ...     return a * tf.exp(-k * t)
    >>> model = capture_tensorflow(f, np.linspace(0.0, 1.0, 5), np.array([[2.0, 1.0]]))
    >>> model.parameters, model.variables
    (('p0', 'p1'), ('x0',))
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from marquardt._formula_syntax import (
    MAX_DEPTH, MAX_NODES, _Binary, _Call, _Node, _Number, _Symbol, _Unary)
from marquardt._model_capture import CapturedModel, checked_model

__all__ = ["capture_tensorflow"]

_CALLS = {"Exp": "exp", "Log": "log", "Sqrt": "sqrt", "Sin": "sin", "Cos": "cos", "Tan": "tan",
          "Asin": "arcsin", "Acos": "arccos", "Atan": "arctan", "Sinh": "sinh",
          "Cosh": "cosh", "Tanh": "tanh", "Abs": "abs", "Atan2": "arctan2"}
"""TensorFlow op type -> the whitelisted function (``_formula_syntax.FUNCTIONS``) it is."""
_BINARY = {"AddV2": "+", "Add": "+", "Sub": "-", "Mul": "*", "RealDiv": "/", "Div": "/",
           "Pow": "**"}
_TRANSPARENT = ("Identity", "Snapshot")
_ONE, _TWO = _Number(1.0), _Number(2.0)
_REWRITES: dict[str, tuple[Callable[[_Node], _Node], int]] = {
    "Neg": (lambda u: _Unary("-", u), 0),
    "Square": (lambda u: _Binary("**", u, _TWO), 0),
    "Reciprocal": (lambda u: _Binary("/", _ONE, u), 0),
    "Inv": (lambda u: _Binary("/", _ONE, u), 0),
    "Rsqrt": (lambda u: _Binary("/", _ONE, _Call("sqrt", (u,))), 1),
    "Sigmoid": (lambda u: _Binary("/", _ONE, _Binary("+", _ONE, _Call("exp", (_Unary("-", u),)))),
                3),
}
"""One-operand ops written with the whitelist: the tree of u, and the levels it adds beyond 1."""
_MAX_OPS = 2 * MAX_NODES
"""Most graph tensors walked (transparent ones included) before the capture gives up."""
_MAX_LEVELS = 3 * MAX_DEPTH
"""Deepest walk (graph levels, transparent ones included), far below Python's recursion limit."""


class _Refused(Exception):
    """The graph holds something outside the capturable subset."""


class _Walk:
    """One walk of a traced graph from its output, memoised by tensor (a DAG stays one)."""

    def __init__(self, xdata: tf.Tensor, params: list[tf.Tensor], k: int | None, m: int):
        self.xdata, self.k, self.m = xdata, k, m
        self.symbols = {p.name: _Symbol("parameter", f"p{j}") for j, p in enumerate(params)}
        self.rows = [_Symbol("variable", f"x{i}") for i in range(k or 1)]
        if k is None:  # an (m,) xdata is itself the one variable
            self.symbols[xdata.name] = self.rows[0]
        self.memo: dict[str, tuple[_Node, int]] = {}

    def node(self, t: tf.Tensor, level: int = 0) -> tuple[_Node, int]:
        """The tree of the float64 tensor ``t`` (shape () or (m,)) and its depth."""
        if t.name not in self.memo:
            if len(self.memo) >= _MAX_OPS or level > _MAX_LEVELS:
                raise _Refused(f"more than {_MAX_OPS} operations or {_MAX_LEVELS} levels")
            if t.dtype != tf.float64 or t.shape.as_list() not in ([], [self.m]):
                raise _Refused(f"{t.name}: {t.dtype.name} of shape {t.shape}")
            node, depth = self._rule(t, level + 1)
            if depth > MAX_DEPTH:
                raise _Refused(f"deeper than {MAX_DEPTH} levels")
            self.memo[t.name] = (node, depth)
        return self.memo[t.name]

    def _rule(self, t: tf.Tensor, level: int) -> tuple[_Node, int]:
        op, kind = t.op, t.op.type
        if t.name in self.symbols:
            return self.symbols[t.name], 0
        row = self._row(t)
        if row is not None:
            return self.rows[row], 0
        if kind == "Const":
            return _Number(_scalar(t)), 0
        if kind in _TRANSPARENT or (kind == "Cast" and op.get_attr("SrcT") == tf.float64):
            return self.node(op.inputs[0], level)
        if kind == "Cast" and op.inputs[0].op.type == "Const":  # tf.cast(2, tf.float64)
            return _Number(_scalar(op.inputs[0])), 0
        if kind not in _BINARY and kind not in _CALLS and kind not in _REWRITES \
                and kind not in ("AddN", "SquaredDifference"):
            raise _Refused(f"the operation {kind} ({op.name})")
        args = [self.node(i, level) for i in op.inputs]
        nodes, depth = [a[0] for a in args], 1 + max((a[1] for a in args), default=0)
        if kind in _BINARY and len(nodes) == 2:
            return _Binary(_BINARY[kind], *nodes), depth
        if kind in _CALLS and len(nodes) == (2 if kind == "Atan2" else 1):
            return _Call(_CALLS[kind], tuple(nodes)), depth
        if kind in _REWRITES and len(nodes) == 1:
            rewrite, extra = _REWRITES[kind]
            return rewrite(nodes[0]), depth + extra
        if kind == "SquaredDifference" and len(nodes) == 2:
            return _Binary("**", _Binary("-", *nodes), _TWO), depth + 1
        if kind == "AddN" and nodes:
            total = nodes[0]
            for term in nodes[1:]:
                total = _Binary("+", total, term)
            return total, depth + len(nodes) - 2
        raise _Refused(f"the operation {kind} with {len(nodes)} operands")

    def _row(self, t: tf.Tensor) -> int | None:
        """The row index if ``t`` is a row of a (k, m) xdata taken by a constant index."""
        op, kind = t.op, t.op.type
        if self.k is None or kind not in ("Unpack", "StridedSlice", "GatherV2") \
                or not self._is_xdata(op.inputs[0]):
            return None
        if kind == "Unpack":
            if op.get_attr("axis") not in (0, -2):
                raise _Refused("xdata unstacked along its points")
            return t.value_index
        if kind == "GatherV2":
            if op.get_attr("batch_dims") != 0 or _index(op.inputs[2]) != 0:
                raise _Refused("xdata gathered other than by rows")
            return self._checked_row(_index(op.inputs[1]))
        begin, _, strides = (_constant(i) for i in op.inputs[1:4])
        masks = {name: op.get_attr(name) for name in (
            "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
        # xdata[i] (one axis given) or xdata[i, :] (the second axis whole: its begin and end
        # masked), the first axis shrunk to its index i
        if (begin.shape not in ((1,), (2,)) or masks["shrink_axis_mask"] != 1
                or masks["ellipsis_mask"] or masks["new_axis_mask"] or masks["begin_mask"] & 1
                or strides[0] != 1 or (begin.shape == (2,) and not (
                    masks["begin_mask"] == masks["end_mask"] == 2 and strides[1] == 1))):
            raise _Refused("xdata sliced other than xdata[i] or xdata[i, :]")
        return self._checked_row(int(begin[0]))

    def _checked_row(self, i: int) -> int:
        k = self.k or 1
        if not -k <= i < k:
            raise _Refused(f"row {i} of {k}")
        return i % k

    def _is_xdata(self, t: tf.Tensor) -> bool:
        while t.op.type in _TRANSPARENT:
            t = t.op.inputs[0]
        return t.name == self.xdata.name


def _constant(t: tf.Tensor) -> np.ndarray:
    """The value of a ``Const`` op's tensor; anything computed is refused."""
    if t.op.type != "Const":
        raise _Refused(f"{t.name} is computed, not a constant")
    return tf.make_ndarray(t.op.get_attr("value"))


def _scalar(t: tf.Tensor) -> float:
    """A real scalar constant as a float64 (an array constant is data: refused)."""
    value = _constant(t)
    if value.shape != () or value.dtype.kind not in "iuf":
        raise _Refused(f"the constant {t.name} of shape {value.shape} and dtype {value.dtype}")
    return float(np.float64(value))


def _index(t: tf.Tensor) -> int:
    value = _constant(t)
    if value.shape != () or value.dtype.kind not in "iu":
        raise _Refused(f"the index {t.name} is not an integer scalar")
    return int(value)


def _trace(f: Callable[..., Any], x: np.ndarray, n: int) -> tuple[tf.Tensor, _Walk]:
    """The output tensor of ``f`` traced on float64 placeholders, and the walk of its graph."""
    python_function = getattr(f, "python_function", f)  # a tf.function: its Python code
    specs = [tf.TensorSpec(x.shape, tf.float64)] + [tf.TensorSpec((), tf.float64)] * n
    concrete = tf.function(python_function, autograph=False).get_concrete_function(*specs)
    graph = concrete.graph
    outputs = tf.nest.flatten(concrete.structured_outputs)
    if len(outputs) != 1 or not isinstance(outputs[0], tf.Tensor):
        raise _Refused("f must return one tensor")
    stateful = [op.type for op in graph.get_operations() if op.op_def.is_stateful]
    if stateful:
        raise _Refused(f"stateful operations {stateful}")
    inputs = concrete.inputs[:1 + n]
    return outputs[0], _Walk(inputs[0], list(inputs[1:]), x.shape[0] if x.ndim == 2 else None,
                             x.shape[-1])


def capture_tensorflow(f: Callable[..., Any], x: np.ndarray,
                       starts: np.ndarray) -> CapturedModel | None:
    """The TensorFlow model ``f(xdata, *params)`` as a checked formula tree, or None.

    Args:
        f: A curve model written with TensorFlow operations (or a ``tf.function`` of one).
        x: One problem's xdata, float64 of shape (m,) or (k, m); the trace uses its shape.
        starts: The starts to check at, float64 of shape (S, n), S at most
            ``_model_capture.CHECKS`` (``capture_model`` picks them from p0).

    Returns:
        A :class:`~marquardt._model_capture.CapturedModel` with variables ``x0 .. x{k-1}`` and
        parameters ``p0 .. p{n-1}``, or None: the graph holds something outside the subset of
        the module docstring, or the tree's values differ from ``f``'s at a start.
    """
    n = starts.shape[1]
    k = 1 if x.ndim == 1 else x.shape[0]
    try:
        output, walk = _trace(f, x, n)
        if output.dtype != tf.float64 or output.shape.as_list() != [x.shape[-1]]:
            return None
        value, _ = walk.node(output)
        x_tensor = tf.constant(x)
        return checked_model(value, tuple(f"x{i}" for i in range(k)),
                             tuple(f"p{j}" for j in range(n)), x, starts,
                             lambda p: f(x_tensor, *(tf.constant(v) for v in p)))
    except Exception:  # noqa: BLE001 - any failure of the user's f means "not capturable"
        return None
