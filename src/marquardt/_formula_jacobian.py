"""The exact Jacobian of a parsed formula, derived symbolically and evaluated with NumPy.

For a formula f(x; p₁, …, pₙ) (a checked tree of ``marquardt._formula_syntax``), the Jacobian
of the model values over the m data points is J[i, j] = ∂f/∂pⱼ (xᵢ), an (m, n) float64 array in
the parameters' order. Each ∂f/∂pⱼ is built once, as a tree of the same node types
(``_Number``, ``_Symbol``, ``_Unary``, ``_Binary``, ``_Call``), by the rules of
:func:`derivative`, and evaluated with NumPy at every call: no TensorFlow, no JAX, no
differences. Where D = ∂/∂p and u, v are subtrees:

========================  =======================================================================
node                      derivative
========================  =======================================================================
number, constant, datum   0
parameter q               1 if q is p, else 0
−u, +u                    −Du, Du
u ± v                     Du ± Dv
u·v                       Du·v + u·Dv
u / v                     Du/v − Dv·((u/v)/v)                    (TensorFlow's order for the second)
u ** v                    v·u**(v−1)·Du + (u**v)·log₊(u)·Dv,     log₊(u) = log u if u > 0, else 0
exp u                     exp(u)·Du
log u, log10 u            Du/u, Du/(u·ln 10)
sqrt u                    Du/(2·√u)
sin u, cos u, tan u       cos(u)·Du, −sin(u)·Du, Du/(cos u·cos u)
arcsin u, arccos u        Du/√(1 − u·u), −Du/√(1 − u·u)
arctan u                  Du/(1 + u·u)
sinh u, cosh u, tanh u    cosh(u)·Du, sinh(u)·Du, (1 − tanh u·tanh u)·Du
abs u                     sign(u)·Du                              (sign(0) = 0)
arctan2(u, v)             (v·Du − u·Dv)/(v·v + u·u)
========================  =======================================================================

The nodes are built through small constructors that fold the trivial cases (0·a = 0, 1·a = a,
a + 0 = a, −(−a) = a, a**1 = a, a**0 = 1, numbers with numbers), so that the derivative of a
parameter that enters once is as small as it reads: ∂(a·exp(−b·t) + c)/∂a is the node
exp(−b·t) itself, evaluated bit for bit as NumPy evaluates the formula. Subtrees are shared, not
copied (exp(u)·Du reuses the node exp(u)), and evaluation memoises each node, so the formula's
value and its n derivatives cost one pass over one graph.

Domain edges follow what TensorFlow's autodiff gives for the formula's TensorFlow operations
(``Formula.as_model``), since that is what the command line's fits used:

* √u at u = 0: Du/0 is ±inf, and NaN where Du = 0 too (sqrt(b·x) at x = 0: x/(2·√(b·x)) = 0/0),
  as TensorFlow's 0.5·Du/√u. The command line then falls back on differences, as before.
* |u| at u = 0: 0 (TensorFlow's sign(u)·Du), not undefined.
* u**v with v depending on p and u ≤ 0: the term u**v·log u·Dv is taken as 0, as TensorFlow does
  ("no sensible real value", its ``_PowGrad``), including 0**v (→ 0 as v·log u → 0 from u > 0).
* log u at u = 0, arcsin and arccos at ±1: ±inf, as TensorFlow.
* One difference: a *structural* zero is exactly 0. Where a factor of the derivative does not
  depend on p at all (0·exp(p), or the term of u**v for a constant v), the term is dropped, while
  TensorFlow multiplies 0 by the other factor and gets NaN where that factor is inf or NaN
  (exp(p) overflowing). The formula's own value is then not finite either, so a fit cannot stop
  there. Forward mode (``tf.autodiff.ForwardAccumulator``, what ``curve_fit`` uses for n ≪ m)
  does the same with zero tangents: ∂/∂b of (a·x)**b at x = 0 is NaN there (0·∞ from the base's
  term), 0 here (and in reverse mode). Where TensorFlow's entry is finite, ours is and agrees.
* Rounding: the products are associated forward (a·(exp(u)·(−t))) where reverse-mode autodiff
  associates backward (−((a·exp(u))·t)), so entries may differ from TensorFlow's in the last
  bit or two; the tests compare at 1e-13 relative.

``sign`` and ``log₊`` are the only functions a derivative tree holds that are not in
``FUNCTIONS``; they are looked up in this module's table, and a user's formula cannot name them
(the parser refuses any name outside ``FUNCTIONS``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from marquardt._formula_syntax import (
    CONSTANTS, FUNCTIONS, _Binary, _Call, _Node, _Number, _Symbol, _Unary)

__all__ = ["derivative", "NumpyJacobian"]

_ZERO = _Number(0.0)
_ONE = _Number(1.0)
_TWO = _Number(2.0)
_LN10 = _Number(math.log(10.0))


def _log_positive(u: np.ndarray) -> np.ndarray:
    """log₊(u) = log u where u > 0, else 0 (TensorFlow's masked log in ``_PowGrad``)."""
    positive = u > 0
    return np.where(positive, np.log(np.where(positive, u, 1.0)), 0.0)


#: NumPy implementations of every function a derivative tree may call: the whitelist's, and
#: the two that only derivative rules create.
_NUMPY_FUNCTIONS: Mapping[str, Callable[..., Any]] = {
    **{name: function.numpy for name, function in FUNCTIONS.items()},
    "sign": np.sign,
    "log_positive": _log_positive,
}
_NUMPY_BINARY: Mapping[str, Callable[[Any, Any], Any]] = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide, "**": np.power,
}


