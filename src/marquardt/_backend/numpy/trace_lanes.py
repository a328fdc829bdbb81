"""Lanes: a problem's short vectors written as one scalar per element in a trace
(``marquardt._backend.numpy.trace``).

For one small problem most of the core's arrays outside the residuals and the Jacobian are
n-vectors (the gradient, D, the singular values, the step), and a NumPy call on a 3-element
array costs about a microsecond, almost all of it dispatch: the secular equation's Newton
iterates alone are some forty such calls per iteration. A traced vector of at most
``MAX_LANES`` float64 or bool elements (shape (n,) or (1, n)) is therefore split into its
elements as Python numbers (``float``, ``bool``: IEEE doubles, the same arithmetic as NumPy's,
without a NumPy scalar's dispatch and error-state checks), and an elementwise operation on it becomes one line per
element; what Python would refuse is written out (a division by zero, a negative square root
take NumPy's result); a reduction over its last axis becomes one expression in the
order NumPy's pairwise summation adds (``add_order``: left to right below eight elements, eight
interleaved partial sums from eight on). The array is rebuilt, once, only where an array
operation (a BLAS product, the SVD) or a returned record needs it.

Every lane is checked by the tracer against the array operation's element on the traced values
(same type, same bits), and an operation whose lanes do not all match keeps the array call:
the compiled code's results stay bit for bit the eager core's, with one exception: where
several NaNs meet in a maximum, the one kept (and so the sign bit of the NaN) may differ from
NumPy's, whose vectorised reduction does not specify it; NaN is NaN to every decision.
"""

from __future__ import annotations

import math

import numpy as np

from marquardt._backend.numpy.trace_values import _Sym

__all__ = ["MAX_LANES", "REDUCTIONS", "add_order", "lane_count", "lanes", "materialize",
           "elementwise", "namespace_form", "reduction", "OPERATORS"]

MAX_LANES = 8  # above this one ufunc call on the array is as cheap as n scalar operations

_LANE_DTYPES = (np.dtype(np.float64), np.dtype(np.bool_))


def _lane_div(a, b):
    """a / b where Python would raise (b = 0): NumPy's ±inf or NaN."""
    return float(np.float64(a) / np.float64(b))


def _lane_sqrt(x):
    """sqrt below 0 or of NaN: NumPy's NaN, bit for bit."""
    return float(np.sqrt(np.float64(x)))


# the lane templates' functions, in every tracer's globals (``trace._Tracer``)
HELPERS = {"_lane_div": _lane_div, "_lane_sqrt": _lane_sqrt, "_misfinite": math.isfinite,
           "_msqrt": math.sqrt}

_DIVIDE = "({0} / {1} if {1} else _lane_div({0}, {1}))"

# the lane form of Python's operators (by the ``operator`` function) and of ``single``'s
# elementwise functions (by name): templates on Python numbers
OPERATORS = {"+": "({0} + {1})", "-": "({0} - {1})", "*": "({0} * {1})", "/": _DIVIDE,
             "&": "({0} & {1})", "|": "({0} | {1})", "<": "({0} < {1})", "<=": "({0} <= {1})",
             ">": "({0} > {1})", ">=": "({0} >= {1})", "==": "({0} == {1})",
             "!=": "({0} != {1})", "neg": "(-{0})", "not": "(not {0})", "abs": "abs({0})"}
_FUNCTIONS = {
    "where": "({1} if {0} else {2})",
    "maximum": "({0} if ({0} >= {1} or {0} != {0}) else {1})",  # NumPy's rule: NaN wins
    "minimum": "({0} if ({0} <= {1} or {0} != {0}) else {1})",
    "greater": OPERATORS[">"], "greater_equal": OPERATORS[">="], "less": OPERATORS["<"],
    "less_equal": OPERATORS["<="], "equal": OPERATORS["=="],
    "logical_and": OPERATORS["&"], "logical_or": OPERATORS["|"],
    "logical_not": OPERATORS["not"], "abs": OPERATORS["abs"],
    "sqrt": "(_msqrt({0}) if {0} >= 0 else _lane_sqrt({0}))",
    "isfinite": "_misfinite({0})",
}


def lane_count(value) -> int:
    """The number of lanes of a splittable value (0: not one)."""
    if not isinstance(value, np.ndarray) or value.dtype not in _LANE_DTYPES:
        return 0
    shape = value.shape
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
        n = shape[-1]
        return n if 1 <= n <= MAX_LANES else 0
    return 0


def lanes(tr, sym: _Sym) -> list:
    """The element symbols of ``sym`` as Python numbers (unpacked from its array, once)."""
    if sym.parts is None:
        value = sym.value
        template = "{0}.tolist()[0]" if value.ndim == 2 else "{0}.tolist()"
        items = value.reshape(-1).tolist()
        tr.note(sym)
        sym.parts = list(tr.emit(template, (sym,), tuple(items)))
    return sym.parts


def _python_number(tr, a):
    """A scalar argument of a lane operation as a Python number: a constant converted now, a
    traced NumPy scalar converted once in the code."""
    if not isinstance(a, _Sym):
        return a.item() if isinstance(a, np.generic) else a
    v = a.value
    if not isinstance(v, np.generic):
        return a
    if a.name not in tr.lane_scalars:
        tr.lane_scalars[a.name] = tr.emit("{0}.item()", (a,), v.item())
    return tr.lane_scalars[a.name]


def materialize(tr, sym: _Sym) -> None:
    """Give a lane-only symbol its array variable (the lanes rebuilt in its shape and dtype)."""
    items = ", ".join(tr.render(p) for p in sym.parts)
    rows = f"[[{items}]]" if sym.value.ndim == 2 else f"[{items}]"
    dtype = tr.constant(sym.value.dtype.type)
    tr.count += 1
    tr.note(sym)
    sym.name = f"v{tr.count}"
    tr.lines.append(f"{sym.name} = _np_array({rows}, {dtype})")


