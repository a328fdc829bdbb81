"""Lanes: a problem's short vectors written as one scalar per element in a trace
(``marquardt._backend.numpy.trace``).

For one small problem most of the core's arrays outside the residuals and the Jacobian are
n-vectors (the gradient, D, the singular values, the step), and a NumPy call on a 3-element
array costs about a microsecond, almost all of it dispatch: the secular equation's Newton
iterates alone are some forty such calls per iteration. A traced vector of at most
``MAX_LANES`` float64 or bool elements (shape (n,) or (1, n)) is therefore split into its
elements, NumPy scalars, and an elementwise operation on it becomes one scalar line per element
(some fifty nanoseconds each); a reduction over its last axis becomes one expression in the
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

import numpy as np

from marquardt._backend.numpy.trace_inline import INLINE
from marquardt._backend.numpy.trace_values import _same, _Sym

__all__ = ["MAX_LANES", "REDUCTIONS", "add_order", "lane_count", "lanes", "materialize",
           "elementwise", "namespace_form", "reduction"]

MAX_LANES = 8  # above this one ufunc call on the array is as cheap as n scalar operations

_LANE_DTYPES = (np.dtype(np.float64), np.dtype(np.bool_))

# ``single``'s elementwise functions whose scalar inline form applies lane by lane
ELEMENTWISE = ("where", "maximum", "minimum", "greater", "greater_equal", "less",
               "less_equal", "equal", "logical_and", "logical_or", "logical_not", "abs",
               "sqrt", "isfinite")


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
    """The element symbols of ``sym`` (unpacked from its array, once, where it has none)."""
    if sym.parts is None:
        flat = sym.value.reshape(-1)
        parts = tr.emit("{0}.reshape(-1)", (sym,), tuple(flat[i] for i in range(flat.size)))
        sym.parts = list(parts)
    return sym.parts


def materialize(tr, sym: _Sym) -> None:
    """Give a lane-only symbol its array variable (the lanes rebuilt in its shape and dtype)."""
    items = ", ".join(p.name for p in sym.parts)
    rows = f"[[{items}]]" if sym.value.ndim == 2 else f"[{items}]"
    dtype = tr.constant(sym.value.dtype.type)
    tr.count += 1
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
    if not n:
        return None
    split = [lanes(tr, a) if isinstance(a, _Sym) and isinstance(a.value, np.ndarray) else None
             for a in args]
    return [[(s[i] if len(s) > 1 else s[0]) if s is not None else a
             for a, s in zip(args, split)] for i in range(n)]


def _lane_sym(tr, value, parts) -> _Sym:
    sym = _Sym(None, value, tr)
    sym.parts = list(parts)
    return sym


def elementwise(tr, form, args, result):
    """``result`` (an array) lane by lane: ``form(lane_args)`` gives each lane's (template,
    arguments); None where the operation does not split."""
    if not lane_count(result):
        return None
    per_lane = _lane_args(tr, args, result.shape)
    if per_lane is None:
        return None
    flat = result.reshape(-1)
    parts = []
    for i, lane_args in enumerate(per_lane):
        got = form(lane_args)
        if got is None or got[0] is None:
            return None
        template, inline_args = got
        expected = flat[i]
        if template == "{0}" and isinstance(inline_args[0], _Sym):
            if not _same(tr.value(inline_args[0]), expected):
                return None
            parts.append(inline_args[0])
            continue
        if not tr.check(template, inline_args, expected):
            return None
        parts.append(tr.emit(template, inline_args, expected))
    return _lane_sym(tr, result, parts)


def namespace_form(tr, name):
    """The lane form of ``single``'s elementwise function ``name`` (None: not elementwise)."""
    if name == "sqrt":  # NaN below 0 and for NaN exactly as ``np.sqrt`` on the array gives it
        return lambda lane_args: ("(_F64(_msqrt({0})) if {0} >= 0 else _np_sqrt({0}))",
                                  lane_args)
    if name not in ELEMENTWISE:
        return None
    inline = INLINE[name]
    return lambda lane_args: inline(tr, *lane_args)


REDUCTIONS = ("sum", "max", "norm", "any", "all")


def reduction(tr, name, args, kwargs, result):
    """sum / max / norm / any / all of a lane vector over its last axis, to one value per
    problem: one expression of its lanes (None where the call is another)."""
    if name not in REDUCTIONS or len(args) != 1:
        return None
    a = args[0]
    if not isinstance(a, _Sym) or not lane_count(a.value):
        return None
    axis = kwargs.get("axis", -1 if name == "norm" else None)
    keepdims = kwargs.get("keepdims", False)
    if isinstance(axis, _Sym) or keepdims not in (False, True):
        return None
    if keepdims:  # one lane in the reduced shape: the scalar, kept as a lane vector
        if not lane_count(result) or result.size != 1:
            return None
        scalar = reduction(tr, name, args, {**kwargs, "keepdims": False},
                           result.reshape(-1)[0])
        return None if scalar is None else _lane_sym(tr, result, [scalar])
    if isinstance(result, np.ndarray):
        return None
    ndim = a.value.ndim
    if axis is None:
        if ndim != 1:
            return None
    elif not isinstance(axis, int) or axis % ndim != ndim - 1:
        return None
    parts = lanes(tr, a)
    n = len(parts)
    names = [f"{{{i}}}" for i in range(n)]
    if name == "sum":
        template, inline_args = add_order(names), parts
    elif name == "norm":
        squares = [tr.emit("({0} * {0})", (p,), tr.value(p) * tr.value(p)) for p in parts]
        template, inline_args = f"_F64(_msqrt({add_order(names)}))", squares
    elif name in ("any", "all"):
        symbol = " | " if name == "any" else " & "
        template, inline_args = "(" + symbol.join(names) + ")", parts
    else:  # max: NumPy's rule lane by lane, NaN wins
        acc = parts[0]
        for p in parts[1:]:
            form = "({0} if ({0} >= {1} or {0} != {0}) else {1})"
            value = _max2(tr.value(acc), tr.value(p))
            acc = tr.emit(form, (acc, p), value)
        if not _same(tr.value(acc), result):
            return None
        return acc
    if not tr.check(template, inline_args, result):
        return None
    return tr.emit(template, inline_args, result)


def _max2(x, y):
    return x if (x >= y or x != x) else y