# ---- constructors that fold trivial nodes -----------------------------------------------------


def _is(node: _Node, value: float) -> bool:
    return isinstance(node, _Number) and node.value == value


def _neg(a: _Node) -> _Node:
    """−a; −number is folded and −(−a) is a."""
    if isinstance(a, _Number):
        return _Number(-a.value)
    if isinstance(a, _Unary) and a.op == "-":
        return a.operand
    return _Unary("-", a)


def _add(a: _Node, b: _Node) -> _Node:
    """a + b, with 0 + b = b and a + 0 = a."""
    if _is(a, 0.0):
        return b
    if _is(b, 0.0):
        return a
    if isinstance(a, _Number) and isinstance(b, _Number):
        return _Number(a.value + b.value)
    return _Binary("+", a, b)


def _sub(a: _Node, b: _Node) -> _Node:
    """a − b, with a − 0 = a and 0 − b = −b."""
    if _is(b, 0.0):
        return a
    if _is(a, 0.0):
        return _neg(b)
    if isinstance(a, _Number) and isinstance(b, _Number):
        return _Number(a.value - b.value)
    return _Binary("-", a, b)


def _mul(a: _Node, b: _Node) -> _Node:
    """a·b, with 0·b = a·0 = 0 (a structural zero), 1·b = b, (−1)·b = −b."""
    if _is(a, 0.0) or _is(b, 0.0):
        return _ZERO
    if _is(a, 1.0):
        return b
    if _is(b, 1.0):
        return a
    if _is(a, -1.0):
        return _neg(b)
    if _is(b, -1.0):
        return _neg(a)
    if isinstance(a, _Number) and isinstance(b, _Number):
        return _Number(a.value * b.value)
    return _Binary("*", a, b)


def _div(a: _Node, b: _Node) -> _Node:
    """a / b, with 0 / b = 0 (structural) and a / 1 = a."""
    if _is(a, 0.0):
        return _ZERO
    if _is(b, 1.0):
        return a
    return _Binary("/", a, b)


def _pow(a: _Node, b: _Node) -> _Node:
    """a**b, with a**1 = a and a**0 = 1 (as NumPy and TensorFlow give for every a)."""
    if _is(b, 1.0):
        return a
    if _is(b, 0.0):
        return _ONE
    return _Binary("**", a, b)


def _call(function: str, *args: _Node) -> _Call:
    return _Call(function, args)