def add_order(names: list[str]) -> str:
    """The sum of ``names`` as NumPy's pairwise summation adds them (``pairwise_sum``): left to
    right below 8 terms; from 8 on, eight running sums over blocks of eight, joined as
    ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)), then the remainder left to right."""
    n = len(names)
    if n < 8:
        expression = names[0]
        for name in names[1:]:
            expression = f"({expression} + {name})"
        return expression
    sums = list(names[:8])
    i = 8
    while i < n - n % 8:
        sums = [f"({sums[j]} + {names[i + j]})" for j in range(8)]
        i += 8
    expression = (f"((({sums[0]} + {sums[1]}) + ({sums[2]} + {sums[3]})) + "
                  f"(({sums[4]} + {sums[5]}) + ({sums[6]} + {sums[7]})))")
    for name in names[i:]:
        expression = f"({expression} + {name})"
    return expression


def _lane_args(tr, args, shape):
    """Per lane, the arguments of the lane's operation; None where an argument is an array of
    another shape (a one-element array broadcasts as its one lane) or an untraced array (a
    constant vector keeps the array call)."""
    n = 0
    for a in args:
        v = tr.value(a)
        if isinstance(v, np.ndarray):
            if not isinstance(a, _Sym) or not lane_count(v):
                return None
            if v.shape != shape and (v.size != 1 or v.ndim > len(shape)):
                return None
            n = max(n, v.size)
        elif not isinstance(v, (np.generic, float, int, bool)):
            return None
    if not n:
        return None
    split = [lanes(tr, a) if isinstance(a, _Sym) and isinstance(a.value, np.ndarray)
             else _python_number(tr, a) for a in args]
    return [[(s[i] if len(s) > 1 else s[0]) if isinstance(s, list) else s for s in split]
            for i in range(n)]


def _lane_sym(tr, value, parts) -> _Sym:
    sym = _Sym(None, value, tr)
    sym.parts = list(parts)
    return sym


def _same_element(got, expected) -> bool:
    """A lane's Python number against the array's element: the same kind, the same bits."""
    if isinstance(expected, np.bool_):
        return type(got) is bool and got == bool(expected)
    return type(got) is float and np.float64(got).tobytes() == expected.tobytes()


def elementwise(tr, template, args, result):
    """``result`` (an array) lane by lane, each lane ``template`` on its arguments; None where
    the operation does not split or a lane does not give the array's element."""
    if template is None or not lane_count(result):
        return None
    per_lane = _lane_args(tr, args, result.shape)
    if per_lane is None:
        return None
    flat = result.reshape(-1)
    parts = []
    for i, lane_args in enumerate(per_lane):
        ok, got = tr.evaluate(template, lane_args)
        if not ok or not _same_element(got, flat[i]):
            return None
        parts.append(tr.emit(template, lane_args, got))
    return _lane_sym(tr, result, parts)


def namespace_form(name):
    """The lane template of ``single``'s elementwise function ``name`` (None: not one)."""
    return _FUNCTIONS.get(name)


REDUCTIONS = ("sum", "max", "norm", "any", "all")


def reduction(tr, name, args, kwargs, result):
    """sum / max / norm / any / all of a lane vector over its last axis, to one value per
    problem (a NumPy scalar, as ``single`` gives it; keepdims: a one-lane vector); None where
    the call is another."""
    if name not in REDUCTIONS or len(args) != 1:
        return None
    a = args[0]
    if not isinstance(a, _Sym) or not lane_count(a.value):
        return None
    axis = kwargs.get("axis", -1 if name == "norm" else None)
    keepdims = kwargs.get("keepdims", False)
    if isinstance(axis, _Sym) or keepdims not in (False, True):
        return None
    ndim = a.value.ndim
    if axis is None:
        if ndim != 1:
            return None
    elif not isinstance(axis, int) or axis % ndim != ndim - 1:
        return None
    if keepdims and (not lane_count(result) or result.size != 1):
        return None
    expected = result.reshape(-1)[0] if keepdims else result
    if not isinstance(expected, (np.float64, np.bool_)):
        return None
    parts = lanes(tr, a)
    names = [f"{{{i}}}" for i in range(len(parts))]
    if name == "max":  # NumPy's rule lane by lane, NaN wins
        acc = parts[0]
        for p in parts[1:]:
            ok, got = tr.evaluate(_FUNCTIONS["maximum"], (acc, p))
            if not ok:
                return None
            acc = tr.emit(_FUNCTIONS["maximum"], (acc, p), got)
        template, inline_args = "{0}", [acc]
    elif name == "sum":
        template, inline_args = add_order(names), parts
    elif name == "norm":
        squares = []
        for p in parts:
            ok, got = tr.evaluate("({0} * {0})", (p,))
            if not ok:
                return None
            squares.append(tr.emit("({0} * {0})", (p,), got))
        template, inline_args = f"_msqrt({add_order(names)})", squares
    else:
        template, inline_args = "(" + (" | " if name == "any" else " & ").join(names) + ")", parts
    ok, got = tr.evaluate(template, inline_args)
    if not ok or not _same_element(got, expected):
        return None
    if keepdims:
        part = inline_args[0] if template == "{0}" else tr.emit(template, inline_args, got)
        return _lane_sym(tr, result, [part])
    wrap = "_F64({0})" if isinstance(expected, np.float64) else "_B({0})"
    return tr.emit(wrap.format(template), inline_args, expected)
