"""A NumPy curve model captured as a formula tree, by calling it once on symbolic arguments.

``curve_fit``'s models are ordinary Python functions ``f(xdata, *params)`` written with NumPy.
Many are one closed-form expression (``a*np.exp(-b*t) + c``, a 2-D Gaussian), and for those a
per-problem compiled kernel can evaluate the model and its exact Jacobian in C
(``marquardt._backend.numpy.native_formula``). :func:`capture_model` finds the expression
without reading or evaluating any text: it calls ``f`` once with

* each parameter a symbolic scalar, and
* ``xdata`` a symbolic array whose rows are per-point variables (``x, y = xdata`` and
  ``xdata[0]`` give the rows; an (m,) ``xdata`` is itself the one variable),

objects that overload Python's arithmetic (``+ - * / **``, unary ``-`` and ``+``, ``abs``)
and NumPy's ufuncs (``__array_ufunc__``): each operation returns a new symbolic object holding
the node of ``marquardt._formula_syntax`` (``_Number``, ``_Symbol``, ``_Unary``, ``_Binary``,
``_Call``) that records it. The ufuncs accepted are those of the formula whitelist
(``_formula_syntax.FUNCTIONS``: exp, log, log10, sqrt, sin, ..., abs, arctan2), each of which
has a derivative rule in ``marquardt._formula_jacobian``, plus ``np.add``, ``subtract``,
``multiply``, ``divide``, ``power``, ``negative``, ``positive`` and ``square`` (recorded as
``u**2``). Constants are Python and NumPy real numbers (and 0-d arrays); they become
``_Number`` nodes. The partials ∂f/∂pⱼ are then ``_formula_jacobian.derivative`` of the tree.

Anything else makes the capture fail and :func:`capture_model` return None, so that the
caller keeps its general path: a Python ``if`` or comparison on a value (``__bool__``,
``__eq__``, ``__lt__``, ... raise), ``float(p)`` or ``math.exp(p)``, ``np.where``,
``np.asarray`` and every other non-ufunc NumPy function (``__array__`` raises), reductions
(``np.sum``: a ufunc method other than ``__call__``), ufunc keywords (``out=``, ``dtype=``),
indexing of points or slicing, array methods, a ufunc outside the list, an array constant of
one or more dimensions (per-point data captured by the closure), a result that is not a
symbolic expression, and any exception ``f`` raises. Nothing ``f`` does is trusted: the
captured tree is evaluated with NumPy (``_formula_jacobian.evaluate``, the same ufuncs in the
same order) and compared with ``f(xdata, *p)`` itself at up to ``CHECKS`` of the given starts:
the same shape (m,), the same values to rtol ``RTOL`` (NaN where f gives NaN), else None.
This also refuses models that depend on state the symbolic call cannot see (globals changed
between calls, randomness). A model whose own code stores into a global, a ``nonlocal``, an
attribute or an item (a memo of its last parameters) is not called symbolically at all
(``marquardt._stateful.keeps_state``): the symbolic objects it would keep could meet its
next real call.

Limits: one call, so a model whose operations depend on the parameters' *values* in a way
that does not raise (a lookup table keyed by ``id``, say) is only caught by the numerical
check at the starts; trees are limited to ``_formula_syntax.MAX_DEPTH`` levels and
``MAX_NODES`` distinct nodes (the derivative walks recurse); ``f`` is called once
symbolically and once per checked start.

A :class:`~marquardt.Formula` (``parse_formula``) is accepted directly as the model: its tree
is the model, no call and no check are needed.

A model written with TensorFlow (``tf.exp``) cannot take the symbolic objects; where the
symbolic call fails, TensorFlow is already imported and ``f`` returns a tensor (decided as
``_batch_inputs.probe`` decides the backend), the capture is
``marquardt._backend.tensorflow.capture.capture_tensorflow``'s instead: ``f`` traced once on
float64 placeholders and its graph read into the same nodes, with the same names, and checked
the same way (``checked_model``). TensorFlow is never imported for a NumPy model.

Example:
    >>> import numpy as np
    >>> def f(t, a, b, c):
    ...     return a * np.exp(-b * t) + c
    >>> model = capture_model(f, np.linspace(0.0, 1.0, 5), [2.0, 1.0, 0.5])
    >>> model.parameters, model.variables
    (('p0', 'p1', 'p2'), ('x0',))
    >>> capture_model(lambda t, a: np.where(t > a, t, a), np.ones(3), [1.0]) is None
    True
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from marquardt._formula import Formula
from marquardt._formula_jacobian import derivative, evaluate
from marquardt._stateful import keeps_state
from marquardt._formula_syntax import (
    FUNCTIONS, MAX_DEPTH, MAX_NODES, _Binary, _Call, _Node, _Number, _Symbol, _Unary)
from marquardt._values import is_tensorflow_value

__all__ = ["CapturedModel", "capture_model", "checked_model", "CHECKS", "RTOL"]

CHECKS = 4
"""At most this many starts (spread over p0's rows) are used to check a captured tree."""
RTOL = 1e-13
"""Relative tolerance of the check; the tree replays f's NumPy operations in f's order, so the
values are normally the same bits."""

_UFUNCS: dict[Any, str] = {function.numpy: name for name, function in FUNCTIONS.items()
                           if isinstance(function.numpy, np.ufunc)}
_BINARY_UFUNCS = {np.add: "+", np.subtract: "-", np.multiply: "*", np.true_divide: "/",
                  np.power: "**"}
_TWO = _Number(2.0)


class _Refused(Exception):
    """The symbolic call met something outside the capturable subset."""


@dataclass(frozen=True)
class CapturedModel:
    """A model as a formula tree with its exact partials.

    Attributes:
        value: f(x; p) as a tree of ``_formula_syntax`` nodes.
        partials: ∂f/∂pⱼ for each parameter, in ``parameters`` order (``_Number(0.0)`` where
            f does not depend on pⱼ); they share nodes with ``value``.
        variables: The names of xdata's rows (``_Symbol`` kind "variable"), in row order.
        parameters: The parameters' names (kind "parameter"), in f's argument order.
    """

    value: _Node
    partials: tuple[_Node, ...]
    variables: tuple[str, ...]
    parameters: tuple[str, ...]

    def _env(self, xdata: Any, p: Sequence[float]) -> dict[str, Any]:
        x = np.asarray(xdata, dtype=np.float64)
        rows = [x] if x.ndim == 1 else list(x)
        if len(rows) != len(self.variables) or len(p) != len(self.parameters):
            raise ValueError(f"`xdata` must have {len(self.variables)} row(s) and `p` "
                             f"{len(self.parameters)} values. Received: xdata.shape={x.shape}, "
                             f"len(p)={len(p)}")
        return {**dict(zip(self.variables, rows)),
                **{name: np.float64(v) for name, v in zip(self.parameters, p)}}

    def values(self, xdata: Any, p: Sequence[float]) -> np.ndarray:
        """f(xdata; p) evaluated from the tree with NumPy: shape (m,), float64."""
        env = self._env(xdata, p)
        m = np.shape(env[self.variables[0]])[-1]
        with np.errstate(all="ignore"):
            return np.array(np.broadcast_to(evaluate(self.value, env, {}), (m,)), np.float64)

    def jacobian(self, xdata: Any, p: Sequence[float]) -> np.ndarray:
        """∂f/∂p evaluated from the partials' trees with NumPy: shape (m, n), float64."""
        env = self._env(xdata, p)
        m = np.shape(env[self.variables[0]])[-1]
        out = np.empty((m, len(self.parameters)))
        memo: dict[int, Any] = {}
        with np.errstate(all="ignore"):
            for j, tree in enumerate(self.partials):
                out[:, j] = evaluate(tree, env, memo)
        return out


class _Sym:
    """A symbolic scalar or per-point array: one node of the tree being recorded."""

    __slots__ = ("node", "depth", "pointwise", "m")
    __array_priority__ = 1000.0

    def __init__(self, node: _Node, depth: int, pointwise: bool, m: int):
        if depth > MAX_DEPTH:
            raise _Refused(f"deeper than {MAX_DEPTH} levels")
        self.node, self.depth, self.pointwise, self.m = node, depth, pointwise, m

    # ---- what a NumPy array or scalar answers without computing --------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return (self.m,) if self.pointwise else ()

    @property
    def ndim(self) -> int:
        return 1 if self.pointwise else 0

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    # ---- recording -----------------------------------------------------------------------
    def _make(self, node: _Node, *operands: Any) -> _Sym:
        syms = [o for o in operands if isinstance(o, _Sym)]
        return _Sym(node, 1 + max(s.depth for s in syms), any(s.pointwise for s in syms), self.m)

    def _binary(self, op: str, left: Any, right: Any) -> _Sym:
        return self._make(_Binary(op, _node(left), _node(right)), left, right)

    def __add__(self, o: Any) -> _Sym: return self._binary("+", self, o)
    def __radd__(self, o: Any) -> _Sym: return self._binary("+", o, self)
    def __sub__(self, o: Any) -> _Sym: return self._binary("-", self, o)
    def __rsub__(self, o: Any) -> _Sym: return self._binary("-", o, self)
    def __mul__(self, o: Any) -> _Sym: return self._binary("*", self, o)
    def __rmul__(self, o: Any) -> _Sym: return self._binary("*", o, self)
    def __truediv__(self, o: Any) -> _Sym: return self._binary("/", self, o)
    def __rtruediv__(self, o: Any) -> _Sym: return self._binary("/", o, self)
    def __pow__(self, o: Any) -> _Sym: return self._binary("**", self, o)
    def __rpow__(self, o: Any) -> _Sym: return self._binary("**", o, self)
    def __neg__(self) -> _Sym: return self._make(_Unary("-", self.node), self)
    def __pos__(self) -> _Sym: return self
    def __abs__(self) -> _Sym: return self._make(_Call("abs", (self.node,)), self)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> _Sym:
        if method != "__call__" or kwargs:
            raise _Refused(f"{ufunc.__name__}.{method} with {sorted(kwargs)}")
        if ufunc in _BINARY_UFUNCS:
            return self._binary(_BINARY_UFUNCS[ufunc], *inputs)
        (sym,) = [s for s in inputs if isinstance(s, _Sym)][:1]
        if ufunc is np.negative:
            return -_only(inputs)
        if ufunc is np.positive:
            return _only(inputs)
        if ufunc is np.square:
            return sym._make(_Binary("**", _node(_only(inputs)), _TWO), *inputs)
        name = _UFUNCS.get(ufunc)
        if name is None or len(inputs) != FUNCTIONS[name].arity:
            raise _Refused(f"the ufunc {ufunc.__name__} is not in the formula whitelist")
        return sym._make(_Call(name, tuple(_node(i) for i in inputs)), *inputs)

    # ---- everything that would let a value steer Python ----------------------------------
    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise _Refused("a symbolic value used as a number, a truth value or an array")

    __bool__ = __float__ = __int__ = __index__ = __complex__ = __array__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __iter__ = _refuse
    __len__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __matmul__ = _refuse
    __hash__ = None  # type: ignore[assignment]


class _SymData:
    """A symbolic (k, m) xdata: its rows are the k variables; nothing else is allowed."""

    __array_priority__ = 1000.0

    def __init__(self, rows: list[_Sym]):
        self._rows = rows
        self.shape = (len(rows), rows[0].m)
        self.ndim = 2
        self.dtype = np.dtype(np.float64)

    def __len__(self) -> int:
        return len(self._rows)

    def __iter__(self):
        return iter(self._rows)

    def __getitem__(self, index: Any) -> _Sym:
        if isinstance(index, tuple) and len(index) == 2 and index[1] == slice(None):
            index = index[0]
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            return self._rows[int(index)]  # an IndexError is a refusal like any other
        raise _Refused(f"xdata indexed with {index!r}: only its rows can be taken")

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise _Refused("the symbolic xdata used other than by its rows")

    __array_ufunc__ = __array__ = __bool__ = __float__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __pow__ = __rpow__ = __neg__ = __abs__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _refuse
    __hash__ = None  # type: ignore[assignment]


def _only(inputs: tuple[Any, ...]) -> _Sym:
    (sym,) = inputs
    return sym


def _node(value: Any) -> _Node:
    """The node of a symbolic operand or of a real constant (Python or NumPy number, 0-d array)."""
    if isinstance(value, _Sym):
        return value.node
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise _Refused(f"operand {type(value).__name__} is neither symbolic nor a real number")
    return _Number(float(value))  # an int too large for a float raises OverflowError: refused


def _count_distinct(roots: Sequence[_Node], limit: int) -> bool:
    """Whether the DAG under ``roots`` has at most ``limit`` distinct nodes (by identity)."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > limit:
            return False
        if isinstance(node, _Unary):
            stack.append(node.operand)
        elif isinstance(node, _Binary):
            stack.extend((node.left, node.right))
        elif isinstance(node, _Call):
            stack.extend(node.args)
    return True


def _build(value: _Node, variables: tuple[str, ...],
           parameters: tuple[str, ...]) -> CapturedModel | None:
    partials = tuple(derivative(value, name) for name in parameters)
    if not _count_distinct((value, *partials), MAX_NODES):
        return None
    return CapturedModel(value, partials, variables, parameters)


def checked_model(value: _Node, variables: tuple[str, ...], parameters: tuple[str, ...],
                  x: np.ndarray, starts: np.ndarray,
                  reference: Callable[[np.ndarray], Any]) -> CapturedModel | None:
    """The model of the tree ``value`` with its partials, if it agrees with ``f`` at the starts.

    Args:
        value: The captured tree of f(x; p); it must depend on a variable (shape (m,)).
        variables, parameters: The names of xdata's rows and of the parameters.
        x: One problem's xdata, float64 (m,) or (k, m).
        starts: The starts to check at, (S, n) float64 (``_starts``: at most ``CHECKS``).
        reference: ``f`` itself at one start, ``p -> f(x, *p)``: an array or a tensor.

    Returns:
        The :class:`CapturedModel`, or None where the tree is too large (``MAX_NODES``
        distinct nodes with its partials) or where at a start ``f``'s result is not float of
        shape (m,) or differs from the tree's values beyond rtol ``RTOL`` (NaN must meet NaN).
    """
    model = _build(value, variables, parameters)
    if model is None:
        return None
    m = x.shape[-1]
    for p in starts:
        with np.errstate(all="ignore"):
            ref = reference(p)
            ref = np.asarray(ref.numpy() if hasattr(ref, "numpy") else ref)
            got = model.values(x, p)
        if (ref.shape != (m,) or not np.issubdtype(ref.dtype, np.floating)
                or not np.isclose(got, ref, rtol=RTOL, atol=0.0, equal_nan=True).all()):
            return None
    return model


def _starts(p0: Any) -> np.ndarray:
    starts = np.asarray(p0, dtype=np.float64)
    if starts.ndim == 1:
        starts = starts[None]
    if starts.ndim != 2 or starts.shape[1] == 0:
        raise _Refused("p0 must have shape (n,) or (K, n)")
    pick = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), CHECKS)).astype(int))
    return starts[pick]


def capture_model(f: Callable[..., Any] | Formula, xdata: Any, p0: Any, *,
                  variable_names: Sequence[str] | None = None,
                  parameter_names: Sequence[str] | None = None,
                  backend: str | None = None) -> CapturedModel | None:
    """The model ``f(xdata, *params)`` as a checked formula tree, or None where it is not one.

    Args:
        f: A ``curve_fit`` model written with NumPy or with TensorFlow, or a
            :class:`~marquardt.Formula`.
        xdata: One problem's independent variables, shape (m,) or (k, m) (k variables, the
            rows ``f`` unpacks); used for the numerical check and for the rows' count.
        p0: The start(s), shape (n,) or (K, n): n is the number of parameters; up to
            ``CHECKS`` of the rows are used for the check.
        variable_names, parameter_names: For a Formula only: its variables in the order of
            xdata's rows and its parameters in the order of p0's columns (default: the
            formula's own orders of first appearance).
        backend: What ``f`` is written with, where the caller knows it (``_batch_inputs.probe``
            returns it): ``"numpy"`` (the symbolic call only), ``"tensorflow"`` (the graph
            capture of ``marquardt._backend.tensorflow.capture`` only), or None: the symbolic
            call first and, where it fails and TensorFlow is imported, the graph capture if
            ``f`` returns a tensor at the first start (called with NumPy values first, then
            with tensors, as ``probe`` decides). TensorFlow is never imported for a model
            that is not written with it.

    Returns:
        A :class:`CapturedModel` (names ``x0, x1, ...`` and ``p0, p1, ...`` for a captured
        function), or None: not capturable (see the module docstring), or the tree's values
        differ from ``f``'s at a start.

    Raises:
        ValueError: ``backend`` is not one of None, "numpy", "tensorflow".
    """
    if backend not in _BACKENDS:
        raise ValueError(f"`backend` must be one of {list(_BACKENDS)}. Received: "
                         f"backend={backend!r}")
    try:
        x = np.asarray(xdata, dtype=np.float64)
        starts = _starts(p0)
    except (TypeError, ValueError, _Refused):
        return None
    if x.ndim not in (1, 2) or x.shape[-1] == 0 or x.shape[0] == 0:
        return None
    if isinstance(f, Formula):
        return _formula_model(f, x, starts.shape[1], variable_names, parameter_names)
    if backend != "tensorflow":
        model = _capture_numpy(f, x, starts)
        if model is not None or backend == "numpy" or not _returns_tensor(f, x, starts[0]):
            return model
    from marquardt._backend.tensorflow.capture import capture_tensorflow
    return capture_tensorflow(f, x, starts)


_BACKENDS = (None, "numpy", "tensorflow")


def _formula_model(f: Formula, x: np.ndarray, n: int, variable_names: Sequence[str] | None,
                   parameter_names: Sequence[str] | None) -> CapturedModel | None:
    try:
        variables, parameters = f._model_names(
            f.variables if variable_names is None else variable_names,
            f.parameters if parameter_names is None else parameter_names)
    except ValueError:
        return None
    if len(parameters) != n or len(variables) != (1 if x.ndim == 1 else x.shape[0]):
        return None
    return _build(f._tree, variables, parameters)


def _capture_numpy(f: Callable[..., Any], x: np.ndarray,
                   starts: np.ndarray) -> CapturedModel | None:
    """The symbolic call of the module docstring, then the check at the starts."""
    if keeps_state(f):  # (the symbols it would keep could meet its next real call)
        return None
    m = x.shape[-1]
    k = 1 if x.ndim == 1 else x.shape[0]
    variables = tuple(f"x{i}" for i in range(k))
    parameters = tuple(f"p{j}" for j in range(starts.shape[1]))
    rows = [_Sym(_Symbol("variable", name), 0, True, m) for name in variables]
    params = [_Sym(_Symbol("parameter", name), 0, False, m) for name in parameters]
    try:
        with np.errstate(all="ignore"):
            result = f(rows[0] if x.ndim == 1 else _SymData(rows), *params)
        if not isinstance(result, _Sym) or not result.pointwise:
            return None
        return checked_model(result.node, variables, parameters, x, starts,
                             lambda p: f(x.copy(), *p))
    except Exception:  # noqa: BLE001 - any failure of the user's f means "not capturable"
        return None


def _returns_tensor(f: Callable[..., Any], x: np.ndarray, p: np.ndarray) -> bool:
    """Whether ``f`` is a TensorFlow model, decided as ``_batch_inputs.probe`` decides it:
    its value at ``p`` is a tensor, ``f`` called with NumPy values or, where that raises,
    with float64 tensors. False without calling ``f`` where TensorFlow is not imported."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    try:
        with np.errstate(all="ignore"):
            return is_tensorflow_value(f(x.copy(), *p))
    except Exception:  # noqa: BLE001 - a model that only accepts tensors
        try:
            return is_tensorflow_value(f(tf.constant(x), *(tf.constant(v) for v in p)))
        except Exception:  # noqa: BLE001 - not capturable either way
            return False