# ---- the rules ----------------------------------------------------------------------------------


def derivative(node: _Node, parameter: str) -> _Node:
    """∂node/∂parameter as a tree, by the rules in this module's docstring.

    Args:
        node: A checked formula tree (``Formula._tree``) or a subtree of one.
        parameter: The parameter's name.

    Returns:
        The derivative's tree, sharing the subtrees of ``node`` it needs; ``_Number(0.0)`` where
        ``node`` does not depend on ``parameter``.

    Examples:
        >>> from marquardt._formula import parse_formula
        >>> tree = parse_formula("a*exp(-b*t) + c", variables=["t"])._tree
        >>> derivative(tree, "a") == tree.left.right   # exp(-b*t), the node itself
        True
        >>> derivative(tree, "c")
        _Number(value=1.0)
    """
    return _Deriver(parameter).of(node)


class _Deriver:
    """Derivatives of the nodes of one tree for one parameter, each node's built once (by
    identity), so shared subtrees stay shared."""

    def __init__(self, parameter: str):
        self.parameter = parameter
        self.done: dict[int, _Node] = {}
        self.keep: list[_Node] = []  # the nodes whose ids key `done` stay alive

    def of(self, node: _Node) -> _Node:
        key = id(node)
        found = self.done.get(key)
        if found is None:
            found = self.done[key] = self.rule(node)
            self.keep.append(node)
        return found

    def rule(self, node: _Node) -> _Node:
        if isinstance(node, _Number):
            return _ZERO
        if isinstance(node, _Symbol):
            return _ONE if node.kind == "parameter" and node.name == self.parameter else _ZERO
        if isinstance(node, _Unary):
            du = self.of(node.operand)
            return _neg(du) if node.op == "-" else du
        if isinstance(node, _Binary):
            return self.binary(node)
        return self.call(node)

    def binary(self, node: _Binary) -> _Node:
        u, v = node.left, node.right
        du, dv = self.of(u), self.of(v)
        if node.op == "+":
            return _add(du, dv)
        if node.op == "-":
            return _sub(du, dv)
        if node.op == "*":
            return _add(_mul(du, v), _mul(u, dv))
        if node.op == "/":
            # Du/v − Dv·((u/v)/v): TensorFlow's −x/y/y; u/v is the node itself
            return _sub(_div(du, v), _mul(dv, _div(node, v)))
        # u**v: v·u**(v−1)·Du + u**v·log₊(u)·Dv
        if _is(du, 0.0):
            base = _ZERO
        else:
            exponent = _Number(v.value - 1.0) if isinstance(v, _Number) else _sub(v, _ONE)
            base = _mul(_mul(v, _pow(u, exponent)), du)
        power = _ZERO if _is(dv, 0.0) else _mul(_mul(node, _call("log_positive", u)), dv)
        return _add(base, power)

    def call(self, node: _Call) -> _Node:
        if node.function == "arctan2":
            u, v = node.args  # arctan2(u, v) = the angle of the point (v, u)
            du, dv = self.of(u), self.of(v)
            return _div(_sub(_mul(v, du), _mul(u, dv)), _add(_mul(v, v), _mul(u, u)))
        (u,) = node.args
        du = self.of(u)
        if _is(du, 0.0):
            return _ZERO
        name = node.function
        if name == "exp":
            return _mul(node, du)
        if name == "log":
            return _div(du, u)
        if name == "log10":
            return _div(du, _mul(u, _LN10))
        if name == "sqrt":
            return _div(du, _mul(_TWO, node))
        if name == "sin":
            return _mul(_call("cos", u), du)
        if name == "cos":
            return _mul(_neg(_call("sin", u)), du)
        if name == "tan":
            cos = _call("cos", u)
            return _div(du, _mul(cos, cos))
        if name in ("arcsin", "arccos"):
            d = _div(du, _call("sqrt", _sub(_ONE, _mul(u, u))))
            return d if name == "arcsin" else _neg(d)
        if name == "arctan":
            return _div(du, _add(_ONE, _mul(u, u)))
        if name == "sinh":
            return _mul(_call("cosh", u), du)
        if name == "cosh":
            return _mul(_call("sinh", u), du)
        if name == "tanh":
            return _mul(_sub(_ONE, _mul(node, node)), du)
        if name == "abs":
            return _mul(_call("sign", u), du)
        raise AssertionError(f"no derivative rule for the function {name!r}")  # FUNCTIONS grew


# ---- evaluation -------------------------------------------------------------------------------


class NumpyJacobian:
    """``jac(x, *params)`` for ``curve_fit``: the formula's exact Jacobian, an (m, n) float64
    array, column j the derivative for ``parameter_names[j]``.

    Build it with ``Formula.as_numpy_jacobian`` (which checks the names). ``x`` is taken as by
    ``Formula.as_numpy_model``: shape (m,) (or (1, m)) for one variable, (k, m) for k.
    Invalid operations give NaN or inf without warnings.

    Attributes:
        trees: The derivative trees, one per parameter, in ``parameter_names`` order.

    Examples:
        >>> import numpy as np
        >>> from marquardt._formula import parse_formula
        >>> jac = parse_formula("a*exp(-b*x)").as_numpy_jacobian(["x"], ["a", "b"])
        >>> jac(np.array([0.0, 1.0]), 2.0, 0.0).tolist()
        [[1.0, -0.0], [1.0, -2.0]]
    """

    def __init__(self, tree: _Node, variable_names: tuple[str, ...],
                 parameter_names: tuple[str, ...]):
        self.variable_names = variable_names
        self.parameter_names = parameter_names
        self.trees = tuple(derivative(tree, name) for name in parameter_names)

    def __call__(self, x: Any, *params: Any) -> np.ndarray:
        if len(params) != len(self.parameter_names):
            raise TypeError(f"jac takes x and {len(self.parameter_names)} parameters "
                            f"{self.parameter_names}, got {len(params)}")
        rows = split_rows(np.asarray(x, dtype=np.float64), self.variable_names)
        env: dict[str, Any] = dict(zip(self.variable_names, rows))
        env.update((name, np.float64(p)) for name, p in zip(self.parameter_names, params))
        out = np.empty(rows[0].shape + (len(self.trees),), dtype=np.float64)
        memo: dict[int, Any] = {}
        with np.errstate(all="ignore"):
            for j, tree in enumerate(self.trees):
                out[..., j] = evaluate(tree, env, memo)
        return out


def split_rows(x: np.ndarray, variable_names: tuple[str, ...]) -> list[np.ndarray]:
    """The rows of ``x``, one per variable: (m,) or (1, m) for one, (k, m) for k."""
    if len(variable_names) == 1:
        return [x[0] if x.ndim == 2 and x.shape[0] == 1 else x]
    if x.ndim != 2 or x.shape[0] != len(variable_names):
        raise ValueError(f"`x` must have shape ({len(variable_names)}, m), one row per variable "
                         f"{variable_names}. Received: x.shape={x.shape}")
    return list(x)


def evaluate(node: _Node, env: Mapping[str, Any], memo: dict[int, Any]) -> Any:
    """The tree's value with NumPy (float64), each node evaluated once per ``memo`` (by
    identity: the trees must stay alive while ``memo`` is used)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if isinstance(node, _Number):
        value = np.float64(node.value)
    elif isinstance(node, _Symbol):
        value = np.float64(CONSTANTS[node.name]) if node.kind == "constant" else env[node.name]
    elif isinstance(node, _Unary):
        operand = evaluate(node.operand, env, memo)
        value = -operand if node.op == "-" else operand
    elif isinstance(node, _Binary):
        value = _NUMPY_BINARY[node.op](evaluate(node.left, env, memo),
                                       evaluate(node.right, env, memo))
    else:
        value = _NUMPY_FUNCTIONS[node.function](*(evaluate(arg, env, memo) for arg in node.args))
    memo[key] = value
    return value
